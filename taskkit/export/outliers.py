"""Mixed-precision decomposition of a MatMul whose input has a few outlier channels (LLM.int8(),
Dettmers et al. 2022), so that the MatMul can still run int8.

Dynamic int8 quantization gives a MatMul's whole input one step, ``(max - min) / 255``. In a BERT's
first feed-forward down-projections a single hidden channel (of 1536) reaches 20-30 times the
typical channel's magnitude, and the step it forces is coarser than the signal the other channels
carry. Those channels are split off: the MatMul ``X @ W`` becomes

    (X * mask) @ W'  +  Gather(X, channels, axis=-1) @ W[channels, :]

``mask`` zeroes the outlier channels (and ``W'`` their weight rows), so the first MatMul's input
range is the ordinary channels' and it is quantized like any other; the second, ``k`` input
channels wide, stays fp32. The sum is ``X @ W`` exactly before quantization.

:func:`outlier_channels` picks the fewest channels, largest ``max |x|`` first over the sampled
tokens, without which the input's int8 step is within the quantizer's limit; past
:data:`MAX_SHARE` of the channels the outliers are not "a few" and the caller keeps the MatMul fp32.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: at most this share of a MatMul's input channels is split off to fp32
MAX_SHARE = 0.03


def int8_step(values: np.ndarray) -> float:
    """The step of dynamic uint8 quantization of ``values`` (its range always includes 0)."""
    return (max(float(values.max()), 0.0) - min(float(values.min()), 0.0)) / 255


def too_wide(values: np.ndarray, max_step: float) -> bool:
    """Whether ``values``' int8 step exceeds ``max_step`` of its standard deviation."""
    spread = float(values.std())
    return spread > 0 and int8_step(values) > max_step * spread


def outlier_channels(values: np.ndarray, max_step: float, max_share: float = MAX_SHARE) -> np.ndarray | None:
    """The input channels (columns of ``values``: sampled tokens x channels) to compute in fp32: the
    fewest, by largest ``max |x|``, without which the rest's int8 step is within ``max_step``
    standard deviations; None when that takes more than ``max_share`` of the channels."""
    order = np.argsort(-np.abs(values).max(axis=0), kind="stable")
    for count in range(int(max_share * values.shape[1]) + 1):
        if not too_wide(np.delete(values, order[:count], axis=1), max_step):
            return np.sort(order[:count])
    return None


def decompose(model: Any, node: Any, channels: np.ndarray) -> str:
    """Replace the MatMul ``node`` of ``model`` (an ``onnx.ModelProto``; its second input a constant
    weight) by the two MatMuls above, in place. The int8 part keeps ``node``'s name; returns the
    name of the fp32 part, which the quantizer must leave alone."""
    from onnx import helper, numpy_helper

    graph = model.graph
    weights = {init.name: init for init in graph.initializer}
    source, weight_name = node.input[0], node.input[1]
    weight = numpy_helper.to_array(weights[weight_name])
    prefix = node.name or node.output[0]
    names = {k: f"{prefix}/{k}" for k in ("mask", "masked", "int8_weight", "int8_part", "channels",
                                          "outliers", "fp32_weight", "fp32_part")}
    mask = np.ones(weight.shape[0], dtype=weight.dtype)
    mask[channels] = 0
    kept = weight.copy()
    kept[channels] = 0  # their inputs are zero anyway; zero rows leave the per-channel weight scales to the rest
    graph.initializer.extend([numpy_helper.from_array(mask, names["mask"]),
                              numpy_helper.from_array(kept, names["int8_weight"]),
                              numpy_helper.from_array(channels.astype(np.int64), names["channels"]),
                              numpy_helper.from_array(np.ascontiguousarray(weight[channels]), names["fp32_weight"])])
    fp32_name = f"{prefix}/outlier_channels"
    replacement = [
        helper.make_node("Mul", [source, names["mask"]], [names["masked"]], name=f"{prefix}/mask_outliers"),
        helper.make_node("MatMul", [names["masked"], names["int8_weight"]], [names["int8_part"]], name=node.name),
        helper.make_node("Gather", [source, names["channels"]], [names["outliers"]], name=f"{prefix}/gather_outliers",
                         axis=-1),
        helper.make_node("MatMul", [names["outliers"], names["fp32_weight"]], [names["fp32_part"]], name=fp32_name),
        helper.make_node("Add", [names["int8_part"], names["fp32_part"]], [node.output[0]], name=f"{prefix}/add_parts"),
    ]
    position = list(graph.node).index(node)
    graph.node.remove(node)
    for offset, new in enumerate(replacement):
        graph.node.insert(position + offset, new)
    if not any(weight_name in other.input for other in graph.node):  # the original weight, if nothing else reads it
        graph.initializer.remove(weights[weight_name])
    return fp32_name
