"""Predicting with an exported model folder: onnxruntime, ``tokenizers`` and numpy, never torch.

The features are those the torch predictor builds, from the fast tokenizer's own ``tokenizer.json``:
a task with an encoding of its own (a token task's windows of words, a relation's entity markers)
encodes through :meth:`Task.encode_fast`, the code its torch ``encode`` shares; any other with the
same truncation, a text longer than ``max_length`` split into windows overlapping by a quarter
whose logits are averaged (:meth:`taskkit.kernel.predictor.TorchPredictor.predict_logits`). A
token task's per-sub-word logits become per-word rows, then entities with character offsets, by
the task's own numpy code (``collect_logits``, ``probabilities``, ``decode``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from taskkit.calibration import SavedCalibration, calibrated
from taskkit.contracts import Features, LabelSpace, Predictor, SavedThreshold, Task
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
        self.tokenizer.no_truncation()
        # a task whose encoding is its own (token windows, entity markers) tokenizes whole texts itself
        self.own_encoding = task.encode_fast([], self.tokenizer, labels, max_length) is not None
        if not self.own_encoding:  # cut at max_length; else overlapping windows, as transformers makes them with stride
            windows = not (self.settings.get("truncate") or task.level == "pair")
            self.tokenizer.enable_truncation(max_length, stride=max_length // 4 if windows else 0, strategy="longest_first")

    def features(self, inputs: Sequence[Any]) -> tuple[list[Features], list[int]]:
        """The features of the inputs (windows included) and, for each, the input it belongs to."""
        examples = [self.task.as_example(x) for x in inputs]
        if self.own_encoding:
            features = self.task.encode_fast(examples, self.tokenizer, self.labels, int(self.settings.get("max_length", 128)),
                                             truncate=bool(self.settings.get("truncate")))
            assert features is not None  # (own_encoding: the task encodes without torch)
            return features, [f.get("_example", i) for i, f in enumerate(features)]
        if self.task.level == "pair":
            encoded = self.tokenizer.encode_batch([(e["text"], e["text_pair"]) for e in examples])
        else:
            encoded = self.tokenizer.encode_batch([e["text"] for e in examples])
        features, owners = [], []
        for i, encoding in enumerate(encoded):
            parts = [encoding] if self.settings.get("truncate") or self.task.level == "pair" else [encoding, *encoding.overflowing]
            features.extend({"input_ids": w.ids, "attention_mask": w.attention_mask, "token_type_ids": w.type_ids,
                             "_example": i} for w in parts)
            owners.extend([i] * len(parts))
        return features, owners

    def run(self, features: Sequence[Features]) -> list[np.ndarray]:
        """The graph's logits per feature, in length-sorted padded batches; a per-token output is cut
        back to its feature's own length."""
        lengths = [len(f["input_ids"]) for f in features]
        order = sorted(range(len(features)), key=lambda i: -lengths[i])
        size = int(self.settings.get("eval_batch_size", 128))
        pad = int(self.settings.get("pad_token_id", 0))
        logits: list[np.ndarray] = [np.zeros(0, dtype=np.float32)] * len(features)
        for start in range(0, len(order), size):
            batch = order[start : start + size]
            width = max(lengths[i] for i in batch)
            feed = {}
            for name in self.inputs:
                values = [features[i][name] for i in batch]
                if isinstance(values[0], (list, tuple)):  # per token: padded (ids with the pad id, the rest 0)
                    fill = pad if name == "input_ids" else 0
                    values = [list(v) + [fill] * (width - len(v)) for v in values]
                feed[name] = np.asarray(values, dtype=np.int64)
            out = self.session.run(["logits"], feed)[0]
            for row, i in zip(out, batch):
                logits[i] = row[: lengths[i]] if row.ndim == 2 else row
        return logits

    def predict_logits(self, inputs: Sequence[Any]) -> Any:
        """Logits per input: a matrix (a row per input, windows averaged), or for a token task one
        array of per-word rows per input."""
        features, owners = self.features(inputs)
        logits = self.run(features)
        collected = self.task.collect_logits(features, logits, len(inputs), self.labels)
        if collected is not None:  # the task merges its own windows (per-word rows of a token task)
            return collected
        pooled = np.zeros((len(inputs), len(self.labels)), dtype=np.float64)
        counts = np.bincount(owners, minlength=len(inputs))
        for row, owner in zip(logits, owners):
            pooled[owner] += row
        return (pooled / np.maximum(counts, 1)[:, None]).astype(np.float32)

    def predict_proba(self, inputs: Sequence[Any]) -> Any:
        if not len(inputs):
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        logits = self.predict_logits(inputs)
        if self.task.ragged:  # one array per input (a row per word), as the torch predictor returns
            return self.task.probabilities(logits, self.labels)
        return calibrated(self, logits)

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
