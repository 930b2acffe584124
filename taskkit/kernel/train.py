"""The training loop every torch-based mode shares.

Accelerate places the model and runs mixed precision, gradient accumulation and several
processes (DDP, under ``accelerate launch`` or ``torchrun``); the loop adds what the Trainer does
not give for free: length-grouped batches (little padding), dev evaluation each epoch with early
stopping on a task metric, and restore of the best weights.

On N processes ``config.batch_size`` is each process's part of a step: the default batches are
drawn N times as large and cut into N parts, and each process's loss is weighted by its part's
share of the step's labels, so that the averaged gradient is the gradient of the mean loss over
the whole step - the step one process takes with N times the batch size. A mode's own batches
(``batches``) are dealt whole, N to a step. Every process evaluates the whole dev set and the
main process's scores decide best weights and early stopping everywhere.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import torch

from taskkit.distributed import check_distributed, deal, weighted_loss
from taskkit.errors import Interrupted, TaskkitError
from taskkit.kernel.batching import collate, grouped_batches
from taskkit.kernel.checkpoint import Checkpointer
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
    steps_run: int = 0  # batches trained
    best_step: int = 0  # with a step budget: the step whose weights were kept (0: the start)

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


def _optimizer(model: torch.nn.Module, config: RunConfig) -> torch.optim.Optimizer:
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if name.endswith(NO_DECAY) else decay).append(param)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr)


def train(
    model: torch.nn.Module,
    train_features: Sequence[dict[str, Any]],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None,
    config: RunConfig,
    pad_id: int,
    evaluate: Callable[[torch.nn.Module], dict[str, Any]] | None = None,
    metric: str = "accuracy",
    lower_is_better: bool = False,
    *,
    loss: Callable[[Any, dict[str, torch.Tensor]], torch.Tensor] | None = None,
    batches: Callable[[random.Random], list[list[int]]] | None = None,
    steps: int | None = None,
    eval_every: int = 0,
) -> TrainResult:
    """Train ``model`` in place; with ``evaluate``, early-stop on ``metric`` and keep the best weights.

    The seams a mode uses instead of writing its own loop:

    - ``loss_fn(logits, gold)`` is the plain form; ``loss(output, batch)`` receives the model's
      output and the whole collated batch (``labels`` included) for losses that need more;
    - ``batches(rng)`` draws one pass's batches as lists of feature indices (default: shuffled
      length-grouped batches of ``config.batch_size``), e.g. a class-balanced sampler;
    - ``steps``: a step budget instead of ``config.epochs`` - one pass of ``batches(rng)``
      (which should then return ``steps`` batches), judged by ``evaluate`` before the first step
      and every ``eval_every`` steps; ``config.patience`` then counts evaluations.

    Without a step budget ``evaluate`` runs after each epoch and ``patience`` counts epochs.
    On N processes a step is N of a mode's ``batches`` (a step budget of ``steps`` batches is
    ``steps / N`` optimiser steps), and ``eval_every`` counts those steps.
    """
    if loss is None:
        if loss_fn is None:
            raise ValueError("train needs loss_fn or loss")
        plain = loss_fn

        def loss(output: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
            return plain(output.float(), batch["labels"])
    from accelerate import Accelerator, DistributedDataParallelKwargs
    from accelerate.state import AcceleratorState
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )
    from transformers import get_linear_schedule_with_warmup

    precision = resolve_precision(config.precision)
    # Accelerate keeps its settings in a process-wide singleton that refuses a different mixed
    # precision later on; a process (a notebook, a sweep) may train several times.
    AcceleratorState._reset_state()
    accelerator = Accelerator(
        mixed_precision="bf16" if precision == "bf16" else "no",
        gradient_accumulation_steps=config.grad_accum,
        cpu=not torch.cuda.is_available(),
        # a body's pooler (and any layer a loss leaves out) gets no gradient: DDP must not wait for it
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    check_distributed(accelerator)
    seed_everything(config.seed)
    rng = random.Random(config.seed)
    lengths = [len(f["input_ids"]) for f in train_features]
    n = accelerator.num_processes
    split = batches is None  # the default batches are cut into parts; a mode's own are dealt whole
    if batches is None:
        def batches(rng: random.Random) -> list[list[int]]:
            return grouped_batches(lengths, config.batch_size * n, rng)
    epochs = 1 if steps is not None else config.epochs
    if steps is not None:
        total = math.ceil(math.ceil(steps / n) / config.grad_accum)
    else:
        total = math.ceil(math.ceil(len(train_features) / (config.batch_size * n)) / config.grad_accum) * epochs
    optimizer = _optimizer(model, config)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total), total)
    # the scheduler is stepped here, once per optimiser step: prepared, Accelerate would step it
    # N times per step on N processes (it assumes a schedule counted in one process's batches)
    model, optimizer = accelerator.prepare(model, optimizer)
    trainable = [p for p in model.parameters() if p.requires_grad]

    result = TrainResult()
    loop = _Loop()
    checkpoints = Checkpointer(config, train_features) if steps is None and config.checkpoint_dir and (
        config.checkpoint_every or config.resume) else None
    if checkpoints is not None and config.resume:
        if n > 1:
            raise TaskkitError("--resume: continuing a run on several processes is not supported yet (a "
                               "checkpoint holds the main process's state only)")
        loop = _restore(checkpoints.load(), accelerator, model, optimizer, scheduler, result, rng)

    def judge(at: int) -> tuple[dict[str, Any], float]:
        """Evaluate on dev; keep a snapshot of the changing tensors when the score improved."""
        assert evaluate is not None
        unwrapped = accelerator.unwrap_model(model)
        scores = evaluate(unwrapped)
        if n > 1:  # the main process's scores decide, so every process keeps and stops alike
            from accelerate.utils import broadcast_object_list

            scores = broadcast_object_list([scores], from_process=0)[0]
        score = float(scores[metric])
        best = result.best_score
        if best is None or (score < best if lower_is_better else score > best):
            result.best_score, loop.bad_epochs = score, 0
            result.best_epoch, result.best_step = (1, at) if steps is not None else (at, result.steps_run)
            loop.best = {k: v.clone() for k, v in changing_tensors(unwrapped).items()}
        else:
            loop.bad_epochs += 1
        return {f"dev_{k}": v for k, v in scores.items() if isinstance(v, (int, float))}, score

    if steps is not None and evaluate is not None:  # the start may stay the best
        result.history.append({"step": 0, **judge(0)[0]})
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
               TextColumn("{task.fields[status]}"))
    show = config.progress and accelerator.is_local_main_process
    epoch, step, drawn = loop.epoch, loop.done, []
    try:
        with Progress(*columns, disable=not show, transient=False) as progress:
            for epoch in range(loop.epoch, epochs + 1):
                model.train()
                loop.epoch_rng = rng.getstate()  # a resumed run rebuilds this epoch's batches from it
                drawn = deal(batches(rng), n, split)
                label = f"steps {len(drawn)}" if steps is not None else f"epoch {epoch}/{epochs}"
                bar = progress.add_task(label, total=len(drawn), status="")
                started = time.perf_counter()
                for step, parts in enumerate(drawn, start=1):
                    if step <= loop.done:  # done before the checkpoint this run resumed from
                        continue
                    mine = parts[accelerator.process_index]
                    # a process without a part of the last step runs another's with weight 0
                    batch = collate([train_features[i] for i in mine or next(p for p in parts if p)], pad_id)
                    batch = {k: v.to(accelerator.device) for k, v in batch.items()}
                    inputs = {k: v for k, v in batch.items() if k != "labels"}
                    with accelerator.accumulate(model):
                        output = model(**inputs)
                        value = backward = loss(output, batch)
                        if n > 1:  # the whole step's mean loss (reported) and this process's share
                            value, backward = weighted_loss(value, output, batch, bool(mine), accelerator)
                        accelerator.backward(backward)
                        if accelerator.sync_gradients and config.max_grad_norm:
                            accelerator.clip_grad_norm_(trainable, config.max_grad_norm)
                        optimizer.step()
                        if accelerator.sync_gradients:
                            scheduler.step()
                        optimizer.zero_grad(set_to_none=True)
                    loop.total_loss += value.item()
                    loop.done = step
                    result.steps_run += 1
                    result.examples_seen += sum(len(p) for p in parts)
                    if accelerator.sync_gradients:
                        loop.optimizer_steps += 1
                        if checkpoints is not None and checkpoints.due("step", loop.optimizer_steps):
                            _save(checkpoints, loop, epoch, accelerator, model, optimizer, scheduler, result)
                    if step % 10 == 0 or step == len(drawn):
                        progress.update(bar, completed=step, status=f"loss {loop.total_loss / step:.4f}")
                    if steps is not None and evaluate is not None and (
                            (eval_every and step % eval_every == 0) or step == len(drawn)):
                        result.train_seconds += time.perf_counter() - started
                        row, score = judge(step)
                        result.history.append({"step": step, "train_loss": value.item(), **row})
                        progress.update(bar, status=f"dev {metric} {score:.4f}")
                        model.train()
                        started = time.perf_counter()
                        if config.patience and loop.bad_epochs >= config.patience:
                            result.stopped_early = True
                            break
                result.train_seconds += time.perf_counter() - started
                if steps is not None:
                    break
                row = {"epoch": epoch, "train_loss": loop.total_loss / max(1, len(drawn))}
                loop.done, loop.total_loss = 0, 0.0
                if evaluate is not None:
                    scores, score = judge(epoch)
                    row.update(scores)
                    progress.update(bar, status=f"loss {row['train_loss']:.4f}  dev {metric} {score:.4f}")
                result.history.append(row)
                if evaluate is not None and config.patience and loop.bad_epochs >= config.patience:
                    result.stopped_early = True
                    break
                if checkpoints is not None and epoch < epochs and checkpoints.due("epoch", epoch):
                    loop.epoch_rng = rng.getstate()  # the next epoch starts from here
                    _save(checkpoints, loop, epoch + 1, accelerator, model, optimizer, scheduler, result)
    except Interrupted as exc:
        where = f"step {step} of {len(drawn)}" if steps is not None else \
            f"epoch {epoch} of {epochs}, step {step} of {len(drawn)}"
        exc.during = exc.during or f"during training ({where})"
        raise
    best_state = loop.best
    unwrapped = accelerator.unwrap_model(model)
    if best_state is not None:
        with torch.no_grad():
            for name, tensor in changing_tensors(unwrapped).items():
                tensor.copy_(best_state[name])
    unwrapped.eval()
    return result


@dataclass
class _Loop:
    """Where the loop is, beyond model, optimiser and scheduler: what a checkpoint must hold."""

    epoch: int = 1  # the epoch in progress (1-based)
    done: int = 0  # batches of that epoch already trained
    optimizer_steps: int = 0
    total_loss: float = 0.0  # of this epoch's batches so far
    bad_epochs: int = 0
    epoch_rng: Any = None  # the batch-order RNG's state when this epoch's batches were drawn
    best: dict[str, torch.Tensor] | None = None


def _rng_states() -> dict[str, Any]:
    import numpy as np

    kind, keys, pos, has_gauss, cached = cast(tuple, np.random.get_state())
    states: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state(),
                              "numpy": [kind, torch.from_numpy(keys.astype("int64")), pos, has_gauss, cached]}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict[str, Any]) -> None:
    import numpy as np

    random.setstate(states["python"])
    torch.set_rng_state(states["torch"])
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype("uint32"), pos, has_gauss, cached))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _save(checkpoints: Checkpointer, loop: _Loop, epoch: int, accelerator: Any, model: torch.nn.Module,
          optimizer: Any, scheduler: Any, result: TrainResult) -> None:
    """Write a checkpoint: ``epoch`` is the one to continue (with ``loop.done`` batches done)."""
    if not accelerator.is_main_process:  # one writer (a multi-process resume is not supported)
        return
    unwrapped = accelerator.unwrap_model(model)
    grads = {name: p.grad for name, p in unwrapped.named_parameters() if p.requires_grad and p.grad is not None}
    state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": _rng_states(),
             "loop_rng": loop.epoch_rng, "accelerator_step": accelerator.step}
    meta = {"epoch": epoch, "done": loop.done, "optimizer_steps": loop.optimizer_steps, "total_loss": loop.total_loss,
            "bad_epochs": loop.bad_epochs, "history": result.history, "best_epoch": result.best_epoch,
            "best_score": result.best_score, "train_seconds": result.train_seconds,
            "examples_seen": result.examples_seen, "steps_run": result.steps_run}
    checkpoints.save(loop.optimizer_steps, changing_tensors(unwrapped), loop.best, grads, state, meta)


def _restore(saved: dict[str, Any], accelerator: Any, model: torch.nn.Module, optimizer: Any, scheduler: Any,
             result: TrainResult, rng: random.Random) -> _Loop:
    """Put model, optimiser, scheduler, random states and the loop back where the checkpoint was."""
    unwrapped = accelerator.unwrap_model(model)
    current = changing_tensors(unwrapped)
    if set(current) != set(saved["tensors"]):
        raise TaskkitError(f"{saved['path']}: the checkpoint's tensors do not match this model")
    with torch.no_grad():
        for name, tensor in current.items():
            tensor.copy_(saved["tensors"][name])
    params = dict(unwrapped.named_parameters())
    for name, grad in saved["grads"].items():
        params[name].grad = grad.to(params[name].device, params[name].dtype)
    optimizer.load_state_dict(saved["state"]["optimizer"])
    scheduler.load_state_dict(saved["state"]["scheduler"])
    accelerator.step = saved["state"]["accelerator_step"]
    _set_rng_states(saved["state"]["rng"])
    rng.setstate(saved["state"]["loop_rng"])
    meta = saved["meta"]
    result.history = meta["history"]
    result.best_epoch, result.best_score = meta["best_epoch"], meta["best_score"]
    result.train_seconds, result.examples_seen = meta["train_seconds"], meta["examples_seen"]
    result.steps_run = meta.get("steps_run", 0)
    best = saved["best"]
    return _Loop(epoch=meta["epoch"], done=meta["done"], optimizer_steps=meta["optimizer_steps"],
                 total_loss=meta["total_loss"], bad_epochs=meta["bad_epochs"],
                 best={k: v.to(current[k].device) for k, v in best.items()} if best is not None else None)
