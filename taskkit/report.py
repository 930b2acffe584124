"""The run report printed by ``taskkit run``: headline figures and per-class scores."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def print_report(metrics: dict[str, Any], out: Path | None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    headline = {k: v for k, v in metrics.items() if isinstance(v, float) and not k.endswith("_seconds")}
    title = f"{metrics['task']} / {metrics['mode']} on {metrics.get('evaluated_on', '?')} ({metrics.get('examples', 0)} examples)"
    per_class = metrics.get("per_class") or {}
    if per_class:
        table = Table(title=title)
        for column in ("label", "precision", "recall", "f1", "support"):
            table.add_column(column, justify="left" if column == "label" else "right")
        for label, row in per_class.items():
            table.add_row(label, f"{row['precision']:.4f}", f"{row['recall']:.4f}", f"{row['f1-score']:.4f}",
                          str(int(row["support"])))
        console.print(table)
    else:
        console.print(title)
    console.print("  ".join(f"{k} {v:.4f}" for k, v in headline.items()))
    training = metrics.get("training") or {}
    if training.get("train_seconds") is not None:
        console.print(f"trained {training['epochs_run']} epoch(s) in {training['train_seconds']:.1f}s "
                      f"({training['examples_per_second']:.1f} examples/s), best epoch {training['best_epoch']}")
    if out is not None:
        console.print(f"model, metrics.json and predictions.jsonl written to {out}")
