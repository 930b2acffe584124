"""How far a few-shot classifier trusts the label names: the zero-shot shares, cross-validated.

The names enter twice: inside the logistic head (the regression blended, in logit space, with the
cosine classifier of each label's description: share ``mix``) and in the final average with a
zero-shot classifier (share ``weight``). How much either helps depends on the data:
"positive"/"negative" are nearly a classifier by themselves, Banking77's "card_arrival" much less,
an opaque code (``L3``) nothing. Both shares are therefore chosen together by cross-validation on
the training examples, over grids that include 0 (the names are worth nothing: they are then not
used at all) and 1 (the examples add nothing), by held-out cross-entropy.

The held-out examples must not have been seen by the body that embeds them, so the folds use
either the untrained body (cheap; it underrates the examples, which contrastive training makes
more telling) or, via :func:`trained_folds`, a body trained on each fold's training part only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

#: Candidate shares of the cosine classifier inside the head, and of the zero-shot member in the average.
MIXES = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)
WEIGHTS = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)
#: The share when there is nothing to cross-validate on (a class with a single example).
FALLBACK = 0.5
#: A larger share is taken only when its held-out loss is lower by more than this fraction: noise
#: in a few dozen held-out examples must not turn worthless names into a share.
TOLERANCE = 0.005


@dataclass
class Fold:
    """One split of the training examples: embeddings of its training part and of its held-out
    part, the label prompts' embeddings (by the same body) and the zero-shot member's
    probabilities on the held-out part (None without one)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_held: np.ndarray
    y_held: np.ndarray
    prior: np.ndarray
    zero_held: np.ndarray | None = None


@dataclass
class Shares:
    mix: float
    weight: float
    chosen_by: str
    loss: dict[str, float] = field(default_factory=dict)  # "mix/weight" -> mean held-out cross-entropy

    def as_dict(self) -> dict[str, object]:
        best = sorted(self.loss.items(), key=lambda kv: kv[1])[:5]
        return {"head": self.mix, "ensemble": self.weight, "chosen_by": self.chosen_by,
                "best_held_out_loss": dict(best)}


def fit_logistic(x: np.ndarray, y: np.ndarray, n_labels: int, seed: int,
                 weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression as a full (labels x dim) weight matrix and bias vector."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(max_iter=1000, random_state=seed).fit(x, y, sample_weight=weights)
    coef = np.zeros((n_labels, x.shape[1]), dtype=np.float32)
    bias = np.zeros(n_labels, dtype=np.float32)
    if len(clf.classes_) == 2:  # binary: sigmoid(z) == softmax([0, z])
        coef[clf.classes_[1]], bias[clf.classes_[1]] = clf.coef_[0], clf.intercept_[0]
    else:
        coef[clf.classes_], bias[clf.classes_] = clf.coef_, clf.intercept_
    return coef, bias


def blend(coef: np.ndarray, bias: np.ndarray, x: np.ndarray, prior: np.ndarray,
          mix: float) -> tuple[np.ndarray, np.ndarray]:
    """``(1 - mix)`` x the regression + ``mix`` x the zero-shot cosine classifier, the latter scaled
    so that both spread their logits alike over the texts ``x``."""
    spread = float(np.std(x @ coef.T)) or 1.0
    zero = prior / np.linalg.norm(prior, axis=1, keepdims=True)
    zero_spread = float(np.std(x @ zero.T)) or 1.0
    return (1 - mix) * coef + mix * zero * (spread / zero_spread), (1 - mix) * bias


def head_weights(x: np.ndarray, y: np.ndarray, prior: np.ndarray, mix: float, seed: int,
                 prior_weight: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The single-label logistic head at share ``mix``: with a share, each label's description joins
    the examples of its label (weight ``prior_weight``) and the regression is blended with the
    cosine classifier; at share 0 the names are not used at all."""
    n_labels = len(prior)
    if not mix:
        return fit_logistic(x, y, n_labels, seed)
    weights = np.concatenate([np.ones(len(x)), np.full(n_labels, prior_weight)])
    coef, bias = fit_logistic(np.concatenate([x, prior]), np.concatenate([y, np.arange(n_labels)]), n_labels,
                              seed, weights)
    return blend(coef, bias, x, prior, mix)


def choose_shares(folds: Sequence[Fold], seed: int, mixes: Sequence[float] = MIXES,
                  weights: Sequence[float] = WEIGHTS, chosen_by: str = "cross-validation") -> Shares:
    """The (head share, ensemble share) pair of lowest held-out cross-entropy over ``folds``;
    ``weights`` is ignored (0) where the folds carry no zero-shot probabilities."""
    from scipy.special import softmax

    if not any(f.zero_held is not None for f in folds):
        weights = (0.0,)
    total = np.zeros((len(mixes), len(weights)))
    count = 0
    for fold in folds:
        count += len(fold.y_held)
        rows = np.arange(len(fold.y_held))
        for i, mix in enumerate(mixes):
            w, b = head_weights(fold.x_train, fold.y_train, fold.prior, mix, seed)
            head = softmax(fold.x_held @ w.T + b, axis=1)
            for j, weight in enumerate(weights):
                p = head if fold.zero_held is None or not weight else (1 - weight) * head + weight * fold.zero_held
                total[i, j] -= np.log(np.clip(p[rows, fold.y_held], 1e-12, None)).sum()
    total /= max(1, count)
    best = float(total.min())
    # the smallest shares (names trusted least) whose loss is within the tolerance of the best
    order = sorted(((i, j) for i in range(len(mixes)) for j in range(len(weights))),
                   key=lambda ij: (mixes[ij[0]] + weights[ij[1]], mixes[ij[0]]))
    i, j = next(ij for ij in order if total[ij] <= best + TOLERANCE * abs(best))
    loss = {f"{m}/{w}": round(float(total[a, b]), 4) for a, m in enumerate(mixes) for b, w in enumerate(weights)}
    return Shares(float(mixes[i]), float(weights[j]), chosen_by, loss)


def n_folds(y: np.ndarray, n_labels: int, most: int) -> int:
    """As many stratified folds as the rarest class allows, at most ``most`` (below 2: none)."""
    counts = np.bincount(y, minlength=n_labels)
    return min(most, int(counts[counts > 0].min()))


def untrained_folds(x: np.ndarray, y: np.ndarray, prior: np.ndarray, zero: np.ndarray | None, seed: int,
                    folds: int = 4) -> list[Fold]:
    """Stratified folds of the examples embedded once by the untrained body (``zero``: the zero-shot
    member's probabilities on every example, or None)."""
    from sklearn.model_selection import StratifiedKFold

    k = n_folds(y, len(prior), folds)
    if k < 2:
        return []
    return [Fold(x[tr], y[tr], x[held], y[held], prior, None if zero is None else zero[held])
            for tr, held in StratifiedKFold(k, shuffle=True, random_state=seed).split(x, y)]


def trained_folds(y: np.ndarray, n_labels: int, zero: np.ndarray | None, seed: int,
                  embed_fold: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]],
                  folds: int = 2) -> list[Fold]:
    """Stratified folds, each embedded by a body trained on its training part only:
    ``embed_fold(train_indices, held_indices)`` returns (train, held-out, prompt) embeddings."""
    from sklearn.model_selection import StratifiedKFold

    k = n_folds(y, n_labels, folds)
    if k < 2:
        return []
    out = []
    for tr, held in StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y):
        x_train, x_held, prior = embed_fold(tr, held)
        out.append(Fold(x_train, y[tr], x_held, y[held], prior, None if zero is None else zero[held]))
    return out


def choose_mix(x: np.ndarray, y: np.ndarray, prior: np.ndarray, seed: int, folds: int = 4) -> float:
    """The head share alone (no zero-shot member), on the untrained embeddings ``x``."""
    found = untrained_folds(x, y, prior, None, seed, folds)
    return choose_shares(found, seed).mix if found else FALLBACK
