"""Dynamic int8 quantization of an ONNX graph (onnxruntime's quantizer: weights int8 per output
channel, activations quantized per batch at run time), the cheap CPU speed-up for transformer encoders.

Dynamic quantization gives each MatMul's input one uint8 scale per batch, ``(max - min) / 255``.
Where an input has outliers (a few hidden dimensions far wider than the rest, as in a BERT's
feed-forward layers), that step is coarser than the signal it must carry, and those few layers
cause most of the int8 model's disagreements with fp32. So the MatMuls are measured first, on a
handful of sample sentences run through the fp32 graph. One whose input's int8 step would exceed
:data:`MAX_STEP` of the input's standard deviation is decomposed (:mod:`taskkit.export.outliers`,
LLM.int8()-style): its few outlier input channels go through a small fp32 MatMul, the rest int8.
Only where that takes more than a few channels (or the node is a fused Attention) does the whole
MatMul stay fp32. On a full-mode MiniLM every one splits, 1 or 2 channels each: the
down-projections of blocks 0-3 (channels of 1536 at 16-30x the median channel's max) and the
up-projections of blocks 0-4 (hidden dimension 99, ~20x).

Measured on SST-2 dev + train texts (7,792; test kept out), labels identical to fp32, and int8
speed (CPU time, 1 thread, interleaved runs on a shared machine) against keeping those MatMuls
fp32: every MatMul plainly int8 99.18% (+17%); the two worst inputs (step > 0.25 std) kept fp32,
the previous rule, 99.51%; split at 0.25: 99.38% (+19%), at 0.20: 99.50%, at 0.15: 99.73% (+12%);
hence 0.15. Tried and dropped: SmoothQuant-style scaling of those inputs (alpha 0.5 and 0.8: 98.7%
and 98.2% on SST-2 test). MatMuls of two activations (attention scores) are not quantized: only
those with a constant weight.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: Sentences the graph reads to measure its MatMul inputs (outlier dimensions are the model's, not
#: the text's: any few ordinary sentences show them).
SAMPLES = (
    "The film was a quiet, beautifully acted surprise.",
    "Oil prices rose sharply after the meeting on Tuesday.",
    "Can you move my appointment to next Friday morning?",
    "I waited forty minutes and nobody answered the phone.",
    "The striker scored twice in the second half.",
    "New research links sleep to long-term memory in mice.",
    "Please send me the invoice for March as a PDF.",
    "What a waste of money; it broke after two days!",
)
#: an int8 step wider than this share of the input's standard deviation splits the MatMul (or keeps it fp32)
MAX_STEP = 0.15


QUANTIZED = ("MatMul", "Attention")  # Attention: onnxruntime's fused op (taskkit.export.fusion)


def weight_matmuls(model: Any) -> list[Any]:
    """The MatMul (and fused Attention) nodes whose second input is a constant weight matrix."""
    weights = {init.name for init in model.graph.initializer if len(init.dims) == 2}
    return [node for node in model.graph.node if node.op_type in QUANTIZED and node.input[1] in weights]


def sample_feeds(session: Any, tokenizer: Any) -> list[dict[str, Any]]:
    """One unpadded feed per sample sentence, for whatever inputs the graph takes (token ids, mask,
    token types; a per-example position such as an entity marker's: token 1)."""
    import numpy as np
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(tokenizer.to_str())  # a copy: no padding, short truncation
    tokenizer.no_padding()
    tokenizer.enable_truncation(64)
    feeds = []
    for text in SAMPLES:
        encoding = tokenizer.encode(text)
        columns = {"input_ids": encoding.ids, "attention_mask": encoding.attention_mask,
                   "token_type_ids": encoding.type_ids}
        feed = {}
        for given in session.get_inputs():
            if given.name in columns:
                feed[given.name] = np.asarray([columns[given.name]], dtype=np.int64)
            else:
                feed[given.name] = np.ones([1] * len(given.shape), dtype=np.int64)
        feeds.append(feed)
    return feeds


def sampled_inputs(model: Any, nodes: list[Any], tokenizer: Any) -> dict[str, Any]:
    """The first input of each of ``nodes`` over the sample sentences run through ``model`` (fp32):
    a row per token, a column per channel (the last axis)."""
    import numpy as np
    import onnx
    import onnxruntime

    known = {o.name for o in model.graph.output}
    probes = [name for name in dict.fromkeys(n.input[0] for n in nodes) if name not in known]
    outputs = len(model.graph.output)
    model.graph.output.extend(onnx.helper.make_empty_tensor_value_info(name) for name in probes)
    try:
        session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    finally:
        del model.graph.output[outputs:]  # the model itself unchanged
    names = [o.name for o in session.get_outputs()]
    seen: dict[str, list[np.ndarray]] = {}
    for feed in sample_feeds(session, tokenizer):
        for name, value in zip(names, session.run(names, feed)):
            value = np.asarray(value, dtype=np.float64)
            seen.setdefault(name, []).append(value.reshape(-1, value.shape[-1]))
    return {n.input[0]: np.concatenate(seen[n.input[0]]) for n in nodes}


def outlier_inputs(graph_file: Path, tokenizer: Any) -> list[str]:
    """The weight MatMuls whose input, over the sample sentences, has an int8 step wider than
    :data:`MAX_STEP` standard deviations."""
    import onnx

    from taskkit.export.outliers import too_wide

    model = onnx.load(str(graph_file))
    nodes = weight_matmuls(model)
    values = sampled_inputs(model, nodes, tokenizer)
    return [node.name for node in nodes if too_wide(values[node.input[0]], MAX_STEP)]


def split_outliers(model: Any, tokenizer: Any) -> list[str]:
    """Decompose, in ``model``, each weight MatMul whose input is too wide for int8 and has a few
    outlier channels (:mod:`taskkit.export.outliers`); returns the nodes to keep fp32: the
    decompositions' fp32 parts, and the too-wide MatMuls (and fused Attentions) that cannot be split."""
    from taskkit.export.outliers import decompose, outlier_channels, too_wide

    nodes = weight_matmuls(model)
    values = sampled_inputs(model, nodes, tokenizer)
    keep, split = [], []
    for node in nodes:
        x = values[node.input[0]]
        if too_wide(x, MAX_STEP):
            channels = outlier_channels(x, MAX_STEP) if node.op_type == "MatMul" else None
            if channels is None:
                keep.append(node.name)
            else:
                split.append((node.output[0], channels))
    for output, channels in split:  # (nodes looked up afresh: the graph changes under each)
        keep.append(decompose(model, next(n for n in model.graph.node if n.output[0] == output), channels))
    return keep


def quantize_int8(source: Path, target: Path, tokenizer: Any = None) -> Path:
    """``target``: ``source`` with int8 weight MatMuls; with the graph's ``tokenizer`` (a
    ``tokenizers.Tokenizer``), the MatMuls whose inputs have outliers are split or stay fp32."""
    import logging
    import tempfile

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    with tempfile.TemporaryDirectory(prefix="taskkit-int8-") as scratch:
        keep: list[str] = []
        if tokenizer is not None:
            model = onnx.load(str(source))
            keep = split_outliers(model, tokenizer)
            source = Path(scratch) / source.name
            onnx.save(model, str(source))
            del model
        root.setLevel(logging.ERROR)  # its advice to pre-process (shape inference) is for static quantization
        try:
            quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=list(QUANTIZED), nodes_to_exclude=keep,
                             extra_options={"MatMulConstBOnly": True, "DefaultTensorType": 1})  # 1: FLOAT
        finally:
            root.setLevel(level)
    return target
