"""The ``taskkit`` command line (typer). Heavy libraries load inside commands, never here."""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any, List, Optional

import typer

from taskkit.errors import Interrupted, TaskkitError

app = typer.Typer(
    help="Turn a pretrained transformer into a model for your own NLP task.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)


def _parse_options(pairs: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise TaskkitError(f"--option {pair!r}: expected KEY=VALUE")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


@app.command()
def run(
    task: str = typer.Argument(..., help="Task name (see `taskkit tasks`)."),
    mode: str = typer.Option("full", help="Learning mode (see `taskkit modes`)."),
    data: Optional[str] = typer.Option(None, help="Folder with train/dev/test files, one file, or hf:NAME[:CONFIG]. "
                                                  "Default: the task's small demo data."),
    model: Optional[str] = typer.Option(None, help="Packaged name (minilm), local folder or hub id."),
    out: Optional[Path] = typer.Option(None, help="Output folder. Default: runs/TASK-MODE."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Write the run into an --out folder that holds other "
                                   "files too; they are left untouched."),
    init_from: Optional[str] = typer.Option(None, "--from", help="Continue training this saved model on the new data."),
    epochs: Optional[int] = typer.Option(None, help="Training epochs."),
    lr: Optional[float] = typer.Option(None, help="Peak learning rate."),
    batch_size: Optional[int] = typer.Option(None, help="Training batch size."),
    max_length: Optional[int] = typer.Option(None, help="Maximum sub-word tokens per window of text."),
    truncate: bool = typer.Option(False, "--truncate", help="Cut long texts instead of splitting them into windows."),
    seed: Optional[int] = typer.Option(None, help="Random seed (runs are reproducible)."),
    shots: Optional[int] = typer.Option(None, help="Train on N examples per class, sampled with --seed."),
    patience: Optional[int] = typer.Option(None, help="Epochs without dev improvement before stopping; 0 disables."),
    metric: Optional[str] = typer.Option(None, help="Dev metric for early stopping (default: the task's)."),
    weight_decay: Optional[float] = typer.Option(None),
    warmup_ratio: Optional[float] = typer.Option(None),
    grad_accum: Optional[int] = typer.Option(None, help="Gradient accumulation steps."),
    dropout: Optional[float] = typer.Option(None, help="Dropout on the head's input."),
    precision: Optional[str] = typer.Option(None, help="auto | fp32 | bf16."),
    freeze: Optional[str] = typer.Option(None, help="none | head | top:N."),
    text_column: Optional[str] = typer.Option(None),
    label_column: Optional[str] = typer.Option(None),
    labels: Optional[str] = typer.Option(None, help="zero-shot: labels a,b,c or a JSON/YAML file of label -> description."),
    template: Optional[str] = typer.Option(None, help='zero-shot: hypothesis with {} for the label.'),
    backend: Optional[str] = typer.Option(None, help="zero-shot: both (default) | nli | embedding."),
    multi_label: bool = typer.Option(False, "--multi-label", help="zero-shot: score each label on its own."),
    option: List[str] = typer.Option([], help="Mode-specific KEY=VALUE, repeatable."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    checkpoint_every: Optional[str] = typer.Option(
        None, help="Write a checkpoint to OUT/checkpoints every N optimiser steps, or every N epochs as Ne (3e)."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from OUT's newest checkpoint."),
) -> None:
    """Train TASK with MODE, early-stop on dev, evaluate on test, save the model and a report."""
    from taskkit import api
    from taskkit.report import print_report

    result = api.run(
        task, mode, data, out or Path("runs") / f"{task}-{mode}", overwrite=overwrite,
        model=model, init_from=init_from, epochs=epochs, lr=lr, batch_size=batch_size, max_length=max_length, truncate=truncate or None, seed=seed, shots=shots,
        patience=patience, metric=metric, weight_decay=weight_decay, warmup_ratio=warmup_ratio,
        grad_accum=grad_accum, dropout=dropout, precision=precision, freeze=freeze, text_column=text_column,
        label_column=label_column, labels=labels, template=template, backend=backend, multi_label=multi_label or None,
        options=_parse_options(option) or None, progress=False if quiet else None,
        checkpoint_every=checkpoint_every, resume=resume or None,
    )
    print_report(result.metrics, result.out)


@app.command()
def predict(
    model_dir: Path = typer.Argument(..., help="A model folder (or a run's output folder)."),
    texts: List[str] = typer.Argument(None, help="Texts to classify."),
    input: Optional[Path] = typer.Option(None, "--input", "-i", help="A file of inputs: one text a line (split at newlines "
                                         "only; output row i is line i, a blank line between texts is an error), or "
                                         ".jsonl/.csv/.tsv rows; '-' reads texts from stdin."),
) -> None:
    """Print one JSON line per input with the predicted label and probabilities."""
    from taskkit import api

    inputs: list[Any] = list(texts or [])
    if input is not None:
        inputs.extend(_read_inputs(input))
    if not inputs:
        raise TaskkitError("nothing to predict: give texts or --input FILE")
    for record in api.predict(model_dir, inputs):
        typer.echo(json.dumps(record, ensure_ascii=False))


def _read_inputs(path: Path) -> list[Any]:
    from taskkit.data.readers import read_inputs

    return read_inputs(path)  # each input names its line in "_where", which no output record shows


@app.command()
def plugins() -> None:
    """List the loaded plugins."""
    from taskkit.plugins import plugin_names

    for name, module in plugin_names():
        typer.echo(f"{name}\t{module}")


@app.command()
def tasks() -> None:
    """List the tasks and the modes that support each."""
    from taskkit import registry

    for name, (task, plugin) in sorted(registry.tasks().items()):
        able = [m for m, (mode, _) in sorted(registry.modes().items()) if mode.supports(task)]
        typer.echo(f"{name}\t{task.level}\tmodes: {', '.join(able) or '-'}\t({plugin}) {task.description}")


@app.command()
def modes() -> None:
    """List the learning modes and which tasks each supports."""
    from taskkit import registry

    for name, (mode, plugin) in sorted(registry.modes().items()):
        able = [t for t, (task, _) in sorted(registry.tasks().items()) if mode.supports(task)]
        typer.echo(f"{name}\ttasks: {', '.join(able) or '-'}\t({plugin}) {mode.description}")


def _add_plugin_commands() -> None:
    from taskkit.plugins import add_commands, one_line_warnings

    one_line_warnings()  # a faulty plugin is one "warning: ..." line on stderr
    add_commands(app)  # once per process; a plugin whose hook fails is left out with a warning


def _click_exceptions() -> tuple[tuple[type, ...], tuple[type, ...], tuple[type, ...]]:
    """(exit, abort, usage-error) exception classes: typer >= 0.2x raises those of its own
    vendored click (``typer._click``), older typer those of click itself."""
    import click

    exits: list[type] = [click.exceptions.Exit, typer.Exit]
    aborts: list[type] = [click.exceptions.Abort, typer.Abort]
    errors: list[type] = [click.ClickException]
    try:
        from typer._click.exceptions import ClickException as VendoredClickException
    except ImportError:
        pass
    else:
        errors.append(VendoredClickException)
    return tuple(exits), tuple(aborts), tuple(errors)


def _interrupt(signum: int, frame: Any) -> None:
    raise Interrupted(signal.Signals(signum).name, 128 + signum)


def _catch_signals() -> dict[int, Any]:
    """SIGINT and SIGTERM raise :class:`Interrupted` (main thread only); returns the previous handlers."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}


def main(argv: list[str] | None = None) -> int:
    """Console entry point: user errors become one line on stderr and exit code 2; SIGINT / SIGTERM
    one line saying what was interrupted, exit code 130 / 143."""
    exits, aborts, click_errors = _click_exceptions()
    previous = _catch_signals()
    try:
        _add_plugin_commands()
        result = app(args=argv, prog_name="taskkit", standalone_mode=False)
    except TaskkitError as exc:
        typer.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except exits as exc:
        return exc.exit_code
    except aborts:
        typer.echo("aborted", err=True)
        return 130
    except click_errors as exc:
        exc.show()
        return exc.exit_code
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except Interrupted as exc:
        typer.echo(str(exc), err=True)
        return exc.exit_code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    # without standalone mode, an Exit raised by a command comes back as its code
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
