"""Heads the core loads by format: one label per token (NER), one label per marked entity pair, and
the embedding head (a linear layer on the normalised mean-pooled embedding, format ``embedding-head.v1``)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from taskkit.kernel.model import mean_pool


class TokenHead(nn.Module):
    """Every token's hidden state -> dropout -> linear: logits of shape (batch, length, labels)."""

    def __init__(self, hidden_size: int, num_labels: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, num_labels)

    def forward(self, hidden: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        return self.out(self.dropout(hidden))


def token_loss(logits: torch.Tensor, gold: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the positions that carry a label (-100 elsewhere: sub-tokens, padding)."""
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), gold.reshape(-1), ignore_index=-100)


class MarkerPairHead(nn.Module):
    """Hidden states at the head and tail start markers, concatenated -> MLP -> relation logits.

    (The entity-start representation of Baldini Soares et al. 2019 and Zhou & Chen 2021.)
    """

    def __init__(self, hidden_size: int, num_labels: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.hidden = nn.Linear(2 * hidden_size, hidden_size)
        self.out = nn.Linear(hidden_size, num_labels)

    def forward(self, hidden: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        pair = torch.cat([hidden[rows, batch["head_start"]], hidden[rows, batch["tail_start"]]], dim=-1)
        return self.out(self.dropout(torch.tanh(self.hidden(self.dropout(pair)))))


class EmbeddingHead(nn.Module):
    """Mean pooling, L2 normalisation, then a linear layer: the head a logistic regression becomes."""

    def __init__(self, hidden_size: int, num_labels: int) -> None:
        super().__init__()
        self.out = nn.Linear(hidden_size, num_labels)

    def forward(self, hidden: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        pooled = mean_pool(hidden, batch["attention_mask"]).float()
        return self.out(nn.functional.normalize(pooled, dim=-1))
