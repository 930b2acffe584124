"""``taskkit predict MODEL --input FILE --output FILE``: chunk by chunk, memory flat, resumable.

The input is read lazily (:mod:`.input_rows`) in chunks of ``chunk_size`` rows; each chunk is
predicted (the records ``taskkit predict`` prints) and appended to OUTPUT, flushed, before the next
is read. Under ``accelerate launch`` / ``torchrun`` (several processes) chunk ``c`` is process
``c % world``'s: each writes its chunks to a part file, the main process merges them in input
order into OUTPUT (:mod:`.sharding`). A chunk is always the same rows, predicted in the same
batches, so a resumed or sharded run writes what one uninterrupted process writes.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from typing_extensions import Self

from taskkit.atomic import fault
from taskkit.batch_predict.input_rows import InputRows
from taskkit.batch_predict.output_rows import check_output, open_output, resume_point, write_chunk
from taskkit.errors import TaskkitError

if TYPE_CHECKING:
    from taskkit.contracts import Predictor

CHUNK_SIZE = 2048


@dataclass(frozen=True)
class Written:
    """What a streamed predict wrote: ``rows`` records to OUTPUT, by ``processes`` processes."""

    rows: int
    processes: int = 1


def chunks(rows: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    while chunk := list(itertools.islice(rows, size)):
        yield chunk


def record_lines(predictor: Predictor, rows: list[dict[str, Any]]) -> list[str]:
    """One JSON line per row: the records ``taskkit predict`` prints (:func:`taskkit.api.predict`)."""
    from taskkit.api import predict

    return [json.dumps(r, ensure_ascii=False) + "\n" for r in predict(predictor, rows)]


def predict_file(model: str | Path | Predictor, input: str | Path, output: str | Path, *, resume: bool = False,
                 overwrite: bool = False, chunk_size: int = CHUNK_SIZE, progress: bool = True) -> Written | None:
    """Predict every row of ``input`` into the JSON Lines file ``output``; returns what this run
    wrote (``None`` on a launched process other than the main one). ``resume``: continue an
    interrupted run's ``output``; ``overwrite``: replace it."""
    from taskkit.batch_predict import sharding

    if chunk_size < 1:
        raise TaskkitError(f"--chunk-size must be at least 1, got {chunk_size}")
    output = Path(output)
    check_output(output, input, resume=resume, overwrite=overwrite)  # on every process, before any work
    world = sharding.World.current()
    if world.size > 1 and str(input) == "-":
        raise TaskkitError("--input - (stdin) cannot be shared by several processes: give a file")
    kept_rows, kept_bytes = resume_point(output, chunk_size) if resume else (0, 0)
    first = kept_rows // chunk_size
    predictor = _load(model)
    if world.size == 1:
        with InputRows(input) as source:  # a missing or unknown input is refused before OUTPUT is made
            new = not output.exists()
            with open_output(output, kept_bytes if (resume or overwrite) else None) as sink:
                try:
                    return Written(_run(predictor, source, sink, first, chunk_size, 0, 1, progress))
                except TaskkitError as exc:
                    if new and sink.tell() == 0:
                        output.unlink(missing_ok=True)
                        raise
                    raise TaskkitError(f"{exc} (the records before it are in {output}: fix the input, then "
                                       "--resume continues)") from None
    with InputRows(input) as source, sharding.open_part(sharding.part_path(output, world.rank, world.size)) as sink:
        _run(predictor, source, sink, first, chunk_size, world.rank, world.size, progress and world.is_main)
    world.wait()
    merged = None
    if world.is_main:
        with open_output(output, kept_bytes if (resume or overwrite) else None) as sink:
            merged = Written(sharding.merge(output, world.size, first, chunk_size, sink), world.size)
    world.wait()
    return merged


def _load(model: str | Path | Predictor) -> Predictor:
    from taskkit.api import load

    return load(model) if isinstance(model, (str, Path)) else model


def _run(predictor: Predictor, source: InputRows, sink: IO[bytes], first: int, chunk_size: int,
         rank: int, world: int, progress: bool) -> int:
    """Predict chunks ``first``, ``first + 1``... of ``source`` that are ``rank``'s (``c % world``)."""
    written = 0
    with _Progress(source, progress) as bar:
        seen = 0
        for index, chunk in enumerate(chunks(iter(source), chunk_size)):
            seen += len(chunk)
            if index < first or index % world != rank:
                bar.update(seen)
                continue
            lines = record_lines(predictor, chunk)
            if os.environ.get("TASKKIT_FAULT_AT") == f"predict-chunk-{index}":  # the kill tests: a torn chunk
                write_chunk(sink, ["".join(lines)[: sum(map(len, lines)) // 2]])
                fault(f"predict-chunk-{index}")
            write_chunk(sink, lines)  # flushed: a kill tears this chunk at most
            written += len(chunk)
            bar.update(seen)
        if seen < first * chunk_size:
            raise TaskkitError(f"{source.name} has {seen} rows but the output to resume already holds "
                               f"{first * chunk_size}: not an output of this input")
    return written


class _Progress:
    """A rich progress bar on stderr over the input's bytes (rows counted beside), shown only on a
    terminal and unless ``--quiet``."""

    def __init__(self, source: InputRows, enabled: bool) -> None:
        self.source, self.bar, self.task = source, None, None
        if not enabled:
            return
        from rich.console import Console

        console = Console(stderr=True)
        if not console.is_terminal:
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("predict"), BarColumn(), TextColumn("{task.fields[rows]:,} rows"),
                            TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False)
        self.task = self.bar.add_task("predict", total=source.size, rows=0)

    def __enter__(self) -> Self:
        if self.bar is not None:
            self.bar.start()
        return self

    def update(self, rows: int) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, completed=self.source.position(), rows=rows)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
