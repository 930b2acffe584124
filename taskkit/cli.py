"""The ``taskkit`` command line (typer). Heavy libraries load inside commands, never here."""

from __future__ import annotations

import inspect
import json
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from taskkit.errors import Interrupted, TaskkitError

if TYPE_CHECKING:
    import click
    from typer._click.exceptions import ClickException as VendoredClickException

    ExitError = click.exceptions.Exit | typer.Exit
    AbortError = click.exceptions.Abort | typer.Abort
    UsageError = click.ClickException | VendoredClickException

app = typer.Typer(
    help="Turn a pretrained transformer into a model for your own NLP task.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)


def _parse_options(pairs: list[str]) -> dict[str, Any]:
    """``--option KEY=VALUE`` pairs, typed by :func:`taskkit.options.parse_pairs` (the one parser)."""
    from taskkit.options import parse_pairs

    return parse_pairs(pairs)


def run(
    task: str = typer.Argument(..., help="Task name (see `taskkit tasks`)."),
    mode: str = typer.Option("full", help="Learning mode (see `taskkit modes`)."),
    data: str | None = typer.Option(None, help="Folder with train/dev/test files, one file, or hf:NAME[:CONFIG]. "
                                                  "Default: the task's small demo data."),
    out: Path | None = typer.Option(None, help="Output folder. Default: runs/TASK-MODE."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Write the run into an --out folder that holds other "
                                   "files too; they are left untouched."),
    **settings: Any,
) -> None:
    """Train TASK with MODE, early-stop on dev, evaluate on test, save the model and a report."""
    from taskkit import api
    from taskkit.report import print_report

    result = api.run(task, mode, data, out or Path("runs") / f"{task}-{mode}", overwrite=overwrite,
                     **_given_settings(settings))
    from taskkit.distributed import is_main_process

    if is_main_process():  # one report from a run on several processes
        print_report(result.metrics, result.out)


def _setting_parameters() -> list[inspect.Parameter]:
    """The options of ``run`` for the :class:`RunConfig` fields the command line offers: names,
    types, help and defaults come from the fields (``None``: not given, the mode's default applies)."""
    from dataclasses import fields

    from taskkit.contracts import RunConfig
    from taskkit.settings import option_name

    params = []
    for f in fields(RunConfig):
        cli, help = f.metadata.get("cli", False), f.metadata.get("help")
        if cli is False:
            continue
        names = list(cli) if isinstance(cli, tuple) else [option_name(f.name)]
        kinds = [k.strip() for k in str(f.type).split("|") if k.strip() != "None"]
        annotation: Any
        if f.name == "options":
            annotation, default = list[str], typer.Option([], *names, help=help)
        elif kinds == ["bool"]:  # a flag: given means "not the field's default"
            annotation, default = bool, typer.Option(False, *names, help=help)
        else:
            kind = {"int": int, "float": float}.get(kinds[0]) if len(kinds) == 1 else None
            annotation, default = (kind or str) | None, typer.Option(None, *names, help=help)
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation))
    return params


def _given_settings(values: dict[str, Any]) -> dict[str, Any]:
    """RunConfig values from ``run``'s options: flags not given and options not given are left out."""
    from dataclasses import fields

    from taskkit.contracts import RunConfig

    defaults = {f.name: f.default for f in fields(RunConfig)}
    given: dict[str, Any] = {}
    for name, value in values.items():
        if name == "options":
            value = _parse_options(value) or None
        elif isinstance(value, bool):
            value = (not defaults[name]) if value else None
        if value is not None:
            given[name] = value
    return given


run.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [p for p in inspect.signature(run).parameters.values() if p.kind is not p.VAR_KEYWORD] + _setting_parameters())
app.command()(run)


@app.command()
def predict(
    model_dir: Path = typer.Argument(..., help="A model folder (or a run's output folder)."),
    texts: list[str] = typer.Argument(None, help="Texts to classify."),
    input: Path | None = typer.Option(None, "--input", "-i", help="A file of inputs: one text a line (split at newlines "
                                         "only; output row i is line i, a blank line between texts is an error), or "
                                         ".jsonl/.csv/.tsv rows; '-' reads texts from stdin."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the records to this JSON Lines file, "
                                          "streaming --input in chunks (memory flat, progress bar); a new file."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted --output run from the rows it wrote."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --output file."),
    chunk_size: int = typer.Option(2048, "--chunk-size", help="Rows read, predicted and written at a time (--output)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar (--output)."),
) -> None:
    """Print one JSON line per input with the predicted label and probabilities (--output: write them)."""
    from taskkit import api

    if output is not None:
        if input is None or texts:
            raise TaskkitError("--output streams --input FILE: give the texts in that file, not as arguments")
        written = api.predict_file(model_dir, input, output, resume=resume, overwrite=overwrite,
                                   chunk_size=chunk_size, progress=not quiet)
        if written is not None and not quiet:  # None: a launched process other than the main one
            shared = f" ({written.processes} processes)" if written.processes > 1 else ""
            typer.echo(f"wrote {written.rows} record(s) to {output}{shared}", err=True)
        return
    if resume or overwrite:
        raise TaskkitError("--resume and --overwrite apply to --output FILE")
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


@app.command()
def options(
    task: str = typer.Argument(..., help="Task name (see `taskkit tasks`)."),
    mode: str = typer.Option("full", help="Learning mode (see `taskkit modes`)."),
) -> None:
    """List the --option settings of TASK and MODE (type, default, help), then the run settings."""
    from taskkit import registry
    from taskkit.options import render

    task_obj, mode_obj = registry.get_pair(task, mode)
    for line in render(task_obj, mode_obj):
        typer.echo(line)


@app.command()
def serve(
    model_dirs: list[Path] = typer.Argument(..., help="Model (or run) folders; each is served under its folder's name."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, help="Port to listen on."),
    max_batch: int = typer.Option(64, help="Most inputs per micro-batch."),
    max_wait_ms: float = typer.Option(5.0, help="Longest wait for a micro-batch to fill, in milliseconds."),
    api_key: str | None = typer.Option(None, envvar="TASKKIT_API_KEY", show_envvar=True,
                                      help="Require 'Authorization: Bearer KEY' on every route but /healthz, /readyz."),
    max_text_chars: int = typer.Option(10_000, help="Longest text a request may send (413 beyond)."),
    max_inputs: int = typer.Option(256, help="Most inputs one request may send (413 beyond)."),
) -> None:
    """Serve models over HTTP (FastAPI + uvicorn, micro-batched) until SIGTERM / Ctrl-C."""
    from taskkit.serve.server import serve as run_server

    run_server(model_dirs, host, port, max_batch=max_batch, max_wait_ms=max_wait_ms, api_key=api_key,
               max_text_chars=max_text_chars, max_inputs=max_inputs)


@app.command()
def export(
    model_dir: Path = typer.Argument(..., help="A model folder (or a run's output folder)."),
    out: Path = typer.Argument(..., help="The exported model folder (new, empty, or a taskkit model folder)."),
    format: str = typer.Option("onnx", "--format", help="Export format: onnx."),
    quantize: str | None = typer.Option(None, "--quantize", help="int8: dynamic int8 weights (onnxruntime)."),
) -> None:
    """Export a model to ONNX: a model folder `taskkit predict` runs with onnxruntime, without torch."""
    from taskkit.export import export_model

    path = export_model(model_dir, out, format, quantize)
    typer.echo(f"exported {model_dir} to {path} ({format}{', ' + quantize if quantize else ''})")


def _add_plugin_commands() -> None:
    from taskkit.plugins import add_commands, one_line_warnings

    one_line_warnings()  # a faulty plugin is one "warning: ..." line on stderr
    add_commands(app)  # once per process; a plugin whose hook fails is left out with a warning


def _click_exceptions() -> tuple[tuple[type[ExitError], ...], tuple[type[AbortError], ...], tuple[type[UsageError], ...]]:
    """(exit, abort, usage-error) exception classes: typer >= 0.2x raises those of its own
    vendored click (``typer._click``), older typer those of click itself."""
    import click

    exits: list[type[ExitError]] = [click.exceptions.Exit, typer.Exit]
    aborts: list[type[AbortError]] = [click.exceptions.Abort, typer.Abort]
    errors: list[type[UsageError]] = [click.ClickException]
    try:
        from typer._click.exceptions import ClickException as Vendored
    except ImportError:
        pass
    else:
        errors.append(Vendored)
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
