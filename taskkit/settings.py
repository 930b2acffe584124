"""Range checks of every run setting, at the edge: before any data is read or model loaded.

Each bad value is one :class:`TaskkitError` line naming the option as the user typed it on the
command line (``--lr must be > 0, got -1``). Mode-specific ``--option`` values are the modes'
own business. No torch here: the CLI calls this before anything heavy is imported.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from taskkit.errors import TaskkitError

if TYPE_CHECKING:
    from taskkit.contracts import RunConfig

PRECISIONS = ("auto", "fp32", "bf16")
FREEZE = re.compile(r"none|head|embeddings|top:\d+")
EVERY = re.compile(r"([0-9]+)(e?)")
#: RunConfig fields whose command-line option is not ``--field-name``
OPTION_NAMES = {"init_from": "--from"}


def option_name(field: str) -> str:
    """``batch_size`` -> ``--batch-size``: how the user typed the setting."""
    return OPTION_NAMES.get(field, "--" + field.replace("_", "-"))


def _integer(low: int, high: int | None = None) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"must be a whole number, got {value!r}"
        if value < low:
            return f"must be >= {low}, got {value}"
        if high is not None and value > high:
            return f"must be <= {high}, got {value}"
        return None
    return check


def _number(low: float, high: float | None = None, *, low_open: bool = False,
            high_open: bool = False) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return f"must be a finite number, got {value!r}"
        if value < low or (low_open and value == low):
            return f"must be {'>' if low_open else '>='} {low:g}, got {value:g}"
        if high is not None and (value > high or (high_open and value == high)):
            return f"must be {'<' if high_open else '<='} {high:g}, got {value:g}"
        return None
    return check


def _choice(pattern: re.Pattern[str], known: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            return f"must be one of {known}, got {value!r}"
        return None
    return check


def _every(value: Any) -> str | None:
    try:
        checkpoint_interval(value)
    except ValueError as exc:
        return str(exc)
    return None


CHECKS: dict[str, Callable[[Any], str | None]] = {
    "epochs": _integer(1),
    "min_steps": _integer(0),
    "lr": _number(0, low_open=True),
    "batch_size": _integer(1),
    "eval_batch_size": _integer(1),
    "max_length": _integer(8),
    "seed": _integer(0, 2**32 - 1),  # numpy's seeds stop there
    "weight_decay": _number(0),
    "warmup_ratio": _number(0, 1),
    "grad_accum": _integer(1),
    "max_grad_norm": _number(0),
    "dropout": _number(0, 1, high_open=True),
    "patience": _integer(0),
    "precision": _choice(re.compile("|".join(PRECISIONS)), " | ".join(PRECISIONS)),
    "freeze": _choice(FREEZE, "none | head | embeddings | top:N"),
    "shots": _integer(1),  # None (all examples) is not checked
    "dev_shots": _integer(1),
    "dev_fraction": _number(0, 1, high_open=True),
    "checkpoint_every": _every,
}


def checkpoint_interval(value: Any) -> tuple[int, str] | None:
    """``--checkpoint-every``: ``N`` (optimiser steps, an int or a digit string) or ``Ne`` (epochs)
    as ``(N, "step" | "epoch")``; None when not given. Raises ValueError with the reason."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    match = EVERY.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None or int(match.group(1)) < 1:
        raise ValueError(f"must be N (optimiser steps) or Ne (epochs) with N >= 1, got {value!r}")
    return int(match.group(1)), "epoch" if match.group(2) else "step"


def validate(config: RunConfig) -> None:
    """Raise :class:`TaskkitError` for the first setting out of its range."""
    for name, check in CHECKS.items():
        value = getattr(config, name)
        if value is None and name in ("shots", "dev_shots", "checkpoint_every"):
            continue
        problem = check(value)
        if problem:
            raise TaskkitError(f"{option_name(name)} {problem}")
    for name in ("checkpoint_every", "resume"):
        if getattr(config, name) and not config.checkpoint_dir:
            raise TaskkitError(f"{option_name(name)} needs an output folder (--out) for the checkpoints")
