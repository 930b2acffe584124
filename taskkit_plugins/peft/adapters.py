"""LoRA / IA3 adapters on a task model's body, with the peft library: the peft mode's training side.

The saved form of an adapted model (format ``adapter.v1``) is
:class:`taskkit.kernel.predictor.AdapterPredictor`, in the core: a folder loads without this plugin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import nn

from taskkit.errors import TaskkitError
from taskkit.kernel.model import TaskModel, transformer_layers
from taskkit.kernel.predictor import AdapterPredictor, TorchPredictor

if TYPE_CHECKING:
    from transformers import PreTrainedModel

METHODS = ("lora", "ia3")


def block_linear_names(body: nn.Module) -> list[str]:
    """Full names of the linear layers inside the transformer blocks: LoRA's targets for any
    architecture (embeddings, pooler and heads stay out)."""
    layers = transformer_layers(body)
    prefix = next(name for name, module in body.named_modules() if module is layers)
    return [f"{prefix}.{name}" for name, module in layers.named_modules() if isinstance(module, nn.Linear)]


def peft_config(body: PreTrainedModel, options: dict[str, Any]) -> Any:
    from peft import IA3Config, LoraConfig

    method = str(options.get("method", "lora")).lower()
    targets = options.get("target_modules")
    if isinstance(targets, str):
        targets = [t.strip() for t in targets.split(",") if t.strip()]
    if method == "lora":
        # lora_dropout 0 by default, not the 0.05-0.1 of the LoRA papers: peft drops out a copy of
        # each targeted layer's input and keeps it for the backward pass (+40% activation memory
        # on MiniLM), which made LoRA's peak above full fine-tuning's; the head keeps its dropout.
        from taskkit_plugins.peft.mode import PeftOptions  # the defaults, declared once

        defaults = PeftOptions.model_fields
        return LoraConfig(r=int(options.get("r", defaults["r"].default)),
                          lora_alpha=int(options.get("alpha", defaults["alpha"].default)),
                          lora_dropout=float(options.get("lora_dropout", 0.0)),
                          target_modules=targets or block_linear_names(body))
    if method == "ia3":
        if targets:
            return IA3Config(target_modules=targets, feedforward_modules=options.get("feedforward_modules", []))
        from peft.utils import (
            TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING as known,
        )

        if body.config.model_type not in known:
            raise TaskkitError(f"ia3 has no default target modules for model type {body.config.model_type!r}: "
                               "give --option target_modules=a,b")
        return IA3Config()  # peft picks key/value/feed-forward targets by model type
    raise TaskkitError(f"unknown peft method {method!r} (choose from {', '.join(METHODS)})")


def add_adapter(model: TaskModel, options: dict[str, Any]) -> None:
    """Wrap the body with a fresh adapter (or reopen the one a continued model has); the head trains fully."""
    from peft import PeftModel, get_peft_model

    if isinstance(model.body, PeftModel):  # continued training of a peft model: train its adapter again
        for name, param in model.body.named_parameters():
            param.requires_grad_(any(tag in name for tag in ("lora_", "ia3_")))
        return
    adapted = get_peft_model(model.body, peft_config(model.body, options))
    assert isinstance(adapted, PeftModel)  # a PeftMixedModel only when asked for (mixed=True)
    model.body = adapted


def as_adapter_predictor(predictor: TorchPredictor) -> AdapterPredictor:
    """The kernel's trained predictor, saved as ``adapter.v1`` (adapter + head, not the base)."""
    converted = AdapterPredictor(predictor.model, predictor.tokenizer, predictor.task, predictor.labels,
                                 predictor.mode, predictor.settings)
    converted.training = predictor.training
    return converted
