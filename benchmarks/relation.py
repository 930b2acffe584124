"""SemEval-2010 Task 8 with `taskkit run relation --mode full`: the official score and wall time.

    python benchmarks/relation.py --epochs 3

Runs the real CLI in a subprocess on the shared train/test files (dev: 10% carved from train,
stratified, seeded) and reads its metrics.json. The official score is macro-F1 over the nine
relation types, direction taken into account, Other excluded (see taskkit_plugins/relation.py).
Zero-shot relation extraction has its own script: benchmarks/relation_zero_shot.py.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import DATASETS, write_section

#: what else ran on the machine, stated in RESULTS.md (environment variable BENCH_NOTE)
NOTE = os.environ.get("BENCH_NOTE", "nothing else running on the machine")

TARGET = 0.82


def run(mode: str, data: Path, extra: list[str]) -> tuple[dict, float, list[str]]:
    with tempfile.TemporaryDirectory() as out:
        cmd = ["taskkit", "run", "relation", "--mode", mode, "--data", str(data), "--out", out, "-q", *extra]
        started = time.perf_counter()
        subprocess.run(cmd, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        wall = time.perf_counter() - started
        metrics = json.loads((Path(out) / "metrics.json").read_text())
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # CPU time: the cores are shared with other jobs
    metrics["_cpu_seconds"] = usage.ru_utime + usage.ru_stime
    return metrics, wall, [c for c in cmd if c not in (out, "--out", "-q")]


def main() -> None:
    data = DATASETS / "relation" / "semeval2010_task8"
    metrics, wall, cmd = run("full", data, sys.argv[1:])
    training, config = metrics["training"], metrics["config"]
    shown = " ".join(cmd).replace(str(data), "../shared/datasets/relation/semeval2010_task8")
    rows = "\n".join(f"| {t} | {v['precision']:.4f} | {v['recall']:.4f} | {v['f1']:.4f} | {v['support']} |"
                     for t, v in metrics["per_relation"].items())
    met = metrics["official_macro_f1"] >= TARGET and wall <= 1800
    verdict = "met" if met else "NOT met (measured %.4f in %.1f min)" % (metrics["official_macro_f1"], wall / 60)
    lines = [
        f"User command: `{shown}`",
        f"Settings: epochs {config['epochs']}, max_length {config['max_length']}, batch {config['batch_size']}, "
        f"lr {config['lr']}, model {config['model']}, torch threads: {os.environ.get('OMP_NUM_THREADS') or 'the default (every core)'}; {NOTE}; "
        "markers `<h> </h> <t> </t>` (the data has no entity types).",
        "",
        "| official macro-F1 (9 types, directed, no Other) | micro-F1 (no Other) | accuracy (19-way) | test | "
        "epochs run (best) | training | whole command (wall) |",
        "|---|---|---|---|---|---|---|",
        f"| {metrics['official_macro_f1']:.4f} | {metrics['micro_f1']:.4f} | {metrics['accuracy']:.4f} | "
        f"{metrics['examples']} | {training['epochs_run']} ({training['best_epoch']}) | "
        f"{training['train_seconds']:.0f} s, {training['examples_per_second']:.1f} ex/s | {wall:.0f} s ({wall / 60:.1f} min) |",
        "",
        f"CPU time of the command: {metrics['_cpu_seconds'] / 60:.1f} min (wall time includes waiting for the shared cores).",
        "",
        "| relation | precision | recall | F1 | gold |", "|---|---|---|---|---|", rows, "",
        f"Target: official macro-F1 >= {TARGET:.2f} within 30 minutes: {verdict}. "
        "Reference: R-BERT with BERT-base reports 0.8925.",
    ]
    write_section("SemEval-2010 Task 8 relation, full mode", "\n".join(lines))


if __name__ == "__main__":
    main()
