"""How good a model's probabilities are: ECE, Brier score, NLL and the reliability diagram's points.

Reported by :mod:`taskkit.calibration` before and after calibrating (``metrics.json``) and drawn
by :mod:`taskkit.plots`. ECE uses 15 equal-width bins of the top probability (multi-label: of
every label's probability against its 0/1 outcome); Brier is the squared error summed over
classes and averaged over examples (multi-label: averaged over labels too); NLL is the mean
negative log-probability of the gold class (multi-label: the mean binary cross-entropy).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

BINS = 15
EPS = 1e-7
#: One choice beats another on held-out examples only when their mean loss falls by more than this
#: many standard errors of the per-example differences: a few dozen examples are noisy.
SURE = 2.0


def scores(probabilities: np.ndarray, gold: np.ndarray, multi_label: bool) -> dict[str, float]:
    """ECE (15 bins), Brier score and NLL of ``probabilities`` against ``gold`` (see the module)."""
    import numpy as np

    p = np.asarray(probabilities, dtype=np.float64)
    if not len(p):
        return {}
    if multi_label:
        y = np.asarray(gold, dtype=np.float64)
        confidence, correct = p.ravel(), y.ravel()
        brier = float(np.mean((p - y) ** 2))
        q = np.clip(p, EPS, 1 - EPS)
        nll = float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))
    else:
        confidence = p.max(axis=1)
        correct = (p.argmax(axis=1) == gold).astype(np.float64)
        onehot = np.eye(p.shape[1])[gold]
        brier = float(np.mean(np.sum((p - onehot) ** 2, axis=1)))
        nll = float(-np.mean(np.log(np.clip(p[np.arange(len(p)), gold], EPS, 1.0))))
    out = {"ece": round(ece(confidence, correct), 6), "brier": round(brier, 6), "nll": round(nll, 6)}
    if not multi_label:  # the arg-max's accuracy: a temperature leaves it as it was
        out["accuracy"] = round(float(np.mean(correct)), 6)
    return out


def ece(confidence: np.ndarray, correct: np.ndarray, bins: int = BINS) -> float:
    """Expected calibration error: the gap between confidence and accuracy in equal-width bins,
    weighted by the share of predictions in each."""
    import numpy as np

    which = np.minimum((np.asarray(confidence) * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        mine = which == b
        if mine.any():
            total += mine.mean() * abs(float(np.mean(correct[mine])) - float(np.mean(confidence[mine])))
    return float(total)


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = BINS) -> list[tuple[float, float, int]]:
    """(mean confidence, accuracy, count) of each non-empty bin: the reliability diagram's points."""
    import numpy as np

    which = np.minimum((np.asarray(confidence) * bins).astype(int), bins - 1)
    return [(float(np.mean(confidence[which == b])), float(np.mean(correct[which == b])), int(np.sum(which == b)))
            for b in range(bins) if np.any(which == b)]


def clearly_lower(base: np.ndarray, other: np.ndarray, sure: float = SURE) -> bool:
    """Whether the per-example losses ``other`` are lower than ``base`` (the same examples) by more
    than ``sure`` standard errors of their differences, not by the noise of a small sample."""
    import numpy as np

    gain = np.asarray(base, dtype=np.float64) - np.asarray(other, dtype=np.float64)
    return bool(len(gain)) and float(gain.mean()) > sure * float(gain.std()) / np.sqrt(len(gain))
