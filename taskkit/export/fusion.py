"""onnxruntime's transformer fusions on an exported graph: one ``Attention`` node per block instead of
a dozen MatMul / Softmax / Reshape nodes, ``SkipLayerNormalization``, ``BiasGelu``,
``EmbedLayerNormalization`` (onnxruntime.transformers.optimizer, the tool ORT's own BERT
benchmarks use). The fused ops are onnxruntime's contrib ops: the graph then needs onnxruntime,
which is what taskkit's exported folders run on.

The attention pattern is only recognised in the graph of the encoder's *eager* attention (the
``scaled_dot_product_attention`` export is left unfused), so :func:`eager_attention` switches the
body before tracing: the same arithmetic. A fused graph is kept only if it gives the unfused
graph's outputs (within 1e-4) on sample sentences; otherwise the unfused one is, and the export
says nothing: fusion is an optimisation, never a change of the model.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

#: model types whose encoder blocks onnxruntime's ``bert`` optimizer fuses
FUSABLE = ("bert", "roberta", "xlm-roberta", "camembert", "distilbert", "electra", "mpnet")
TOLERANCE = 1e-4


def eager_attention(body: Any) -> None:
    """Trace the body with its eager attention (where transformers lets it switch)."""
    try:
        body.set_attn_implementation("eager")
    except (AttributeError, ValueError, ImportError):  # older transformers, or no eager path: its own
        pass


def fuse(graph: Path, body: Any, tokenizer: Any) -> bool:
    """Replace ``graph`` by its fused version when ``body`` (the transformers model traced in it) is
    fusable and the outputs agree; True if fused."""
    config = getattr(body, "config", None)  # a transformers model's; anything else stays unfused
    model_type = getattr(config, "model_type", None)
    heads, hidden = getattr(config, "num_attention_heads", None), getattr(config, "hidden_size", None)
    if model_type not in FUSABLE or not heads or not hidden:
        return False
    import logging

    from onnxruntime.transformers.optimizer import optimize_model

    quiet = logging.getLogger("onnxruntime.transformers")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # its notes on fusions that did not apply
    with tempfile.TemporaryDirectory(prefix="taskkit-fuse-") as scratch:  # its own: nothing else is touched
        fused = Path(scratch) / graph.name
        try:
            optimize_model(str(graph), model_type="bert", num_heads=int(heads), hidden_size=int(hidden)) \
                .save_model_to_file(str(fused))
        except Exception:  # noqa: BLE001 -- an optimizer failure leaves the unfused graph, which is correct
            return False
        finally:
            quiet.setLevel(level)
        if not same_outputs(graph, fused, tokenizer):
            return False
        shutil.copyfile(fused, graph)  # graph: the exporter's own scratch file
    return True


def same_outputs(first: Path, second: Path, tokenizer: Any) -> bool:
    import numpy as np
    import onnxruntime

    from taskkit.export.quantize import sample_feeds

    a = onnxruntime.InferenceSession(str(first), providers=["CPUExecutionProvider"])
    b = onnxruntime.InferenceSession(str(second), providers=["CPUExecutionProvider"])
    if [i.name for i in a.get_inputs()] != [i.name for i in b.get_inputs()]:
        return False
    feeds = sample_feeds(a, tokenizer)
    lengths = [len(feed[next(iter(feed))][0]) if np.ndim(feed[next(iter(feed))]) == 2 else 1 for feed in feeds]
    batched = {k: pad([feed[k] for feed in feeds]) for k in feeds[0]}  # padding and masks as inference has them
    for feed, sizes in [*((f, [n]) for f, n in zip(feeds, lengths)), (batched, lengths)]:
        for x, y in zip(a.run(None, feed), b.run(None, feed)):
            x, y = np.asarray(x), np.asarray(y)
            if x.shape != y.shape:
                return False
            for row, size in enumerate(sizes):  # per-token outputs: the example's own tokens only
                if np.abs(x[row, :size] - y[row, :size] if x.ndim == 3 else x[row] - y[row]).max() > TOLERANCE:
                    return False
    return True


def pad(rows: list[Any]) -> Any:
    """One batch of single-example arrays, per-token ones right-padded with 0 (mask 0: padding)."""
    import numpy as np

    if rows[0].ndim < 2:
        return np.concatenate(rows)
    width = max(r.shape[1] for r in rows)
    return np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]))) for r in rows])
