"""Few-shot NER and relation extraction against full fine-tuning on the same sampled examples.

    python benchmarks/few_shot_ner.py wikiann_en --shots 5 --seeds 0 1 2
    python benchmarks/few_shot_ner.py wikiann_en --shots 20 --seeds 0 1 2
    python benchmarks/few_shot_ner.py wnut17 --shots 5 --seeds 0 1 2
    python benchmarks/few_shot_ner.py semeval2010_task8 --shots 8 --seeds 0 1 2

For each seed it runs the real CLI twice, `taskkit run TASK --mode few-shot --shots K --seed S`
and `taskkit run TASK --mode full --shots K --seed S` (the same sampled sentences: both read the
same `train_indices`, checked), and reads their metrics.json. NER: K mentions of every entity
type (Few-NERD's greedy sampling), entity micro-F1 (seqeval); relation: K examples per directed
label and K of Other, the official SemEval-2010 Task 8 macro-F1. Both modes at their defaults.
``--tune`` scores on the first 2000 dev sentences instead of test (settings are chosen there,
never on test) and writes nothing to RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import DATASETS, write_section

SETS = {  # name -> (task, folder, metric, display name)
    "wikiann_en": ("ner", DATASETS / "ner" / "wikiann_en", "micro_f1", "WikiANN-en"),
    "wnut17": ("ner", DATASETS / "ner" / "wnut17", "micro_f1", "WNUT-17"),
    "semeval2010_task8": ("relation", DATASETS / "relation" / "semeval2010_task8", "official_macro_f1", "SemEval-2010 Task 8"),
}
TARGETS = {("wikiann_en", 5): 0.45, ("wikiann_en", 20): 0.60, ("wnut17", 5): 0.25}
MARGIN = 0.10
TIME_LIMIT = 300.0


def tuning_data(source: Path, work: Path) -> Path:
    """train as it is; the first 2000 dev sentences as the split that is scored."""
    data = work / "tune"
    data.mkdir()
    for path in source.iterdir():
        if path.name.startswith("train"):
            (data / path.name).symlink_to(path)
    dev = (source / "dev.conll").read_text(encoding="utf-8").split("\n\n")
    blocks = [b.strip("\n") for b in dev if b.strip()][:2000]
    (data / "test.conll").write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return data


def run(task: str, mode: str, data: Path, out: Path, shots: int, seed: int, extra: list[str],
        env: dict[str, str]) -> dict:
    cmd = ["taskkit", "run", task, "--mode", mode, "--shots", str(shots), "--seed", str(seed), "--data", str(data),
           "--out", str(out), "-q", *extra]
    started = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    metrics = json.loads((out / "metrics.json").read_text())
    metrics["_wall"] = time.perf_counter() - started
    return metrics


def spread(values: list[float]) -> str:
    return f"{statistics.mean(values):.4f} ± {statistics.pstdev(values):.4f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset", choices=sorted(SETS))
    parser.add_argument("--shots", type=int, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--tune", action="store_true", help="score on 2000 dev sentences; write nothing")
    parser.add_argument("--modes", nargs="+", default=["few-shot", "full"])
    parser.add_argument("--jobs", type=int, default=1, help="runs side by side (wall times then overlap)")
    parser.add_argument("--both", nargs="*", default=[], help="arguments for both modes (e.g. --option=allow_fewer=true)")
    args, extra = parser.parse_known_args()
    task, source, metric, name = SETS[args.dataset]
    env = {"OMP_NUM_THREADS": "1", **os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    rows: dict[str, list[dict]] = {m: [] for m in args.modes}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = tuning_data(source, work) if args.tune else source
        def one(job: tuple[int, str]) -> dict:
            seed, mode = job
            m = run(task, mode, data, work / f"{mode}-{seed}", args.shots, seed, [*args.both, *(extra if mode == "few-shot" else [])], env)
            print(f"seed {seed} {mode}: {metric} {m[metric]:.4f} wall {m['_wall']:.0f} s "
                  f"train {len(m['train_indices'])} examples", flush=True)
            return m

        jobs = [(seed, mode) for seed in args.seeds for mode in args.modes]
        with ThreadPoolExecutor(args.jobs) as pool:  # the runs are subprocesses: threads only wait
            for (seed, mode), m in zip(jobs, pool.map(one, jobs)):
                rows[mode].append(m)
        if len(args.modes) == 2:
            for a, b in zip(rows["few-shot"], rows["full"]):
                assert a["train_indices"] == b["train_indices"], "different samples"
    if args.tune or set(args.modes) != {"few-shot", "full"}:
        return
    few, full = [m[metric] for m in rows["few-shot"]], [m[metric] for m in rows["full"]]
    gains = [a - b for a, b in zip(few, full)]
    walls = [m["_wall"] for m in rows["few-shot"]]
    unit = "mentions of every entity type" if task == "ner" else "examples per directed label (and of Other)"
    lines = [
        (f"{name}, K = {args.shots} {unit}, seeds {args.seeds}, packaged MiniLM, scored on the whole test split "
        f"({rows['full'][0].get('examples', '?')} {'sentences' if task == 'ner' else 'examples'}). Each seed's "
        "few-shot and full runs trained on the same sampled examples (their `train_indices` compared). Both modes at "
        f"their defaults{' + ' + ' '.join(args.both) if args.both else ''}{', few-shot + ' + ' '.join(extra) if extra else ''} (chosen on WikiANN-en dev sentences, `--tune`); few-shot's dev signal is a quarter of the shots "
        "(no dev file is read with --shots). Machine: 2 cores shared with other engineers' jobs (times are loaded-"
        "machine figures, with --jobs runs side by side; torch threads 1)."),
        "",
        f"| seed | sampled | few-shot {metric} | full {metric} | gain | few-shot wall (fit) | full wall |",
        "|---|---|---|---|---|---|---|",
    ]
    for seed, a, b in zip(args.seeds, rows["few-shot"], rows["full"]):
        lines.append(f"| {seed} | {len(a['train_indices'])} | {a[metric]:.4f} | {b[metric]:.4f} | "
                     f"{a[metric] - b[metric]:+.4f} | {a['_wall']:.0f} s ({a['fit_seconds']:.0f} s) | {b['_wall']:.0f} s |")
    lines += ["", f"Mean ± population std: few-shot **{spread(few)}**, full {spread(full)}, gain {spread(gains)}.", ""]
    target = TARGETS.get((args.dataset, args.shots))
    checks = [(f"gain >= {MARGIN:.2f} on every seed: {'met' if min(gains) >= MARGIN else 'NOT met'} "
              f"(mean gain {statistics.mean(gains):+.4f})"),
              (f"each few-shot run <= 5 min wall: {'met' if max(walls) <= TIME_LIMIT else 'NOT met'} "
              f"(longest {max(walls):.0f} s wall on the loaded machine, {args.jobs} runs at once)")]
    if target is not None:
        checks.insert(0, f"few-shot mean >= {target:.2f}: {'met' if statistics.mean(few) >= target else 'NOT met'}")
    lines.append("Targets: " + "; ".join(checks) + ".")
    write_section(f"Few-shot {name}, K = {args.shots}", "\n".join(lines))


if __name__ == "__main__":
    main()
