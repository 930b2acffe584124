"""What the training loop keeps and pads to hold its peak memory down (issue 5: LoRA's peak)."""

from __future__ import annotations

import torch

from taskkit_plugins.peft.adapters import add_adapter
from taskkit.kernel.batching import PAD_MULTIPLE, collate
from taskkit.kernel.model import SequenceHead, TaskModel
from taskkit.kernel.train import changing_tensors
from taskkit.models import load_body


def test_best_epoch_snapshot_under_peft_holds_only_the_adapter_head_and_buffers(tiny_model):
    body = load_body(str(tiny_model))
    model = TaskModel(body, SequenceHead(body.config.hidden_size, 2))
    add_adapter(model, {})
    kept = changing_tensors(model)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    buffers = {name for name, _ in model.named_buffers()}
    assert trainable and set(kept) == trainable | buffers
    assert all("lora_" in name or name.startswith("head.") for name in trainable)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    assert sum(t.numel() for name, t in kept.items() if name in trainable) < frozen / 10


def test_batches_pad_per_token_features_to_a_multiple():
    padded = collate([{"input_ids": [5, 6, 7], "attention_mask": [1, 1, 1], "labels": [1, 2, 0], "word_ids": [0, 1, 1]},
                     {"input_ids": [8], "attention_mask": [1], "labels": [3], "word_ids": [0]}], pad_id=9)
    multi = collate([{"input_ids": [1, 2, 3], "labels": [1.0, 0.0, 1.0]}], pad_id=0)
    extra = PAD_MULTIPLE - 3
    assert padded["input_ids"].tolist() == [[5, 6, 7] + [9] * extra, [8, 9, 9] + [9] * extra]
    assert padded["attention_mask"][:, 3:].eq(0).all() and padded["labels"][:, 3:].eq(-100).all()
    assert padded["word_ids"][:, 3:].eq(-1).all()
    assert multi["input_ids"].shape == (1, PAD_MULTIPLE) and multi["labels"].shape == (1, 3)  # targets stay
    assert multi["labels"].dtype == torch.float32
