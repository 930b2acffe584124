"""Few-shot sampling: N examples per class, seeded, with the indices kept so a run can be repeated."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Sequence

from taskkit.contracts import Example
from taskkit.errors import TaskkitError


def _classes(example: Example) -> list[str]:
    return list(example["labels"]) if "labels" in example else [example["label"]]


def sample_per_class(examples: Sequence[Example], shots: int, seed: int,
                     allow_fewer: bool = False) -> tuple[list[Example], list[int]]:
    """``shots`` examples of each class (multi-label: of each label), and their indices in ``examples``.

    A class with fewer examples is an error naming it and its count, unless ``allow_fewer``
    (then all of its examples are used). Data with no more than ``shots`` per class is used whole.
    """
    if shots < 1:
        raise TaskkitError(f"--shots must be at least 1, got {shots}")
    by_class: dict[str, list[int]] = defaultdict(list)
    for i, example in enumerate(examples):
        for label in _classes(example):
            by_class[label].append(i)
    short = {c: len(ix) for c, ix in by_class.items() if len(ix) < shots}
    if short and not allow_fewer:
        listed = ", ".join(f"{c!r} has {n}" for c, n in sorted(short.items()))
        raise TaskkitError(f"--shots {shots} needs {shots} examples per class, but {listed} "
                           "(use --option allow_fewer=true to use what there is)")
    rng = random.Random(seed)
    chosen: set[int] = set()
    for label in sorted(by_class):
        pool = [i for i in by_class[label] if i not in chosen]
        have = sum(1 for i in chosen if label in _classes(examples[i]))
        need = max(0, shots - have)
        chosen.update(rng.sample(pool, min(need, len(pool))))
    indices = sorted(chosen)
    return [examples[i] for i in indices], indices
