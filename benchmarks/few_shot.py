"""Few-shot: taskkit's few-shot mode next to the setfit library's own Trainer, same samples and model.

For each data set, shot count and seed: sample N per class from train with taskkit's sampler
(seeded), train setfit's Trainer at its defaults (scratch in a temporary folder) and taskkit's
few-shot mode on exactly those examples, and score both on the same test examples; the zero-shot
embedding baseline (cosine between a text and each label's name) is scored beside them.

    python benchmarks/few_shot.py --data sentiment/sst2 --task sentiment --shots 8 --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import DATASETS, write_section  # noqa: E402


def zero_shot(body, tokenizer, labels, test, max_length: int) -> list[str]:
    """Cosine between each text and each label name (underscores as spaces): the prior to beat."""
    from taskkit_plugins.few_shot.contrastive import embed

    names = [n.replace("_", " ") for n in labels.names]
    x = embed(body, tokenizer, [e["text"] for e in test], max_length)
    p = embed(body, tokenizer, names, max_length)
    return [labels.names[i] for i in (x @ p.T).argmax(1)]


def default_setfit_steps(train, labels) -> int:
    """Steps setfit's Trainer takes at its defaults (every pair, oversampled; batch 16, one epoch)."""
    from setfit.sampler import ContrastiveDataset

    pairs = ContrastiveDataset([e["text"] for e in train], [labels.index(e["label"]) for e in train], multilabel=False)
    return -(-len(pairs) // 16)


def run_setfit(train, test, labels, model_dir: str, seed: int, iterations: int | None) -> tuple[list[str], float]:
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    started = time.perf_counter()
    model = SetFitModel.from_pretrained(model_dir)
    data = Dataset.from_dict({"text": [e["text"] for e in train], "label": [labels.index(e["label"]) for e in train]})
    with tempfile.TemporaryDirectory(prefix="setfit-bench-") as scratch:
        # num_iterations=None is setfit's default: every pair. With many classes that is quadratic in the
        # examples (77 x 8 -> 23,408 steps), hours a seed here, so --setfit-iterations caps it (setfit's R).
        args = TrainingArguments(output_dir=scratch, seed=seed, show_progress_bar=False, report_to="none",
                                 num_iterations=iterations)
        Trainer(model=model, args=args, train_dataset=data).train()
    seconds = time.perf_counter() - started
    predicted = model.predict([e["text"] for e in test], batch_size=128, as_numpy=True)
    return [labels.names[int(i)] for i in predicted], seconds


def run_taskkit(task, mode, splits, config) -> tuple[list[str], float, dict]:
    started = time.perf_counter()
    predictor = mode.fit(task, splits, config)
    seconds = time.perf_counter() - started
    return predictor.predict(splits.test), seconds, predictor.training.as_dict() if predictor.training else {}


def scores(task, labels, test, predicted) -> dict[str, float]:
    m = task.metrics(task.gold(test, labels), predicted, labels)
    return {k: float(m[k]) for k in ("accuracy", "macro_f1", "in_scope_accuracy", "oos_recall") if k in m}


def summary(values: list[float]) -> str:
    if not values:
        return "-"
    spread = statistics.pstdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.1f} ± {100 * spread:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="sentiment/sst2")
    parser.add_argument("--task", default="sentiment")
    parser.add_argument("--shots", type=int, default=8)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--test-size", type=int, default=0, help="score a fixed seeded subset of test (0: all)")
    parser.add_argument("--no-setfit", action="store_true")
    parser.add_argument("--setfit-iterations", type=int, default=None,
                        help="setfit's num_iterations (default: setfit's own, every pair)")
    parser.add_argument("--option", action="append", default=[], help="few-shot KEY=VALUE")
    parser.add_argument("--section", default=None)
    parser.add_argument("--no-write", action="store_true", help="print only (exploration)")
    args = parser.parse_args()

    from taskkit import api, registry
    from taskkit.cli import _parse_options
    from taskkit.data.splits import load_splits
    from taskkit.models import load_body, load_tokenizer, resolve

    task, mode = registry.get_pair(args.task, "few-shot")
    model_dir = resolve("minilm")
    options = _parse_options(args.option)
    rows, results = [], {"taskkit": [], "setfit": [], "zero-shot": []}
    times = {"taskkit": [], "setfit": []}
    for seed in args.seeds:
        config = api.make_config(mode.defaults, shots=args.shots, seed=seed, progress=False, options=dict(options))
        splits = load_splits(task, DATASETS / args.data, config)
        if args.test_size and len(splits.test) > args.test_size:
            splits.test = random.Random(0).sample(splits.test, args.test_size)  # the same subset for every seed
        labels = task.label_space(splits.train)
        if seed == args.seeds[0]:
            body, tokenizer = load_body(model_dir), load_tokenizer(model_dir)
            zero = scores(task, labels, splits.test, zero_shot(body, tokenizer, labels, splits.test, config.max_length))
        results["zero-shot"].append(zero)
        predicted, seconds, training = run_taskkit(task, mode, splits, config)
        results["taskkit"].append(scores(task, labels, splits.test, predicted))
        times["taskkit"].append(seconds)
        line = f"seed {seed}: taskkit {results['taskkit'][-1]} in {seconds:.1f} s"
        if not args.no_setfit:
            predicted, seconds = run_setfit(splits.train, splits.test, labels, model_dir, seed, args.setfit_iterations)
            results["setfit"].append(scores(task, labels, splits.test, predicted))
            times["setfit"].append(seconds)
            line += f"; setfit {results['setfit'][-1]} in {seconds:.1f} s"
        print(line, flush=True)
        rows.append(f"| {seed} | {len(splits.train)} | " + " | ".join(
            f"{100 * results[s][-1]['accuracy']:.1f} ({times[s][-1]:.0f} s)" if results[s] else "-"
            for s in ("taskkit", "setfit")) + " |")
    metric_names = list(results["taskkit"][0])
    table = ["| system | " + " | ".join(metric_names) + " | train wall time (s) |", "|---" * (len(metric_names) + 2) + "|"]
    for system in ("taskkit", "setfit", "zero-shot"):
        if not results[system]:
            continue
        cells = [summary([r[m] for r in results[system]]) for m in metric_names]
        wall = _seconds(times.get(system, []))
        table.append(f"| {system} | " + " | ".join(cells) + f" | {wall} |")
    setfit_note = "Trainer at its defaults"
    if args.setfit_iterations:
        setfit_note = (f"Trainer at its defaults except num_iterations={args.setfit_iterations} "
                       f"({args.setfit_iterations * 2 * len(splits.train) // 16} steps; at its default, every pair, "
                       f"it would take {default_setfit_steps(splits.train, labels):,} steps a seed)")
    test_note = (f"a fixed seeded subset of {len(splits.test)} test examples" if args.test_size
                 else f"all {len(splits.test)} test examples")
    body = (f"{args.data}, {args.shots} per class, seeds {args.seeds}, packaged MiniLM, evaluated on {test_note}. "
            f"Mean ± population std over seeds (in %; wall time in seconds, model loading included for both). "
            f"taskkit options: {options or 'defaults'}; setfit: {setfit_note}. Zero-shot: cosine to the "
            f"label names, same model, untrained.\n\n" + "\n".join(table) +
            "\n\nPer seed (accuracy %, train wall time):\n\n| seed | train examples | taskkit | setfit |\n|---|---|---|---|\n"
            + "\n".join(rows) + f"\n\nLast taskkit run: {_brief(training)}")
    if args.no_write:
        print(body)
        return
    write_section(args.section or f"few-shot {args.data} {args.shots}-shot", body)


def _seconds(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.mean(values):.1f} (max {max(values):.1f})"


def _brief(training: dict) -> str:
    c = training.get("contrastive", {})
    return (f"head {training.get('head')}, contrastive steps {c.get('steps_run')}/{c.get('steps')} "
            f"(best {c.get('best_step')}, {c.get('seconds')} s), prior {training.get('prior')}, "
            f"zero-shot share in the head {training.get('prior_mix')} (cross-validated)")


if __name__ == "__main__":
    main()
