"""N-way K-shot sampling of tagged sentences: every entity type gets at least K mentions.

A token task's ``--shots K`` counts entity *mentions*, not sentences: one sentence may hold three
persons and a location. :func:`sample_mentions` is the greedy sampler of Few-NERD (Ding et al.,
2021, Algorithm 1): sentences are drawn in a seeded random order and kept when they add a mention
of a type still short of K and push no type past 2K; a second pass without the 2K cap finishes
what an unlucky order left short. Sentences without a mention of a type still needed are never
taken, so the support set is small (about K to 2K mentions a type).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

from taskkit.contracts import Example
from taskkit.data.conll import entities_from_tags
from taskkit.errors import TaskkitError


def mentions(example: Example) -> Counter[str]:
    """Entity mentions per type in one tagged sentence."""
    return Counter(kind for kind, _, _ in entities_from_tags(example.get("tags", ())))


def sample_mentions(examples: Sequence[Example], shots: int, seed: int, allow_fewer: bool = False,
                    where: str = "training data") -> tuple[list[Example], list[int]]:
    """Sentences holding at least ``shots`` mentions of every entity type, and their indices.

    A type with fewer mentions in all of ``examples`` is an error naming it and its count, unless
    ``allow_fewer`` (then every mention of it there is taken).
    """
    if shots < 1:
        raise TaskkitError(f"--shots must be at least 1, got {shots}")
    counts = [mentions(e) for e in examples]
    totals: Counter[str] = Counter()
    for c in counts:
        totals.update(c)
    if not totals:
        if allow_fewer:
            return [], []
        raise TaskkitError(f"{where}: no tagged entities to sample --shots {shots} from")
    short = sorted(((n, t) for t, n in totals.items() if n < shots))
    if short and not allow_fewer:
        listed = ", ".join(f"{t!r} has {n}" for n, t in short[:5]) + (f" and {len(short) - 5} more" if len(short) > 5 else "")
        raise TaskkitError(f"--shots {shots} needs {shots} mentions of each entity type, but in {where} {listed} "
                           "(use --option allow_fewer=true to use what there is)")
    target = {t: min(shots, n) for t, n in totals.items()}
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    have: Counter[str] = Counter()
    chosen: list[int] = []
    taken: set[int] = set()
    for cap in (True, False):  # Few-NERD's 2K cap first; without it only if that order fell short
        for i in order:
            if all(have[t] >= k for t, k in target.items()):
                break
            if i in taken or not any(have[t] < target[t] for t in counts[i]):
                continue
            if cap and any(have[t] + n > 2 * target[t] for t, n in counts[i].items()):
                continue
            chosen.append(i)
            taken.add(i)
            have.update(counts[i])
    indices = sorted(chosen)
    return [examples[i] for i in indices], indices
