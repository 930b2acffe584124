"""Inference: length-sorted batches, dynamic padding, ``torch.inference_mode``, bf16 or fp32."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from taskkit.kernel.batching import collate, sorted_batches
from taskkit.kernel.device import autocast, default_device, resolve_precision


def predict_logits(
    model: Callable[..., torch.Tensor],
    features: Sequence[dict[str, Any]],
    pad_id: int,
    batch_size: int = 128,
    precision: str = "auto",
    device: torch.device | None = None,
    logits_of: Callable[[Any], torch.Tensor] = lambda out: out,
    max_tokens: int | None = None,
) -> list[np.ndarray]:
    """Logits per example, in input order, as float32 arrays.

    Per-token outputs are cut back to each example's own length. ``logits_of`` adapts models
    that return an output object (transformers' ``...ForSequenceClassification``); ``max_tokens``
    caps a batch's padded size (see :func:`sorted_batches`).
    """
    precision = resolve_precision(precision)
    device = device or default_device()
    keys = [k for k in features[0] if k != "labels" and not k.startswith("_")] if features else []
    results: dict[int, np.ndarray] = {}
    if isinstance(model, torch.nn.Module):
        model.eval()
    lengths = [len(f["input_ids"]) for f in features]
    with torch.inference_mode(), autocast(device, precision):
        for batch_ids in sorted_batches(lengths, batch_size, max_tokens):
            batch = collate([{k: features[i][k] for k in keys} for i in batch_ids], pad_id)
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            logits = logits_of(model(**batch)).float().cpu().numpy()
            for row, i in zip(logits, batch_ids):
                results[i] = row[: lengths[i]] if row.ndim == 2 else row
    return [results[i] for i in range(len(features))]


def stack(rows: list[np.ndarray]) -> np.ndarray:
    return np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32)
