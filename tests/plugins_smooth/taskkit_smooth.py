"""A third-party mode: ``smooth``, full fine-tuning with a label-smoothed loss.

The whole encoder and the task's head train on taskkit's public kernel (``fit_task_model(loss=...)``);
only the loss differs: cross-entropy against targets smoothed by ``--option smoothing=EPS``
(positions labelled -100, a token task's sub-words and padding, are ignored; multi-label heads
get smoothed binary targets). The model is saved as ``torch.v1``, a core format.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import Field

import taskkit
from taskkit.contracts import Mode, ModeOptions, Predictor, RunConfig, Splits, Task
from taskkit.options import read


class SmoothOptions(ModeOptions):
    smoothing: float = Field(0.1, ge=0, lt=1, description="share of each target spread evenly over all labels")


class SmoothMode(Mode):
    name = "smooth"
    description = "full fine-tuning with a label-smoothed cross-entropy"
    Options = SmoothOptions

    def supports(self, task: Task) -> bool:
        return task.level in ("sequence", "token", "pair")

    def fit(self, task: Task, splits: Splits, config: RunConfig) -> Predictor:
        from torch.nn import functional

        from taskkit.kernel import fit_task_model

        eps = read(config, SmoothOptions).smoothing

        def loss(logits: Any, gold: Any) -> Any:
            if gold.is_floating_point():  # multi-label: one binary target per label
                return functional.binary_cross_entropy_with_logits(logits, gold * (1 - eps) + eps / 2)
            return functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), gold.reshape(-1),
                                            ignore_index=-100, label_smoothing=eps)

        predictor, _ = fit_task_model(task, splits, config, self.name, loss=loss)
        return predictor


@taskkit.hookimpl
def register_modes(register: Callable[[Mode], None]) -> None:
    register(SmoothMode())
