"""SST-2 with `taskkit run sentiment --mode full` at its defaults: test accuracy and wall time.

Runs the real CLI in a subprocess, exactly as a user would, and reads its metrics.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import DATASETS, write_section


def main() -> None:
    data = DATASETS / "sentiment" / "sst2"
    extra = sys.argv[1:]
    with tempfile.TemporaryDirectory() as out:
        cmd = ["taskkit", "run", "sentiment", "--mode", "full", "--data", str(data), "--out", out, "-q", *extra]
        started = time.perf_counter()
        subprocess.run(cmd, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        wall = time.perf_counter() - started
        metrics = json.loads((Path(out) / "metrics.json").read_text())
    training = metrics["training"]
    shown = " ".join(c if c != str(data) else "../shared/datasets/sentiment/sst2" for c in cmd if c not in (out, "--out", "-q"))
    write_section("SST-2, full mode, defaults", f"""
User command: `{shown}`

| test accuracy | macro F1 | test examples | epochs run (best) | training | whole command (wall) |
|---|---|---|---|---|---|
| {metrics['accuracy']:.4f} | {metrics['macro_f1']:.4f} | {metrics['examples']} | {training['epochs_run']} ({training['best_epoch']}) | {training['train_seconds']:.0f} s, {training['examples_per_second']:.0f} ex/s | {wall:.0f} s ({wall / 60:.1f} min) |

Torch threads: {os.environ.get("OMP_NUM_THREADS", "all cores")} (OMP_NUM_THREADS); precision auto (bf16 on this CPU).

Target: accuracy >= 0.88 within 15 minutes: {'met' if metrics['accuracy'] >= 0.88 and wall <= 900 else 'NOT met'}.
""")


if __name__ == "__main__":
    main()
