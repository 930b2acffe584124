"""How far a few-shot classifier trusts the label names: the zero-shot shares, cross-validated.

The names enter twice: inside the logistic head (the regression blended, in logit space, with the
cosine classifier of each label's description: share ``mix``) and in the final average with a
zero-shot classifier (share ``weight``). How much either helps depends on the data:
"positive"/"negative" are nearly a classifier by themselves, Banking77's "card_arrival" much less,
an opaque code (``L3``) nothing. Both shares are therefore chosen together by cross-validation on
the training examples, over grids that include 0 (the names are worth nothing: they are then not
used at all) and 1 (the examples add nothing), by held-out cross-entropy; the member's share goes above
the plain average (0.5) only when that share's held-out cross-entropy is lower beyond the noise of the
held-out examples (``clearly_lower``), since folds trained on part of the shots underrate them. When the zero-shot member
mixes two backends (an NLI cross-encoder and the bi-encoder's cosines), the labelled shots also
choose the NLI share of that mix, as a third coordinate of the same grid: which backend reads a
user's labels better differs from task to task (on SST-2 dev the NLI model alone is 12 points
above the cosines; on code-like names neither is worth much).

The held-out examples must not have been seen by the body that embeds them, so the folds use
either the untrained body (cheap; it underrates the examples, which contrastive training makes
more telling) or, via :func:`trained_folds`, a body trained on each fold's training part only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from taskkit.names_member import DEFAULT_SHARE
from taskkit.probability_scores import clearly_lower

#: Candidate shares of the cosine classifier inside the head, and of the zero-shot member in the average.
MIXES = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)
WEIGHTS = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)
#: Candidate NLI shares inside a two-backend zero-shot member (0.5: the zero-shot mode's default).
NLI_SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)
DEFAULT_NLI_SHARE = 0.5
#: The zero-shot member's probabilities per backend (``nli`` and ``embedding``), or one entry
#: ``zero`` for a member of one backend: a row per example.
Parts = dict[str, np.ndarray]
#: The share when there is nothing to cross-validate on (a class with a single example).
FALLBACK = 0.5
#: The zero-shot member's share in the average unless the held-out examples clearly prefer more: the
#: names member's plain average (full and peft keep the same default).
DEFAULT_WEIGHT = DEFAULT_SHARE
#: A larger share is taken only when its held-out loss is lower by more than this fraction: noise
#: in a few dozen held-out examples must not turn worthless names into a share.
TOLERANCE = 0.005


@dataclass
class Fold:
    """One split of the training examples: embeddings of its training part and of its held-out
    part, the label prompts' embeddings (by the same body) and the zero-shot member's
    probabilities on the held-out part, per backend (None without a member)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_held: np.ndarray
    y_held: np.ndarray
    prior: np.ndarray
    zero_held: Parts | None = None

    def zero_at(self, nli: float | None) -> np.ndarray | None:
        """The member's held-out probabilities at NLI share ``nli`` (None: a one-backend member)."""
        parts = self.zero_held
        if parts is None:
            return None
        if nli is None or "nli" not in parts:
            return next(iter(parts.values()))
        return nli * parts["nli"] + (1 - nli) * parts["embedding"]


def held(parts: Parts | None, rows: np.ndarray) -> Parts | None:
    return None if parts is None else {name: p[rows] for name, p in parts.items()}


@dataclass
class Shares:
    mix: float
    weight: float
    chosen_by: str
    loss: dict[str, float] = field(default_factory=dict)  # "mix/weight[/nli]" -> mean held-out cross-entropy
    nli: float | None = None  # the NLI share inside a two-backend zero-shot member

    def as_dict(self) -> dict[str, object]:
        best = sorted(self.loss.items(), key=lambda kv: kv[1])[:5]
        shares: dict[str, object] = {"head": self.mix, "ensemble": self.weight}
        if self.nli is not None:
            shares["member_nli_share"] = self.nli
        return {**shares, "chosen_by": self.chosen_by, "best_held_out_loss": dict(best)}


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
    """The (head share, ensemble share, member's NLI share) of lowest held-out cross-entropy over
    ``folds``; ``weights`` is ignored (0) where the folds carry no zero-shot probabilities, and the
    NLI shares (:data:`NLI_SHARES`) where the member has one backend."""
    from scipy.special import softmax

    if not any(f.zero_held is not None for f in folds):
        weights = (0.0,)
    both = all(f.zero_held is not None and "nli" in f.zero_held for f in folds)
    nlis: list[float | None] = [*NLI_SHARES] if both else [None]
    # each held-out example's cross-entropy at every (head share, ensemble share, member's NLI share)
    losses = np.zeros((len(mixes), len(weights), len(nlis), sum(len(f.y_held) for f in folds)))
    start = 0
    for fold in folds:
        rows = np.arange(len(fold.y_held))
        where = slice(start, start + len(rows))
        start += len(rows)
        for i, mix in enumerate(mixes):
            w, b = head_weights(fold.x_train, fold.y_train, fold.prior, mix, seed)
            head = softmax(fold.x_held @ w.T + b, axis=1)
            for j, weight in enumerate(weights):
                for k, nli in enumerate(nlis):
                    zero = fold.zero_at(nli)
                    p = head if zero is None or not weight else (1 - weight) * head + weight * zero
                    losses[i, j, k, where] = -np.log(np.clip(p[rows, fold.y_held], 1e-12, None))
    total = losses.mean(axis=-1)
    # the smallest shares (names trusted least) whose loss is within the tolerance of the best; among
    # NLI shares, the one nearest the zero-shot default
    def off_default(k: int) -> float:
        share = nlis[k]
        return 0.0 if share is None else abs(share - DEFAULT_NLI_SHARE)

    order = sorted(np.ndindex(total.shape), key=lambda ijk: (mixes[ijk[0]] + weights[ijk[1]], mixes[ijk[0]],
                                                             off_default(ijk[2])))

    def pick(allowed: np.ndarray) -> tuple[int, ...]:
        best = float(total[allowed].min())
        return next(ijk for ijk in order if allowed[ijk] and total[ijk] <= best + TOLERANCE * abs(best))

    # first the names must earn a share as the zero-shot classifier a user gets (its default mix):
    # choosing the mix of two backends on a few dozen examples could otherwise fit noise in a code
    allowed = np.zeros(total.shape, dtype=bool)
    allowed[:, :, nlis.index(DEFAULT_NLI_SHARE) if both else 0] = True
    i, j, k = pick(allowed)
    if DEFAULT_WEIGHT in weights and weights[j] > DEFAULT_WEIGHT:
        # more than the plain average for the member only where the held-out examples clearly say so
        # (the rule of the names member of full and peft): folds trained on half the shots underrate
        # the examples, so their noise leans toward the member. A smaller share (down to 0 for codes)
        # goes against that lean and is taken at the lowest loss
        at_default = allowed.copy()
        at_default[:, [b for b, w in enumerate(weights) if w != DEFAULT_WEIGHT], :] = False
        d = pick(at_default)
        if not clearly_lower(losses[d], losses[i, j, k]):
            i, j, k = d
    if both and weights[j]:  # then the shots may choose the member's mix (and the shares again, with it)
        allowed[:] = False
        allowed[:, [b for b, w in enumerate(weights) if w], :] = True
        other = pick(allowed)
        # ... only where the held-out examples say so beyond their noise: a backend's sharper (or
        # softer) probabilities move a few dozen cross-entropies more than its accuracy does
        if clearly_lower(losses[i, j, k], losses[other]):
            i, j, k = other
    loss = {"/".join(str(v) for v in (m, w, n) if v is not None): round(float(total[a, b, c]), 4)
            for a, m in enumerate(mixes) for b, w in enumerate(weights) for c, n in enumerate(nlis)}
    chosen = nlis[k] if weights[j] else None  # no member in the average: no mix inside it
    return Shares(float(mixes[i]), float(weights[j]), chosen_by, loss, None if chosen is None else float(chosen))


def n_folds(y: np.ndarray, n_labels: int, most: int) -> int:
    """As many stratified folds as the rarest class allows, at most ``most`` (below 2: none)."""
    counts = np.bincount(y, minlength=n_labels)
    return min(most, int(counts[counts > 0].min()))


def untrained_folds(x: np.ndarray, y: np.ndarray, prior: np.ndarray, zero: Parts | None, seed: int,
                    folds: int = 4) -> list[Fold]:
    """Stratified folds of the examples embedded once by the untrained body (``zero``: the zero-shot
    member's probabilities on every example per backend, or None)."""
    from sklearn.model_selection import StratifiedKFold

    k = n_folds(y, len(prior), folds)
    if k < 2:
        return []
    return [Fold(x[tr], y[tr], x[out], y[out], prior, held(zero, out))
            for tr, out in StratifiedKFold(k, shuffle=True, random_state=seed).split(x, y)]


def trained_folds(y: np.ndarray, n_labels: int, zero: Parts | None, seed: int,
                  embed_fold: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]],
                  folds: int = 2) -> list[Fold]:
    """Stratified folds, each embedded by a body trained on its training part only:
    ``embed_fold(train_indices, held_indices)`` returns (train, held-out, prompt) embeddings."""
    from sklearn.model_selection import StratifiedKFold

    k = n_folds(y, n_labels, folds)
    if k < 2:
        return []
    out = []
    for tr, rows in StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y):
        x_train, x_held, prior = embed_fold(tr, rows)
        out.append(Fold(x_train, y[tr], x_held, y[rows], prior, held(zero, rows)))
    return out


def choose_mix(x: np.ndarray, y: np.ndarray, prior: np.ndarray, seed: int, folds: int = 4) -> float:
    """The head share alone (no zero-shot member), on the untrained embeddings ``x``."""
    found = untrained_folds(x, y, prior, None, seed, folds)
    return choose_shares(found, seed).mix if found else FALLBACK
