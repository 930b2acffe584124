"""The models a server serves: names from folder names, loading, their description, zero-shot labels."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taskkit.contracts import Predictor
from taskkit.errors import TaskkitError


@dataclass
class ServedModel:
    name: str
    path: Path
    predictor: Predictor | None = None
    info: dict[str, Any] = field(default_factory=dict)
    ready: bool = False  # loaded and answered its warm-up


def model_names(paths: Sequence[str | Path]) -> dict[str, Path]:
    """Each folder under its own name (the folder's name); refuses missing folders and name clashes."""
    named: dict[str, Path] = {}
    for given in paths:
        path = Path(given)
        if not path.is_dir():
            raise TaskkitError(f"{path}: no such model folder")
        name = path.resolve().name
        if name in named:
            raise TaskkitError(f"two models would be served as {name!r} ({named[name]} and {path}): "
                               "give each a folder of its own name")
        named[name] = path
    if not named:
        raise TaskkitError("nothing to serve: give one or more model folders")
    return named


def load_model(model: ServedModel) -> None:
    """Load the predictor (``model.predictor``) and describe it; a failure is one line naming the model."""
    from taskkit import api
    from taskkit.artifacts import read_metadata

    try:
        meta = read_metadata(model.path)
        predictor = api.load(model.path)
    except TaskkitError as exc:
        raise TaskkitError(f"model {model.name!r} ({model.path}) failed to load: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - a broken folder or plugin stops start-up in one line
        first = (str(exc).strip().splitlines() or [""])[0]
        raise TaskkitError(f"model {model.name!r} ({model.path}) failed to load: {type(exc).__name__}: {first}") from None
    model.predictor = predictor
    model.info = {"name": model.name, "task": predictor.task.name, "labels": list(predictor.labels.names),
                  "multi_label": predictor.labels.multi_label, "format": meta.get("format"),
                  "mode": meta.get("mode"), "metrics": headline_metrics(Path(meta["_path"]), model.path),
                  "per_request_labels": is_zero_shot(predictor)}


def headline_metrics(model_folder: Path, given: Path) -> dict[str, float]:
    """The run's top-level figures (accuracy, F1...) from its metrics.json, if it has one."""
    for file in (model_folder / "metrics.json", given / "metrics.json"):
        if file.is_file():
            try:
                metrics = json.loads(file.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return {}
            if not isinstance(metrics, dict):
                return {}
            return {k: float(v) for k, v in metrics.items()
                    if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return {}


def is_zero_shot(predictor: Predictor) -> bool:
    from taskkit.zero_shot_predictor import ZeroShotPredictor

    return isinstance(predictor, ZeroShotPredictor)


def with_labels(predictor: Predictor, labels: list[str] | dict[str, str | None]) -> Predictor:
    """The served zero-shot predictor for a request's own ``labels`` (names or {label: description}),
    sharing its loaded models (:meth:`ZeroShotPredictor.with_labels`); other models refuse."""
    from taskkit.zero_shot_predictor import ZeroShotPredictor

    if not isinstance(predictor, ZeroShotPredictor):
        raise TaskkitError("per-request 'labels' are for zero-shot models; this model has fixed labels")
    return predictor.with_labels(labels)
