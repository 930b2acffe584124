"""Few-shot, like for like: taskkit's few-shot mode (through the CLI) next to the setfit library.

For each data set, shot count and seed: sample N per class from train with taskkit's sampler
(seeded) and write those examples, and the test examples scored, to a scratch folder (no dev
file: both systems see the same N per class and nothing else). Then, on exactly those files:

- taskkit: ``taskkit run TASK --mode few-shot --shots N --seed S --data FOLDER`` (a subprocess;
  its wall time includes model loading and scoring the test file; its training time is metrics.json's);
- setfit at its paper's settings (``num_iterations=20``, body lr 2e-5, batch 16, one epoch) and,
  with ``--setfit-defaults``, at the Trainer's defaults (every pair, oversampled);
- taskkit's own zero-shot (``--mode zero-shot``, default backend) on the same labels, once.

``--codes`` replaces every label by an opaque code (``1``..``4`` for four labels, else ``L0``..;
``oos`` kept) and gives no descriptions: what the label names are worth is then nothing.

    nice -n 5 env OMP_NUM_THREADS=1 python benchmarks/few_shot.py --data topic/ag_news --task topic \\
        --shots 8 --seeds 0 1 2 --test-size 2000 --codes
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import DATASETS, write_section  # noqa: E402

METRICS = ("accuracy", "macro_f1", "in_scope_accuracy", "oos_recall")
SYSTEMS = ("taskkit", "setfit (paper: num_iterations=20)", "setfit (defaults)", "taskkit zero-shot")


def code_map(names: list[str]) -> dict[str, str]:
    """Opaque codes for the labels: 1..n for at most 9 labels, else L0..L(n-1); ``oos`` stays."""
    named = [n for n in sorted(names) if n != "oos"]
    codes = [str(i + 1) for i in range(len(named))] if len(named) <= 9 else [f"L{i}" for i in range(len(named))]
    return {**dict(zip(named, codes)), **({"oos": "oos"} if "oos" in names else {})}


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps({"text": r["text"], "label": r["label"]}) + "\n" for r in rows),
                    encoding="utf-8")


def _child_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def taskkit_cli(args: list[str], out: Path) -> tuple[dict, float, float]:
    """metrics.json of ``taskkit run ARGS``, its wall seconds and its CPU seconds."""
    started, cpu = time.perf_counter(), _child_cpu()
    proc = subprocess.run(["taskkit", "run", *args, "--out", str(out), "-q"], check=False, capture_output=True,
                          text=True)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"taskkit {' '.join(args)} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return json.loads((out / "metrics.json").read_text(encoding="utf-8")), seconds, _child_cpu() - cpu


def run_setfit(train, test, names: list[str], model_dir: str, seed: int, iterations: int | None
               ) -> tuple[list[str], float, float]:
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    started, cpu = time.perf_counter(), time.process_time()
    model = SetFitModel.from_pretrained(model_dir)
    data = Dataset.from_dict({"text": [e["text"] for e in train], "label": [names.index(e["label"]) for e in train]})
    with tempfile.TemporaryDirectory(prefix="setfit-bench-") as scratch:
        # the paper's settings: num_iterations=20, body lr 2e-5 and batch 16 (also the Trainer's defaults);
        # None: the Trainer's default sampling, every pair (oversampled to balance)
        args = TrainingArguments(output_dir=scratch, seed=seed, show_progress_bar=False, report_to="none",
                                 num_iterations=iterations, batch_size=16, body_learning_rate=2e-5, num_epochs=1)
        Trainer(model=model, args=args, train_dataset=data).train()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    predicted = model.predict([e["text"] for e in test], batch_size=128, as_numpy=True)
    return [names[int(i)] for i in predicted], seconds, cpu


def development_texts(data: str, shots: list[dict]) -> list[dict]:
    """``--eval-split dev``: the data's dev split, else its train examples that are not among the shots
    (for choosing methods and settings without looking at test)."""
    import gzip

    folder = DATASETS / data
    if (folder / "dev.jsonl.gz").is_file():
        with gzip.open(folder / "dev.jsonl.gz", "rt", encoding="utf-8") as f:
            return [json.loads(line) for line in f]
    taken = {e["text"] for e in shots}
    with gzip.open(folder / "train.jsonl.gz", "rt", encoding="utf-8") as f:
        return [row for row in map(json.loads, f) if row["text"] not in taken]


def scores(task, labels, test, predicted) -> dict[str, float]:
    m = task.metrics(task.gold(test, labels), predicted, labels)
    return {k: float(m[k]) for k in METRICS if k in m}


def summary(values: list[float]) -> str:
    if not values:
        return "-"
    spread = statistics.pstdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.1f} ± {100 * spread:.1f}"


def run_seed(args: argparse.Namespace, seed: int, task, mode, model_dir: str, scratch: Path) -> dict:
    """One seed: the sampled files, each system's scores, wall and CPU seconds, taskkit's record."""
    from taskkit import api
    from taskkit.data.splits import load_splits

    config = api.make_config(mode.defaults, shots=args.shots, seed=seed, progress=False)
    splits = load_splits(task, DATASETS / args.data, config)
    test = splits.test if args.eval_split == "test" else development_texts(args.data, splits.train)
    if args.test_size and len(test) > args.test_size:
        test = random.Random(0).sample(test, args.test_size)  # the same subset for every seed
    names = sorted(task.label_space(splits.train).names)
    codes = code_map(names) if args.codes else {n: n for n in names}
    train = [{"text": e["text"], "label": codes[e["label"]]} for e in splits.train]
    test = [{"text": e["text"], "label": codes[e["label"]]} for e in test]
    folder = scratch / f"seed{seed}"
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", train)
    write_jsonl(folder / "test.jsonl", test)
    labels = task.label_space(train)
    shown = sorted(labels.names)
    options: list[str] = []  # (codes have no descriptions: the task's are keyed by the original names)
    for option in args.option:
        options += ["--option", option]
    options += args.flag
    run: dict = {"seed": seed, "train_examples": len(train), "test_examples": len(test), "labels": shown,
                 "scores": {}, "wall": {}, "cpu": {}}
    metrics, seconds, cpu = taskkit_cli([args.task, "--mode", "few-shot", "--data", str(folder), "--shots",
                                         str(args.shots), "--seed", str(seed), *options], folder / "taskkit")
    run["scores"]["taskkit"] = {k: float(metrics[k]) for k in METRICS if k in metrics}
    run["wall"]["taskkit"], run["cpu"]["taskkit"] = seconds, cpu
    run["training"] = {k: v for k, v in metrics["training"].items() if k not in ("history",)}
    run["training"].get("contrastive", {}).pop("history", None)
    if not args.no_setfit:
        for system, iterations in (("setfit (paper: num_iterations=20)", 20), ("setfit (defaults)", None)):
            if iterations is None and not args.setfit_defaults:
                continue
            predicted, seconds, cpu = run_setfit(train, test, shown, model_dir, seed, iterations)
            run["scores"][system] = scores(task, labels, test, predicted)
            run["wall"][system], run["cpu"][system] = seconds, cpu
    if not args.no_zero_shot:
        metrics, _, _ = taskkit_cli([args.task, "--mode", "zero-shot", "--data", str(folder / "test.jsonl"),
                                     "--labels", ",".join(shown)], folder / "zero-shot")
        run["scores"]["taskkit zero-shot"] = {k: float(metrics[k]) for k in METRICS if k in metrics}
    print(json.dumps({k: run[k] for k in ("seed", "scores", "wall", "cpu")}), flush=True)
    return run


def report(args: argparse.Namespace, runs: list[dict], commands: list[str]) -> str:
    runs = sorted(runs, key=lambda r: r["seed"])
    metric_names = list(runs[0]["scores"]["taskkit"])
    table = ["| system | " + " | ".join(metric_names) + " | wall time a seed (s) | CPU time a seed (s) |",
             "|---" * (len(metric_names) + 3) + "|"]
    for system in SYSTEMS:
        have = [r for r in runs if system in r["scores"]]
        if not have:
            continue
        cells = [summary([r["scores"][system][m] for r in have]) for m in metric_names]
        wall = _seconds([r["wall"][system] for r in have if system in r["wall"]])
        cpu = _seconds([r["cpu"][system] for r in have if system in r["cpu"]])
        count = "scored once" if system == "taskkit zero-shot" else f"{len(have)} seed{'s' if len(have) > 1 else ''}"
        table.append(f"| {system} ({count}) | " + " | ".join(cells)
                     + f" | {wall} | {cpu} |")
    rows = [f"| {r['seed']} | {r['train_examples']} | " + " | ".join(
        f"{100 * r['scores'][s]['accuracy']:.1f} ({r['wall'][s]:.0f} s, {r['cpu'][s]:.0f} CPU s)"
        if s in r["wall"] else "-" for s in SYSTEMS[:3]) + " |" for r in runs]
    trained = [float(r["training"]["train_seconds"]) for r in runs]
    shown, n_test = runs[0]["labels"], runs[0]["test_examples"]
    split = "test" if args.eval_split == "test" else "development (dev split, else train outside the shots)"
    test_note = f"a fixed seeded subset of {n_test} {split} examples" if args.test_size else f"all {n_test} {split} examples"
    labels_note = ("every label replaced by an opaque code (" + ", ".join(shown[:4]) + ", ...), no descriptions"
                   if args.codes else "the data's label names")
    return (f"Commands ({args.note}):\n\n"
            + "\n".join(f"    {c}" for c in commands) + "\n\n"
            f"{args.data}, {args.shots} per class, seeds {[r['seed'] for r in runs]}, {labels_note}; packaged MiniLM; "
            f"evaluated on {test_note}. Both systems read the same sampled training file (no dev file). Mean ± "
            f"population std over seeds (in %). Wall time: taskkit = the whole `taskkit run` command (model loading, "
            f"training, scoring the test file; metrics.json's train_seconds averaged {statistics.mean(trained):.1f} s, "
            f"max {max(trained):.1f}); setfit = loading and training (its test scoring not counted). CPU time: user + "
            f"system seconds of the same. "
            f"taskkit options: {args.option + args.flag or 'defaults'} (contrastive phase as long as setfit's at "
            f"num_iterations=20 in texts encoded, at most 100 steps of 32 texts, lr 2e-5: setfit's paper settings, "
            f"not tuned; the label names' shares: cross-validation on the shots; nothing was chosen on a test "
            f"split). setfit: body lr 2e-5, batch 16, 1 epoch, "
            f"CosineSimilarityLoss, logistic head. Zero-shot: `taskkit run {args.task} --mode zero-shot --labels ...` "
            f"(default backend) on the same test file and labels.\n\n" + "\n".join(table)
            + "\n\nPer seed (accuracy %, wall time, CPU time):\n\n| seed | train examples | " + " | ".join(SYSTEMS[:3])
            + " |\n|---|---|---|---|---|\n" + "\n".join(rows)
            + "\n\nChosen by cross-validation on the shots (no test data), per seed: "
            + "; ".join(f"seed {r['seed']}: {_brief(r['training'])}" for r in runs))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="sentiment/sst2")
    parser.add_argument("--task", default="sentiment")
    parser.add_argument("--shots", type=int, default=8)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--test-size", type=int, default=0, help="score a fixed seeded subset of test (0: all)")
    parser.add_argument("--eval-split", choices=("test", "dev"), default="test",
                        help="dev: score the dev split (else train examples outside the shots) instead of test, "
                             "to choose methods on; such runs print only")
    parser.add_argument("--codes", action="store_true", help="every label an opaque code, no descriptions")
    parser.add_argument("--no-setfit", action="store_true")
    parser.add_argument("--setfit-defaults", action="store_true", help="also setfit at the Trainer's defaults")
    parser.add_argument("--no-zero-shot", action="store_true", help="(the zero-shot row runs with the first seed)")
    parser.add_argument("--option", action="append", default=[], help="few-shot KEY=VALUE")
    parser.add_argument("--flag", action="append", default=[], help="a `taskkit run` flag for the few-shot runs, "
                                                                     "e.g. --flag=--max-length=128")
    parser.add_argument("--section", default=None)
    parser.add_argument("--dump", default=None, help="write the raw per-seed results (JSON) here, no section")
    parser.add_argument("--combine", nargs="+", default=None,
                        help="write the section from these --dump files (seeds run as separate processes)")
    parser.add_argument("--no-write", action="store_true", help="print only (exploration)")
    parser.add_argument("--note", default="default torch threads (both cores), nothing else running",
                        help="how the machine was used during the run (said in RESULTS.md)")
    args = parser.parse_args()
    from _common import command_line

    if args.combine:
        dumps = [json.loads(Path(p).read_text(encoding="utf-8")) for p in args.combine]
        runs = [r for d in dumps for r in d["runs"]]
        commands = [d["command"] for d in dumps] + [command_line()]
    else:
        from taskkit import registry
        from taskkit.models import resolve

        task, mode = registry.get_pair(args.task, "few-shot")
        model_dir = str(resolve("minilm"))
        scratch = Path(tempfile.mkdtemp(prefix="fs-bench-"))
        runs = []
        for seed in args.seeds:
            no_zero = args.no_zero_shot or seed != args.seeds[0]
            runs.append(run_seed(argparse.Namespace(**{**vars(args), "no_zero_shot": no_zero}), seed, task, mode,
                                 model_dir, scratch))
            if args.dump:  # after each seed: a partial result survives an interrupted run
                Path(args.dump).write_text(json.dumps({"command": command_line(), "runs": runs}), encoding="utf-8")
        commands = [command_line()]
    if args.dump and not args.combine:
        return
    zero = next((r["scores"]["taskkit zero-shot"] for r in runs if "taskkit zero-shot" in r["scores"]), None)
    for r in runs:  # the zero-shot row does not depend on the seed: scored once
        if zero is not None:
            r["scores"]["taskkit zero-shot"] = zero
    body = report(args, runs, commands)
    if args.no_write or args.eval_split == "dev":
        print(body)
        return
    write_section(args.section or f"few-shot {args.data}{' codes' if args.codes else ''} {args.shots}-shot", body)


def _seconds(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.mean(values):.1f} (max {max(values):.1f})"


def _brief(training: dict) -> str:
    c = training.get("contrastive", {})
    shares = training.get("shares") or {}
    return (f"head share {shares.get('head', training.get('prior_mix'))}, zero-shot share "
            f"{training.get('zero_shot_share')} ({shares.get('chosen_by', '-')}), contrastive steps "
            f"{c.get('steps_run')} ({c.get('seconds')} s)")


if __name__ == "__main__":
    main()
