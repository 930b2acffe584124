"""Dynamic int8 quantization of an ONNX graph (onnxruntime's quantizer: weights int8, activations
quantized per batch at run time), the cheap CPU speed-up for transformer encoders."""

from __future__ import annotations

from pathlib import Path


def quantize_int8(source: Path, target: Path) -> Path:
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its advice to pre-process (shape inference) is for static quantization
    try:
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
    return target
