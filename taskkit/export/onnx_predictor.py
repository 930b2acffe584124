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
        self.path, self.task, self.labels, self.mode = path, task, labels, mode
        self.settings = dict(settings)
        self.tokenizer, self.session = tokenizer(path), session(path)  # no padding, no truncation yet
        max_length = int(self.settings.get("max_length", 128))
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
        """The graph's logits per feature (:func:`run_session`)."""
        return run_session(self.session, features, int(self.settings.get("pad_token_id", 0)),
                           int(self.settings.get("eval_batch_size", 128)), "logits")

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


def session(folder: Path) -> Any:
    """An onnxruntime session of ``folder``'s graph (CPU), or one line saying why not."""
    import onnxruntime

    file = folder / GRAPH
    if not file.is_file():
        raise TaskkitError(f"{folder}: ONNX model folder has no {GRAPH}")
    try:
        return onnxruntime.InferenceSession(str(file), providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 -- onnxruntime's own error types, not exported
        raise TaskkitError(f"{file}: cannot load ({str(exc).splitlines()[0][:160]})") from None


def tokenizer(folder: Path) -> Any:
    from tokenizers import Tokenizer

    file = folder / TOKENIZER
    if not file.is_file():
        raise TaskkitError(f"{folder}: ONNX model folder has no {TOKENIZER}")
    try:
        loaded = Tokenizer.from_file(str(file))
    except Exception as exc:  # noqa: BLE001 -- tokenizers raises plain Exception on a corrupt file
        raise TaskkitError(f"{file}: corrupt tokenizer ({str(exc).splitlines()[0][:120]})") from None
    loaded.no_padding()
    loaded.no_truncation()
    return loaded


def run_session(graph: Any, features: Sequence[Features], pad_id: int, batch_size: int, output: str,
                max_tokens: int | None = None) -> list[np.ndarray]:
    """``output`` of each feature, in input order: length-sorted batches (at most ``max_tokens``
    padded tokens each), per-token inputs padded to their longest (ids with ``pad_id``, the rest
    0), as the kernel's inference batches them; a per-token output is cut back to its feature's
    own length. Inputs the graph takes per example (a marker's position) are fed as they are."""
    names = [i.name for i in graph.get_inputs()]
    lengths = [len(f["input_ids"]) for f in features]
    order = sorted(range(len(features)), key=lambda i: -lengths[i])
    rows: list[np.ndarray] = [np.zeros(0, np.float32)] * len(features)
    start = 0
    while start < len(order):
        width = max(1, lengths[order[start]])
        size = max(1, min(batch_size, max_tokens // width)) if max_tokens else batch_size
        batch, start = order[start : start + size], start + size
        feed = {}
        for name in names:
            values = [features[i][name] for i in batch]
            if isinstance(values[0], (list, tuple)):
                fill = pad_id if name == "input_ids" else 0
                values = [list(v) + [fill] * (width - len(v)) for v in values]
            feed[name] = np.asarray(values, dtype=np.int64)
        for row, i in zip(graph.run([output], feed)[0], batch):
            rows[i] = (row[: lengths[i]] if row.ndim == 2 else row).astype(np.float32)
    return rows
