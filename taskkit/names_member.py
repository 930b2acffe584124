"""What the label names already say, kept beside a model trained on few examples.

A few hundred labelled examples fine-tune a classifier that can still know less than the label
names do: on 120-example samples of SST-2, full fine-tuning of MiniLM scores 0.72-0.77 on SST-2's
dev split where the zero-shot classifier of "negative"/"positive" scores 0.79-0.80. So on small
single-label data the trained model is averaged with the zero-shot classifier of its labels, each
at its own dev temperature: an equal average unless the dev split clearly says otherwise (0 when it
shows the names say nothing: codes, ``LABEL_3``), and saved as one ensemble folder. The few-shot mode
builds the same member and chooses its share by cross-validation on the shots instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from taskkit.options import ModeOptions

if TYPE_CHECKING:
    import numpy as np

    from taskkit.contracts import LabelSpace, Predictor, RunConfig, Splits, Task

#: The member's candidate shares (the trained model keeps a voice).
SHARES = (0.0, 0.1, 0.25, 0.5, 0.75)
#: The share without evidence either way: the plain average of the two members, each at its own dev
#: temperature (a member whose names say nothing is near uniform at its temperature, so the average
#: keeps the trained model's choice). The dev split moves it only beyond its noise (``clearly_lower``).
DEFAULT_SHARE = 0.5
#: ``auto`` adds a member up to this many training examples, labels, and from this many dev examples.
MOST_EXAMPLES = 1000
MOST_LABELS = 10
FEWEST_DEV = 20
#: The models the member is built from ship with taskkit for the default model (English MiniLM).
DEFAULT_MODELS = ("auto", "minilm")

Backend = Literal["none", "nli", "embedding", "both", "auto"]


class NamesMemberOptions(ModeOptions):
    """The ``--option`` settings of a trained mode that can keep a zero-shot member (full, peft)."""

    zero_shot: Backend = Field(
        "auto", description="average the trained model with a zero-shot classifier of the label names, equally unless "
                            "dev clearly prefers another share (auto: both backends for single-label data of at most 1000 training "
                            "examples and 10 labels, with a dev split of 20 or more, on the default model)")
    zero_shot_weight: float | None = Field(None, ge=0, le=1, description="the zero-shot classifier's share in that "
                                           "average (default: 0.5, or the one of 0 to 0.75 that dev clearly prefers)")


def zero_member(task: Task, labels: LabelSpace, config: RunConfig, backend: str,
                descriptions: dict[str, str] | None = None) -> Predictor:
    """A zero-shot classifier of the same labels (and descriptions), to average a trained one with."""
    from taskkit.zero_shot_predictor import build

    named = {name: (descriptions or {}).get(name) for name in labels.names}
    return build(task, config.replace(labels=named, backend=backend, model="auto", template=None,
                                      multi_label=labels.multi_label, max_length=max(128, config.max_length),
                                      options={}))


def member_backend(task: Task, splits: Splits, config: RunConfig, labels: LabelSpace, wanted: str) -> str:
    """The backend ``wanted`` (``auto``: ``both`` where a member is worth trying, else ``none``)."""
    if wanted != "auto":
        return wanted
    small = (task.level == "sequence" and not labels.multi_label and 2 <= len(labels) <= MOST_LABELS
             and len(splits.train) <= MOST_EXAMPLES and len(splits.dev) >= FEWEST_DEV)
    return "both" if small and config.model in DEFAULT_MODELS else "none"


def share_losses(trained: np.ndarray, zero: np.ndarray, gold: np.ndarray) -> dict[float, np.ndarray]:
    """Each example's cross-entropy under ``(1 - w) trained + w zero``, for every share ``w`` of :data:`SHARES`."""
    import numpy as np

    rows = np.arange(len(gold))
    return {w: -np.log(np.clip(((1 - w) * trained + w * zero)[rows, gold], 1e-12, None)) for w in SHARES}


def choose_share(trained: np.ndarray, zero: np.ndarray, gold: np.ndarray) -> tuple[float, dict[str, float]]:
    """The share of lowest dev cross-entropy of ``(1 - w) trained + w zero`` where it beats
    :data:`DEFAULT_SHARE` beyond the noise of the dev examples, else the default; and each share's
    cross-entropy."""

    from taskkit.probability_scores import clearly_lower

    losses = share_losses(trained, zero, gold)
    best = min(SHARES, key=lambda w: float(losses[w].mean()))
    share = best if clearly_lower(losses[DEFAULT_SHARE], losses[best]) else DEFAULT_SHARE
    return share, {str(w): round(float(v.mean()), 4) for w, v in losses.items()}


def with_names_member(task: Task, splits: Splits, config: RunConfig, predictor: Predictor,
                      opts: NamesMemberOptions, mode: str) -> Predictor:
    """``predictor``, or an ensemble of it and the labels' zero-shot classifier where the dev split
    (each member first given its own temperature on it) says the names add to it."""
    from taskkit.calibration import calibrated, fit_temperature, targets

    labels = predictor.labels
    backend = member_backend(task, splits, config, labels, opts.zero_shot)
    record = predictor.training
    if backend == "none" or labels.multi_label or not splits.dev:
        if record is not None:
            record.zero_shot, record.zero_shot_share = "none", 0.0
        return predictor
    zero = zero_member(task, labels, config, backend)
    rows, gold = targets(predictor, splits.dev)
    dev = [splits.dev[i] for i in rows]
    parts: list[np.ndarray] = []
    for member in (predictor, zero):  # each member's probabilities at its own dev temperature
        member.calibration = None
        order = [member.labels.names.index(n) for n in labels.names]
        logits = member.logits(dev)[:, order]
        member.calibration = fit_temperature(logits, gold)
        parts.append(calibrated(member, logits))
    share, losses = choose_share(parts[0], parts[1], gold)
    if opts.zero_shot_weight is not None:
        share = opts.zero_shot_weight
    chosen: dict[str, Any] = {"ensemble": share, "chosen_by": f"dev split ({len(dev)} examples)"
                              if opts.zero_shot_weight is None else "--option zero_shot_weight",
                              "dev_loss": losses}
    if record is not None:
        record.zero_shot, record.zero_shot_share, record.shares = backend if share else "none", share, chosen
    if not share:
        predictor.calibration = None  # the run's calibration fits the trained model alone, as before
        return predictor
    from taskkit.ensemble import EnsemblePredictor

    ensemble = EnsemblePredictor([predictor, zero], [1.0 - share, share], mode, {"threshold": predictor.threshold})
    ensemble.training = record
    return ensemble
