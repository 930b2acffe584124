"""Scoring a predictor on examples with its task's metrics (modes never compute metrics)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from taskkit.contracts import Example, Predictor


def evaluate(
    predictor: Predictor, examples: Sequence[Example], threshold: float | None = None,
    probabilities: np.ndarray | None = None,
) -> tuple[dict[str, Any], list[Any], np.ndarray]:
    """(metrics, predictions, probabilities) of ``predictor`` on gold-labelled ``examples``
    (``probabilities``: already computed for them, to score without running the model again)."""
    task, labels = predictor.task, predictor.labels
    if probabilities is None:
        probabilities = predictor.predict_proba(examples)
    predicted = task.decode(probabilities, labels, threshold if threshold is not None else predictor.threshold)
    scores = task.metrics(task.gold(examples, labels), predicted, labels)
    scores["examples"] = len(examples)
    return scores, predicted, probabilities
