"""Few-shot sampling: N examples per class, seeded, with the indices kept so a run can be repeated."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence

from taskkit.contracts import Example
from taskkit.errors import TaskkitError


def classes_of(example: Example) -> list[str]:
    """The classes an example stands for: its label, its labels (multi-label), or the entity
    types of its tags (a token task's sentence)."""
    if "labels" in example:
        return list(example["labels"])
    if "label" in example:
        return [example["label"]]
    return sorted({tag[2:] for tag in example.get("tags", ()) if tag != "O"})


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
        for label in classes_of(example):
            by_class[label].append(i)
    short = {c: len(ix) for c, ix in by_class.items() if len(ix) < shots}
    if short and not allow_fewer:
        worst = sorted(short.items(), key=lambda cn: (cn[1], cn[0]))
        listed = ", ".join(f"{c!r} has {n}" for c, n in worst[:5]) + (f" and {len(worst) - 5} more" if len(worst) > 5 else "")
        raise TaskkitError(f"--shots {shots} needs {shots} examples per class, but {listed} "
                           "(use --option allow_fewer=true to use what there is)")
    rng = random.Random(seed)
    chosen: set[int] = set()
    for label in sorted(by_class):
        pool = [i for i in by_class[label] if i not in chosen]
        have = sum(1 for i in chosen if label in classes_of(examples[i]))
        need = max(0, shots - have)
        chosen.update(rng.sample(pool, min(need, len(pool))))
    indices = sorted(chosen)
    return [examples[i] for i in indices], indices
