"""`taskkit export` on SST-2: parity of the ONNX folders with the torch model, and speed side by side.

A full-mode SST-2 model (trained first if ``--model-dir`` does not exist) is exported to ONNX fp32
and int8. On the whole SST-2 test split, in one process and one after the other, each backend
predicts every text (after a warm-up on 32 texts):

- onnxruntime int8 and fp32 (``taskkit.load`` of the exported folders: tokenizers + onnxruntime);
- taskkit's torch kernel in bf16 and in fp32 (``predict_proba(precision=...)``);
- ``transformers.pipeline("text-classification")`` at its defaults, on a
  ``BertForSequenceClassification`` holding the same body weights (the pipeline cannot read
  taskkit's mean-pooled head, so its head is the CLS pooler + the same output layer: speed only).

Threads: each library's default (onnxruntime and torch use every core). Other engineers' jobs share
the machine; the load average before and after is printed with the figures.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _common import DATASETS, ROOT, read_jsonl, write_section

SST2 = DATASETS / "sentiment" / "sst2"


def ensure_model(folder: Path) -> Path:
    if not folder.exists():
        subprocess.run([sys.executable, "-c", "import sys; from taskkit.cli import main; sys.exit(main())", "run",
                        "sentiment", "--mode", "full", "--data", str(SST2), "--epochs", "1", "--out", str(folder), "-q"],
                       check=True, cwd=ROOT)
    return folder


def describe(model_dir: Path) -> str:
    import json

    from taskkit.artifacts import read_metadata
    from taskkit.model_card import public_name

    meta = read_metadata(model_dir)
    try:
        metrics = json.loads((Path(meta["_path"]) / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        metrics = {}
    config = metrics.get("config", {})
    return (f"{meta['mode']} mode, base `{public_name(meta.get('settings', {}).get('base_model'), '<local>/')}`, "
            f"trained on `{public_name(metrics.get('data', '?'), '<local>/')}` for {config.get('epochs', '?')} epoch(s), "
            f"its own test accuracy {metrics.get('accuracy', float('nan')):.3f}")


def timed(predict, texts: list[str]):
    predict(texts[:32])  # warm-up: sessions, kernels, caches
    start = time.perf_counter()
    out = predict(texts)
    return out, time.perf_counter() - start


def pipeline_folder(model_dir: Path, scratch: Path) -> Path:
    """The taskkit model's body (and output layer) as a transformers sequence classifier."""
    import torch
    from transformers import (
        AutoConfig,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    import taskkit
    from taskkit.artifacts import read_metadata

    predictor = taskkit.load(model_dir)
    saved = Path(read_metadata(model_dir)["_path"])
    folder = scratch / "pipeline"
    names = list(predictor.labels.names)
    config = AutoConfig.from_pretrained(saved, num_labels=len(names),
                                        id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)})
    model = AutoModelForSequenceClassification.from_config(config)
    keys = model.base_model.load_state_dict(predictor.model.body.state_dict(), strict=False)
    assert not keys.unexpected_keys, keys.unexpected_keys
    with torch.no_grad():
        model.classifier.weight.copy_(predictor.model.head.out.weight)
        model.classifier.bias.copy_(predictor.model.head.out.bias)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(saved).save_pretrained(folder)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=Path("/tmp/sst2-export"),
                        help="a full-mode SST-2 run folder (trained with --epochs 1 if missing)")
    parser.add_argument("--limit", type=int, default=None, help="first N test texts only (a quick check)")
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds per backend (the median is reported)")
    args = parser.parse_args()

    import numpy as np

    import taskkit
    from taskkit.export import export_model
    from taskkit.kernel.device import resolve_precision

    model_dir = ensure_model(args.model_dir)
    rows = read_jsonl(SST2 / "test.jsonl.gz")[: args.limit]
    texts, gold = [r["text"] for r in rows], [r["label"] for r in rows]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="export-speed-") as scratch_name:
        scratch = Path(scratch_name)
        started = time.perf_counter()
        fp32_dir = export_model(model_dir, scratch / "onnx-fp32")
        export_seconds = time.perf_counter() - started
        int8_dir = export_model(model_dir, scratch / "onnx-int8", quantize="int8")
        sizes = {k: (d / "model.onnx").stat().st_size / 1e6 for k, d in (("fp32", fp32_dir), ("int8", int8_dir))}
        torch_model = taskkit.load(model_dir)
        names = list(torch_model.labels.names)
        onnx_fp32, onnx_int8 = taskkit.load(fp32_dir), taskkit.load(int8_dir)
        bf16 = resolve_precision("bf16")
        from transformers import pipeline

        import torch

        folder = str(pipeline_folder(model_dir, scratch))
        pipe = pipeline("text-classification", model=folder)
        # the reference at taskkit's batch size and precision too, so the table shows what is the
        # runtime's and what is batching and bf16
        pipe32 = pipeline("text-classification", model=folder, batch_size=32)
        pipe32_bf16 = pipeline("text-classification", model=folder, batch_size=32, dtype=torch.bfloat16)
        backends = {"onnxruntime int8": onnx_int8.predict_proba, "onnxruntime fp32": onnx_fp32.predict_proba,
                    f"taskkit torch {bf16}": lambda t: torch_model.predict_proba(t, precision="bf16"),
                    "taskkit torch fp32": lambda t: torch_model.predict_proba(t, precision="fp32"),
                    "transformers pipeline (defaults)": lambda t: pipe(t),
                    "transformers pipeline (batch 32, fp32)": lambda t: pipe32(t),
                    f"transformers pipeline (batch 32, {bf16})": lambda t: pipe32_bf16(t)}
        rounds: dict[str, list] = {k: [] for k in backends}
        for _ in range(args.repeat):  # rounds interleave the backends, so a busy minute hits them all
            for key, predict in backends.items():
                rounds[key].append(timed(predict, texts))
        # each backend's median round
        results = {k: sorted(v, key=lambda r: r[1])[len(v) // 2] for k, v in rounds.items()}
    load_after = os.getloadavg()

    p_torch, p_fp32, p_int8 = (results["taskkit torch fp32"][0], results["onnxruntime fp32"][0],
                               results["onnxruntime int8"][0])
    label = lambda p: [names[i] for i in np.asarray(p).argmax(1)]
    acc = lambda p: float(np.mean([a == b for a, b in zip(label(p), gold)]))
    same = lambda p: float(np.mean([a == b for a, b in zip(label(p), label(p_torch))]))
    speed = {k: len(texts) / s for k, (_, s) in results.items()}
    bf16_key = f"taskkit torch {bf16}"
    lines = [
        (f"Model: `{model_dir}` ({describe(model_dir)}); {len(texts)} SST-2 test texts. "
        f"Export (fp32 graph, opset 17): {export_seconds:.1f} s; model.onnx {sizes['fp32']:.1f} MB fp32, "
        f"{sizes['int8']:.1f} MB int8 (taskkit/export/quantize.py: the graph fused by onnxruntime's "
        f"transformer optimizer, weights per channel, fp32 kept for the embeddings; a MatMul whose input has "
        f"outliers, measured at export, has its few outlier input channels split off into a small fp32 MatMul, "
        f"taskkit/export/outliers.py). Speed: the median of {args.repeat} rounds, the backends interleaved. Threads: library defaults on {os.cpu_count()} cores; load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after (a load above the benchmark's own means other jobs shared the cores)."),
        "",
        "| | labels identical to torch fp32 | max abs prob diff | accuracy |",
        "|---|---|---|---|",
        f"| torch fp32 | - | - | {acc(p_torch):.4f} |",
        f"| onnx fp32 | {same(p_fp32):.2%} | {np.abs(p_fp32 - p_torch).max():.2e} | {acc(p_fp32):.4f} |",
        f"| onnx int8 | {same(p_int8):.2%} | {np.abs(p_int8 - p_torch).max():.2e} | {acc(p_int8):.4f} |",
        "",
        "| backend | texts/s | vs int8 |",
        "|---|---|---|",
        *[f"| {k} | {v:.0f} | {speed['onnxruntime int8'] / v:.2f}x |" for k, v in speed.items()],
        "",
        (f"int8 vs torch {bf16}: {speed['onnxruntime int8'] / speed[bf16_key]:.2f}x (target 1.5x); int8 vs pipeline: "
        f"{speed['onnxruntime int8'] / speed['transformers pipeline (defaults)']:.2f}x (target 4x); fp32 onnxruntime vs "
        f"torch fp32: {speed['onnxruntime fp32'] / speed['taskkit torch fp32']:.2f}x."),
        ("The pipeline runs a BertForSequenceClassification with the same body weights (CLS pooler head: its labels "
        "are not compared): at its defaults (one text at a time, fp32), and at batches of 32 in fp32 and in bf16, "
        "the batch size of taskkit's exported folders."),
        (f"int8 vs the pipeline at batch 32: {speed['onnxruntime int8'] / speed['transformers pipeline (batch 32, fp32)']:.2f}x "
        f"fp32, {speed['onnxruntime int8'] / speed[f'transformers pipeline (batch 32, {bf16})']:.2f}x {bf16}."),
    ]
    write_section("Export: ONNX parity and speed (SST-2 test)", "\n".join(lines))


if __name__ == "__main__":
    main()
