"""The few-shot mode's first phase, on the kernel's loop: label prompts, sentence embeddings and
in-batch contrastive training.

SetFit trains its sentence body on a pre-generated list of text pairs, which re-encodes every text
dozens of times. Here a class-balanced batch of texts is encoded once per step and the cosine loss
is applied to all of its pairs, so one forward pass serves ``n * (n - 1) / 2`` pairs. Label
descriptions take part as anchor examples of their class: the body learns to put each text near
its label's description, which is what the zero-shot prior relies on.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from taskkit.kernel.infer import predict_logits, stack
from taskkit.kernel.model import mean_pool
from taskkit.kernel.train import TrainResult

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from taskkit.contracts import LabelSpace, RunConfig, Task


def label_prompts(task: Task, labels: LabelSpace, descriptions: dict[str, str] | None = None) -> list[str]:
    """One text per label: the task's description of it, else its name with ``_`` as spaces."""
    known = {**task.label_descriptions, **(descriptions or {})}
    return [known.get(name) or name.replace("_", " ").replace("/", " and ") for name in labels.names]


def multi_hot(examples: list[dict[str, Any]], labels: LabelSpace) -> np.ndarray:
    """One row per example, 1.0 in its label's column (each of its labels' for multi-label data)."""
    rows = np.zeros((len(examples), len(labels)), dtype=np.float32)
    for i, e in enumerate(examples):
        for name in e.get("labels", [e.get("label")]):
            rows[i, labels.index(name)] = 1.0
    return rows


class Pooler(nn.Module):
    """Body -> mean-pooled, L2-normalised sentence embedding (the sentence-transformers recipe)."""

    def __init__(self, body: PreTrainedModel) -> None:
        super().__init__()
        self.body = body

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **rest: torch.Tensor) -> torch.Tensor:
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "token_type_ids" in rest:
            inputs["token_type_ids"] = rest["token_type_ids"]
        hidden = self.body(**inputs).last_hidden_state
        return nn.functional.normalize(mean_pool(hidden, attention_mask).float(), dim=-1)


def embed(body: PreTrainedModel, tokenizer: Any, texts: Sequence[str], max_length: int, precision: str = "auto",
          batch_size: int = 128) -> np.ndarray:
    """Embeddings of ``texts`` (length-sorted batches, bf16 where the machine has it).

    A text longer than ``max_length`` tokens is embedded in overlapping windows (a quarter of
    ``max_length`` apart, as the full mode reads it) and its row is the mean of the windows'
    normalised embeddings - what a linear head on these rows gives as the mean of the windows'
    logits, as the predictor does. Nothing is cut; a one-window text's row has norm 1.
    """
    if not texts:
        return np.zeros((0, body.config.hidden_size), dtype=np.float32)
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length, stride=max_length // 4,
                        return_overflowing_tokens=True)
    owners = encoded.pop("overflow_to_sample_mapping", None) or list(range(len(texts)))
    features = [{k: encoded[k][i] for k in encoded} for i in range(len(owners))]
    pooler = Pooler(body)
    was_training = body.training
    rows = stack(predict_logits(pooler, features, tokenizer.pad_token_id, batch_size, precision,
                                device=next(body.parameters()).device))
    body.train(was_training)
    if len(owners) == len(texts):
        return rows
    sums = np.zeros((len(texts), rows.shape[1]), dtype=np.float32)
    np.add.at(sums, np.asarray(owners), rows)
    return sums / np.bincount(owners, minlength=len(texts))[:, None].astype(np.float32)


def pair_targets(targets: torch.Tensor) -> torch.Tensor:
    """Similarity targets of all pairs from multi-hot rows: 1 same class, 0 different; Jaccard for label sets."""
    inter = targets @ targets.T
    union = targets.sum(1, keepdim=True) + targets.sum(1) - inter
    return inter / union.clamp(min=1)


def pair_loss(emb: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cosine-similarity MSE (SetFit's CosineSimilarityLoss) over all in-batch pairs, weighted so that
    positive and negative pairs count equally whatever their numbers (class balance)."""
    cos = emb @ emb.T
    goal = pair_targets(targets)
    upper = torch.triu(torch.ones_like(cos, dtype=torch.bool), diagonal=1)
    positive = (goal >= 0.5) & upper
    negative = (goal < 0.5) & upper
    err = (cos - goal) ** 2
    parts = [err[m].mean() for m in (positive, negative) if m.any()]
    return torch.stack(parts).mean() if parts else cos.sum() * 0.0


def class_balanced_batches(targets: np.ndarray, batch_size: int, steps: int, rng: random.Random,
                           lengths: Sequence[int]) -> list[list[int]]:
    """``steps`` batches, each drawing about the same number of texts from every class it holds.

    With many classes a batch holds a random subset of them (at least two texts each, so that every
    batch has positive pairs); within a batch the texts are length-sorted (little padding).
    """
    classes = [np.flatnonzero(targets[:, c]).tolist() for c in range(targets.shape[1])]
    classes = [c for c in classes if c]
    per_class = max(2, batch_size // max(1, len(classes)))
    n_classes = min(len(classes), max(2, batch_size // per_class))
    batches = []
    for _ in range(steps):
        chosen: set[int] = set()
        for members in rng.sample(classes, n_classes):
            chosen.update(rng.sample(members, min(per_class, len(members))))
        batches.append(sorted(chosen, key=lambda i: -lengths[i]))
    return batches


def contrastive_train(
    body: PreTrainedModel, tokenizer: Any, texts: Sequence[str], targets: np.ndarray, config: RunConfig, *, steps: int,
    lr: float, dev: tuple[Sequence[str], np.ndarray] | None = None, eval_every: int = 10,
    freeze_embeddings: bool = True,
) -> TrainResult:
    """Train ``body`` in place so that texts of one class embed close together, others apart.

    The kernel's one training loop (:func:`taskkit.kernel.train.train`) runs it: the pair loss on
    the pooled embeddings, ``steps`` class-balanced batches of ``config.batch_size`` texts, at
    ``lr``. ``targets`` are multi-hot rows (one-hot for single-label data, label prompts included
    as rows). With ``dev``, the pair loss on dev is checked before the first step and every
    ``eval_every`` steps; training stops after ``config.patience`` checks without improvement and
    the best body weights are restored.

    Each text trains on its first ``config.max_length`` tokens (a batch holds whole texts, one
    embedding each); :func:`embed` and the predictor read all of a longer text, in windows.
    """
    from taskkit.kernel.train import train

    encoded = tokenizer(list(texts), truncation=True, max_length=config.max_length)
    features = [{**{k: encoded[k][i] for k in encoded}, "labels": [float(v) for v in targets[i]]}
                for i in range(len(texts))]
    lengths = [len(f["input_ids"]) for f in features]

    def sampler(rng: random.Random) -> list[list[int]]:
        return class_balanced_batches(targets, config.batch_size, steps, rng, lengths)

    def loss(emb: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return pair_loss(emb.float(), batch["labels"].float())

    def dev_loss(_: nn.Module) -> dict[str, float]:
        assert dev is not None
        emb = torch.from_numpy(embed(body, tokenizer, dev[0], config.max_length, config.precision))
        return {"pair_loss": float(pair_loss(emb, torch.tensor(dev[1], dtype=torch.float32)))}

    # the word-embedding matrix is half of a small model: a few examples cannot retrain the
    # vocabulary, and skipping its gradient and optimiser state nearly halves the step time
    embeddings = body.get_input_embeddings()
    frozen = freeze_embeddings and any(p.requires_grad for p in embeddings.parameters())
    if frozen:
        embeddings.requires_grad_(False)
    run = config.replace(lr=lr, epochs=1, grad_accum=1, checkpoint_every=None, resume=False)
    try:
        return train(Pooler(body), features, None, run, tokenizer.pad_token_id,
                     evaluate=dev_loss if dev else None, metric="pair_loss", lower_is_better=True,
                     loss=loss, batches=sampler, steps=steps, eval_every=eval_every)
    finally:
        if frozen:
            embeddings.requires_grad_(True)
