"""The predictors of the torch formats, one class each: ``torch.v1`` (a body + the task's head, what
every mode that trains a torch module saves), ``embedding-head.v1`` (the few-shot logistic head)
and ``adapter.v1`` (a peft adapter saved apart from its base). They are the core's, not their
modes': a saved folder loads by its format without the plugin that trained it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from taskkit.artifacts import write_atomically
from taskkit.calibration import SavedCalibration, calibrated
from taskkit.contracts import LabelSpace, Predictor, SavedThreshold, Task
from taskkit.errors import TaskkitError
from taskkit.folder_checks import (
    check_tokenizer,
    check_weights,
    inside,
    read_header,
    require_tokenizer,
    weights_metadata,
)
from taskkit.kernel.device import default_device
from taskkit.kernel.heads import EmbeddingHead
from taskkit.kernel.infer import predict_logits, stack
from taskkit.kernel.model import TaskModel, vocabulary_size

WEIGHTS = "model.safetensors"
ADAPTER, HEAD = "adapter", "head.safetensors"
ADAPTER_WEIGHTS = "adapter_model.safetensors"  # what peft writes with safe serialization (its default)


class TorchPredictor(Predictor):
    """A :class:`TaskModel` with its tokenizer; saved as safetensors + tokenizer + config."""

    format = "torch.v1"
    mode: str

    def __init__(self, model: TaskModel, tokenizer: Any, task: Task, labels: LabelSpace, mode: str,
                 settings: dict[str, Any]) -> None:
        self.model, self.tokenizer, self.task, self.labels = model, tokenizer, task, labels
        self.mode = mode
        # max_length, batch size, precision, base model, dropout...: what load() needs again
        self.settings = dict(settings)
        self.device = default_device()
        self.model.to(self.device)

    threshold = SavedThreshold()  # type: ignore[assignment]
    calibration = SavedCalibration()
    calibratable = True  # (the core calibrates only tasks whose probabilities are softmax / sigmoid)

    def features(self, inputs: Sequence[Any]) -> list[dict[str, Any]]:
        examples = [self.task.as_example(x) for x in inputs]
        return self.task.encode(examples, self.tokenizer, self.labels, self.settings["max_length"],
                                truncate=bool(self.settings.get("truncate")))

    def predict_logits(self, inputs: Sequence[Any], precision: str | None = None) -> list[np.ndarray]:
        """Logits per input; the windows of a long input are averaged into one row."""
        features = self.features(inputs)
        logits = predict_logits(
            self.model, features, self.tokenizer.pad_token_id,
            batch_size=self.settings.get("eval_batch_size", 128),
            precision=precision or self.settings.get("precision", "auto"), device=self.device,
        )
        collected = self.task.collect_logits(features, logits, len(inputs), self.labels)
        if collected is not None:  # the task merges its own windows (per-word rows of a token task)
            return collected
        if len(features) == len(inputs) or "_example" not in features[0]:
            return logits
        pooled: list[list[np.ndarray]] = [[] for _ in inputs]
        for feature, row in zip(features, logits):
            pooled[feature["_example"]].append(row)
        return [np.mean(rows, axis=0) for rows in pooled]

    def predict_proba(self, inputs: Sequence[Any], precision: str | None = None) -> np.ndarray:
        if not len(inputs):
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        rows = self.predict_logits(inputs, precision)
        if self.task.ragged:  # one array per input (a row per word): nothing to stack
            return self.task.probabilities(rows, self.labels)  # type: ignore[arg-type]
        if self.calibration is None:
            return self.task.probabilities(stack(rows), self.labels)
        return calibrated(self, stack(rows))

    def logits(self, inputs: Sequence[Any]) -> np.ndarray:
        if not len(inputs):
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return stack(self.predict_logits(inputs))

    def metadata(self) -> dict[str, Any]:
        return {"format": self.format, "task": self.task.name, "mode": self.mode, "labels": list(self.labels.names),
                "multi_label": self.labels.multi_label, "settings": self.settings}

    def save(self, path: str | Path) -> Path:
        from safetensors.torch import save_model

        def write(folder: Path) -> None:
            self.model.body.config.save_pretrained(folder)
            self.tokenizer.save_pretrained(folder)
            save_model(self.model, str(folder / WEIGHTS), metadata=weights_metadata(self.task.name, self.labels.names))

        return write_atomically(path, write, self.metadata())

    @classmethod
    def load(cls, path: Path, task: Task, metadata: dict[str, Any]) -> TorchPredictor:
        from safetensors.torch import load_file, load_model

        from taskkit.models import body_from_config, load_body, load_tokenizer, resolve

        labels = LabelSpace(tuple(metadata["labels"]), bool(metadata.get("multi_label")))
        settings = metadata.get("settings", {})
        if "delta" in metadata:  # shipped as the weights that differ from a packaged base model
            ref = resolve(settings["base_model"])
            body = load_body(ref)
            model = TaskModel(body, cls.build_head(task, body.config.hidden_size, labels, settings))
            delta_file = inside(path, metadata["delta"], "delta")
            check_weights(delta_file, model, task.name, labels.names, partial=True)
            delta = load_file(str(delta_file))
            state = model.state_dict()
            state.update({k: v.to(state[k].dtype) for k, v in delta.items()})
            model.load_state_dict(state)
            tokenizer = load_tokenizer(ref)
        else:
            if not (path / WEIGHTS).is_file():
                raise TaskkitError(f"{path}: model folder has no {WEIGHTS}")
            require_tokenizer(path)
            model = TaskModel(body_from_config(path), cls.build_head(task, _hidden_size(path), labels, settings))
            check_weights(path / WEIGHTS, model, task.name, labels.names)
            load_model(model, str(path / WEIGHTS))
            tokenizer = load_tokenizer(str(path))
        check_tokenizer(path, tokenizer, vocabulary_size(model.body))
        model.eval()
        return cls(model, tokenizer, task, labels, metadata["mode"], settings)

    @classmethod
    def build_head(cls, task: Task, hidden_size: int, labels: LabelSpace, settings: dict[str, Any]) -> torch.nn.Module:
        """The head a saved model is loaded into: the task's own (subclasses with other heads override)."""
        return task.head(hidden_size, labels, settings.get("dropout", 0.1))


class EmbeddingHeadPredictor(TorchPredictor):
    """A body whose head is a linear layer on the normalised mean-pooled embedding (the few-shot
    mode's logistic-regression head), format ``embedding-head.v1``."""

    format = "embedding-head.v1"

    @classmethod
    def build_head(cls, task: Task, hidden_size: int, labels: LabelSpace, settings: dict[str, Any]) -> torch.nn.Module:
        return EmbeddingHead(hidden_size, len(labels))


class AdapterPredictor(TorchPredictor):
    """A :class:`TorchPredictor` whose body is a peft model; saves adapter + head, not the base."""

    format = "adapter.v1"

    def save(self, path: str | Path) -> Path:
        from safetensors.torch import save_file

        def write(folder: Path) -> None:
            self.model.body.save_pretrained(str(folder / ADAPTER))
            save_file({k: v.contiguous() for k, v in self.model.head.state_dict().items()}, str(folder / HEAD),
                      metadata=weights_metadata(self.task.name, self.labels.names))
            self.tokenizer.save_pretrained(folder)

        return write_atomically(path, write, self.metadata())

    def merged(self) -> TorchPredictor:
        """The same model with the adapter folded into the base weights: a plain deployable model."""
        from peft import PeftModel

        body = self.model.body
        assert isinstance(body, PeftModel)  # an adapter.v1 model's body is peft's (as loaded or trained)
        model = TaskModel(body.merge_and_unload(), self.model.head)
        return TorchPredictor(model, self.tokenizer, self.task, self.labels, self.mode, {**self.settings, "merged": True})

    @classmethod
    def load(cls, path: Path, task: Task, metadata: dict[str, Any]) -> TorchPredictor:
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
        if len(tokenizer) != vocabulary_size(body):
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


def _hidden_size(path: Path) -> int:
    file = inside(path, "config.json", "config")
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
        return int(config.get("hidden_size") or config.get("d_model") or config["dim"])
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        raise TaskkitError(f"{file}: missing or corrupt model config (no hidden size)") from None
