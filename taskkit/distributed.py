"""Several processes, one run: ``accelerate launch -m taskkit run ...`` / ``torchrun -m taskkit run ...``.

A launcher starts one copy of the command per process and tells each its place in the environment
(``WORLD_SIZE`` and ``RANK``; under MPI its own names). The kernel's loop (:func:`taskkit.kernel.train.train`) trains the
copies together through Accelerate (DDP): each reads its part of every batch and the gradients
are averaged, so every process ends with the same model. Files are the main process's alone:
:func:`on_main` runs a write there while the others wait for its outcome, so no process returns
before the model folder is complete, and a failed write fails every process with the same line.

Without a launcher (one process) everything here is a no-op and nothing imports torch.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from taskkit.errors import TaskkitError

if TYPE_CHECKING:
    import torch

T = TypeVar("T")


# what torchrun / accelerate launch set, and what MPI launchers set (as Accelerate reads them)
SIZE = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_SIZE")
RANK = ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")


def _env_int(names: tuple[str, ...], default: int) -> int:
    for name in names:
        try:
            return int(os.environ[name])
        except (KeyError, ValueError):
            continue
    return default


def world_size() -> int:
    """How many processes a launcher started for this run (1 without one)."""
    return max(1, _env_int(SIZE, 1))


def is_main_process() -> bool:
    """Whether this process writes the run's files (the only one, or rank 0 of a launch)."""
    return world_size() == 1 or _env_int(RANK, 0) == 0


def _share(value: object) -> object:
    """The main process's ``value``, on every process."""
    import torch
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list

    PartialState(cpu=not torch.cuda.is_available())  # joins the launch's process group where nothing has yet
    return broadcast_object_list([value], from_process=0)[0]


def on_main(write: Callable[[], T]) -> T | None:
    """``write()`` on the main process; the others wait for it and share its failure.

    Returns what ``write`` returned on the main process and ``None`` on the others. Where the
    main process's write raises, that error is raised there and a :class:`TaskkitError` with the
    same line on every other process (rather than leaving them waiting at a barrier).
    """
    if world_size() == 1:
        return write()
    result: T | None = None
    error: BaseException | None = None
    if is_main_process():
        try:
            result = write()
        except BaseException as exc:  # noqa: BLE001 - told to the others, then raised again
            error = exc
    said = None if error is None else str(error) if isinstance(error, TaskkitError) else \
        f"{type(error).__name__}: {error}"
    failure = _share(said)
    if error is not None:
        raise error
    if failure is not None:
        raise TaskkitError(f"the main process failed to write the run: {failure}")
    return result


# --- the training loop's side (called by taskkit.kernel.train, where torch is loaded) ----------
def check_distributed(accelerator: Any) -> None:
    """DDP (and one process) only: the loop evaluates, snapshots and saves a whole, unsharded model."""
    from accelerate.utils import DistributedType

    kind = accelerator.distributed_type
    if kind in (DistributedType.FSDP, DistributedType.DEEPSPEED, DistributedType.MEGATRON_LM):
        raise TaskkitError(f"accelerate config: distributed type {kind.value} is not supported by taskkit's "
                           "training loop yet (it evaluates and saves an unsharded model); choose multi-GPU "
                           "or multi-CPU (DDP)")


def deal(drawn: list[list[int]], n: int, split: bool) -> list[list[list[int]]]:
    """One pass's batches as steps of ``n`` parts, part ``r`` for process ``r``.

    ``split``: each batch is cut into ``n`` contiguous parts (sizes differing by at most one);
    otherwise batches are dealt whole, ``n`` to a step, the last step's missing parts empty.
    """
    if split:
        return [[b[len(b) * r // n : len(b) * (r + 1) // n] for r in range(n)] for b in drawn]
    return [drawn[i : i + n] + [[]] * (n - len(drawn[i : i + n])) for i in range(0, len(drawn), n)]


def label_units(batch: dict[str, torch.Tensor]) -> int:
    """What a mean loss averages over: labelled positions (-100 marks none), else rows."""
    labels = batch.get("labels")
    if labels is None:
        return len(batch["input_ids"])
    if labels.dtype.is_floating_point:  # multi-label or soft targets: one mean per row
        return int(labels.shape[0])
    return int((labels != -100).sum())


def weighted_loss(value: torch.Tensor, output: Any, batch: dict[str, torch.Tensor], real: bool,
                  accelerator: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole step's mean loss, and this process's mean loss weighted by its share of the
    step's label units (times N): DDP averages the N gradients of the latter, which gives the
    gradient of the mean over the whole step (``real``: false for a process without a part of
    the step, which runs another's batch with weight 0)."""
    import torch

    units = label_units(batch) if real else 0
    mine = value.detach().double() * units if units else torch.zeros((), dtype=torch.float64)
    every = accelerator.gather(torch.stack([torch.tensor(float(units), dtype=torch.float64), mine.cpu()])
                               .to(accelerator.device).unsqueeze(0))
    total = float(every[:, 0].sum())
    mean = every[:, 1].sum() / max(total, 1.0)
    if not units:  # no labels here: a zero loss on the output keeps every process's DDP step in line
        logits = output if isinstance(output, torch.Tensor) else output[0]
        return mean, logits.float().sum() * 0.0
    return mean, value * (units * accelerator.num_processes / total)
