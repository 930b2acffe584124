"""``taskkit export``: a saved model folder as an ONNX model folder that runs without torch.

:func:`export_model` loads a model folder, checks that its predictor runs one torch module that
can be traced (full, merged or unmerged peft and few-shot models of sequence and pair
classification, NER and relation tasks),
writes the graph (:mod:`taskkit.export.onnx`), optionally quantizes it to int8
(:mod:`taskkit.export.quantize`) and saves a model folder of format ``onnx.v1`` that
:class:`taskkit.export.onnx_predictor.OnnxPredictor` loads with onnxruntime and ``tokenizers`` only.
A zero-shot model (an ensemble's member too) is exported by :mod:`taskkit.export.zero_shot_onnx`:
its backends' graphs, its settings and scoring as they are (format ``zero-shot-onnx.v1``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from taskkit.errors import TaskkitError

if TYPE_CHECKING:
    from taskkit.contracts import Predictor

FORMATS = ("onnx",)
QUANTIZE = ("int8",)


def export_model(src: str | Path, out: str | Path, fmt: str = "onnx", quantize: str | None = None) -> Path:
    """Export the model folder ``src`` to the model folder ``out``; returns ``out``."""
    if fmt not in FORMATS:
        raise TaskkitError(f"--format {fmt!r} is not supported (supported: {', '.join(FORMATS)})")
    if quantize is not None and quantize not in QUANTIZE:
        raise TaskkitError(f"--quantize {quantize!r} is not supported (supported: {', '.join(QUANTIZE)})")
    from taskkit.artifacts import load, read_metadata
    from taskkit.ownership import check_model_path

    meta = read_metadata(src)  # a bad DIR is one line before anything heavy loads
    check_model_path(Path(out))  # OUT must be taskkit's to replace, before the (slow) export
    predictor = load(src)
    where = str(meta["_path"])
    _check(predictor, where)  # every member of an ensemble, before anything is written
    return _export(predictor, Path(out), quantize, where)


def _check(predictor: Predictor, where: str) -> None:
    from taskkit.ensemble import EnsemblePredictor
    from taskkit.export.onnx import exportable
    from taskkit.zero_shot_predictor import ZeroShotPredictor

    if isinstance(predictor, EnsemblePredictor):
        for i, member in enumerate(predictor.members):
            _check(member, f"{where}: ensemble member {i}")
    elif isinstance(predictor, ZeroShotPredictor):  # its backends' graphs, its scoring as it is
        from taskkit.export.zero_shot_onnx import check

        check(predictor, where)
    else:
        exportable(predictor, where)


def _export(predictor: Predictor, out: Path, quantize: str | None, where: str) -> Path:
    """An ensemble as an ensemble of exported members (weights kept); any other predictor as one graph."""
    from taskkit.ensemble import EnsemblePredictor
    from taskkit.export.onnx import exportable, save_onnx
    from taskkit.zero_shot_predictor import ZeroShotPredictor

    if isinstance(predictor, ZeroShotPredictor):
        from taskkit.export.zero_shot_onnx import export_zero_shot

        return export_zero_shot(predictor, out, quantize)
    if not isinstance(predictor, EnsemblePredictor):
        return save_onnx(exportable(predictor, where), out, quantize)
    from taskkit.artifacts import write_atomically

    def write(folder: Path) -> None:
        for i, member in enumerate(predictor.members):
            _export(member, folder / "members" / str(i), quantize, f"{where}: ensemble member {i}")

    meta = {"format": predictor.format, "task": predictor.task.name, "mode": predictor.mode,
            "labels": list(predictor.labels.names), "multi_label": predictor.labels.multi_label,
            "ensemble": {"weights": predictor.weights}, "settings": {**predictor.settings, "quantize": quantize}}
    return write_atomically(out, write, meta)
