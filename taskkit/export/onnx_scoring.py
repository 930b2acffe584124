"""The zero-shot backends of an exported folder on onnxruntime, ``tokenizers`` and numpy (never torch).

:class:`OnnxPairScorer` and :class:`OnnxTextEncoder` only tokenize and run their graph; what is
done with the results (hypotheses joined to texts, windows of long texts, entailment softmax,
averaged and normalised window embeddings) is :class:`taskkit.hypothesis_scoring.PairScorer`'s and
:class:`~taskkit.hypothesis_scoring.TextEncoder`'s, the same code the torch scorers run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from taskkit.errors import TaskkitError
from taskkit.hypothesis_scoring import MAX_TOKENS, PairLayout, PairScorer, TextEncoder

GRAPH = "model.onnx"
TOKENIZER = "tokenizer.json"


def session(folder: Path) -> Any:
    """An onnxruntime session of ``folder``'s graph (CPU), or one line saying why not."""
    import onnxruntime

    file = folder / GRAPH
    if not file.is_file():
        raise TaskkitError(f"{folder}: exported zero-shot model has no {GRAPH}")
    try:
        return onnxruntime.InferenceSession(str(file), providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 -- onnxruntime's own error types, not exported
        raise TaskkitError(f"{file}: cannot load ({str(exc).splitlines()[0][:160]})") from None


def tokenizer(folder: Path) -> Any:
    from tokenizers import Tokenizer

    file = folder / TOKENIZER
    if not file.is_file():
        raise TaskkitError(f"{folder}: exported zero-shot model has no {TOKENIZER}")
    try:
        loaded = Tokenizer.from_file(str(file))
    except Exception as exc:  # noqa: BLE001 -- tokenizers raises plain Exception on a corrupt file
        raise TaskkitError(f"{file}: corrupt tokenizer ({str(exc).splitlines()[0][:120]})") from None
    loaded.no_padding()
    loaded.no_truncation()
    return loaded


def run_session(graph: Any, features: Sequence[dict[str, list[int]]], pad_id: int, batch_size: int,
                output: str, max_tokens: int | None = None) -> list[np.ndarray]:
    """``output`` of each feature, in input order: length-sorted batches (at most ``max_tokens``
    padded tokens each), padded to their longest (as the kernel's inference batches them)."""
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
            fill = pad_id if name == "input_ids" else 0
            feed[name] = np.asarray([list(features[i][name]) + [fill] * (width - lengths[i]) for i in batch],
                                    dtype=np.int64)
        for row, i in zip(graph.run([output], feed)[0], batch):
            rows[i] = row.astype(np.float32)
    return rows


class OnnxPairScorer(PairScorer):
    """The NLI cross-encoder of an exported folder (``spec``: what the export saved of the torch scorer)."""

    def __init__(self, folder: Path, spec: dict[str, Any]) -> None:
        self.graph, self.tokenizer = session(folder), tokenizer(folder)
        self.names, self.entail, self.contra = list(spec["names"]), int(spec["entail"]), spec["contra"]
        layout = spec["layout"]
        self.layout = PairLayout(list(layout["prefix"]), list(layout["middle"]), list(layout["suffix"]),
                                 tuple(layout["types"]))  # type: ignore[arg-type]
        self.max_length, self.batch_size = int(spec["max_length"]), int(spec["batch_size"])
        self.pad_id = int(spec["pad_token_id"])

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    def run(self, features: list[dict[str, list[int]]], precision: str | None) -> list[np.ndarray]:
        return run_session(self.graph, features, self.pad_id, self.batch_size, "logits", MAX_TOKENS)


class OnnxTextEncoder(TextEncoder):
    """The bi-encoder of an exported folder: its graph pools (and normalises) as the torch encoder does."""

    def __init__(self, folder: Path, spec: dict[str, Any]) -> None:
        self.graph, self.tokenizer = session(folder), tokenizer(folder)
        self.max_length, self.batch_size = int(spec["max_length"]), int(spec["batch_size"])
        self.normalize, self.dim, self.pad_id = bool(spec["normalize"]), int(spec["dim"]), int(spec["pad_token_id"])
        # windows overlapping by a quarter, as the transformers tokenizer makes them with stride
        self.tokenizer.enable_truncation(self.max_length, stride=self.max_length // 4, strategy="longest_first")

    def windows(self, texts: Sequence[str]) -> tuple[list[dict[str, list[int]]], list[int]]:
        features, owners = [], []
        for t, encoding in enumerate(self.tokenizer.encode_batch(list(texts))):
            for part in [encoding, *encoding.overflowing]:
                features.append({"input_ids": part.ids, "attention_mask": part.attention_mask,
                                 "token_type_ids": part.type_ids})
                owners.append(t)
        return features, owners

    def embed(self, features: list[dict[str, list[int]]]) -> np.ndarray:
        return np.stack(run_session(self.graph, features, self.pad_id, self.batch_size, "embedding"))
