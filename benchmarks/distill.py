"""Distillation: the default zero-shot model teaches a MiniLM student on unlabelled texts.

For each data set: the teacher is ``taskkit run TASK --mode zero-shot`` at its defaults (backend
both, self-training on the unlabelled texts) with the label file of benchmarks/zero_shot_labels;
the student is ``taskkit run TASK --mode distill --option teacher=TEACHER`` on the same unlabelled
texts (a seeded sample of the train split, gold labels never read: the teacher labels them, and
the student early-stops on its agreement with the teacher on a tenth of them). Both are scored on
the same seeded sample of the test split, and their inference is timed on the same texts
(whole-model ``predict_proba``, same thread count, one after the other).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _common import DATASETS, ROOT, read_jsonl, write_section

SETS = {"ag_news": ("topic", "topic/ag_news"), "banking77": ("intent", "intent/banking77")}


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def timed_proba(predictor, texts: list[str]) -> float:
    started = time.perf_counter()
    predictor.predict_proba(texts)
    return time.perf_counter() - started


def speed_ups(teacher, student, texts: list[str], sizes: list[int], repeats: int) -> dict[int, tuple[float, float]]:
    """For each size: (teacher seconds, student seconds), each the median of ``repeats`` passes over
    the first ``size`` texts, the two models' passes alternating (a busy moment hits both)."""
    student.predict_proba(texts[:8]), teacher.predict_proba(texts[:8])  # warm-up
    out = {}
    for size in sizes:
        t_runs, s_runs = [], []
        for _ in range(repeats):
            s_runs.append(timed_proba(student, texts[:size]))
            t_runs.append(timed_proba(teacher, texts[:size]))
        out[size] = (statistics.median(t_runs), statistics.median(s_runs))
    return out


def run_or_reuse(role: str, reuse: bool, folder: Path, notes: list[str], name: str, task: str, mode: str,
                 data: Path, **kwargs) -> tuple[object, float]:
    """``taskkit.run(task, mode, data, folder, **kwargs)``'s result and wall seconds, or with ``reuse``
    the folder an earlier run left (its time: that run's fit + evaluation from metrics.json)."""
    import taskkit

    started = time.perf_counter()
    if reuse and (folder / "metrics.json").exists():
        result = SimpleNamespace(metrics=json.loads((folder / "metrics.json").read_text()),
                                 predictor=taskkit.load(folder))
        wall = float(result.metrics.get("fit_seconds", 0)) + float(result.metrics.get("eval_seconds", 0))
        notes.append(f"{name}: the {role} folder of an earlier run of this script was reused (same data files); "
                     f"its time is that run's fit + evaluation")
    else:
        result = taskkit.run(task, mode, data, folder, overwrite=True, progress=False, **kwargs)
        wall = time.perf_counter() - started
    print(name, role, round(result.metrics["accuracy"], 4), f"{wall:.0f}s", flush=True)
    return result, wall


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--unlabelled", type=int, default=2000, help="train texts sampled as unlabelled data")
    parser.add_argument("--test", type=int, default=1000, help="test texts sampled for scoring (0: all)")
    parser.add_argument("--speed-texts", default="300,1000",
                        help="comma-separated counts of test texts both models are timed on (the last is the headline)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per count (their median is reported)")
    parser.add_argument("--out", default=None, help="keep the run folders here (default: a temporary folder)")
    parser.add_argument("--note", default="nothing else running on the machine",
                        help="what else ran on the machine, stated in RESULTS.md")
    parser.add_argument("--reuse-teacher", action="store_true",
                        help="with --out: load a teacher folder already there instead of training it again")
    parser.add_argument("--student-layers", type=int, default=None,
                        help="--option student_layers=N for the student (its first N transformer layers)")
    parser.add_argument("--reuse-student", action="store_true",
                        help="with --out: load a student folder already there instead of training it again")
    parser.add_argument("--dry-run", action="store_true", help="print the section instead of writing RESULTS.md")
    args = parser.parse_args()

    import torch

    import taskkit

    work = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="distill-"))
    rows, notes = [], []
    for name in args.sets.split(","):
        task, folder = SETS[name]
        rng = random.Random(42)
        train = read_jsonl(DATASETS / folder / "train.jsonl.gz")
        test = read_jsonl(DATASETS / folder / "test.jsonl.gz")
        unlabelled = rng.sample(train, min(args.unlabelled, len(train)))
        test = rng.sample(test, args.test) if args.test and args.test < len(test) else test
        data = work / name / "data"
        data.mkdir(parents=True, exist_ok=True)
        # the train rows keep their label column (the reader wants one); neither mode reads it:
        # zero-shot self-trains on the texts, distill has the teacher label them
        write_jsonl(data / "train.jsonl", [{"text": r["text"], "label": r["label"]} for r in unlabelled])
        write_jsonl(data / "test.jsonl", [{"text": r["text"], "label": r["label"]} for r in test])
        labels = ROOT / "benchmarks" / "zero_shot_labels" / f"{name}.yaml"
        teacher_dir, student_dir = work / name / "teacher", work / name / "student"
        student_options = {"teacher": str(teacher_dir),
                           **({"student_layers": args.student_layers} if args.student_layers else {})}
        teacher, teacher_wall = run_or_reuse("teacher", args.reuse_teacher, teacher_dir, notes, name, task,
                                             "zero-shot", data, labels=str(labels))
        student, student_wall = run_or_reuse("student", args.reuse_student, student_dir, notes, name, task,
                                             "distill", data, options=student_options)
        texts = [r["text"] for r in test]
        sizes = [min(int(n), len(texts)) for n in args.speed_texts.split(",")]
        timings = speed_ups(taskkit.load(teacher_dir), taskkit.load(student_dir), texts, sizes, args.repeats)
        t_seconds, s_seconds = timings[sizes[-1]]
        texts = texts[: sizes[-1]]
        if len(sizes) > 1:
            notes.append(f"{name}: speed-up on the first " + ", ".join(
                f"{n} texts {t / s:.1f}x ({n / t:.1f} against {n / s:.1f} texts/s)" for n, (t, s) in timings.items()))
        training = student.metrics["training"]
        extra = training["extra"]
        gap = 100 * (student.metrics["accuracy"] - teacher.metrics["accuracy"])
        ratio = t_seconds / s_seconds
        rows.append(f"| {name} ({task}, {len(teacher.predictor.labels)} labels) | {len(test)} | "
                    f"{teacher.metrics['accuracy']:.4f} / {teacher.metrics['macro_f1']:.4f} | "
                    f"{student.metrics['accuracy']:.4f} / {student.metrics['macro_f1']:.4f} | {gap:+.2f} | "
                    f"{len(texts) / t_seconds:.1f} | {len(texts) / s_seconds:.1f} | **{ratio:.1f}x** | "
                    f"{'met' if gap >= -1 and ratio >= 20 else 'not met'} |")
        notes.append(f"{name}: {extra['unlabelled_texts']} texts taught + {extra['teacher_labelled_dev']} held out for "
                     f"early stopping (teacher labelling {extra['teacher_seconds']:.0f} s); student "
                     f"{training['epochs_run']} epochs (best {training['best_epoch']}, agreeing with the teacher on "
                     f"{max(h['dev_accuracy'] for h in training['history']):.3f} of the held-out texts), trained in "
                     f"{training['train_seconds']:.0f} s; whole commands: teacher {teacher_wall:.0f} s, student "
                     f"{student_wall:.0f} s")

    title = "Distillation: zero-shot teacher, MiniLM student"
    layers_flag = f" --option student_layers={args.student_layers}" if args.student_layers else ""
    if args.student_layers:
        title += f" of {args.student_layers} layer{'s' if args.student_layers > 1 else ''}"
    if args.sets != ",".join(SETS):
        title += f", {args.sets}"
    (print if args.dry_run else write_section)(title, f"""
User commands: `taskkit run TASK --mode zero-shot --data D --labels benchmarks/zero_shot_labels/SET.yaml --out T`,
then `taskkit run TASK --mode distill --option teacher=T{layers_flag} --data D` (every other setting at its default).
D: {args.unlabelled} train texts (seeded sample; their gold labels are never read: the zero-shot teacher self-trains
on the texts, the distill run has the teacher label them) and {args.test or 'all'} test texts (seeded sample, the
same for both; gold labels only score). No dev split: nothing is tuned on gold labels (neither model is calibrated:
zero-shot calibrates only on a labelled dev split, distill only with `--option calibrate=true`). Settings: all
defaults, none chosen on these sets. Torch threads: {torch.get_num_threads()} (the default); {args.note}
(the ratio is of two runs taken back to back).

| data set | test texts | teacher accuracy / macro-F1 | student accuracy / macro-F1 | student - teacher (points) | teacher texts/s | student texts/s | student speed-up | target (>= -1 point, >= 20x) |
|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Inference timed on the first {sizes[-1]} sampled test texts, the median of {args.repeats} passes of each model (alternating), whole-model `predict_proba` (teacher: NLI
cross-encoder on every text x label pair, plus the embedding model and the self-trained head; student: one forward
pass per text of MiniLM{f"'s first {args.student_layers} of 6 layers" if args.student_layers else ""}).
{chr(10).join('- ' + n for n in notes)}
""")


if __name__ == "__main__":
    main()
