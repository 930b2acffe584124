"""The ``full`` mode: fine-tune the whole encoder and the task's head (or freeze part of it).

``--freeze head`` trains the head only; ``--freeze top:N`` trains the top N layers and the head.
On small single-label data the trained model is averaged with the zero-shot classifier of its label
names where the dev split says they add to it (``taskkit/names_member.py``; ``--option zero_shot=none``
keeps the trained model alone).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import Field

import taskkit
from taskkit.contracts import Mode, Predictor, RunConfig, Splits, Task
from taskkit.names_member import NamesMemberOptions
from taskkit.options import read


class FullOptions(NamesMemberOptions):
    start: Literal["names", "random"] = Field("random", description="single-label: the head starts as the zero-shot "
                                              "classifier of the label names (their hypotheses embedded by the model), "
                                              "or at random")


class FullMode(Mode):
    Options = FullOptions
    name = "full"
    description = "fine-tune all parameters (or all but frozen layers) with the task's head"
    resumable = True  # --checkpoint-every / --resume: trains on the kernel's loop

    def supports(self, task: Task) -> bool:
        return task.level in ("sequence", "token", "pair")

    def fit(self, task: Task, splits: Splits, config: RunConfig) -> Predictor:
        from taskkit.kernel.fit import fit_task_model, resized, start_from_names
        from taskkit.kernel.model import TaskModel, apply_freeze
        from taskkit.names_member import with_names_member

        opts = read(config, FullOptions)
        sized = config.for_data(len(splits.train))  # small data: enough optimiser steps (--min-steps)
        started: list[bool] = []

        def prepare(model: TaskModel) -> None:
            labels = task.label_space(splits.train)
            if opts.start == "names" and not config.init_from and task.level == "sequence" and not labels.multi_label:
                from taskkit.label_sets import task_hypotheses

                started.append(start_from_names(model, task, config, task_hypotheses(task, labels.names), splits.train))
            apply_freeze(model, config.freeze)

        predictor, _ = fit_task_model(task, splits, sized, self.name, prepare=prepare)
        resized(predictor, config, sized)
        if any(started) and predictor.training is not None:
            predictor.training.extra["head_start"] = "label names"
        return with_names_member(task, splits, config, predictor, opts, self.name)


@taskkit.hookimpl
def register_modes(register: Callable[[Mode], None]) -> None:
    register(FullMode())
