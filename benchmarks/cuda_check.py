"""The kernel's CUDA path, end to end, on SST-2: train, save, reload, predict on GPU and CPU.

Checks what a GPU user relies on: the model and batches live on the GPU, bf16 autocast is on,
a folder saved on the GPU loads and predicts the same labels on a CPU in fp32, and the peft mode
trains there too. Needs a CUDA device; run on the lent GPU machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _common import DATASETS, read_jsonl, write_section  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--peft-train", type=int, default=8000, help="training sentences for the LoRA check")
    args = parser.parse_args()

    import numpy as np
    import torch

    import taskkit
    from taskkit.kernel.device import resolve_precision

    if not torch.cuda.is_available():
        raise SystemExit("cuda_check.py needs a CUDA device")
    sst2 = DATASETS / "sentiment" / "sst2"
    test = [r["text"] for r in read_jsonl(sst2 / "test.jsonl.gz")]
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        full = taskkit.run("sentiment", "full", sst2, out=Path(tmp) / "full", epochs=args.epochs)
        full_seconds = time.perf_counter() - started
        device = {p.device.type for p in full.predictor.model.parameters()}

        loaded = taskkit.load(Path(tmp) / "full" / "model")
        gpu = loaded.predict_proba(test)  # auto precision: bf16 on this GPU
        loaded.model.to("cpu")
        loaded.device = torch.device("cpu")
        cpu = loaded.predict_proba(test, precision="fp32")
        agree = float(np.mean(gpu.argmax(1) == cpu.argmax(1)))
        gap = float(np.abs(gpu - cpu).max())

        rows = read_jsonl(sst2 / "train.jsonl.gz")[: args.peft_train]
        small = Path(tmp) / "small"
        small.mkdir()
        with open(small / "train.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
        shutil.copy(sst2 / "test.jsonl.gz", small / "test.jsonl.gz")
        started = time.perf_counter()
        lora = taskkit.run("sentiment", "peft", small, out=Path(tmp) / "lora", epochs=args.epochs)
        lora_seconds = time.perf_counter() - started

    t, lt = full.metrics["training"], lora.metrics["training"]
    write_section("Kernel on CUDA", f"""
GPU {torch.cuda.get_device_name(0)}, torch {torch.__version__}; precision auto -> {resolve_precision('auto')};
model parameters after training on: {', '.join(sorted(device))}. Defaults otherwise (batch 32, lr 5e-5, max length 128).

| run | train examples | epochs | training ex/s | whole run | SST-2 test accuracy |
|---|---|---|---|---|---|
| full, all of SST-2 train | {t['train_examples']} | {t['epochs_run']} | {t['examples_per_second']:.0f} | {full_seconds:.0f} s | {full.metrics['accuracy']:.4f} |
| peft (LoRA), first {min(args.peft_train, len(rows))} sentences of SST-2 train | {lt['train_examples']} | {lt['epochs_run']} | {lt['examples_per_second']:.0f} | {lora_seconds:.0f} s | {lora.metrics['accuracy']:.4f} |

The full model's folder, reloaded: predictions on the GPU in bf16 against the same folder on the CPU in fp32,
over the {len(test)} test sentences: {agree * 100:.2f}% identical labels, largest probability gap {gap:.4f}.
""")


if __name__ == "__main__":
    main()
