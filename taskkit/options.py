"""Mode- and task-specific settings (``--option KEY=VALUE``): parsed and validated in one place.

Each :class:`~taskkit.contracts.Task` and :class:`~taskkit.contracts.Mode` declares ``Options``, a
pydantic model (:class:`Options` below: unknown keys forbidden, types strict) whose fields carry
a type, a default and a one-line description. A run's ``--option`` pairs are parsed here
(booleans ``true/false/yes/no/on/off``, numbers (``1`` and ``0`` also mean true and false for a
yes-or-no option), JSON objects and lists, else strings) and
checked against the task's and the mode's options together, before any data is read: an unknown
key or a wrong type is one :class:`TaskkitError` line naming the key and listing the valid ones.
``config.options`` is then the validated object; tasks and modes read typed attributes through
:func:`read` (``read(config, self.Options).merge``), so every default lives in its Options class.
"""

from __future__ import annotations

import functools
import json
import typing
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from taskkit.errors import TaskkitError

if TYPE_CHECKING:
    from taskkit.contracts import Mode, RunConfig, Task

TRUE = ("true", "yes", "on")
FALSE = ("false", "no", "off")

O = TypeVar("O", bound="Options")


class Options(BaseModel):
    """Base of every task's and mode's ``Options``: typed fields, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class TaskOptions(Options):
    """The ``--option`` settings every task accepts (none); a task's ``Options`` subclasses this."""


class ModeOptions(Options):
    """The ``--option`` settings every mode accepts; a mode's ``Options`` subclasses this."""

    allow_fewer: bool = Field(False, description="with --shots: a class with fewer examples keeps what it has "
                                                 "instead of being an error")
    calibrate: bool | Literal["temperature", "vector"] = Field(
        True, description="fit a temperature on dev (or by cross-validation) so that probabilities match "
                          "accuracy (true, temperature: never changes a prediction); vector: a scale and a bias "
                          "per class where cross-validation says they clearly help (may change predictions); "
                          "false keeps the model's own")


def parse_value(text: str) -> Any:
    """One ``--option`` value as typed on the command line: a boolean word, a number, JSON, else the string."""
    word = text.strip().lower()
    if word in TRUE:
        return True
    if word in FALSE:
        return False
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_pairs(pairs: list[str]) -> dict[str, Any]:
    """``["r=16", "merge=no"]`` -> ``{"r": 16, "merge": False}``; a pair without ``=`` is refused."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise TaskkitError(f"--option {pair!r}: expected KEY=VALUE")
        options[key.strip()] = parse_value(value)
    return options


def merged(task: Task, mode: Mode) -> type[Options]:
    """One Options class holding the task's fields and the mode's (the task's win on a shared name)."""
    return _merged(task.Options, mode.Options)


@functools.cache
def _merged(task_options: type[Options], mode_options: type[Options]) -> type[Options]:
    bases = tuple(dict.fromkeys((task_options, mode_options)))  # the same class once
    if len(bases) == 1:
        return bases[0]
    try:
        return type(f"{task_options.__name__}And{mode_options.__name__}", bases, {"__module__": __name__})
    except TypeError:  # an MRO the two classes cannot share: the task's fields, then the mode's
        fields = {**mode_options.model_fields, **task_options.model_fields}
        from pydantic import create_model

        return create_model(f"{task_options.__name__}And{mode_options.__name__}", __base__=Options,
                            **{n: (f.annotation, f) for n, f in fields.items()})  # type: ignore[call-overload]


def validate(task: Task, mode: Mode, values: dict[str, Any] | Options | None) -> Options:
    """The validated options of a run of ``task`` in ``mode``; one line naming the key when refused."""
    cls = merged(task, mode)
    if isinstance(values, cls):
        return values
    if isinstance(values, BaseModel):
        values = values.model_dump(exclude_unset=True)
    where = f"task {task.name} / mode {mode.name}"
    return _checked(cls, dict(values or {}), where)


def read(config: RunConfig, cls: type[O]) -> O:
    """The options ``cls`` declares, from a run's config: the validated object itself (a run made
    by :func:`taskkit.run` or the CLI), else ``config.options`` (a plain dict, as code building a
    :class:`RunConfig` by hand may give) checked against ``cls`` for the keys it declares."""
    values = config.options
    if isinstance(values, cls):
        return values
    if isinstance(values, BaseModel):
        values = values.model_dump()
    mine = {k: v for k, v in dict(values or {}).items() if k in cls.model_fields}
    return _checked(cls, mine, cls.__qualname__)


def _checked(cls: type[O], values: dict[str, Any], where: str) -> O:
    unknown = sorted(set(values) - set(cls.model_fields))
    if unknown:
        key = unknown[0]
        raise TaskkitError(f"--option {key}={_shown(values[key])}: unknown option for {where} "
                           f"(valid: {', '.join(sorted(cls.model_fields)) or 'none'})")
    values = {key: _as_flag(cls.model_fields[key].annotation, value) for key, value in values.items()}
    try:
        return cls(**values)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = str(error["loc"][0]) if error["loc"] else "?"
        field = cls.model_fields.get(key)
        expected = _expected(field.annotation) if field is not None else None
        reason = expected or error["msg"][:1].lower() + error["msg"][1:]
        raise TaskkitError(f"--option {key}={_shown(values.get(key))}: {reason}") from None


def _kinds(annotation: Any) -> list[Any]:
    """The types an option field takes (the members of a union), ``None`` left out."""
    return [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]


def _as_flag(annotation: Any, value: Any) -> Any:
    """``1`` / ``0`` as true / false for an option that takes a boolean and no number."""
    kinds = _kinds(annotation)
    if bool in kinds and int not in kinds and float not in kinds and type(value) is int and value in (0, 1):
        return bool(value)
    return value


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _expected(annotation: Any) -> str | None:
    """A plain-words expectation for simple field types (else pydantic's own message is used)."""
    kinds = _kinds(annotation)
    if kinds == [bool]:
        return "expected true or false"
    if bool in kinds and all(k is bool or typing.get_origin(k) is typing.Literal for k in kinds):
        words = [str(w) for k in kinds if k is not bool for w in typing.get_args(k)]
        return f"expected true, false, {' or '.join(words)}"
    if kinds == [int]:
        return "expected a whole number"
    return None


def type_name(annotation: Any) -> str:
    """A field's type as ``taskkit options`` shows it: ``int``, ``float | None``, ``logistic | torch``."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " | ".join(str(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return " | ".join(type_name(a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return "None"
    if origin is not None:
        return getattr(origin, "__name__", str(origin))
    return getattr(annotation, "__name__", str(annotation))


def describe(cls: type[Options]) -> list[tuple[str, str, str, str]]:
    """``(name, type, default, description)`` of each field of ``cls``, sorted by name."""
    rows = []
    for name, field in sorted(cls.model_fields.items()):
        default = field.get_default(call_default_factory=True)
        rows.append((name, type_name(field.annotation), _shown(default) if default is not None else "-",
                     field.description or ""))
    return rows


def run_settings(defaults: dict[str, Any] | None = None) -> list[tuple[str, str, str, str]]:
    """``(--option-name, type, default, help)`` of each :class:`RunConfig` field the command line
    offers (``metadata["help"]``); ``defaults``: a mode's own defaults, shown instead of the field's."""
    import dataclasses

    from taskkit.contracts import RunConfig
    from taskkit.settings import option_name

    rows = []
    for f in dataclasses.fields(RunConfig):
        cli = f.metadata.get("cli", False)
        if f.name == "options" or cli is False:
            continue
        default = f.default if f.default is not dataclasses.MISSING else None
        default = (defaults or {}).get(f.name, default)
        if isinstance(cli, tuple) and isinstance(default, bool):
            default = not default  # a flag of its own name (--quiet) that turns the field off
        name = cli[0] if isinstance(cli, tuple) else option_name(f.name)
        rows.append((name, str(f.type).replace("'", ""), "-" if default is None else _shown(default),
                     f.metadata.get("help", "")))
    return rows


def render(task: Task, mode: Mode) -> list[str]:
    """What ``taskkit options TASK --mode MODE`` prints: the ``--option`` keys of the task and of
    the mode (type, default, help), then the run settings."""
    lines: list[str] = []
    task_fields = set(task.Options.model_fields)
    sections = [(f"task {task.name}", task.Options, lambda n: True),
                (f"mode {mode.name}", mode.Options, lambda n: n not in task_fields)]
    for title, cls, shown in sections:
        rows = [r for r in describe(cls) if shown(r[0])]
        lines.append(f"{title} --option KEY=VALUE:" if rows else f"{title}: no --option settings")
        lines += _table(rows)
    lines.append(f"run settings (defaults of task {task.name} in mode {mode.name}):")
    lines += _table(run_settings(task.run_defaults(mode)))
    return lines


def _table(rows: list[tuple[str, str, str, str]]) -> list[str]:
    if not rows:
        return []
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return [f"  {n:<{widths[0]}}  {t:<{widths[1]}}  default {d:<{widths[2]}}  {h}".rstrip() for n, t, d, h in rows]
