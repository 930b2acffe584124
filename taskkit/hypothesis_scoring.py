"""Scoring texts against label hypotheses, no training: NLI cross-encoders and bi-encoders, on the
kernel's inference. What the zero-shot predictor (format ``zero-shot.v1``) runs; torch loads on first use.

NLI: every (text, hypothesis) pair goes through the kernel as one length-sorted stream with
dynamic padding. Texts and hypotheses are tokenized once each and joined by the tokenizer's own
pair layout, so 77 labels cost 77 forward rows per text but one tokenization.
Embedding: each text is encoded once; label embeddings are computed once per label set.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from taskkit.errors import TaskkitError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

DEFAULT_NLI = "nli-minilm"  # shipped in taskkit/packaged
DEFAULT_EMBEDDING = "minilm"
# Padded tokens per NLI batch: pairs of long texts go in smaller batches (fastest on CPU, see sorted_batches).
MAX_TOKENS = 3072
# bf16 weights move entailment logits by up to ~0.12 (MiniLM, Banking77); texts whose two best
# labels are closer than twice that are scored again in fp32, so bf16 speed keeps fp32's decisions.
TIE_MARGIN = 0.25


@dataclass
class PairLayout:
    """Where special tokens and segment ids go around two token sequences (learned from a probe)."""

    prefix: list[int]
    middle: list[int]
    suffix: list[int]
    types: tuple[list[int], int, list[int], int, list[int]]  # prefix, a, middle, b, suffix

    @classmethod
    def of(cls, tokenizer: Any) -> PairLayout:
        a_id, b_id = (tokenizer.convert_tokens_to_ids(t) for t in _probe_tokens(tokenizer))
        a_tok, b_tok = tokenizer.convert_ids_to_tokens([a_id, b_id])
        enc = tokenizer(tokenizer.convert_tokens_to_string([a_tok]), tokenizer.convert_tokens_to_string([b_tok]))
        ids = enc["input_ids"]
        if ids.count(a_id) != 1 or ids.count(b_id) != 1:
            raise TaskkitError(f"cannot work out how {type(tokenizer).__name__} joins two texts")
        ia, ib = ids.index(a_id), ids.index(b_id)
        tt = enc.get("token_type_ids") or [0] * len(ids)
        return cls(ids[:ia], ids[ia + 1 : ib], ids[ib + 1 :],
                   (tt[:ia], tt[ia], tt[ia + 1 : ib], tt[ib], tt[ib + 1 :]))

    @property
    def special(self) -> int:
        return len(self.prefix) + len(self.middle) + len(self.suffix)

    def join(self, a: list[int], b: list[int], max_length: int) -> dict[str, list[int]]:
        """``a`` cut to fit (only the text is truncated, as transformers' ``only_first``)."""
        a = a[: max(0, max_length - len(b) - self.special)]
        ids = self.prefix + a + self.middle + b + self.suffix
        tp, ta, tm, tb, ts = self.types
        types = tp + [ta] * len(a) + tm + [tb] * len(b) + ts
        return {"input_ids": ids, "token_type_ids": types, "attention_mask": [1] * len(ids)}


def _probe_tokens(tokenizer: Any) -> tuple[str, str]:
    vocab = tokenizer.get_vocab()
    for a, b in (("dog", "cat"), ("Ġdog", "Ġcat"), ("▁dog", "▁cat")):
        if a in vocab and b in vocab:
            return a, b
    raise TaskkitError(f"cannot probe the pair layout of {type(tokenizer).__name__}")


def entailment_index(id2label: dict[int, str], ref: str) -> tuple[int, int | None]:
    """(entailment column, contradiction column or None) from a model's label names."""
    names = {i: str(n).lower() for i, n in id2label.items()}
    entail = [i for i, n in names.items() if n.startswith("entail")]
    if not entail:
        raise TaskkitError(f"model {ref!r} names no entailment label (its labels: "
                           f"{', '.join(str(n) for n in id2label.values())}); the nli backend needs an NLI model")
    contra = [i for i, n in names.items() if n.startswith("contradict") or n in ("not_entailment", "non_entailment")]
    return int(entail[0]), (int(contra[0]) if contra else None)


class PairScorer:
    """Scoring (text, hypothesis) pairs with an NLI cross-encoder, apart from running it: how the
    pairs are tokenized, joined and windowed, and how their logits become entailment scores and
    probabilities. A subclass tokenizes and runs the model on the features: :class:`NLIScorer`
    (torch, the kernel's inference) or the ONNX export's scorer (onnxruntime,
    :mod:`taskkit.export.onnx_scoring`), so both score alike."""

    max_length: int
    layout: PairLayout
    names: list[str]  # the model's classes, in column order
    entail: int
    contra: int | None

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Sub-word ids of whole texts (no special tokens, no cut: a long premise is scored in windows)."""
        raise NotImplementedError

    def run(self, features: list[dict[str, list[int]]], precision: str | None) -> list[np.ndarray]:
        """The model's class logits of each joined pair (``input_ids``, ``token_type_ids``,
        ``attention_mask``), in order; ``precision``: this call's, else the scorer's."""
        raise NotImplementedError

    def settles_ties(self) -> bool:
        """Whether single-label scores close to the best are scored again in fp32 (bf16 scorers)."""
        return False

    def windows(self, ids: list[int], room: int) -> list[list[int]]:
        """``ids`` in windows of at most ``room`` tokens, overlapping by a quarter (one if it fits)."""
        room = max(1, room)
        if len(ids) <= room:
            return [ids]
        step = max(1, room - room // 4)
        return [ids[i : i + room] for i in range(0, len(ids) - room + step, step)]

    def logits(self, texts: Sequence[str], hypotheses: Sequence[str]) -> np.ndarray:
        """(texts, hypotheses, classes) logits; the same hypotheses for every text."""
        if not len(texts) or not len(hypotheses):
            return np.zeros((len(texts), len(hypotheses), 0), dtype=np.float32)
        return np.stack(self.pair_logits(texts, [hypotheses] * len(texts)))

    def pair_logits(self, texts: Sequence[str], hypotheses: Sequence[Sequence[str]],
                    precision: str | None = None) -> list[np.ndarray]:
        """Per text, a (its hypotheses, classes) array: hypotheses may differ from text to text
        (relation extraction fills the entities in). Each distinct hypothesis is tokenized once.
        ``precision``: this call's, else the scorer's (the scorer itself is never changed: predictors
        of several label sets may share it from several threads).

        A text longer than fits beside its longest hypothesis in ``max_length`` is cut into
        overlapping windows, each window is scored against each hypothesis, and a hypothesis's row
        is that of the window where it is most entailed (the usual reading of a long document:
        a label holds if some passage says so). Nothing is cut away unscored."""
        unique = sorted({h for hs in hypotheses for h in hs})
        b_of = dict(zip(unique, self.token_ids(unique))) if unique else {}
        features, owners = [], []  # owners: (text, hypothesis) of each feature
        for t, (a, hs) in enumerate(zip(self.token_ids(texts), hypotheses)):
            room = self.max_length - self.layout.special - max((len(b_of[h]) for h in hs), default=0)
            for window in self.windows(a, room):
                for j, h in enumerate(hs):
                    features.append(self.layout.join(window, b_of[h], self.max_length))
                    owners.append((t, j))
        rows = self.run(features, precision) if features else []
        out = [np.full((len(hs), len(self.names)), -np.inf, np.float32) for hs in hypotheses]
        for (t, j), row in zip(owners, rows):
            if row[self.entail] > out[t][j, self.entail]:
                out[t][j] = row
        return out

    def probabilities(self, texts: Sequence[str], hypotheses: Sequence[str], multi_label: bool) -> np.ndarray:
        """Single-label: softmax over the labels' entailment logits (as transformers' pipeline).
        Multi-label: entailment against contradiction for each label on its own."""
        if not multi_label:
            return softmax(self.entailment_logits(texts, hypotheses))
        logits = self.logits(texts, hypotheses)
        other = logits[..., self.contra] if self.contra is not None else _others(logits, self.entail)
        return sigmoid(logits[..., self.entail] - other)

    def entailment_logits(self, texts: Sequence[str], hypotheses: Sequence[str]) -> np.ndarray:
        """(texts, hypotheses) entailment logits, what single-label scoring softmaxes (in bf16, the
        close calls scored again in fp32)."""
        logits = self.logits(texts, hypotheses)
        if len(hypotheses) > 1 and self.settles_ties():
            self.settle_ties(texts, hypotheses, logits)
        return logits[..., self.entail] if logits.shape[-1] else np.zeros(logits.shape[:2], np.float32)


    def relation_probabilities(self, texts: Sequence[str], hypotheses: Sequence[Sequence[str]],
                               offset: np.ndarray | None = None) -> np.ndarray:
        """(texts, hypotheses + 1): the last column is "none of them". Each hypothesis is judged
        on its own (entailment against contradiction); the best one's probability is shared out
        over the hypotheses by their entailment softmax (less ``offset``, a label-bias correction
        per hypothesis position), the rest goes to "none"."""
        out = np.zeros((len(texts), len(hypotheses[0]) + 1 if hypotheses else 1), dtype=np.float32)
        for i, logits in enumerate(self.pair_logits(texts, hypotheses)):
            other = logits[:, self.contra] if self.contra is not None else _others(logits, self.entail)
            some = float(sigmoid(logits[:, self.entail] - other).max())
            entail = logits[:, self.entail] if offset is None else logits[:, self.entail] - offset
            out[i, :-1] = some * softmax(entail)
            out[i, -1] = 1.0 - some
        return out


    def relation_entailment(self, texts: Sequence[str], hypotheses: Sequence[Sequence[str]]) -> np.ndarray:
        """(texts, hypotheses) entailment logits of per-text hypotheses (the same number for each)."""
        rows = [logits[:, self.entail] for logits in self.pair_logits(texts, hypotheses)]
        return np.stack(rows) if rows else np.zeros((0, 0), np.float32)

    def settle_ties(self, texts: Sequence[str], hypotheses: Sequence[str], logits: np.ndarray) -> None:
        """Score again in fp32, in place, the pairs that could still be a text's best: those within
        TIE_MARGIN of its top entailment logit, for texts where there is more than one."""
        entail = logits[..., self.entail]
        close = entail >= entail.max(axis=1, keepdims=True) - TIE_MARGIN
        rows: list[int] = np.flatnonzero(close.sum(axis=1) > 1).tolist()
        if not rows:
            return
        again = self.pair_logits([texts[i] for i in rows],
                                 [[hypotheses[j] for j in np.flatnonzero(close[i]).tolist()] for i in rows], "fp32")
        for i, values in zip(rows, again):
            logits[i, np.flatnonzero(close[i])] = values


class NLIScorer(PairScorer):
    """A cross-encoder run by torch on the kernel's inference (bf16 weights where that is the precision)."""

    def __init__(self, ref: str = DEFAULT_NLI, precision: str = "auto", batch_size: int = 128,
                 max_length: int = 256) -> None:
        self.ref, self.precision, self.batch_size, self.max_length = ref, precision, batch_size, max_length
        self.model, self.tokenizer, id2label, self.logits_of = _load_nli(ref)
        self.entail, self.contra = entailment_index(id2label, ref)
        self.names = [str(id2label[i]) for i in sorted(id2label)]
        self.layout = PairLayout.of(self.tokenizer)
        from taskkit.kernel.device import default_device

        self._bf16: torch.nn.Module | None = None
        self.device = default_device()
        self.model.to(self.device)

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        return self.tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]

    def settles_ties(self) -> bool:
        from taskkit.kernel.device import resolve_precision

        return resolve_precision(self.precision) == "bf16"

    def run(self, features: list[dict[str, list[int]]], precision: str | None) -> list[np.ndarray]:
        import torch

        from taskkit.kernel.device import resolve_precision
        from taskkit.kernel.infer import predict_logits

        model, precision = self.model, precision or self.precision
        if resolve_precision(precision) == "bf16":
            # a bf16 copy of the weights: no per-call casts as under autocast (~35% faster on CPU)
            if self._bf16 is None:
                self._bf16 = copy.deepcopy(self.model).to(torch.bfloat16)
            model, precision = self._bf16, "fp32"
        return predict_logits(model, features, self.tokenizer.pad_token_id, self.batch_size, precision,
                              self.device, logits_of=self.logits_of, max_tokens=MAX_TOKENS)


def _nli_task() -> Any:
    """The task taskkit's NLI cross-encoders are loaded with (premise + hypothesis -> 3 labels)."""
    from taskkit.classification import PairClassificationTask

    class NLI(PairClassificationTask):
        name = "nli"

    return NLI()


def _load_nli(ref: str) -> tuple[torch.nn.Module, Any, dict[int, str], Callable[[Any], torch.Tensor]]:
    from taskkit import artifacts, packaged

    folder = packaged.path(ref) if (packaged.path(ref) / artifacts.METADATA).is_file() else Path(ref)
    if (folder / artifacts.METADATA).is_file():  # a taskkit model folder (taskkit's own NLI model)
        # loaded as a pair classifier of its own: zero-shot folders load without the nli plugin
        from taskkit.kernel.predictor import TorchPredictor

        predictor = artifacts.load(folder, _nli_task())
        if not isinstance(predictor, TorchPredictor):
            raise TaskkitError(f"{folder}: not an NLI cross-encoder (a {type(predictor).__name__}, not a torch.v1 model)")
        return predictor.model, predictor.tokenizer, dict(enumerate(predictor.labels.names)), lambda out: out
    from transformers import AutoModelForSequenceClassification

    from taskkit.models import _load, load_tokenizer, resolve

    path = resolve(ref)
    model = _load("weights", AutoModelForSequenceClassification.from_pretrained, path)
    return model, load_tokenizer(path), dict(model.config.id2label), lambda out: out.logits


class TextEncoder:
    """Embedding texts with a bi-encoder, apart from running it: a text longer than the encoder
    takes is encoded in overlapping windows whose embeddings are averaged (and normalised again).
    A subclass tokenizes and runs the encoder: :class:`EmbeddingScorer` (torch) or the ONNX
    export's (:mod:`taskkit.export.onnx_scoring`)."""

    normalize: bool
    dim: int

    def windows(self, texts: Sequence[str]) -> tuple[list[dict[str, list[int]]], list[int]]:
        """The encoder's features of each window of ``texts`` (at most its max length, overlapping
        by a quarter) and the text each belongs to."""
        raise NotImplementedError

    def embed(self, features: list[dict[str, list[int]]]) -> np.ndarray:
        """(windows, dim) pooled (and, if the encoder does, normalised) embeddings."""
        raise NotImplementedError

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not len(texts):
            return np.zeros((0, self.dim), dtype=np.float32)
        features, owners = self.windows(texts)
        rows = self.embed(features)
        if len(owners) == len(texts):
            return rows
        out = np.zeros((len(texts), rows.shape[1]), dtype=np.float32)
        np.add.at(out, np.asarray(owners), rows)
        out /= np.bincount(owners, minlength=len(texts))[:, None]
        if self.normalize:
            out /= np.linalg.norm(out, axis=1, keepdims=True).clip(min=1e-12)
        return out


class EmbeddingScorer(TextEncoder):
    """A sentence-transformers bi-encoder run on the kernel: pooled, normalised embeddings."""

    def __init__(self, ref: str = DEFAULT_EMBEDDING, precision: str = "auto", batch_size: int = 128) -> None:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        from taskkit.kernel.device import default_device
        from taskkit.models import resolve

        hf_logging.disable_progress_bar()  # no "Loading weights" bar on stderr, as for every other load

        self.ref, self.precision, self.batch_size = ref, precision, batch_size
        try:
            st = SentenceTransformer(resolve(ref), device="cpu", model_kwargs={"use_safetensors": True})
        except (OSError, ValueError) as exc:
            raise TaskkitError(f"cannot load sentence-transformers model {ref!r}: {str(exc).splitlines()[0]}") from None
        self.tokenizer = st.tokenizer
        self.max_length = int(st.max_seq_length or 512)
        # the first module of a sentence-transformers model wraps the transformers encoder
        self.body = cast("PreTrainedModel", st[0].auto_model).eval()
        self.dim = int(self.body.config.hidden_size)
        self.pooling = _pooling_mode(st)
        self.normalize = any(type(m).__name__ == "Normalize" for m in st)
        self.device = default_device()
        self.body.to(self.device)

    def __call__(self, **batch: torch.Tensor) -> torch.Tensor:
        import torch

        from taskkit.kernel.model import mean_pool

        hidden = self.body(**batch).last_hidden_state
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        elif self.pooling == "max":
            pooled = hidden.masked_fill(batch["attention_mask"].unsqueeze(-1) == 0, -1e4).max(dim=1).values
        else:
            pooled = mean_pool(hidden, batch["attention_mask"])
        pooled = pooled.float()
        return torch.nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled

    def windows(self, texts: Sequence[str]) -> tuple[list[dict[str, list[int]]], list[int]]:
        enc = self.tokenizer(list(texts), truncation=True, max_length=self.max_length,
                             stride=self.max_length // 4, return_overflowing_tokens=True)
        owners = enc.pop("overflow_to_sample_mapping", None) or list(range(len(texts)))
        return [{k: enc[k][i] for k in enc} for i in range(len(owners))], owners

    def embed(self, features: list[dict[str, list[int]]]) -> np.ndarray:
        from taskkit.kernel.infer import predict_logits

        return np.stack(predict_logits(self, features, self.tokenizer.pad_token_id, self.batch_size,
                                       self.precision, self.device))


def _pooling_mode(st: Any) -> str:
    for module in st:
        if type(module).__name__ == "Pooling":
            mode = getattr(module, "pooling_mode", None) or module.get_pooling_mode_str()
            return "cls" if "cls" in mode else "max" if "max" in mode else "mean"
    return "mean"


def softmax(x: np.ndarray) -> np.ndarray:
    """Over the last axis (scipy's, numerically stable)."""
    from scipy.special import softmax as scipy_softmax

    return scipy_softmax(x, axis=-1)


def sigmoid(x: np.ndarray) -> np.ndarray:
    from scipy.special import expit

    return expit(x)


def _others(logits: np.ndarray, entail: int) -> np.ndarray:
    """Without a contradiction column: log-sum-exp of the other classes."""
    rest = np.delete(logits, entail, axis=-1)
    top = rest.max(axis=-1)
    return top + np.log(np.exp(rest - top[..., None]).sum(axis=-1))
