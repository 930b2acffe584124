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
                           f"task head (full, peft, few-shot heads) can"
                           + (" (a few-shot model trained with --option zero_shot=none has no zero-shot member)"
                              if kind == "ZeroShotPredictor" else ""))
    if predictor.task.level not in ("sequence", "pair") or predictor.task.ragged:
        raise TaskkitError(f"{where}: {predictor.task.level}-level task {predictor.task.name!r} cannot be exported "
                           f"to ONNX yet: only sequence and pair classification tasks can")
    if predictor.task.special_tokens([]):  # entity markers placed by the task's own encode (relation)
        raise TaskkitError(f"{where}: task {predictor.task.name!r} marks its inputs with special tokens in taskkit's "
                           f"own encoding, which the ONNX runtime path does not reproduce yet: it cannot be exported")
    if isinstance(predictor, AdapterPredictor) and hasattr(predictor.model.body, "merge_and_unload"):
        predictor = predictor.merged()  # LoRA / IA3 folded into the base weights, in memory
    if not predictor.tokenizer.is_fast:
        raise TaskkitError(f"{where}: its tokenizer has no fast (tokenizers) version; ONNX inference needs tokenizer.json")
    return predictor


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


def sample_inputs(predictor: TorchPredictor) -> tuple[list[str], dict[str, list[int]]]:
    """The feature names the model takes (in a fixed order) and one encoded example."""
    examples = [predictor.task.as_example(x) for x in (["a sample text", "a second text"]
                                                         if predictor.task.level == "sequence" else [["a premise", "a hypothesis"]])]
    feature = predictor.features(examples)[0]
    names: list[str] = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in feature]
    others = [k for k in feature if k not in names and k != "labels" and not k.startswith("_")]
    if others:
        raise TaskkitError(f"task {predictor.task.name!r} feeds its head {others}: not exportable to ONNX yet")
    return names, {k: feature[k] for k in names}


def write_graph(predictor: TorchPredictor, file: Path) -> list[str]:
    """Write the fp32 graph with dynamic batch and sequence axes; returns its input names."""
    import torch

    names, feature = sample_inputs(predictor)
    model = predictor.model.float().to("cpu").eval()
    predictor.device = torch.device("cpu")
    args = tuple(torch.tensor([feature[k], feature[k]]) for k in names)
    axes = {k: {0: "batch", 1: "sequence"} for k in names}
    axes["logits"] = {0: "batch"}
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
        if quantize == "int8":
            from taskkit.export.quantize import quantize_int8

            quantized = Path(scratch) / "model.int8.onnx"
            quantize_int8(graph, quantized)
            graph = quantized
        tokenizer = predictor.tokenizer

        def write(folder: Path) -> None:
            shutil.copyfile(graph, folder / GRAPH)
            tokenizer.backend_tokenizer.save(str(folder / TOKENIZER))

        settings = {k: v for k, v in predictor.settings.items()
                    if k in ("max_length", "truncate", "eval_batch_size", "threshold", "base_model", "data")}
        settings.update({"inputs": names, "pad_token_id": int(tokenizer.pad_token_id or 0),
                         "quantize": quantize, "exported_from": predictor.format})
        meta = {"task": predictor.task.name, "mode": predictor.mode, "format": FORMAT,
                "labels": list(predictor.labels.names), "multi_label": predictor.labels.multi_label,
                "settings": settings}
        return write_atomically(out, write, meta)
