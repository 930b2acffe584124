"""NER with `taskkit run ner --mode full` on WikiANN-en or WNUT-17: test entity F1 (seqeval) and wall time.

    python benchmarks/ner.py wikiann_en --epochs 2 --dev-limit 2000
    python benchmarks/ner.py wnut17 --epochs 6

Runs the real CLI in a subprocess and reads its metrics.json. ``--train-limit`` / ``--dev-limit``
keep the first N sentences of a split (a smaller dev makes the per-epoch early-stopping pass
cheaper on 2 shared cores; the test split is always whole). For WNUT-17 it also runs
`taskkit predict` on the raw test sentences and checks that text[start:end] == entity text for
every predicted entity.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import tempfile
import time
from pathlib import Path

from _common import DATASETS, write_section

#: what else ran on the machine, stated in RESULTS.md (environment variable BENCH_NOTE)
NOTE = os.environ.get("BENCH_NOTE", "nothing else running on the machine")

TARGETS = {"wikiann_en": 0.78, "wnut17": 0.40}
NAMES = {"wikiann_en": "WikiANN-en", "wnut17": "WNUT-17"}


def sentences(path: Path) -> list[str]:
    return [block for block in path.read_text(encoding="utf-8").split("\n\n") if block.strip()]


def slice_split(source: Path, target: Path, limit: int | None) -> int:
    blocks = sentences(source)[:limit] if limit else sentences(source)
    target.write_text("\n\n".join(b.strip("\n") for b in blocks) + "\n", encoding="utf-8")
    return len(blocks)


def round_trip(model: Path, test: Path, work: Path, env: dict[str, str]) -> tuple[int, int, int]:
    """(texts, entities, mismatches) of `taskkit predict` on the raw test sentences."""
    texts = [" ".join(line.split("\t")[0] for line in block.splitlines()) for block in sentences(test)]
    inputs = work / "texts.jsonl"
    inputs.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    done = subprocess.run(["taskkit", "predict", str(model), "--input", str(inputs)], check=True, env=env,
                          capture_output=True, text=True)
    records = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    entities = [(r["text"], e) for r in records for e in r["entities"]]
    bad = sum(text[e["start"]:e["end"]] != e["text"] for text, e in entities)
    return len(records), len(entities), bad


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset", choices=sorted(TARGETS))
    parser.add_argument("--train-limit", type=int)
    parser.add_argument("--dev-limit", type=int)
    args, extra = parser.parse_known_args()
    source = DATASETS / "ner" / args.dataset
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data, out = work / "data", work / "out"
        data.mkdir()
        counts = {split: slice_split(source / f"{split}.conll", data / f"{split}.conll",
                                     {"train": args.train_limit, "dev": args.dev_limit}.get(split))
                  for split in ("train", "dev", "test")}
        cmd = ["taskkit", "run", "ner", "--mode", "full", "--data", str(data), "--out", str(out), "-q", *extra]
        started = time.perf_counter()
        subprocess.run(cmd, check=True, env=env)
        wall = time.perf_counter() - started
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # CPU time: the cores are shared with other jobs
        cpu = usage.ru_utime + usage.ru_stime
        metrics = json.loads((out / "metrics.json").read_text())
        trip = round_trip(out / "model", source / "test.conll", work, env) if args.dataset == "wnut17" else None
    training, config = metrics["training"], metrics["config"]
    target = TARGETS[args.dataset]
    shown = " ".join(c for c in cmd if c not in (str(out), "--out", "-q")).replace(str(data), f"<{args.dataset} slices>")
    rows = "\n".join(f"| {t} | {v['precision']:.4f} | {v['recall']:.4f} | {v['f1-score']:.4f} | {int(v['support'])} |"
                     for t, v in metrics["per_type"].items())
    met = metrics["micro_f1"] >= target and wall <= 1800
    lines = [
        f"User command: `{shown}`",
        f"Data: train {counts['train']} sentences, dev {counts['dev']} (early stopping), test {counts['test']} (whole split).",
        f"Settings: epochs {config['epochs']}, max_length {config['max_length']}, batch {config['batch_size']}, "
        f"lr {config['lr']}, model {config['model']}, torch threads: {os.environ.get('OMP_NUM_THREADS') or 'the default (every core)'}, "
        f"precision {config['precision']}; {NOTE}.",
        "",
        "| test micro P | micro R | micro F1 | macro F1 | epochs run (best) | training | whole command (wall) |",
        "|---|---|---|---|---|---|---|",
        f"| {metrics['micro_precision']:.4f} | {metrics['micro_recall']:.4f} | {metrics['micro_f1']:.4f} | "
        f"{metrics['macro_f1']:.4f} | {training['epochs_run']} ({training['best_epoch']}) | "
        f"{training['train_seconds']:.0f} s, {training['examples_per_second']:.1f} windows/s | {wall:.0f} s ({wall / 60:.1f} min) |",
        "",
        f"CPU time of the command: {cpu / 60:.1f} min (wall time includes waiting for the shared cores).",
        "",
        "| type | precision | recall | F1 | support |", "|---|---|---|---|---|", rows, "",
        f"Target: entity micro-F1 >= {target:.2f} within 30 minutes: "
        f"{'met' if met else 'NOT met (measured %.4f in %.1f min)' % (metrics['micro_f1'], wall / 60)}.",
    ]
    if trip is not None:
        texts, entities, bad = trip
        lines.append(f"Offsets: `taskkit predict` on the {texts} raw test sentences gave {entities} entities; "
                     f"text[start:end] == entity text for {entities - bad} of them ({'all' if not bad else str(bad) + ' mismatches'}).")
    write_section(f"{NAMES[args.dataset]} NER, full mode", "\n".join(lines))


if __name__ == "__main__":
    main()
