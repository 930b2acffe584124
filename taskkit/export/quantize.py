"""Dynamic int8 quantization of an ONNX graph (onnxruntime's quantizer: weights int8 per output
channel, activations quantized per batch at run time), the cheap CPU speed-up for transformer encoders.

Dynamic quantization gives each MatMul's input one uint8 scale per batch, ``(max - min) / 255``.
Where an input has outliers (a few hidden dimensions hundreds of standard deviations wide, as in the
feed-forward down-projections of a BERT's first blocks), that step is coarser than the signal it
must carry, and those few layers cause most of the int8 model's disagreements with fp32. So the
MatMuls are measured first, on a handful of sample sentences run through the fp32 graph: one whose
input's int8 step would exceed a quarter of the input's standard deviation stays fp32 (on a
full-mode MiniLM: 2 of its 24 weight MatMuls and fused Attentions, the down-projections of blocks 0
and 1). Measured on SST-2 test (benchmarks/RESULTS.md, "Export: ONNX parity and speed"): 98.6% of
labels as torch fp32 with every weight MatMul int8, 99.3% with the measured two kept fp32, for
about 15% of int8's speed (the embeddings' Gather stays fp32 too). Tried and dropped: SmoothQuant-style
scaling of those inputs (alpha 0.5 and 0.8: 98.7% and 98.2%). MatMuls of two activations
(attention scores) are not quantized: only those with a constant weight.
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
#: an int8 step wider than this share of the input's standard deviation keeps the MatMul fp32
MAX_STEP = 0.25


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


def outlier_inputs(graph_file: Path, tokenizer: Any) -> list[str]:
    """The weight MatMuls whose input, over the sample sentences, has an int8 step wider than
    :data:`MAX_STEP` standard deviations."""
    import numpy as np
    import onnx
    import onnxruntime

    model = onnx.load(str(graph_file))
    nodes = weight_matmuls(model)
    known = {o.name for o in model.graph.output}
    probes = [n.input[0] for n in nodes if n.input[0] not in known]
    model.graph.output.extend(onnx.helper.make_empty_tensor_value_info(name) for name in dict.fromkeys(probes))
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    seen: dict[str, list[np.ndarray]] = {}
    for feed in sample_feeds(session, tokenizer):
        for name, value in zip(names, session.run(names, feed)):
            seen.setdefault(name, []).append(np.asarray(value, dtype=np.float64).ravel())
    wide = []
    for node in nodes:
        values = np.concatenate(seen[node.input[0]])
        spread = values.std()
        if spread > 0 and (max(values.max(), 0.0) - min(values.min(), 0.0)) / 255 > MAX_STEP * spread:
            wide.append(node.name)
    return wide


def quantize_int8(source: Path, target: Path, tokenizer: Any = None) -> Path:
    """``target``: ``source`` with int8 weight MatMuls; with the graph's ``tokenizer`` (a
    ``tokenizers.Tokenizer``), the MatMuls whose inputs have outliers stay fp32."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    keep = outlier_inputs(source, tokenizer) if tokenizer is not None else []
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its advice to pre-process (shape inference) is for static quantization
    try:
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=list(QUANTIZED), nodes_to_exclude=keep,
                         extra_options={"MatMulConstBOnly": True, "DefaultTensorType": 1})  # 1: FLOAT
    finally:
        root.setLevel(level)
    return target
