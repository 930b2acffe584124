"""The output file of a streamed predict: who may write it, where a resumed run starts, appending.

Ownership (as for model folders, :mod:`taskkit.ownership`): an existing OUTPUT is the user's and is
refused, unless ``resume`` (it is this run's own earlier output: continue it) or ``overwrite``
(replace it). Records are appended a chunk at a time and flushed, so a SIGKILL loses at most the
torn tail of the chunk being written; :func:`resume_point` drops that tail, and the rest of the
unfinished chunk, so that the resumed run recomputes whole chunks and the file ends byte for byte
as an uninterrupted run's.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO

from taskkit.errors import TaskkitError

BLOCK = 1 << 20


def check_output(output: Path, input: str | Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse, before any work, an OUTPUT this run may not write (one line naming it)."""
    if resume and overwrite:
        raise TaskkitError("--resume continues OUTPUT and --overwrite replaces it: give one of them")
    if output.is_dir():
        raise TaskkitError(f"{output}: is a folder, expected the output file")
    if str(input) != "-" and Path(input).exists() and output.exists() and os.path.samefile(input, output):
        raise TaskkitError(f"{output}: is the input file; write the predictions to another file")
    if output.exists() and not (resume or overwrite):
        raise TaskkitError(f"{output}: already exists (taskkit never replaces a file it was not told to): "
                           "--resume continues an interrupted run into it, --overwrite replaces it")
    if not output.parent.is_dir():
        raise TaskkitError(f"{output.parent}: no such folder for --output")


def _line_ends(handle: IO[bytes], wanted: int | None) -> tuple[int, int]:
    """(complete lines, byte offset after the ``wanted``-th line end, or after the last one)."""
    lines, offset, end = 0, 0, 0
    handle.seek(0)
    while block := handle.read(BLOCK):
        count = block.count(b"\n")
        if wanted is not None and lines + count >= wanted:
            at = -1
            for _ in range(wanted - lines):
                at = block.index(b"\n", at + 1)
            return wanted, offset + at + 1
        if count:
            end = offset + block.rindex(b"\n") + 1
        lines += count
        offset += len(block)
    return lines, end


def resume_point(output: Path, chunk_size: int) -> tuple[int, int]:
    """(rows kept, bytes kept) of an earlier run's OUTPUT: its complete rows (a torn last line
    dropped), rounded down to whole chunks of ``chunk_size`` (recomputed as they were first
    computed); (0, 0) if there is no OUTPUT."""
    if not output.exists():
        return 0, 0
    with output.open("rb") as handle:
        rows, end = _line_ends(handle, None)
        if rows:
            start = max(0, end - BLOCK)
            handle.seek(start)
            last = handle.read(end - start).rstrip(b"\n").rsplit(b"\n", 1)[-1]
            try:
                ok = isinstance(json.loads(last), dict)
            except ValueError:
                ok = False
            if not ok:
                raise TaskkitError(f"{output}:{rows}: not a prediction record: --resume continues a file that "
                                   "taskkit predict --output wrote")
        keep = rows - rows % chunk_size
        return _line_ends(handle, keep) if keep else (0, 0)


def open_output(output: Path, keep_bytes: int | None) -> IO[bytes]:
    """OUTPUT opened for appending: new (``keep_bytes`` None: it must not exist), or an earlier
    run's cut to its first ``keep_bytes`` bytes (``0``: replaced)."""
    if keep_bytes is None:
        try:
            return output.open("xb")
        except FileExistsError:
            raise TaskkitError(f"{output}: already exists (created while this run worked): "
                               "--resume continues it, --overwrite replaces it") from None
    handle = output.open("ab" if output.exists() else "xb")
    handle.truncate(keep_bytes)
    handle.seek(keep_bytes)
    return handle


def write_chunk(handle: IO[bytes], lines: list[str]) -> None:
    """Append one chunk's records and hand them to the system: a kill can only tear this chunk."""
    handle.write("".join(lines).encode("utf-8"))
    handle.flush()
