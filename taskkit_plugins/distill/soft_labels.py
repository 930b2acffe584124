"""What the ``distill`` mode asks of its teacher: the texts it labels and the soft labels it gives.

A teacher is any saved taskkit model folder of a sequence task (full, peft, few-shot, zero-shot,
an ensemble). It labels texts whose gold labels are never read: the data's train texts or a file
of texts (``--option unlabelled=FILE``). Its probabilities become the student's targets; its
decisions (arg-max, or its own multi-label cut) are the dev labels the student early-stops on,
so gold labels are used only to score the student on the test split.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskkit.contracts import Example, LabelSpace, Predictor, Task
from taskkit.errors import TaskkitError

if TYPE_CHECKING:
    import numpy as np
    import torch


def load_teacher(path: str, task: Task) -> Predictor:
    """The teacher model folder, refused in one line unless it is a sequence model of ``task``'s kind."""
    from taskkit.api import load

    if not Path(path).exists():
        raise TaskkitError(f"--option teacher={path}: no such model folder")
    teacher = load(path)
    if teacher.task.level != "sequence" or teacher.task.ragged:
        raise TaskkitError(f"--option teacher={path}: a {teacher.task.level}-level model of task "
                           f"{teacher.task.name!r}; distill needs a sequence classification teacher")
    if teacher.task.name != task.name:
        raise TaskkitError(f"--option teacher={path}: a model of task {teacher.task.name!r}, not {task.name!r}")
    return teacher


def unlabelled_texts(task: Task, path: str | None, train: Sequence[Example]) -> list[Example]:
    """The texts the teacher labels, without any gold label: a file's (one text a line, or
    .jsonl/.csv/.tsv rows with a ``text`` column), else the training split's texts."""
    if path is not None:
        from taskkit.data.readers import read_inputs

        if not Path(path).is_file():
            raise TaskkitError(f"--option unlabelled={path}: no such file")
        rows: list[Any] = read_inputs(path)
    else:
        rows = list(train)
    examples = [task.as_example(row) for row in rows]
    return [{"text": e["text"], "_where": e.get("_where", f"unlabelled text {i + 1}")} for i, e in enumerate(examples)]


@dataclass
class Taught:
    """Texts with the teacher's soft labels (``probabilities``, one row each) and its decisions."""

    examples: list[Example]
    probabilities: np.ndarray
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def teach(teacher: Predictor, examples: list[Example], temperature: float) -> Taught:
    """The teacher's probabilities for ``examples`` (sharpened or softened by ``temperature``:
    ``p ** (1 / T)`` renormalised, single-label only) and each example labelled with its decision."""
    import numpy as np

    started = time.perf_counter()
    probabilities = np.asarray(teacher.predict_proba(examples), dtype=np.float64)
    seconds = time.perf_counter() - started
    labels = teacher.labels
    if not labels.multi_label and temperature != 1.0:
        scaled = np.power(np.clip(probabilities, 1e-12, 1.0), 1.0 / temperature)
        probabilities = scaled / scaled.sum(axis=1, keepdims=True)
    labelled = []
    for i, (e, row) in enumerate(zip(examples, probabilities)):
        if labels.multi_label:
            cut = 0.5 if teacher.threshold is None else teacher.threshold
            labelled.append({**e, "_row": i, "labels": [n for n, p in zip(labels.names, row) if p >= cut]})
        else:
            labelled.append({**e, "_row": i, "label": labels.names[int(row.argmax())]})
    return Taught(labelled, probabilities, seconds)


def split_dev(examples: list[Example], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices of the taught texts to train on and to early-stop on (a seeded share, at least one
    text each side when there are two or more texts; none to early-stop on otherwise)."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_dev = min(len(order) - 1, max(1, round(fraction * len(order)))) if fraction > 0 and len(order) > 1 else 0
    return sorted(order[n_dev:]), sorted(order[:n_dev])


def soft_targets(taught: Taught) -> Callable[[Example, LabelSpace], list[float]]:
    """``targets(example, labels)`` for the kernel: the teacher's distribution of that text
    (each taught example carries its row in ``_row``)."""
    def targets(example: Example, labels: LabelSpace) -> list[float]:
        return [float(p) for p in taught.probabilities[example["_row"]]]
    return targets


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against the teacher's distribution (KL divergence up to the teacher's own
    entropy, a constant): the single-label distillation loss."""
    import torch

    return -(target * torch.log_softmax(logits, dim=-1)).sum(dim=-1).mean()


def label_prompts(teacher: Predictor, task: Task) -> list[str]:
    """The teacher's labels as the texts a zero-shot classifier compares a text with: a zero-shot
    teacher's own hypotheses (its descriptions in its template), else the task's template filled
    with the task's description of each label, or its name."""
    from taskkit.label_sets import task_hypotheses
    from taskkit.zero_shot_predictor import ZeroShotPredictor

    if isinstance(teacher, ZeroShotPredictor) and not teacher.per_example:
        return list(teacher.hypotheses)
    return task_hypotheses(task, teacher.labels.names)
