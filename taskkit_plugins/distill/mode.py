"""The ``distill`` mode: a saved teacher labels unlabelled texts, a student learns its soft labels.

``taskkit run topic --mode distill --option teacher=runs/ag-zs --data DIR`` loads the teacher (any
taskkit model folder of the task: zero-shot, few-shot, full, peft, an ensemble), has it score the
data's train texts (their gold labels unused) or ``--option unlabelled=FILE``, and fine-tunes the
student (``--model``, default MiniLM) on the teacher's probabilities through the kernel's
``fit_task_model(loss=..., targets=...)``: soft cross-entropy (single-label) or binary
cross-entropy against the teacher's per-label probabilities (multi-label). The student early-stops
on its agreement with the teacher on held-out taught texts (the data's dev texts, else a seeded
share of the unlabelled ones), so gold labels only score the student on the test split (the
core's calibration on dev, which reads gold labels, is off unless ``--option calibrate=true``). The
student is an ordinary ``torch.v1`` model folder: it loads without this plugin.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

import typer
from pydantic import Field

import taskkit
from taskkit.contracts import Mode, ModeOptions, Predictor, RunConfig, Splits, Task
from taskkit.errors import TaskkitError
from taskkit.options import read


class DistillOptions(ModeOptions):
    teacher: str | None = Field(None, description="the teacher: a taskkit model (or run) folder of this task "
                                "(required)")
    unlabelled: str | None = Field(None, description="a file of texts for the teacher to label (one a line, or "
                                   ".jsonl/.csv/.tsv with a text column); default: the data's train texts, "
                                   "their labels unused")
    temperature: float = Field(1.0, gt=0, description="single-label: the teacher's probabilities become "
                               "p ** (1/T), renormalised (T > 1 softer, < 1 sharper)")
    max_texts: int | None = Field(None, ge=2, description="label at most N unlabelled texts (a seeded sample)")
    start: Literal["names", "random"] = Field("names", description="the student's head starts as the zero-shot "
                                              "classifier of the teacher's labels (their hypotheses, embedded by "
                                              "the student), or at random")
    student_layers: int | None = Field(None, ge=1, description="the student keeps only the first N transformer "
                                       "layers of --model (DistilBERT's recipe: a shallower copy, about 6/N times "
                                       "faster for a 6-layer model); default: all of them")
    # the core calibrates on the data's dev split, gold labels and all: off unless asked for
    calibrate: bool = Field(False, description="fit a temperature on the data's dev split, using its gold labels "
                            "(default false: the student keeps the probabilities it learnt from the teacher)")


class DistillMode(Mode):
    Options = DistillOptions
    name = "distill"
    description = "a saved teacher labels unlabelled texts; a student model learns its soft labels"
    # the teacher labels the texts: no labelled training data, and no dev split carved by gold label.
    # 20 epochs at most: the student stops once its agreement with the teacher on held-out texts stops
    # rising (patience 2); learning a soft teacher of many classes takes long (Banking77, 77 intents:
    # agreement still rising at the 5th epoch, 0.42 -> 0.77, and the student 12 points under the teacher)
    needs_training_data = False
    defaults = {"dev_fraction": 0.0, "epochs": 20}
    resumable = True  # --checkpoint-every / --resume: the student trains on the kernel's loop

    def supports(self, task: Task) -> bool:
        return task.level == "sequence" and not task.ragged

    def fit(self, task: Task, splits: Splits, config: RunConfig) -> Predictor:
        import random

        from taskkit.kernel.fit import fit_task_model, resized, start_from_names
        from taskkit.kernel.model import TaskModel, keep_first_layers
        from taskkit_plugins.distill.soft_labels import (
            label_prompts,
            load_teacher,
            soft_cross_entropy,
            soft_targets,
            split_dev,
            teach,
            unlabelled_texts,
        )

        opts = read(config, DistillOptions)
        if not opts.teacher:
            raise TaskkitError("mode distill needs a teacher: --option teacher=DIR (a taskkit model or run folder)")
        if opts.student_layers is not None and not config.init_from:  # refused before the teacher's labelling
            from transformers import AutoConfig

            from taskkit.kernel.model import check_kept_layers
            from taskkit.models import resolve

            check_kept_layers(opts.student_layers, AutoConfig.from_pretrained(resolve(config.model)).num_hidden_layers,
                              f"--option student_layers={opts.student_layers} (--model {config.model})")
        teacher = load_teacher(opts.teacher, task)
        texts = unlabelled_texts(task, opts.unlabelled, splits.train)
        if opts.max_texts is not None and len(texts) > opts.max_texts:
            texts = random.Random(config.seed).sample(texts, opts.max_texts)
        held_out = unlabelled_texts(task, None, splits.dev) if splits.dev else []
        if len(texts) + len(held_out) < 2:
            raise TaskkitError(f"{opts.unlabelled or splits.source}: distill needs at least 2 texts for the teacher "
                               "to label (the data's train split, or --option unlabelled=FILE)")
        typer.echo(f"teacher {Path(opts.teacher).name} ({teacher.mode or teacher.format}) labelling "
                   f"{len(texts) + len(held_out):,} texts", err=True)
        taught = teach(teacher, texts + held_out, opts.temperature)
        if held_out:  # the data's dev texts, labelled by the teacher, judge the student
            train_ids, dev_ids = list(range(len(texts))), list(range(len(texts), len(taught.examples)))
        else:
            train_ids, dev_ids = split_dev(texts, 0.1, config.seed)
        student_splits = Splits(train=[taught.examples[i] for i in train_ids],
                                dev=[taught.examples[i] for i in dev_ids], test=splits.test, source=splits.source)
        labels = teacher.labels
        sized = config.for_data(len(train_ids))  # few texts: enough optimiser steps (--min-steps)
        started: list[bool] = []
        layers: list[int] = []  # how many the body had, where --option student_layers cut it

        def prepare(model: TaskModel) -> None:  # the student starts where the names' cosine classifier is
            if opts.student_layers is not None:
                layers.append(keep_first_layers(model.body, opts.student_layers))
            if opts.start == "names" and not config.init_from and not labels.multi_label:
                started.append(start_from_names(model, task, config, label_prompts(teacher, task),
                                                student_splits.train))

        predictor, _ = fit_task_model(task, student_splits, sized, self.name, prepare=prepare,
                                      loss=None if labels.multi_label else soft_cross_entropy,
                                      targets=soft_targets(taught), labels=labels)
        resized(predictor, config, sized)
        predictor.settings["distilled_from"] = Path(opts.teacher).name
        if predictor.training is not None:
            predictor.training.extra.update({
                "teacher": Path(opts.teacher).name, "teacher_format": teacher.format, "teacher_mode": teacher.mode,
                "unlabelled_texts": len(train_ids), "teacher_labelled_dev": len(dev_ids),
                "unlabelled_source": Path(opts.unlabelled).name if opts.unlabelled else "train texts (labels unused)",
                "teacher_seconds": round(taught.seconds, 2), "temperature": opts.temperature,
                "head_start": "label names" if any(started) else "random",
                "student_layers": f"first {opts.student_layers} of {layers[0]}" if layers else "all",
            })
        return predictor


@taskkit.hookimpl
def register_modes(register: Callable[[Mode], None]) -> None:
    register(DistillMode())
