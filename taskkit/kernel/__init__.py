"""The shared training and inference kernel every torch-based mode runs on: its public API.

A mode that trains a torch module uses these names, never the submodules' private helpers:

- :func:`fit_task_model` ``(task, splits, config, mode, prepare=..., loss=None, targets=None)``:
  encoder + the task's head, trained by :func:`train` and early-stopped on dev; ``prepare`` edits
  the model before training (freeze layers, add adapters), ``loss(logits, gold)`` replaces the
  task's loss (e.g. label smoothing) and ``targets(example, labels)`` turns an example's gold into
  that loss's targets. Returns ``(TorchPredictor, TrainResult)``.
- :func:`train`: the one training loop (Accelerate, gradient accumulation, length-grouped or a
  mode's own batches, a step budget or epochs, dev evaluation, early stopping, the best weights
  restored). :class:`TrainResult` is what it reports.
- :class:`TaskModel`: a transformers encoder body composed with a task head.
- :class:`TorchPredictor`: a trained :class:`TaskModel` as a :class:`taskkit.contracts.Predictor`
  (predict, probabilities, save/load).
- :func:`predict_logits`: batched inference (length-sorted, dynamic padding, bf16 where
  available) returning float32 logits per feature; :func:`seed_everything` seeds a run.

Importing ``taskkit.kernel`` does not import torch; each name is loaded on first use
(``from taskkit.kernel import fit_task_model`` inside a function, where torch may load).
"""

from __future__ import annotations

import sys
from importlib import import_module
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskkit.kernel.fit import fit_task_model
    from taskkit.kernel.infer import predict_logits
    from taskkit.kernel.model import TaskModel
    from taskkit.kernel.predictor import TorchPredictor
    from taskkit.kernel.train import TrainResult, seed_everything, train

_WHERE = {
    "fit_task_model": "taskkit.kernel.fit",
    "train": "taskkit.kernel.train",
    "TrainResult": "taskkit.kernel.train",
    "seed_everything": "taskkit.kernel.train",
    "TaskModel": "taskkit.kernel.model",
    "TorchPredictor": "taskkit.kernel.predictor",
    "predict_logits": "taskkit.kernel.infer",
}

__all__ = ["TaskModel", "TorchPredictor", "TrainResult", "fit_task_model", "predict_logits", "seed_everything",
           "train"]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'taskkit.kernel' has no attribute {name!r}")


class _Kernel(ModuleType):
    """``train`` names both the loop and its submodule; the public name is the loop.

    Importing a submodule sets it as an attribute of its package; here that attribute is not kept
    for an exported name, so ``taskkit.kernel.train`` stays the function (the submodule is
    ``sys.modules["taskkit.kernel.train"]``, and ``from taskkit.kernel.train import ...`` works).
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _WHERE and isinstance(value, ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Kernel
