"""Trace a :class:`~taskkit.kernel.predictor.TorchPredictor` (body and head) into an ONNX graph."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskkit.errors import TaskkitError

if TYPE_CHECKING:
    from taskkit.contracts import Predictor
    from taskkit.kernel.predictor import TorchPredictor

OPSET = 17
GRAPH = "model.onnx"
TOKENIZER = "tokenizer.json"
FORMAT = "onnx.v1"


ONNX_BATCH = 32  # the exported folder's batch size for inference
ONE_MODULE_FORMATS = ("torch.v1", "adapter.v1", "embedding-head.v1")


def exportable(predictor: Predictor, where: str) -> TorchPredictor:
    """The torch predictor to trace (a peft model merged in memory), or one line saying why not."""
    from taskkit.kernel.predictor import AdapterPredictor, TorchPredictor

    kind = type(predictor).__name__
    # formats whose predictions are one transformer with a task head (a peft adapter is merged below);
    # not: zero-shot scorers, predictors that compute outside one module
    if not (isinstance(predictor, TorchPredictor) and predictor.format in ONE_MODULE_FORMATS):
        raise TaskkitError(f"{where}: a {predictor.task.name!r} model of mode {predictor.mode!r} "
                           f"({kind}) cannot be exported to ONNX: only models that run one transformer with a "
                           f"task head (full, peft, few-shot heads), zero-shot models and ensembles of these can")
    if isinstance(predictor, AdapterPredictor) and hasattr(predictor.model.body, "merge_and_unload"):
        predictor = predictor.merged()  # LoRA / IA3 folded into the base weights, in memory
    if not predictor.tokenizer.is_fast:
        raise TaskkitError(f"{where}: its tokenizer has no fast (tokenizers) version; ONNX inference needs tokenizer.json")
    task = predictor.task
    # an encoding of the task's own (token windows, entity markers) must exist without torch: Task.encode_fast
    if task.encode_fast([], fast_tokenizer(predictor), predictor.labels, predictor.settings["max_length"]) is None \
            and (task.level not in ("sequence", "pair") or task.ragged or task.special_tokens([])):
        raise TaskkitError(f"{where}: {task.level}-level task {task.name!r} encodes its inputs its own way and has no "
                           f"torch-free version of that encoding (Task.encode_fast): it cannot be exported to ONNX")
    try:
        sample_inputs(predictor)  # the encodings agree on a sample (before anything is written)
    except TaskkitError as exc:
        raise TaskkitError(f"{where}: {exc}") from None
    return predictor


def fast_tokenizer(predictor: TorchPredictor) -> Any:
    """A copy of the predictor's ``tokenizers`` tokenizer as ``tokenizer.json`` holds it, added tokens
    (entity markers) included, with no truncation and no padding."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(predictor.tokenizer.backend_tokenizer.to_str())
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def _traceable(predictor: TorchPredictor, inputs: list[str]) -> Any:
    """A module taking the features positionally (as the exporter passes them) -> the TaskModel's logits."""
    import torch

    class Exported(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = predictor.model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return self.model(**dict(zip(inputs, tensors)))

    return Exported().eval()


#: What a user passes to ``predict``, per kind of task: texts, a text pair, a text with a head and a
#: tail entity (relation); the first that the task accepts is traced.
SAMPLES: tuple[list[Any], ...] = (
    ["a sample text", "a second, longer sample text"],
    [["a premise", "a hypothesis"]],
    [{"text": "A spark caused the fire.", "head": {"start": 2, "end": 7}, "tail": {"start": 19, "end": 23}}],
)


def _samples(predictor: TorchPredictor) -> list[Any]:
    for sample in SAMPLES[1:] if predictor.task.level == "pair" else SAMPLES[:1]:
        try:
            [predictor.task.as_example(x) for x in sample]
        except TaskkitError:
            continue
        return sample
    raise TaskkitError(f"task {predictor.task.name!r} accepts no sample input to trace its model with")


def sample_inputs(predictor: TorchPredictor) -> tuple[list[str], dict[str, Any]]:
    """The feature names the model takes (in a fixed order) and one encoded example; a task's own
    torch-free encoding (:meth:`Task.encode_fast`) must give the features its ``encode`` gives."""
    samples = _samples(predictor)
    features = predictor.features(samples)
    fast = predictor.task.encode_fast([predictor.task.as_example(x) for x in samples], fast_tokenizer(predictor),
                                      predictor.labels, predictor.settings["max_length"],
                                      truncate=bool(predictor.settings.get("truncate")))
    if fast is not None and [_unlabelled(f) for f in fast] != [_unlabelled(f) for f in features]:
        raise TaskkitError(f"task {predictor.task.name!r}: its torch-free encoding (Task.encode_fast) differs from its "
                           f"encode on a sample input: not exportable to ONNX")
    feature = features[0]
    names: list[str] = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in feature]
    names += sorted(k for k in _inputs(feature) if k not in names)  # what the head reads (marker positions)
    return names, {k: feature[k] for k in names}


def _unlabelled(feature: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in feature.items() if k != "labels"}  # bookkeeping (word ids, windows) included


def _inputs(feature: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in _unlabelled(feature).items() if not k.startswith("_")}


def write_graph(predictor: TorchPredictor, file: Path) -> list[str]:
    """Write the fp32 graph with dynamic batch and sequence axes; returns its input names."""
    import torch

    from taskkit.export.fusion import eager_attention

    names, feature = sample_inputs(predictor)
    model = predictor.model.float().to("cpu").eval()
    predictor.device = torch.device("cpu")
    eager_attention(predictor.model.body)  # the attention pattern onnxruntime's fusion recognises
    args = tuple(torch.tensor([feature[k], feature[k]]) for k in names)
    # per-token features have a sequence axis; per-example ones (a marker's position) only a batch axis
    axes = {k: {0: "batch", 1: "sequence"} if isinstance(feature[k], list) else {0: "batch"} for k in names}
    with torch.inference_mode():
        per_token = _traceable(predictor, names)(*args).dim() == 3  # a token task's logits: a row per sub-word
    axes["logits"] = {0: "batch", 1: "sequence"} if per_token else {0: "batch"}
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on constants it keeps (checked by parity tests)
        torch.onnx.export(_traceable(predictor, names), args, str(file), input_names=names,
                          output_names=["logits"], dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    del model
    return names


def save_onnx(predictor: TorchPredictor, out: Path, quantize: str | None) -> Path:
    """Write the ONNX model folder ``out`` atomically (graph, tokenizer.json, taskkit.json)."""
    import shutil

    from taskkit.artifacts import write_atomically

    with tempfile.TemporaryDirectory(prefix="taskkit-export-") as scratch:
        graph = Path(scratch) / GRAPH
        names = write_graph(predictor, graph)
        from taskkit.export.fusion import fuse

        fused = fuse(graph, predictor.model.body, predictor.tokenizer.backend_tokenizer)
        if quantize == "int8":
            from taskkit.export.quantize import quantize_int8

            quantized = Path(scratch) / "model.int8.onnx"
            quantize_int8(graph, quantized, predictor.tokenizer.backend_tokenizer)
            graph = quantized
        tokenizer = predictor.tokenizer

        def write(folder: Path) -> None:
            shutil.copyfile(graph, folder / GRAPH)
            tokenizer.backend_tokenizer.save(str(folder / TOKENIZER))

        settings = {k: v for k, v in predictor.settings.items()
                    if k in ("max_length", "truncate", "eval_batch_size", "threshold", "calibration", "base_model", "data")}
        settings.update({"inputs": names, "pad_token_id": int(tokenizer.pad_token_id or 0),
                         "quantize": quantize, "exported_from": predictor.format, "fused": fused,
                         # onnxruntime on CPU runs length-sorted batches of 32 faster than of 128 (SST-2
                         # dev texts, int8 MiniLM: 528 against 476 texts/s; 8: 512, 16: 527, 64: 476)
                         "eval_batch_size": min(ONNX_BATCH, int(predictor.settings.get("eval_batch_size", ONNX_BATCH)))})
        meta = {"task": predictor.task.name, "mode": predictor.mode, "format": FORMAT,
                "labels": list(predictor.labels.names), "multi_label": predictor.labels.multi_label,
                "settings": settings}
        return write_atomically(out, write, meta)
