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

from taskkit.export.onnx_predictor import run_session, session, tokenizer
from taskkit.hypothesis_scoring import MAX_TOKENS, PairLayout, PairScorer, TextEncoder


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
