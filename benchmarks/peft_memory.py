"""Peak training memory of full fine-tuning against LoRA (without and with LoRA dropout), side by
side on the same SST-2 slice, each training in its own child process (its own peak).

A quick diagnostic beside benchmarks/peft_continued.py, which measures the whole SST-2 run.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from _common import DATASETS, read_jsonl, write_section  # noqa: E402
from peft_continued import run_child  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--train", type=int, default=1400)
    parser.add_argument("--dev", type=int, default=100)
    args = parser.parse_args()
    rows = read_jsonl(DATASETS / "sentiment" / "sst2" / "train.jsonl.gz")[: args.train + args.dev]
    with tempfile.TemporaryDirectory() as tmp:
        for name, part in (("train", rows[: args.train]), ("dev", rows[args.train :])):
            (Path(tmp) / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part), encoding="utf-8")
        common = dict(task="sentiment", data=tmp, epochs=1, patience=0, progress=False)
        runs = {
            "full": run_child(mode="full", **common),
            "peft, LoRA (defaults, lora_dropout 0)": run_child(mode="peft", **common),
            "peft, LoRA, lora_dropout 0.1": run_child(mode="peft", options={"lora_dropout": 0.1}, **common),
        }
    table = "\n".join(f"| {name} | {r['peak_mb']:.0f} MB | {r['training']['trainable_share'] * 100:.2f}% | {r['accuracy']:.4f} |"
                      for name, r in runs.items())
    write_section("PEFT peak memory diagnostic (SST-2 slice)", f"""
First {args.train:,} SST-2 training sentences, next {args.dev} as dev (accuracy is on that dev split: no test
split is given), 1 epoch, packaged MiniLM, {os.environ["OMP_NUM_THREADS"]} torch thread(s). Peak memory: each
training process's maximum resident set.

| mode | peak memory | trainable | dev accuracy |
|---|---|---|---|
{table}
""")


if __name__ == "__main__":
    main()
