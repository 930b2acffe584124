"""A predictor that averages the probabilities of several predictors of one task and label set.

The few-shot mode uses it to keep what the label names already say: its trained classifier is
averaged with a zero-shot one, so eight examples per class cannot do worse than no examples.
Saved as one model folder holding each member's own folder under ``members/``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskkit.calibration import SavedCalibration, as_logits, calibrated_probabilities
from taskkit.contracts import Predictor, SavedThreshold, Task
from taskkit.errors import TaskkitError

if TYPE_CHECKING:
    import numpy as np


class EnsemblePredictor(Predictor):
    threshold = SavedThreshold()  # type: ignore[assignment]
    format = "ensemble.v1"
    # the averaged probabilities are calibrated as a whole (their logarithm is the ensemble's logits)
    calibration = SavedCalibration()
    calibratable = True

    def __init__(self, members: Sequence[Predictor], weights: Sequence[float], mode: str,
                 settings: dict[str, Any] | None = None) -> None:
        if not members or len(members) != len(weights):
            raise TaskkitError("an ensemble needs members and one weight each")
        first = members[0]
        for member in members[1:]:
            if set(member.labels.names) != set(first.labels.names) or member.labels.multi_label != first.labels.multi_label:
                raise TaskkitError("ensemble members must predict the same labels")
        self.members, self.weights = list(members), [float(w) for w in weights]
        self.task, self.labels, self.mode = first.task, first.labels, mode
        self.settings = dict(settings or {})

    def predict_proba(self, inputs: Sequence[Any]) -> np.ndarray:
        return calibrated_probabilities(self, self.averaged(inputs))

    def logits(self, inputs: Sequence[Any]) -> np.ndarray:
        return as_logits(self.averaged(inputs), self.labels.multi_label)

    def averaged(self, inputs: Sequence[Any]) -> np.ndarray:
        """The members' probabilities, weighted and averaged (before the ensemble's calibration)."""
        total = sum(self.weights)
        parts = []
        for member, weight in zip(self.members, self.weights):
            order = [member.labels.names.index(n) for n in self.labels.names]  # align the columns
            parts.append(member.predict_proba(inputs)[:, order] * (weight / total))
        return sum(parts[1:], parts[0])  # members: at least one (checked in __init__)

    def save(self, path: str | Path) -> Path:
        from taskkit.artifacts import write_atomically

        def write(folder: Path) -> None:
            for i, member in enumerate(self.members):
                member.save(folder / "members" / str(i))

        meta = {"format": self.format, "task": self.task.name, "mode": self.mode, "labels": list(self.labels.names),
                "multi_label": self.labels.multi_label, "ensemble": {"weights": self.weights},
                "settings": self.settings}
        return write_atomically(path, write, meta)

    @classmethod
    def load(cls, path: Path, task: Task, metadata: dict[str, Any]) -> EnsemblePredictor:
        from taskkit.artifacts import load, read_metadata
        from taskkit.folder_checks import inside

        weights = metadata["ensemble"]["weights"]  # checked: a non-empty list of numbers
        members = []
        for i in range(len(weights)):
            folder = inside(path, f"members/{i}", "ensemble member")
            meta = read_metadata(folder)
            if meta["task"] != task.name or set(meta["labels"]) != set(metadata["labels"]):
                raise TaskkitError(f"{path}: ensemble member {i} is a {meta['task']!r} model of labels "
                                   f"{list(meta['labels'])!r:.80}, not what taskkit.json names")
            members.append(load(folder, task))  # in its own format, of the ensemble's task: no other plugin
        return cls(members, weights, metadata["mode"], metadata.get("settings"))
