"""Heads that read a body's representations instead of classifying: what the few-shot prototypes
of token and relation tasks are built from (imported only inside functions: torch at import)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from taskkit.kernel.heads import MarkerPairHead
from taskkit.kernel.model import mean_pool


class Hidden(nn.Module):
    """Every token's hidden state."""

    def forward(self, hidden: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        return hidden


class MeanPooled(nn.Module):
    """The mean of the non-padding token states (the sentence-transformers embedding)."""

    def forward(self, hidden: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        return mean_pool(hidden, batch["attention_mask"])


class PairState(nn.Module):
    """A :class:`MarkerPairHead`'s representation of the pair: the input of its output layer."""

    def __init__(self, head: MarkerPairHead) -> None:
        super().__init__()
        self.head = head

    def forward(self, hidden: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        pair = torch.cat([hidden[rows, batch["head_start"]], hidden[rows, batch["tail_start"]]], dim=-1)
        return torch.tanh(self.head.hidden(pair))
