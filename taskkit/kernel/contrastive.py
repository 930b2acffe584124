"""Few-shot learning on the kernel: label prompts, sentence embeddings and in-batch contrastive training.

SetFit trains its sentence body on a pre-generated list of text pairs, which re-encodes every text
dozens of times. Here a class-balanced batch of texts is encoded once per step and the cosine loss
is applied to all of its pairs, so one forward pass serves ``n * (n - 1) / 2`` pairs. Label
descriptions take part as anchor examples of their class: the body learns to put each text near
its label's description, which is what the zero-shot prior relies on.
"""

from __future__ import annotations

import copy
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from taskkit.kernel.batching import collate
from taskkit.kernel.device import autocast, default_device, resolve_precision
from taskkit.kernel.infer import predict_logits, stack
from taskkit.kernel.model import mean_pool

if TYPE_CHECKING:
    from taskkit.contracts import LabelSpace, Task


def label_prompts(task: "Task", labels: "LabelSpace", descriptions: dict[str, str] | None = None) -> list[str]:
    """One text per label: the task's description of it, else its name with ``_`` as spaces."""
    known = {**task.label_descriptions, **(descriptions or {})}
    return [known.get(name) or name.replace("_", " ").replace("/", " and ") for name in labels.names]


class Pooler(nn.Module):
    """Body -> mean-pooled, L2-normalised sentence embedding (the sentence-transformers recipe)."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **rest: torch.Tensor) -> torch.Tensor:
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "token_type_ids" in rest:
            inputs["token_type_ids"] = rest["token_type_ids"]
        hidden = self.body(**inputs).last_hidden_state
        return nn.functional.normalize(mean_pool(hidden, attention_mask).float(), dim=-1)


class EmbeddingHead(nn.Module):
    """Mean pooling, L2 normalisation, then a linear layer: the head a logistic regression becomes."""

    def __init__(self, hidden_size: int, num_labels: int) -> None:
        super().__init__()
        self.out = nn.Linear(hidden_size, num_labels)

    def forward(self, hidden: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        pooled = mean_pool(hidden, batch["attention_mask"]).float()
        return self.out(nn.functional.normalize(pooled, dim=-1))


def embed(body: nn.Module, tokenizer: Any, texts: Sequence[str], max_length: int, precision: str = "auto",
          batch_size: int = 128) -> np.ndarray:
    """Normalised embeddings of ``texts`` (length-sorted batches, bf16 where the machine has it)."""
    if not texts:
        return np.zeros((0, body.config.hidden_size), dtype=np.float32)
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)
    features = [{k: encoded[k][i] for k in encoded.keys()} for i in range(len(texts))]
    pooler = Pooler(body)
    was_training = body.training
    rows = predict_logits(pooler, features, tokenizer.pad_token_id, batch_size, precision,
                          device=next(body.parameters()).device)
    body.train(was_training)
    return stack(rows)


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


@dataclass
class ContrastiveResult:
    steps_run: int = 0
    best_step: int = 0
    stopped_early: bool = False
    seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)


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
    body: nn.Module, tokenizer: Any, texts: Sequence[str], targets: np.ndarray, *, steps: int, batch_size: int,
    lr: float, max_length: int, precision: str = "auto", seed: int = 42, weight_decay: float = 0.01,
    warmup_ratio: float = 0.1, max_grad_norm: float = 1.0,
    dev: tuple[Sequence[str], np.ndarray] | None = None, eval_every: int = 10, patience: int = 3,
    freeze_embeddings: bool = True,
) -> ContrastiveResult:
    """Train ``body`` in place so that texts of one class embed close together, others apart.

    ``targets`` are multi-hot rows (one-hot for single-label data, label prompts included as rows).
    With ``dev``, the pair loss on dev is checked every ``eval_every`` steps; training stops after
    ``patience`` checks without improvement and the best body weights are restored.
    """
    from accelerate.utils import set_seed
    from transformers import get_linear_schedule_with_warmup

    set_seed(seed)
    rng = random.Random(seed)
    device = default_device()
    precision = resolve_precision(precision)
    body.to(device)
    pooler = Pooler(body)
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)
    features = [{k: encoded[k][i] for k in encoded.keys()} for i in range(len(texts))]
    lengths = [len(f["input_ids"]) for f in features]
    target_t = torch.tensor(targets, dtype=torch.float32)
    batches = class_balanced_batches(targets, batch_size, steps, rng, lengths)
    # the word-embedding matrix is half of a small model: a few examples cannot retrain the
    # vocabulary, and skipping its gradient and optimiser state nearly halves the step time
    embeddings = body.get_input_embeddings() if freeze_embeddings else None
    frozen = embeddings is not None and embeddings.weight.requires_grad
    if frozen:
        embeddings.requires_grad_(False)
    params = [p for p in body.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(warmup_ratio * steps), steps)

    def dev_loss() -> float:
        assert dev is not None
        emb = torch.from_numpy(embed(body, tokenizer, dev[0], max_length, precision))
        return float(pair_loss(emb, torch.tensor(dev[1], dtype=torch.float32)))

    result = ContrastiveResult()
    best, bad = (dev_loss() if dev else None), 0
    best_state = copy.deepcopy(body.state_dict()) if dev else None  # step 0 may stay the best
    if dev:
        result.history.append({"step": 0, "dev_pair_loss": best})
    started = time.perf_counter()
    body.train()
    for step, ids in enumerate(batches, start=1):
        batch = collate([features[i] for i in ids], tokenizer.pad_token_id)
        batch = {k: v.to(device) for k, v in batch.items()}
        with autocast(device, precision):
            emb = pooler(**batch)
        loss = pair_loss(emb.float(), target_t[ids].to(device))
        loss.backward()
        if max_grad_norm:
            torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        result.steps_run = step
        if dev and (step % eval_every == 0 or step == len(batches)):
            score = dev_loss()
            body.train()
            result.history.append({"step": step, "train_pair_loss": float(loss.detach()), "dev_pair_loss": score})
            if score < best:  # type: ignore[operator]
                best, result.best_step, bad = score, step, 0
                best_state = copy.deepcopy(body.state_dict())
            else:
                bad += 1
                if patience and bad >= patience:
                    result.stopped_early = True
                    break
    if frozen:
        embeddings.requires_grad_(True)
    if best_state is not None:
        body.load_state_dict(best_state)
    body.eval()
    result.seconds = time.perf_counter() - started
    return result
