"""The training loop every torch-based mode shares.

Accelerate places the model and runs mixed precision and gradient accumulation; the loop adds
what the Trainer does not give for free: length-grouped batches (little padding), dev
evaluation each epoch with early stopping on a task metric, and restore of the best weights.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch

from taskkit.kernel.batching import collate, grouped_batches
from taskkit.kernel.device import resolve_precision

if TYPE_CHECKING:
    from taskkit.contracts import RunConfig

NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")


@dataclass
class TrainResult:
    history: list[dict[str, Any]] = field(default_factory=list)  # one row per epoch
    best_epoch: int = 0
    best_score: float | None = None
    stopped_early: bool = False
    train_seconds: float = 0.0
    examples_seen: int = 0

    @property
    def examples_per_second(self) -> float:
        return self.examples_seen / self.train_seconds if self.train_seconds else 0.0


def seed_everything(seed: int) -> None:
    from accelerate.utils import set_seed

    set_seed(seed)


def changing_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """What training can change: the trainable parameters and the buffers (running statistics).

    The best epoch's snapshot copies only these: frozen weights - under peft nearly all of the
    base model - stay as they are, and a copy of them is memory held through the later epochs.
    """
    named = [*((name, p) for name, p in model.named_parameters() if p.requires_grad), *model.named_buffers()]
    return {name: tensor.detach() for name, tensor in named}


def _optimizer(model: torch.nn.Module, config: "RunConfig") -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if name.endswith(NO_DECAY) else decay).append(param)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr)


def train(
    model: torch.nn.Module,
    train_features: Sequence[dict[str, Any]],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    config: "RunConfig",
    pad_id: int,
    evaluate: Callable[[torch.nn.Module], dict[str, Any]] | None = None,
    metric: str = "accuracy",
    lower_is_better: bool = False,
) -> TrainResult:
    """Train ``model`` in place; with ``evaluate``, early-stop on ``metric`` and keep the best epoch."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from transformers import get_linear_schedule_with_warmup

    precision = resolve_precision(config.precision)
    # Accelerate keeps its settings in a process-wide singleton that refuses a different mixed
    # precision later on; a process (a notebook, a sweep) may train several times.
    AcceleratorState._reset_state()
    accelerator = Accelerator(
        mixed_precision="bf16" if precision == "bf16" else "no",
        gradient_accumulation_steps=config.grad_accum,
        cpu=not torch.cuda.is_available(),
    )
    seed_everything(config.seed)
    rng = random.Random(config.seed)
    lengths = [len(f["input_ids"]) for f in train_features]
    n_batches = math.ceil(len(train_features) / config.batch_size)
    per_process = math.ceil(n_batches / accelerator.num_processes)
    steps = math.ceil(per_process / config.grad_accum) * config.epochs
    optimizer = _optimizer(model, config)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * steps), steps)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    trainable = [p for p in model.parameters() if p.requires_grad]

    result = TrainResult()
    best_state: dict[str, torch.Tensor] | None = None
    bad_epochs = 0
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
               TextColumn("{task.fields[status]}"))
    show = config.progress and accelerator.is_local_main_process
    with Progress(*columns, disable=not show, transient=False) as progress:
        for epoch in range(1, config.epochs + 1):
            model.train()
            batches = grouped_batches(lengths, config.batch_size, rng)
            batches = batches[accelerator.process_index :: accelerator.num_processes]
            bar = progress.add_task(f"epoch {epoch}/{config.epochs}", total=len(batches), status="")
            started, total_loss = time.perf_counter(), 0.0
            for step, batch_ids in enumerate(batches, start=1):
                batch = collate([train_features[i] for i in batch_ids], pad_id)
                batch = {k: v.to(accelerator.device) for k, v in batch.items()}
                gold = batch.pop("labels")
                with accelerator.accumulate(model):
                    logits = model(**batch)
                    loss = loss_fn(logits.float(), gold)
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and config.max_grad_norm:
                        accelerator.clip_grad_norm_(trainable, config.max_grad_norm)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                total_loss += loss.item()
                if step % 10 == 0 or step == len(batches):
                    progress.update(bar, completed=step, status=f"loss {total_loss / step:.4f}")
            result.train_seconds += time.perf_counter() - started
            result.examples_seen += sum(len(b) for b in batches)
            row: dict[str, Any] = {"epoch": epoch, "train_loss": total_loss / max(1, len(batches))}
            if evaluate is not None:
                scores = evaluate(accelerator.unwrap_model(model))
                row.update({f"dev_{k}": v for k, v in scores.items() if isinstance(v, (int, float))})
                score = float(scores[metric])
                improved = result.best_score is None or (score < result.best_score if lower_is_better else score > result.best_score)
                if improved:
                    result.best_score, result.best_epoch, bad_epochs = score, epoch, 0
                    best_state = {k: v.clone() for k, v in changing_tensors(accelerator.unwrap_model(model)).items()}
                else:
                    bad_epochs += 1
                progress.update(bar, status=f"loss {row['train_loss']:.4f}  dev {metric} {score:.4f}")
            result.history.append(row)
            if evaluate is not None and config.patience and bad_epochs >= config.patience:
                result.stopped_early = True
                break
    unwrapped = accelerator.unwrap_model(model)
    if best_state is not None:
        with torch.no_grad():
            for name, tensor in changing_tensors(unwrapped).items():
                tensor.copy_(best_state[name])
    unwrapped.eval()
    return result
