"""Predicting with an exported model folder: onnxruntime, ``tokenizers`` and numpy, never torch.

The features are those the torch predictor builds: the fast tokenizer's own ``tokenizer.json``
with the same truncation, and a text longer than ``max_length`` split into windows overlapping by
a quarter whose logits are averaged (:meth:`taskkit.kernel.predictor.TorchPredictor.predict_logits`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from taskkit.calibration import SavedCalibration, calibrated
from taskkit.contracts import LabelSpace, Predictor, SavedThreshold, Task
from taskkit.errors import TaskkitError

GRAPH = "model.onnx"
TOKENIZER = "tokenizer.json"
FORMAT = "onnx.v1"


class OnnxPredictor(Predictor):
    threshold = SavedThreshold()  # type: ignore[assignment]
    calibration = SavedCalibration()  # the exported model's, applied as the torch predictor does

    def __init__(self, path: Path, task: Task, labels: LabelSpace, mode: str, settings: dict[str, Any]) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        self.path, self.task, self.labels, self.mode = path, task, labels, mode
        self.settings = dict(settings)
        for name in (GRAPH, TOKENIZER):
            if not (path / name).is_file():
                raise TaskkitError(f"{path}: ONNX model folder has no {name}")
        try:
            self.tokenizer = Tokenizer.from_file(str(path / TOKENIZER))
        except Exception as exc:  # noqa: BLE001 -- tokenizers raises plain Exception on a corrupt file
            raise TaskkitError(f"{path / TOKENIZER}: corrupt tokenizer ({str(exc).splitlines()[0][:120]})") from None
        try:
            self.session = onnxruntime.InferenceSession(str(path / GRAPH), providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 -- onnxruntime's own error types, not exported
            raise TaskkitError(f"{path / GRAPH}: cannot load ({str(exc).splitlines()[0][:160]})") from None
        self.inputs = [i.name for i in self.session.get_inputs()]
        max_length = int(self.settings.get("max_length", 128))
        self.tokenizer.no_padding()
        if self.settings.get("truncate") or task.level == "pair":
            self.tokenizer.enable_truncation(max_length, strategy="longest_first")
        else:  # overlapping windows, as the transformers tokenizer makes them with stride
            self.tokenizer.enable_truncation(max_length, stride=max_length // 4, strategy="longest_first")

    def features(self, inputs: Sequence[Any]) -> tuple[list[Any], list[int]]:
        """Encodings (windows included) and, for each, the input it belongs to."""
        examples = [self.task.as_example(x) for x in inputs]
        if self.task.level == "pair":
            encoded = self.tokenizer.encode_batch([(e["text"], e["text_pair"]) for e in examples])
        else:
            encoded = self.tokenizer.encode_batch([e["text"] for e in examples])
        windows, owners = [], []
        for i, encoding in enumerate(encoded):
            parts = [encoding] if self.settings.get("truncate") or self.task.level == "pair" else [encoding, *encoding.overflowing]
            windows.extend(parts)
            owners.extend([i] * len(parts))
        return windows, owners

    def predict_logits(self, inputs: Sequence[Any]) -> np.ndarray:
        windows, owners = self.features(inputs)
        lengths = [len(w.ids) for w in windows]
        order = sorted(range(len(windows)), key=lambda i: -lengths[i])
        size = int(self.settings.get("eval_batch_size", 128))
        pad = int(self.settings.get("pad_token_id", 0))
        logits: list[np.ndarray | None] = [None] * len(windows)
        for start in range(0, len(order), size):
            batch = order[start : start + size]
            width = max(lengths[i] for i in batch)
            feed = {}
            for name, field, fill in (("input_ids", "ids", pad), ("attention_mask", "attention_mask", 0),
                                      ("token_type_ids", "type_ids", 0)):
                if name in self.inputs:
                    rows = [list(getattr(windows[i], field)) + [fill] * (width - lengths[i]) for i in batch]
                    feed[name] = np.asarray(rows, dtype=np.int64)
            out = self.session.run(["logits"], feed)[0]
            for row, i in zip(out, batch):
                logits[i] = row
        pooled = np.zeros((len(inputs), len(self.labels)), dtype=np.float64)
        counts = np.bincount(owners, minlength=len(inputs))
        for row, owner in zip(logits, owners):
            pooled[owner] += row  # type: ignore[operator]
        return (pooled / np.maximum(counts, 1)[:, None]).astype(np.float32)

    def predict_proba(self, inputs: Sequence[Any]) -> np.ndarray:
        if not len(inputs):
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return calibrated(self, self.predict_logits(inputs))

    def save(self, path: str | Path) -> Path:
        import shutil

        from taskkit.artifacts import write_atomically

        def write(folder: Path) -> None:
            for name in (GRAPH, TOKENIZER):
                shutil.copyfile(self.path / name, folder / name)

        meta = {"task": self.task.name, "mode": self.mode, "format": FORMAT,
                "labels": list(self.labels.names), "multi_label": self.labels.multi_label, "settings": self.settings}
        return write_atomically(path, write, meta)

    @classmethod
    def load(cls, path: Path, task: Task, metadata: dict[str, Any]) -> OnnxPredictor:
        labels = LabelSpace(tuple(metadata["labels"]), bool(metadata.get("multi_label")))
        return cls(path, task, labels, metadata["mode"], metadata.get("settings", {}))
