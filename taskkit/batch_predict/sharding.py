"""Sharded prediction over the processes of ``accelerate launch`` / ``torchrun``.

Process ``rank`` of ``size`` predicts chunks ``c`` with ``c % size == rank`` into its part file
``.OUTPUT.part-RANK-of-SIZE`` beside OUTPUT; after a barrier the main process appends the parts'
chunks to OUTPUT in input order and removes the parts. Accelerate's :class:`PartialState` sets the
processes up (gloo on CPU, one GPU each where there are several); a single process never imports
torch for this (an ONNX model folder predicts without it).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from taskkit.errors import TaskkitError

COPY = 1 << 20


@dataclass
class World:
    rank: int = 0
    size: int = 1
    state: Any = None  # accelerate's PartialState when several processes run

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def current(cls) -> World:
        """This process's place among those a launcher started (``WORLD_SIZE`` > 1), else alone."""
        try:
            size = int(os.environ.get("WORLD_SIZE", "1"))
        except ValueError:
            size = 1
        if size <= 1:
            return cls()
        import torch
        from accelerate import PartialState

        state = PartialState(cpu=not torch.cuda.is_available())
        return cls(state.process_index, state.num_processes, state)

    def wait(self) -> None:
        if self.state is not None:
            self.state.wait_for_everyone()


def part_path(output: Path, rank: int, size: int) -> Path:
    return output.parent / f".{output.name}.part-{rank}-of-{size}"


def open_part(path: Path) -> IO[bytes]:
    """This process's part file, made new; a leftover of an interrupted sharded run (prediction
    records, one JSON object a line, the last maybe torn) is replaced; anything else is refused."""
    try:
        return path.open("xb")
    except FileExistsError:
        pass
    with path.open("rb") as handle:
        lines = handle.read().split(b"\n")[:-1]  # the part after the last newline may be torn
    try:
        ours = all(isinstance(json.loads(line), dict) for line in lines)
    except ValueError:
        ours = False
    if not ours or path.is_symlink():
        raise TaskkitError(f"{path}: exists and is not a part of an earlier taskkit predict run; move it away")
    return path.open("wb")


def _take(handle: IO[bytes], lines: int) -> bytes:
    """The next ``lines`` lines of ``handle`` (fewer at its end)."""
    got = []
    for _ in range(lines):
        line = handle.readline()
        if not line:
            break
        got.append(line)
    return b"".join(got)


def merge(output: Path, size: int, first: int, chunk_size: int, sink: IO[bytes]) -> int:
    """Append the parts' chunks to ``sink`` in input order (chunk ``first``, ``first + 1``...,
    each from part ``chunk % size``); the parts are removed afterwards. Returns the rows merged."""
    parts = [part_path(output, rank, size) for rank in range(size)]
    missing = [p for p in parts if not p.is_file()]
    if missing:
        raise TaskkitError(f"{missing[0]}: a process's part of the output is missing")
    rows = 0
    with contextlib.ExitStack() as stack:
        handles = [stack.enter_context(p.open("rb")) for p in parts]
        chunk = first
        while block := _take(handles[chunk % size], chunk_size):
            sink.write(block)
            sink.flush()
            rows += block.count(b"\n")
            chunk += 1
        left = [p for p, h in zip(parts, handles) if h.read(1)]
        if left:
            raise TaskkitError(f"{left[0]}: rows left after merging the parts in order: a process wrote "
                               "chunks out of turn")
    for part in parts:
        with contextlib.suppress(OSError):
            part.unlink()
    return rows
