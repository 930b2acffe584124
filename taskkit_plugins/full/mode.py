"""The ``full`` mode: fine-tune the whole encoder and the task's head (or freeze part of it).

``--freeze head`` trains the head only; ``--freeze top:N`` trains the top N layers and the head.
"""

from __future__ import annotations

from collections.abc import Callable

import taskkit
from taskkit.contracts import Mode, Predictor, RunConfig, Splits, Task


class FullMode(Mode):
    name = "full"
    description = "fine-tune all parameters (or all but frozen layers) with the task's head"
    resumable = True  # --checkpoint-every / --resume: trains on the kernel's loop

    def supports(self, task: Task) -> bool:
        return task.level in ("sequence", "token", "pair")

    def fit(self, task: Task, splits: Splits, config: RunConfig) -> Predictor:
        from taskkit.kernel.fit import fit_task_model, resized
        from taskkit.kernel.model import apply_freeze

        sized = config.for_data(len(splits.train))  # small data: enough optimiser steps (--min-steps)
        predictor, _ = fit_task_model(task, splits, sized, self.name,
                                      prepare=lambda model: apply_freeze(model, config.freeze))
        return resized(predictor, config, sized)


@taskkit.hookimpl
def register_modes(register: Callable[[Mode], None]) -> None:
    register(FullMode())
