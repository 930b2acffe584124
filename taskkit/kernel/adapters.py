"""Parameter-efficient fine-tuning with the peft library: adapters on the body, saved apart from it.

The model folder holds the adapter, the task head and the tokenizer, and names its base model
instead of copying it; loading rebuilds the base and lays the adapter over it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from taskkit.artifacts import write_atomically
from taskkit.contracts import LabelSpace, Task
from taskkit.errors import TaskkitError
from taskkit.folder_checks import (
    check_weights,
    inside,
    read_header,
    require_tokenizer,
    weights_metadata,
)
from taskkit.kernel.model import TaskModel, transformer_layers
from taskkit.kernel.predictor import TorchPredictor

ADAPTER, HEAD = "adapter", "head.safetensors"
ADAPTER_WEIGHTS = "adapter_model.safetensors"  # what peft writes with safe serialization (its default)
METHODS = ("lora", "ia3")


def block_linear_names(body: nn.Module) -> list[str]:
    """Full names of the linear layers inside the transformer blocks: LoRA's targets for any
    architecture (embeddings, pooler and heads stay out)."""
    layers = transformer_layers(body)
    prefix = next(name for name, module in body.named_modules() if module is layers)
    return [f"{prefix}.{name}" for name, module in layers.named_modules() if isinstance(module, nn.Linear)]


def peft_config(body: nn.Module, options: dict[str, Any]) -> Any:
    from peft import IA3Config, LoraConfig

    method = str(options.get("method", "lora")).lower()
    targets = options.get("target_modules")
    if isinstance(targets, str):
        targets = [t.strip() for t in targets.split(",") if t.strip()]
    if method == "lora":
        # lora_dropout 0 by default, not the 0.05-0.1 of the LoRA papers: peft drops out a copy of
        # each targeted layer's input and keeps it for the backward pass (+40% activation memory
        # on MiniLM), which made LoRA's peak above full fine-tuning's; the head keeps its dropout.
        return LoraConfig(r=int(options.get("r", 8)), lora_alpha=int(options.get("alpha", 16)),
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
    from peft import get_peft_model

    if hasattr(model.body, "peft_config"):  # continued training of a peft model: train its adapter again
        for name, param in model.body.named_parameters():
            param.requires_grad_(any(tag in name for tag in ("lora_", "ia3_")))
        return
    model.body = get_peft_model(model.body, peft_config(model.body, options))


class AdapterPredictor(TorchPredictor):
    """A :class:`TorchPredictor` whose body is a peft model; saves adapter + head, not the base."""

    format = "adapter.v1"

    def save(self, path: str | Path) -> Path:
        from safetensors.torch import save_file

        def write(folder: Path) -> None:
            self.model.body.save_pretrained(folder / ADAPTER)
            save_file({k: v.contiguous() for k, v in self.model.head.state_dict().items()}, str(folder / HEAD),
                      metadata=weights_metadata(self.task.name, self.labels.names))
            self.tokenizer.save_pretrained(folder)

        return write_atomically(path, write, self.metadata())

    def merged(self) -> TorchPredictor:
        """The same model with the adapter folded into the base weights: a plain deployable model."""
        model = TaskModel(self.model.body.merge_and_unload(), self.model.head)
        return TorchPredictor(model, self.tokenizer, self.task, self.labels, self.mode, {**self.settings, "merged": True})

    @classmethod
    def load(cls, path: Path, task: Task, metadata: dict[str, Any]) -> "TorchPredictor":
        from peft import PeftModel
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from taskkit.models import load_body, load_tokenizer, resolve

        settings = metadata.get("settings", {})
        if settings.get("merged"):
            return TorchPredictor.load(path, task, metadata)
        if not inside(path, ADAPTER, "adapter").is_dir():
            raise TaskkitError(f"{path}: peft model folder has no {ADAPTER}/")
        adapter_weights = inside(path, f"{ADAPTER}/{ADAPTER_WEIGHTS}", "adapter weights")
        if not adapter_weights.is_file():  # peft would fall back to a pickled adapter_model.bin
            raise TaskkitError(f"{path}: no {ADAPTER}/{ADAPTER_WEIGHTS}; taskkit never loads pickled weights")
        read_header(adapter_weights)  # corrupt or truncated: one line
        require_tokenizer(path)
        base = settings.get("base_model", "")
        try:
            body = load_body(resolve(base))
        except TaskkitError as exc:
            raise TaskkitError(f"{path}: its base model {base!r} cannot be found ({exc})") from None
        labels = LabelSpace(tuple(metadata["labels"]), bool(metadata.get("multi_label")))
        tokenizer = load_tokenizer(str(path))
        if len(tokenizer) != body.get_input_embeddings().num_embeddings:
            body.resize_token_embeddings(len(tokenizer))
        head = cls.build_head(task, body.config.hidden_size, labels, settings)
        head_file = inside(path, HEAD, "head")
        check_weights(head_file, head, task.name, labels.names, head_prefix="")
        head.load_state_dict(load_file(str(head_file)))
        try:
            model = TaskModel(PeftModel.from_pretrained(body, str(path / ADAPTER)), head)
        except (OSError, ValueError, RuntimeError, KeyError, TypeError, SafetensorError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TaskkitError(f"{path / ADAPTER}: the adapter does not fit its base model {base!r} ({first})") from None
        model.eval()
        return cls(model, tokenizer, task, labels, metadata["mode"], settings)


def as_adapter_predictor(predictor: TorchPredictor) -> AdapterPredictor:
    converted = AdapterPredictor(predictor.model, predictor.tokenizer, predictor.task, predictor.labels,
                                 predictor.mode, predictor.settings)
    converted.training = predictor.training
    return converted


def peak_memory_mb() -> float:
    """Peak resident memory of this process (what training needed), in MB."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)
