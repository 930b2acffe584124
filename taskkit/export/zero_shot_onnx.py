"""Zero-shot models exported to ONNX (format ``zero-shot-onnx.v1``): the same predictor, its backends on onnxruntime.

An exported zero-shot folder holds ``nli/`` (the cross-encoder: pair -> class logits) and/or
``encoder/`` (the bi-encoder, mean pooling and normalisation in the graph: text -> embedding),
each a graph and the fast tokenizer's ``tokenizer.json``, the self-trained head if there is one,
and every saved setting (template, descriptions, label-bias offsets, nli share, calibration,
abstain / threshold, multi-label). :class:`OnnxZeroShotPredictor` is a
:class:`~taskkit.zero_shot_predictor.ZeroShotPredictor` whose backends are
:mod:`taskkit.export.onnx_scoring`'s, so everything it computes from their scores is the one
implementation the torch predictor runs, and serving it with per-request labels
(:meth:`~taskkit.zero_shot_predictor.ZeroShotPredictor.with_labels`) works as for the torch folder.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskkit.errors import TaskkitError
from taskkit.zero_shot_predictor import ZeroShotPredictor

if TYPE_CHECKING:
    from taskkit.contracts import Task
    from taskkit.hypothesis_scoring import EmbeddingScorer, NLIScorer, PairScorer, TextEncoder

FORMAT = "zero-shot-onnx.v1"
OPSET = 17
NLI, ENCODER = "nli", "encoder"  # the exported backends' sub-folders


def parts(backend: str, self_trained: bool) -> list[str]:
    """The backends a zero-shot predictor runs: nli for ``nli``/``both``, the encoder for
    ``embedding``/``both`` and for a self-trained head."""
    return [p for p, used in ((NLI, backend != "embedding"), (ENCODER, backend != "nli" or self_trained)) if used]


class OnnxZeroShotPredictor(ZeroShotPredictor):
    format = FORMAT

    def __init__(self, task: Task, labels: dict[str, str | None], settings: dict[str, Any],
                 folder: Path | None = None) -> None:
        super().__init__(task, labels, settings)
        self.folder = folder

    def relabelled(self, labels: dict[str, str | None], settings: dict[str, Any]) -> ZeroShotPredictor:
        return OnnxZeroShotPredictor(self.task, labels, settings, self.folder)

    def spec(self, part: str) -> tuple[Path, dict[str, Any]]:
        specs = self.settings.get("onnx")
        where = self.folder / "taskkit.json" if self.folder else "taskkit.json"
        if self.folder is None or not isinstance(specs, dict) or not isinstance(specs.get(part), dict):
            raise TaskkitError(f"{where}: an exported zero-shot model needs settings.onnx.{part} (re-export it)")
        return self.folder / part, specs[part]

    def scorer(self) -> PairScorer:
        if self._scorer is None:
            from taskkit.export.onnx_scoring import OnnxPairScorer

            self._scorer = OnnxPairScorer(*self.spec(NLI))
        return self._scorer

    def encoder(self) -> TextEncoder:
        if self._encoder is None:
            from taskkit.export.onnx_scoring import OnnxTextEncoder

            self._encoder = OnnxTextEncoder(*self.spec(ENCODER))
        return self._encoder

    def write_files(self, folder: Path) -> None:
        super().write_files(folder)
        for part in parts(self.settings["backend"], self.head is not None):
            shutil.copytree(self.spec(part)[0], folder / part)

    @classmethod
    def load(cls, path: Path, task: Task, metadata: dict[str, Any]) -> OnnxZeroShotPredictor:
        predictor = super().load(path, task, metadata)
        assert isinstance(predictor, OnnxZeroShotPredictor)  # built by cls
        predictor.folder = path
        # the graphs load here: a broken folder fails on load (serve's start-up), not on the first request
        if NLI in parts(predictor.settings["backend"], predictor.head is not None):
            predictor.scorer()
        if ENCODER in parts(predictor.settings["backend"], predictor.head is not None):
            predictor.encoder()
        return predictor


def check(predictor: ZeroShotPredictor, where: str) -> None:
    """Refuse what cannot be exported, before anything is written."""
    if isinstance(predictor, OnnxZeroShotPredictor):
        raise TaskkitError(f"{where}: already an exported (ONNX) zero-shot model")


def export_zero_shot(predictor: ZeroShotPredictor, out: Path, quantize: str | None) -> Path:
    """Write ``predictor``'s backends as graphs and its settings as they are into model folder ``out``."""
    from taskkit.hypothesis_scoring import EmbeddingScorer, NLIScorer

    with tempfile.TemporaryDirectory(prefix="taskkit-export-") as scratch:
        specs: dict[str, Any] = {}
        for part in parts(predictor.settings["backend"], predictor.head is not None):
            if part == NLI:
                scorer = predictor.scorer()
                assert isinstance(scorer, NLIScorer)  # a torch predictor's (exported ones are refused by check)
                specs[NLI] = write_nli(scorer, Path(scratch) / NLI, quantize)
            else:
                encoder = predictor.encoder()
                assert isinstance(encoder, EmbeddingScorer)
                specs[ENCODER] = write_encoder(encoder, Path(scratch) / ENCODER, quantize)
        settings = {**predictor.settings, "onnx": specs, "quantize": quantize, "exported_from": predictor.format}
        exported = OnnxZeroShotPredictor(predictor.task, predictor.descriptions, settings, Path(scratch))
        exported.head = predictor.head
        return exported.save(out)


def write_nli(scorer: NLIScorer, folder: Path, quantize: str | None) -> dict[str, Any]:
    """The cross-encoder as a graph (joined pair -> class logits) and what scoring needs of it."""
    import torch

    premise, hypothesis = scorer.token_ids(["a premise", "a hypothesis"])
    sample = scorer.layout.join(premise, hypothesis, scorer.max_length)
    names = list(sample)
    model, logits_of = scorer.model.float().to("cpu").eval(), scorer.logits_of
    scorer.device = torch.device("cpu")

    class Pairs(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return logits_of(self.model(**dict(zip(names, tensors))))

    write_graph(Pairs().eval(), names, sample, "logits", folder, quantize, scorer.tokenizer.backend_tokenizer, model)
    scorer.tokenizer.backend_tokenizer.save(str(folder / "tokenizer.json"))
    return {"inputs": names, "names": scorer.names, "entail": scorer.entail, "contra": scorer.contra,
            "layout": asdict(scorer.layout), "max_length": scorer.max_length, "batch_size": scorer.batch_size,
            "pad_token_id": int(scorer.tokenizer.pad_token_id or 0)}


def write_encoder(encoder: EmbeddingScorer, folder: Path, quantize: str | None) -> dict[str, Any]:
    """The bi-encoder with its pooling and normalisation as a graph (text -> embedding)."""
    import torch

    features, _ = encoder.windows(["a sample text"])
    sample = {k: v for k, v in features[0].items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    names = list(sample)
    encoder.body.float().to("cpu").eval()
    encoder.device = torch.device("cpu")

    class Embed(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = encoder.body  # its weights, as the graph's

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return encoder(**dict(zip(names, tensors)))

    write_graph(Embed().eval(), names, sample, "embedding", folder, quantize, encoder.tokenizer.backend_tokenizer,
                encoder.body)
    encoder.tokenizer.backend_tokenizer.save(str(folder / "tokenizer.json"))
    return {"inputs": names, "max_length": encoder.max_length, "batch_size": encoder.batch_size,
            "normalize": encoder.normalize, "dim": encoder.dim, "pad_token_id": int(encoder.tokenizer.pad_token_id or 0)}


def write_graph(module: Any, names: list[str], sample: dict[str, list[int]], output: str, folder: Path,
                quantize: str | None, tokenizer: Any, body: Any) -> None:
    """``folder/model.onnx``: ``module`` traced with dynamic batch and sequence axes, fused where
    onnxruntime can (:mod:`taskkit.export.fusion`; ``body``: the transformer inside), int8 on request."""
    import torch

    from taskkit.export.fusion import eager_attention, fuse

    eager_attention(body)
    folder.mkdir(parents=True)
    args = tuple(torch.tensor([sample[k], sample[k]]) for k in names)
    axes = {k: {0: "batch", 1: "sequence"} for k in names}
    axes[output] = {0: "batch"}
    graph = folder / "model.onnx"
    with tempfile.TemporaryDirectory(prefix="taskkit-graph-") as scratch:
        traced = Path(scratch) / "fp32.onnx"
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on constants it keeps (checked by parity tests)
            torch.onnx.export(module, args, str(traced), input_names=names, output_names=[output],
                              dynamic_axes=axes, opset_version=OPSET, dynamo=False)
        fuse(traced, body, tokenizer)
        if quantize == "int8":
            from taskkit.export.quantize import quantize_int8

            quantize_int8(traced, graph, tokenizer)  # its MatMul inputs measured on sample sentences
        else:
            shutil.copyfile(traced, graph)
