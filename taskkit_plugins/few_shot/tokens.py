"""Few-shot token and relation tasks: the task's own head, started as a nearest-prototype
classifier whose prototypes blend the label descriptions with the shots, then fine-tuned.

How it learns (``fit_structured``):

1. the head's output layer starts as a cosine classifier on centred representations: each row
   is its label's prototype, a blend of the label's *description* (the prior, known before any
   example) and the mean representation of its examples in the shots, scaled by a temperature.
   Token tasks (NER): a word's first sub-word state; ``B-X`` and ``I-X`` both start from X's
   description, ``O`` from an "ordinary word" description, each pulled toward its own words.
   Relation tasks: the pair representation of the entity markers (:mod:`.relations`), with each
   directed label's verbalisation, filled with a shot's entities, as its description;
2. the body and head are fine-tuned on the shots on the shared kernel (:func:`fit_task_model`):
   first on three quarters of them with early stopping on the carved quarter (the dev signal
   comes from the shots, not from a dev file), then on all of them for the best epoch count.

The model is the task's ordinary body + head, saved as ``torch.v1``: ``taskkit predict`` and
``serve`` load it like a full-mode model (character offsets for NER).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from taskkit.contracts import Example, LabelSpace, Predictor, RunConfig, Splits, Task, TrainingRecord

if TYPE_CHECKING:
    import numpy as np
    import torch

#: what ``O`` means, as a description for its prototype
OUTSIDE = "an ordinary word that is not part of any name"
TEMPERATURE = 0.5  # logits = cosine / temperature (+ log label frequency) at the start
PRIOR_SHARE = 0.3  # the description's share of a prototype once the label has examples
DEV_SHARE = 0.25  # of the shots held out to choose the epoch count


def describe(task: Task, labels: LabelSpace, overrides: dict[str, str]) -> list[str]:
    """One description per tag: ``B-X`` / ``I-X`` take X's (the task's, overridden by the user's, else
    X with ``_`` and ``-`` as spaces); ``O`` takes :data:`OUTSIDE`."""
    known = {**task.label_descriptions, **overrides}
    out = []
    for name in labels.names:
        kind = name[2:] if name[:2] in ("B-", "I-") else name
        out.append(OUTSIDE if name == "O" else known.get(kind) or kind.replace("_", " ").replace("-", " "))
    return out


def small_batches(config: RunConfig, n: int) -> RunConfig:
    """At least four optimiser steps an epoch: a few shots in one batch would be one step per epoch."""
    return config.replace(batch_size=max(1, min(config.batch_size, -(-n // 4))))


def fit_structured(task: Task, splits: Splits, config: RunConfig, descriptions: dict[str, str],
                   mode: str = "few-shot") -> Predictor:
    """Few-shot training of a token (``level == "token"``) or relation (``"pair"``) task."""
    import time

    from taskkit.data.splits import stratified_split
    from taskkit.errors import TaskkitError
    from taskkit.kernel.fit import fit_task_model

    started = time.perf_counter()
    shots = list(splits.train)
    anchors: list[Example] = []
    if task.level == "pair":
        from taskkit_plugins.few_shot.relations import verbalised

        anchors = verbalised(task, shots, descriptions, config.seed)
    def prepare(train: list[Example]) -> Callable[[Any], None]:
        return lambda model: init_head(task, config, descriptions, model, train)

    try:
        kept, held = stratified_split(shots, DEV_SHARE, config.seed)
    except TaskkitError:  # too few shots to spare any: train the configured epochs
        kept, held = shots, []
    batched = small_batches(config, len(kept))
    best_epoch, chosen_by = config.epochs, "--epochs (too few shots to hold any out)"
    carved: dict[str, Any] = {}
    if held:
        _, probe = fit_task_model(task, Splits(train=kept + anchors, dev=held, test=[]), batched, mode,
                                  prepare=prepare(kept + anchors))
        best_epoch, chosen_by = chosen_epochs(probe, config.epochs, len(held), len(shots))
        carved = {"held_out": len(held), "best_epoch": probe.best_epoch, "history": probe.history}
    predictor, result = fit_task_model(task, Splits(train=shots + anchors, dev=[], test=[], source=splits.source),
                                       batched.replace(epochs=best_epoch), mode, prepare=prepare(shots + anchors))
    predictor.training = TrainingRecord(
        epochs_run=len(result.history), best_epoch=best_epoch, train_examples=len(shots),
        train_seconds=round(time.perf_counter() - started, 2), history=result.history, prior=not config.init_from,
        extra={"epochs_chosen_by": chosen_by, "dev_from_shots": carved, "anchors": len(anchors),
               "temperature": TEMPERATURE, "prior_share": PRIOR_SHARE, "batch_size": batched.batch_size})
    return predictor


def chosen_epochs(probe: Any, configured: int, held: int, shots: int) -> tuple[int, str]:
    """The epoch count the held-out shots chose, and how. A held-out score that never rose above
    zero chose nothing (its "best" is merely the first epoch): then the configured epochs."""
    if not probe.best_score:
        return configured, f"--epochs: the {held} held-out shots scored 0 at every epoch"
    return max(1, probe.best_epoch), f"early stopping on {held} of the {shots} shots held out"


def init_head(task: Task, config: RunConfig, descriptions: dict[str, str], model: Any, train: list[Example]) -> None:
    """``prepare`` of :func:`fit_task_model`: the output layer set from the prototypes of ``train``."""
    if config.init_from:  # continuing a trained model: its head already knows the labels
        return
    from taskkit.models import load_tokenizer, resolve

    tokenizer = load_tokenizer(resolve(config.model))
    markers = task.special_tokens(train)
    if markers:  # as fit_task_model added them: the same ids
        tokenizer.add_tokens(markers, special_tokens=True)
    labels = task.label_space(train)
    if task.level == "pair":
        from taskkit_plugins.few_shot.relations import pair_prototypes

        pair_prototypes(task, model, tokenizer, labels, train, config, descriptions)
    else:
        token_prototypes(task, model, tokenizer, labels, train, config, descriptions)


def token_prototypes(task: Task, model: Any, tokenizer: Any, labels: LabelSpace, train: list[Example],
                     config: RunConfig, descriptions: dict[str, str]) -> None:
    """A :class:`~taskkit.kernel.heads.TokenHead` started as the prototype classifier of the words."""
    import numpy as np

    from taskkit.kernel.heads import TokenHead

    if not isinstance(model.head, TokenHead):  # a task with a head of its own: left as it starts
        return
    features = task.encode(train, tokenizer, labels, config.max_length)
    from taskkit_plugins.few_shot.probes import Hidden

    states = represent(model, features, tokenizer.pad_token_id, config, Hidden())
    rows = [(s[p], lab) for f, s in zip(features, states) for p, lab in enumerate(f.get("labels", [])) if lab >= 0]
    x = np.stack([r for r, _ in rows])
    y = np.asarray([lab for _, lab in rows])
    texts = describe(task, labels, descriptions)
    prior = sentence_vectors(model, tokenizer, texts, config)
    set_prototypes(model.head.out, x, y, list(prior - prior.mean(0)), len(labels))


def set_prototypes(out: torch.nn.Linear, x: np.ndarray, y: np.ndarray, prior: Sequence[np.ndarray | None],
                   n_labels: int) -> None:
    """Row j of ``out``: the cosine to label j's prototype on centred ``x``, over :data:`TEMPERATURE`.

    A prototype is the normalised mean of the label's centred examples blended with ``prior[j]``,
    its description's centred vector (share :data:`PRIOR_SHARE`; the description alone when the
    label has no example, the examples alone when it has no description).
    The centring (``x``'s mean) and the typical norm of a centred row go into weights and bias, so
    the layer stays the task's plain linear layer; the bias also adds each label's log frequency in
    ``y`` (smoothed by one), so ``O``, most words, is not out-voted by a handful of entity words.
    """
    import numpy as np
    import torch

    mean = x.mean(0)
    radius = float(np.linalg.norm(x - mean, axis=1).mean()) or 1.0
    rows = np.zeros((n_labels, x.shape[1]), dtype=np.float32)
    for j in range(n_labels):
        mine, described = x[y == j], prior[j]
        if len(mine) and described is not None:
            rows[j] = _unit((1 - PRIOR_SHARE) * _unit(mine.mean(0) - mean) + PRIOR_SHARE * _unit(described))
        elif len(mine):
            rows[j] = _unit(mine.mean(0) - mean)
        elif described is not None:
            rows[j] = _unit(described)
    weight = rows / (TEMPERATURE * radius)
    with torch.no_grad():
        out.weight.copy_(torch.from_numpy(weight.astype(np.float32)))
        frequency = (np.bincount(y, minlength=n_labels) + 1.0) / (len(y) + n_labels)
        out.bias.copy_(torch.from_numpy((np.log(frequency) - weight @ mean).astype(np.float32)))


def _unit(v: np.ndarray) -> np.ndarray:
    import numpy as np

    return v / max(float(np.linalg.norm(v)), 1e-8)


def represent(model: Any, features: Sequence[dict[str, Any]], pad_id: int, config: RunConfig,
              head: torch.nn.Module) -> list[np.ndarray]:
    """``head``'s output on the body's hidden states, per feature (the body as it starts)."""
    from taskkit.kernel.infer import predict_logits
    from taskkit.kernel.model import TaskModel

    probe = TaskModel(model.body, head)
    was_training = model.body.training
    try:
        return predict_logits(probe, features, pad_id, config.eval_batch_size, "fp32",
                              device=next(model.body.parameters()).device)
    finally:
        model.body.train(was_training)


def sentence_vectors(model: Any, tokenizer: Any, texts: list[str], config: RunConfig) -> np.ndarray:
    """Mean-pooled body states of ``texts`` (the sentence-transformers embedding, unnormalised)."""
    import numpy as np

    from taskkit_plugins.few_shot.probes import MeanPooled

    encoded = tokenizer(texts, truncation=True, max_length=config.max_length)
    features = [{"input_ids": ids, "attention_mask": mask}
                for ids, mask in zip(encoded["input_ids"], encoded["attention_mask"])]
    return np.stack(represent(model, features, tokenizer.pad_token_id, config, MeanPooled()))
