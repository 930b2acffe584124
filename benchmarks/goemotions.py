"""GoEmotions multi-label (28 labels): full mode with a dev-tuned threshold, and few-shot beside it.

    python benchmarks/goemotions.py --train-size 8000 --max-length 64 --epochs 3 --shots 16

``--train-size`` takes a fixed seeded subset of the 43,410 training texts (0: all) so that a run fits
the 30-minute budget on a small CPU; the section states what was used.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import DATASETS, read_jsonl, write_section  # noqa: E402


def subset(rows: list[dict], size: int, seed: int = 0) -> list[dict]:
    return random.Random(seed).sample(rows, size) if size and len(rows) > size else rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--train-size", type=int, default=8000)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--shots", type=int, default=16)
    parser.add_argument("--skip-full", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="print only (a dry run)")
    args = parser.parse_args()

    from taskkit import api

    source = DATASETS / "emotion" / "goemotions"
    lines = []
    with tempfile.TemporaryDirectory(prefix="goemotions-") as tmp:
        folder = Path(tmp)
        for split in ("train", "dev", "test"):
            rows = read_jsonl(source / f"{split}.jsonl.gz")
            rows = subset(rows, args.train_size) if split == "train" else rows
            (folder / f"{split}.jsonl").write_text("".join(__import__("json").dumps(r) + "\n" for r in rows))
        runs = [] if args.skip_full else [("full", dict(epochs=args.epochs, lr=args.lr, batch_size=32))]
        runs.append(("few-shot", dict(shots=args.shots, options={"allow_fewer": True})))
        for mode, settings in runs:
            started = time.perf_counter()
            result = api.run("sentiment", mode, folder, None, max_length=args.max_length, seed=0, progress=False,
                             **settings)
            wall = time.perf_counter() - started
            m = result.metrics
            lines.append(f"| {mode} | {m['training'].get('train_examples')} | {m['macro_f1']:.3f} | {m['micro_f1']:.3f} "
                         f"| {result.predictor.threshold} | {wall / 60:.1f} |")
            print(lines[-1], flush=True)
    body = (f"GoEmotions (28 labels, multi-label), packaged MiniLM, max_length {args.max_length}; full mode on "
            f"{'all' if not args.train_size else f'a fixed seeded subset of {args.train_size}'} training texts, "
            f"{args.epochs} epochs at lr {args.lr}; few-shot {args.shots} per label (allow_fewer). Threshold tuned on the full dev "
            "split (full) or the sampled dev (few-shot) for macro-F1. Target: full-mode test macro-F1 >= 0.40 "
            "within 30 minutes.\n\n| mode | train examples | test macro-F1 | test micro-F1 | threshold | "
            "wall minutes (train + eval) |\n|---|---|---|---|---|---|\n" + "\n".join(lines))
    print(body)
    if not args.no_write:
        write_section("few-shot goemotions multi-label", body)


if __name__ == "__main__":
    main()
