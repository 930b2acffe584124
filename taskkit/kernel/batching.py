"""Batches with little padding: length-sorted for inference, length-grouped for training."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import torch

# Pad values by feature name; other list features pad with 0.
PAD = {"attention_mask": 0, "token_type_ids": 0, "labels": -100, "word_ids": -1}


# Batch widths are rounded up to a multiple of this many tokens. On CPU, oneDNN compiles and caches
# one bf16 matmul kernel per input shape, and a run with one shape per batch length kept hundreds
# of MB of them (twice as many under LoRA, whose adapters add matmul shapes); with lengths rounded
# up to 8 there are 8x fewer shapes for a few padding tokens, which the attention mask hides.
PAD_MULTIPLE = 8


def collate(features: Sequence[dict[str, Any]], pad_id: int, multiple: int = PAD_MULTIPLE) -> dict[str, torch.Tensor]:
    """Pad every list-valued feature to the longest in the batch (dynamic padding), rounded up to
    ``multiple``.

    Lists of floats (multi-label targets) are fixed-size and stack as they are.
    """
    batch: dict[str, torch.Tensor] = {}
    for key in features[0]:
        if key.startswith("_"):  # bookkeeping (which example a window belongs to)
            continue
        values = [f[key] for f in features]
        first = values[0]
        if isinstance(first, (list, tuple)) and not (first and isinstance(first[0], float)):
            width = max(len(v) for v in values)
            width += -width % multiple
            pad = pad_id if key == "input_ids" else PAD.get(key, 0)
            batch[key] = torch.tensor([list(v) + [pad] * (width - len(v)) for v in values])
        else:
            batch[key] = torch.tensor(values)
    return batch


def sorted_batches(lengths: Sequence[int], batch_size: int, max_tokens: int | None = None) -> list[list[int]]:
    """Indices in batches of similar length, longest first (inference).

    ``max_tokens`` also caps each batch's padded size (rows x longest): long inputs then go in
    smaller batches, whose activations stay in cache (on CPU, 3k tokens ran fastest for MiniLM).
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    if not max_tokens:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    batches, start = [], 0
    while start < len(order):
        size = max(1, min(batch_size, max_tokens // max(1, lengths[order[start]])))
        batches.append(order[start : start + size])
        start += size
    return batches


def grouped_batches(lengths: Sequence[int], batch_size: int, rng: random.Random, group: int = 50) -> list[list[int]]:
    """Shuffled batches of similar length (training).

    Shuffle, cut into mega-batches of ``group`` batches, sort each by length, split, shuffle
    the batches: randomness of order is kept while padding nearly vanishes.
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)
    mega = batch_size * group
    batches: list[list[int]] = []
    for start in range(0, len(order), mega):
        chunk = sorted(order[start : start + mega], key=lambda i: -lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches
