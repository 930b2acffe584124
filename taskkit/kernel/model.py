"""An encoder body composed with a task's head, and layer freezing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

from taskkit.errors import TaskkitError

if TYPE_CHECKING:
    from peft import PeftModel
    from transformers import PreTrainedModel

    #: A :class:`TaskModel`'s body: a transformers encoder, or one wrapped by peft (``adapter.v1``).
    Encoder = PreTrainedModel | PeftModel

BODY_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class TaskModel(nn.Module):
    """``body`` (a transformers encoder) -> hidden states -> ``head(hidden, batch)`` -> logits.

    Every batch key the body does not take (marker positions, word ids) reaches the head.
    """

    def __init__(self, body: Encoder, head: nn.Module) -> None:
        super().__init__()
        self.body = body
        self.head = head

    def forward(self, **batch: torch.Tensor) -> torch.Tensor:
        inputs = {k: batch[k] for k in BODY_INPUTS if k in batch}
        hidden = self.body(**inputs).last_hidden_state
        return self.head(hidden, batch)


def vocabulary_size(body: Encoder) -> int:
    """Rows of the body's input-embedding matrix: every token id must be below it."""
    # transformers types get_input_embeddings() as a Module; an encoder's is an nn.Embedding
    return cast(nn.Embedding, body.get_input_embeddings()).num_embeddings


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the non-padding token states (how sentence-transformers bodies were trained)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


class SequenceHead(nn.Module):
    """Pooled text -> dropout -> linear: the head of every sequence classification task."""

    def __init__(self, hidden_size: int, num_labels: int, dropout: float = 0.1, pooling: str = "mean") -> None:
        super().__init__()
        if pooling not in ("mean", "cls"):
            raise TaskkitError(f"unknown pooling {pooling!r} (mean or cls)")
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, num_labels)

    def forward(self, hidden: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        pooled = mean_pool(hidden, batch["attention_mask"]) if self.pooling == "mean" else hidden[:, 0]
        return self.out(self.dropout(pooled))


def start_at_label_priors(head: nn.Module | None, features: list[dict[str, Any]]) -> None:
    """Multi-label: start each label's sigmoid at its training frequency instead of 0.5 (the prior
    initialisation of Lin et al., 2017), so that training does not first spend its steps pulling
    every rare label down, and early epochs already rank the rare ones. ``head``: the head's output
    layer (:meth:`Task.output_layer`), or a :class:`SequenceHead`."""
    out = head.out if isinstance(head, SequenceHead) else head
    if not isinstance(out, nn.Linear) or out.bias is None or not features:
        return
    rates = torch.tensor([f["labels"] for f in features], dtype=torch.float32).mean(0)
    rates = rates.clamp(1.0 / (len(features) + 1), 1.0 - 1.0 / (len(features) + 1))
    with torch.no_grad():
        out.bias.copy_(torch.log(rates / (1.0 - rates)))


def pooled(body: Encoder, tokenizer: Any, texts: list[str], max_length: int) -> torch.Tensor:
    """The mean-pooled (unnormalised) embeddings of ``texts`` by ``body`` (in its current mode), as float32."""
    encoded = tokenizer(texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = body(**{k: v.to(body.device) for k, v in encoded.items()}).last_hidden_state
        return mean_pool(hidden, encoded["attention_mask"].to(body.device)).float()


def pooled_norm(body: Encoder, tokenizer: Any, texts: list[str], max_length: int) -> float:
    """Mean norm of the mean-pooled (unnormalised) embeddings of ``texts`` by ``body``."""
    return float(pooled(body, tokenizer, texts, max_length).norm(dim=-1).mean())


def start_at_label_names(layer: nn.Module | None, body: Encoder, tokenizer: Any, prompts: list[str],
                         texts: list[str], max_length: int) -> bool:
    """Start a mean-pooling head's output layer (a row per label) as the zero-shot classifier of
    the labels' ``prompts``: each row the prompt's normalised embedding by ``body``, scaled so that
    a typical text of ``texts`` gets logits of about 20 x its cosine with each prompt (the few-shot
    torch head's start, and the distill student's). False where ``layer`` is not such a layer."""
    if not isinstance(layer, nn.Linear) or layer.out_features != len(prompts) or not prompts or not texts:
        return False
    was_training = body.training
    body.eval()
    rows = nn.functional.normalize(pooled(body, tokenizer, prompts, max_length), dim=-1)
    scale = 20.0 / pooled_norm(body, tokenizer, texts[:64], max_length)
    body.train(was_training)
    with torch.no_grad():
        layer.weight.copy_(rows.to(layer.weight.device, layer.weight.dtype) * scale)
        if layer.bias is not None:
            layer.bias.zero_()
    return True


def transformer_layers(body: nn.Module) -> nn.ModuleList:
    """The encoder's transformer blocks, found by shape rather than by one model's names."""
    n = getattr(getattr(body, "config", None), "num_hidden_layers", None)
    for _, module in body.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == n:
            return module
    raise TaskkitError(f"cannot find the transformer layers of {type(body).__name__} to freeze")


def check_kept_layers(keep: int, had: int, what: str) -> None:
    """Refuse keeping ``keep`` of ``had`` transformer layers unless 1 <= keep <= had (``what`` names the setting)."""
    if not 1 <= keep <= had:
        raise TaskkitError(f"{what}: the model has {had} transformer layers (keep 1..{had})")


def keep_first_layers(body: nn.Module, keep: int) -> int:
    """Cut the encoder to its first ``keep`` transformer blocks (DistilBERT's student: a shallower
    copy of the teacher's body), its config saying so, so that the saved folder loads as a
    ``keep``-layer model. Returns the number of blocks it had."""
    layers = transformer_layers(body)
    had = len(layers)
    check_kept_layers(keep, had, f"keeping the first {keep} layers")
    del layers[keep:]
    cast(Any, body).config.num_hidden_layers = keep  # the transformers encoder's config (transformer_layers read it)
    return had


def apply_freeze(model: TaskModel, freeze: str) -> None:
    """``none``; ``head``: the head only; ``embeddings``: all but the input embeddings;
    ``top:N``: the top N layers and the head."""
    if freeze == "none":
        return
    if freeze == "head":
        model.body.requires_grad_(False)
        return
    if freeze == "embeddings":  # the word-embedding matrix is half of a small model: keep it shared
        model.body.get_input_embeddings().requires_grad_(False)
        return
    if freeze.startswith("top:") and freeze[4:].isdigit():
        keep = int(freeze[4:])
        layers = transformer_layers(model.body)
        model.body.requires_grad_(False)
        for layer in list(layers)[len(layers) - keep :] if keep else []:
            layer.requires_grad_(True)
        return
    raise TaskkitError(f"unknown --freeze {freeze!r} (none, head, embeddings or top:N)")


def trainable_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total


def grow_output(head: nn.Module, old: int, new: int) -> None:
    """Widen the head's output layer from ``old`` to ``new`` labels, keeping the learnt rows.

    Continued training on data with new labels extends the label set instead of starting over.
    """
    found = [(name, m) for name, m in head.named_modules() if isinstance(m, nn.Linear) and m.out_features == old]
    if not found:
        raise TaskkitError(f"cannot extend this head with new labels: no output layer of size {old}")
    name, layer = found[-1]
    wider = nn.Linear(layer.in_features, new, bias=layer.bias is not None).to(layer.weight.device, layer.weight.dtype)
    with torch.no_grad():
        nn.init.normal_(wider.weight, std=0.02)
        wider.weight[:old] = layer.weight
        if layer.bias is not None:
            wider.bias.zero_()
            wider.bias[:old] = layer.bias
    parent = head.get_submodule(name.rpartition(".")[0]) if "." in name else head
    setattr(parent, name.rpartition(".")[2], wider)
