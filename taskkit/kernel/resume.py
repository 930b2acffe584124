"""Continued training (``--from DIR``): start from a saved model instead of the base model."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskkit.contracts import LabelSpace
from taskkit.errors import TaskkitError

if TYPE_CHECKING:
    from taskkit.contracts import Task
    from taskkit.kernel.predictor import TorchPredictor


def continuable_metadata(path: str | Path, task: Task) -> dict[str, Any]:
    """The metadata of the model ``--from`` names, refusing a model of another task."""
    from taskkit.artifacts import read_metadata

    meta = read_metadata(path)
    if meta["task"] != task.name:
        raise TaskkitError(f"{path}: a model of task {meta['task']!r}, cannot continue it as task {task.name!r}")
    return meta


def load_for_training(path: str | Path, task: Task, mode: str, new: LabelSpace) -> tuple[TorchPredictor, LabelSpace]:
    """The saved predictor to continue from, its head widened for labels it never saw.

    The saved label order is kept (new labels are appended), so old predictions stay comparable.
    """
    from peft import PeftModel

    from taskkit.artifacts import load
    from taskkit.kernel.model import grow_output
    from taskkit.kernel.predictor import TorchPredictor

    meta = continuable_metadata(path, task)
    old = load(path)
    if not isinstance(old, TorchPredictor):
        raise TaskkitError(f"{path}: a {meta['mode']!r} model has no trained weights to continue from")
    if old.labels.multi_label != new.multi_label:
        kind = "multi-label" if old.labels.multi_label else "single-label"
        raise TaskkitError(f"{path}: a {kind} model cannot continue on {'multi' if new.multi_label else 'single'}-label data")
    added = tuple(label for label in new.names if label not in old.labels.names)
    labels = LabelSpace(old.labels.names + added, old.labels.multi_label)
    if added:
        grow_output(old.model.head, len(old.labels), len(labels))
    if mode != "peft" and isinstance(old.model.body, PeftModel):
        old.model.body = old.model.body.merge_and_unload()  # other modes train plain weights
    old.model.train()
    for param in old.model.parameters():
        param.requires_grad_(True)
    return old, labels
