"""`taskkit export` of a NER model: entity-level agreement of the ONNX folders (fp32, int8) with torch on WNUT-17 test.

    python benchmarks/export_ner.py                       # trains /tmp/wnut17-export first if missing
    python benchmarks/export_ner.py --train-limit 1000    # a quicker model: a seeded subset of train

The model is trained by the real CLI, `taskkit run ner --mode full --data <wnut17 slices> --epochs 1`
(NER's full-mode defaults otherwise: lr 1e-4, max_length 128; one epoch for time, nothing chosen on
test; dev: its first ``--dev-limit`` sentences, for the run's own early stopping and scores). It is
exported to ONNX fp32 and int8, and every backend tags the whole WNUT-17 test split (1,287 sentences,
the words joined by spaces, with their offsets, as taskkit's evaluation reads them): taskkit's torch kernel in fp32 (the
reference) and in bf16 (the kernel's default where the CPU has it), onnxruntime fp32 and int8.
Entities are ``(type, start, end)`` character spans from each backend's records; agreement with
torch fp32 is the F1 of one set against the other, plus the share of sentences whose entity lists
are identical, and each backend's seqeval micro-F1 against the gold tags.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _common import DATASETS, ROOT, write_section

WNUT = DATASETS / "ner" / "wnut17"


def blocks(path: Path) -> list[str]:
    return [b.strip("\n") for b in path.read_text(encoding="utf-8").split("\n\n") if b.strip()]


def ensure_model(folder: Path, train_limit: int | None, dev_limit: int, seed: int) -> str:
    """Train the model unless ``folder`` exists; returns the user command that made it."""
    shown = (f"taskkit run ner --mode full --data <wnut17: train {'all' if not train_limit else f'{train_limit} seeded'}, "
             f"dev first {dev_limit}> --epochs 1")
    if folder.exists():
        return f"(an existing model folder, `{folder}`)"
    with tempfile.TemporaryDirectory(prefix="export-ner-data-") as tmp:
        data = Path(tmp)
        train = blocks(WNUT / "train.conll")
        if train_limit:
            train = random.Random(seed).sample(train, train_limit)
        (data / "train.conll").write_text("\n\n".join(train) + "\n", encoding="utf-8")
        (data / "dev.conll").write_text("\n\n".join(blocks(WNUT / "dev.conll")[:dev_limit]) + "\n", encoding="utf-8")
        env = {"OMP_NUM_THREADS": "1", **os.environ}  # as benchmarks/ner.py: 1 torch thread on the shared cores
        subprocess.run([sys.executable, "-c", "import sys; from taskkit.cli import main; sys.exit(main())", "run", "ner",
                        "--mode", "full", "--data", str(data), "--epochs", "1", "--seed", str(seed), "--out", str(folder),
                        "-q"], check=True, cwd=ROOT, env=env)
    return shown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=Path("/tmp/wnut17-export"),
                        help="a NER run folder (trained with --epochs 1 if missing)")
    parser.add_argument("--train-limit", type=int, default=None, help="train on N seeded train sentences (default all)")
    parser.add_argument("--dev-limit", type=int, default=300)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--limit", type=int, default=None, help="first N test sentences only (a quick check)")
    args = parser.parse_args()

    import numpy as np

    import taskkit
    from taskkit.data import conll
    from taskkit.export import export_model

    made_by = ensure_model(args.model_dir, args.train_limit, args.dev_limit, args.seed)
    task = taskkit.load(args.model_dir).task
    sentences = conll.read_conll(WNUT / "test.conll", (WNUT / "test.conll").read_text(encoding="utf-8"))[: args.limit]
    gold = [conll.to_iob2(tags, "iob2", wheres) for _, tags, wheres in sentences]
    examples = []  # the words joined by spaces, with each word's offsets: what evaluation and predict read
    for words, _, _ in sentences:
        text, offsets = conll.join_words(words)
        examples.append({"text": text, "tokens": words, "_offsets": offsets})
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="export-ner-") as scratch_name:
        scratch = Path(scratch_name)
        fp32_dir = export_model(args.model_dir, scratch / "onnx-fp32")
        int8_dir = export_model(args.model_dir, scratch / "onnx-int8", quantize="int8")
        torch_model = taskkit.load(args.model_dir)
        backends = {"torch fp32": lambda x: torch_model.predict_proba(x, precision="fp32"),
                    "torch bf16": lambda x: torch_model.predict_proba(x, precision="bf16"),
                    "onnx fp32": taskkit.load(fp32_dir).predict_proba, "onnx int8": taskkit.load(int8_dir).predict_proba}
        results = {}
        for name, proba_of in backends.items():
            if name == "torch bf16" and not _bf16():
                continue
            proba_of(examples[:16])  # warm-up
            started = time.perf_counter()
            proba = proba_of(examples)
            seconds = time.perf_counter() - started
            tags = task.decode(proba, torch_model.labels)
            records = [task.prediction_record(e, t, p, torch_model.labels) for e, t, p in zip(examples, tags, proba)]
            spans = [{(x["type"], x["start"], x["end"]) for x in r["entities"]} for r in records]
            results[name] = (proba, tags, spans, seconds)
    load_after = os.getloadavg()

    ref_proba, _, ref_spans, _ = results["torch fp32"]
    n_ref = sum(len(s) for s in ref_spans)
    rows = []
    for name, (proba, tags, spans, seconds) in results.items():
        both = sum(len(a & b) for a, b in zip(spans, ref_spans))
        n = sum(len(s) for s in spans)
        agree = 2 * both / (n + n_ref) if n + n_ref else 1.0
        same = np.mean([a == b for a, b in zip(spans, ref_spans)])
        diff = max(float(np.abs(a - b).max()) for a, b in zip(proba, ref_proba) if len(a))
        f1 = task.metrics(gold, tags, torch_model.labels)["micro_f1"]
        rows.append(f"| {name} | {n} | {agree:.4f} | {same:.2%} | {diff:.1e} | {f1:.4f} | {len(examples) / seconds:.0f} |")
    lines = [
        (f"Model: {made_by}; {len(examples)} WNUT-17 test sentences, {n_ref} entities predicted by torch fp32. "
        f"Load average {load_before[0]:.1f} before, {load_after[0]:.1f} after: 2 cores shared with other engineers' "
        f"jobs, so sentences/s are from a loaded machine (library default threads; speed is benchmarks/export_speed.py's "
        f"subject, not this one's)."),
        "",
        ("| backend | entities | entity agreement with torch fp32 (F1) | sentences with identical entities | "
        "max per-word prob diff | micro-F1 vs gold | sentences/s |"),
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        ("Entities: `(type, start, end)` character spans of the records `taskkit predict` prints; the ONNX folders "
        "decode them with taskkit's own numpy code (per-word rows, windows, BIO) from the graph's per-token logits."),
    ]
    if args.limit:  # a quick check of part of the test split: printed, not written to RESULTS.md
        print("\n".join(lines))
        return
    write_section("Export: NER entity agreement, ONNX vs torch (WNUT-17 test)", "\n".join(lines))


def _bf16() -> bool:
    from taskkit.kernel.device import bf16_supported

    return bool(bf16_supported())


if __name__ == "__main__":
    main()
