"""How far a few-shot classifier trusts the label names: the zero-shot prior and its weight.

The few-shot logistic head is averaged, in logit space, with the zero-shot classifier (cosine to each
label's description). How much that helps depends on the data: "positive"/"negative" are nearly a
classifier by themselves, Banking77's "card_arrival" much less so. The weight is therefore chosen
by cross-validation on the training examples, embedded by the body *before* contrastive training
(afterwards the body has seen every training text, and any held-out fold would look easy).
"""

from __future__ import annotations

import numpy as np

#: Candidate shares of the zero-shot classifier in the blend; 0.5 is the fallback.
MIXES = (0.0, 0.1, 0.25, 0.5, 0.75)
FALLBACK = 0.5


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


def choose_mix(x: np.ndarray, y: np.ndarray, prior: np.ndarray, seed: int, folds: int = 4) -> float:
    """The blend share with the lowest held-out cross-entropy over stratified folds of the training
    examples (``x``: their untrained embeddings, ``y``: class indices). Descriptions join each fold's
    training part as examples of their label, as they do in the final head."""
    from scipy.special import log_softmax
    from sklearn.model_selection import StratifiedKFold

    counts = np.bincount(y, minlength=len(prior))
    folds = min(folds, int(counts[counts > 0].min()))
    if folds < 2:
        return FALLBACK
    loss = np.zeros(len(MIXES))
    labels = np.arange(len(prior))
    for train, held in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
        coef, bias = fit_logistic(np.concatenate([x[train], prior]), np.concatenate([y[train], labels]),
                                  len(prior), seed)
        for k, mix in enumerate(MIXES):
            w, b = blend(coef, bias, x[train], prior, mix)
            loss[k] -= log_softmax(x[held] @ w.T + b, axis=1)[np.arange(len(held)), y[held]].sum()
    return float(MIXES[int(np.argmin(loss))])
