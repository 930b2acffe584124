"""The run report printed by ``taskkit run``: headline figures, per-class scores and how it learnt.

Every field of the training record is optional: each mode fills its own keys (``full`` / ``peft``:
epochs from the kernel's loop; ``few-shot``: a contrastive phase and a head; ``zero-shot``: a
backend and self-training), and a plugin's mode may fill none.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskkit.contracts import TrainingRecord


def print_report(metrics: dict[str, Any], out: Path | None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    title = (f"{metrics.get('task', '?')} / {metrics.get('mode', '?')} on {metrics.get('evaluated_on', '?')} "
             f"({metrics.get('examples', 0)} examples)")
    rows = _per_class_rows(metrics.get("per_class"))
    if rows:
        table = Table(title=title)
        for column in ("label", "precision", "recall", "f1", "support"):
            table.add_column(column, justify="left" if column == "label" else "right")
        for row in rows:
            table.add_row(*row)
        console.print(table)
    else:
        console.print(title)
    headline = {k: v for k, v in metrics.items() if isinstance(v, float) and not k.endswith("_seconds")}
    lines = ["  ".join(f"{k} {v:.4f}" for k, v in headline.items())] if headline else []
    lines += training_lines(metrics.get("training"))
    lines += calibration_lines(metrics.get("calibration"))
    if out is not None:
        lines.append(f"model, metrics.json and predictions.jsonl written to {out}")
        pictures = [str(out / name) for name in metrics.get("plots") or [] if isinstance(name, str)]
        if pictures:
            lines.append("pictures: " + ", ".join(pictures))
    for line in lines:  # plain text, one line each however narrow the terminal
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def calibration_lines(report: Any) -> list[str]:
    """One line: how probabilities were calibrated, and ECE before -> after on the evaluated split."""
    if not isinstance(report, dict):
        return []
    method = report.get("method")
    if method in (None, "none"):
        return [f"probabilities not calibrated: {report.get('reason', '?')}"] if report.get("reason") else []
    what = f"temperature {_fixed(report.get('temperature'))}" if method == "temperature" else "vector scaling"
    line = f"probabilities calibrated ({what}, on {report.get('fitted_on', '?')})"
    for split in ("test", "dev"):
        part = report.get(split)
        if isinstance(part, dict) and isinstance(part.get("before"), dict) and isinstance(part.get("after"), dict):
            line += (f": {split} ECE {_fixed(part['before'].get('ece'))} -> {_fixed(part['after'].get('ece'))}, "
                     f"NLL {_fixed(part['before'].get('nll'))} -> {_fixed(part['after'].get('nll'))}")
            break
    return [line]


def _per_class_rows(per_class: Any) -> list[tuple[str, str, str, str, str]]:
    """Table rows from a classification report; anything not shaped like one is left out."""
    if not isinstance(per_class, dict):
        return []
    rows = []
    for label, row in per_class.items():
        if not isinstance(row, dict):
            continue
        rows.append((str(label), _fixed(row.get("precision")), _fixed(row.get("recall")),
                     _fixed(row.get("f1-score", row.get("f1"))), _count(row.get("support"))))
    return rows


def training_lines(training: Any) -> list[str]:
    """What the mode's training record says, in one or two lines (none for an empty record).

    ``training`` is a :class:`TrainingRecord` or its dict form from ``metrics.json``; every field
    is read as an optional attribute, so a mode that fills few of them cannot break the report."""
    from taskkit.contracts import TrainingRecord

    if isinstance(training, dict):
        training = TrainingRecord.from_dict(training)
    if not isinstance(training, TrainingRecord):
        return []
    lines = []
    if training.epochs_run is not None:  # the kernel's loop: full, peft, continued training
        lines.append(_epochs_line(training, "trained"))
    if isinstance(training.contrastive, dict):  # few-shot
        lines.append(_few_shot_line(training))
    elif training.setfit is not None:
        lines.append(f"few-shot with the setfit library's Trainer in {_seconds(training.train_seconds)}")
    if training.backend is not None:  # zero-shot
        lines.append(_zero_shot_line(training))
    if not lines and training.train_seconds is not None:
        lines.append(f"trained in {_seconds(training.train_seconds)}")
    return lines


def _epochs_line(training: TrainingRecord, verb: str) -> str:
    line = f"{verb} {training.epochs_run if training.epochs_run is not None else '?'} epoch(s)"
    seconds = training.train_seconds if training.train_seconds is not None else training.extra.get("seconds")
    if seconds is not None:
        line += f" in {_seconds(seconds)}"
    if isinstance(training.examples_per_second, (int, float)):
        line += f" ({training.examples_per_second:.1f} examples/s)"
    if training.best_epoch is not None:
        line += f", best epoch {training.best_epoch}"
    if training.stopped_early:
        line += ", stopped early"
    return line


def _few_shot_line(training: TrainingRecord) -> str:
    from taskkit.contracts import TrainingRecord

    phase = training.contrastive or {}
    line = f"contrastive phase: {phase.get('steps_run', '?')} step(s)"
    if phase.get("seconds") is not None:
        line += f" in {_seconds(phase['seconds'])}"
    if phase.get("best_step") is not None:
        line += f", best step {phase['best_step']}"
    if phase.get("stopped_early"):
        line += ", stopped early"
    line += f"; {training.head or '?'} head"
    head = TrainingRecord.from_dict(training.head_training) if isinstance(training.head_training, dict) else None
    if head is not None and head.epochs_run is not None:
        line += f" ({_epochs_line(head, 'trained')})"
    if training.zero_shot not in (None, "none"):
        line += f", averaged with zero-shot ({training.zero_shot})"
    if training.train_seconds is not None:
        examples = training.train_examples if training.train_examples is not None else "?"
        line += f"; {examples} training example(s) in {_seconds(training.train_seconds)}"
    return line


def _zero_shot_line(training: TrainingRecord) -> str:
    backend = training.backend
    models = []
    if backend != "embedding" and training.nli_model:
        models.append(f"NLI model {training.nli_model}")
    if backend != "nli" and training.encoder:
        models.append(f"encoder {training.encoder}")
    line = f"zero-shot, {backend} backend" + (f" ({', '.join(models)})" if models else "")
    self_training = training.self_training
    if isinstance(self_training, dict):
        line += (f"; self-trained on {self_training.get('pseudo_labelled', '?')} confident of "
                 f"{self_training.get('unlabelled_texts', '?')} unlabelled text(s)")
    return line


def _fixed(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"


def _count(value: Any) -> str:
    return str(int(value)) if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"


def _seconds(value: Any) -> str:
    return f"{value:.1f}s" if isinstance(value, (int, float)) and not isinstance(value, bool) else "?s"
