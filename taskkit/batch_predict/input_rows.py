"""The rows of a ``taskkit predict --input`` file, read lazily: constant memory whatever its size.

The same files and the same rules as :func:`taskkit.data.readers.read_inputs`: a ``.jsonl`` /
``.csv`` / ``.tsv`` file (optionally ``.gz``) gives its rows through the readers' own row parsers;
any other file, or ``-`` (stdin), is plain text, one text a line, split at ``\\n`` only, a blank
line between texts an error naming it, blank lines at the end ignored. Every row names its line in
``_where``. :meth:`InputRows.position` is how far into the (compressed) file reading has got, for
a progress bar.
"""

from __future__ import annotations

import gzip
import io
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, cast

from typing_extensions import Self

from taskkit.data.readers import FORMATS, STDIN, file_format, jsonl_rows, table_rows
from taskkit.data.values import check_text
from taskkit.errors import TaskkitError


class InputRows:
    """An input file opened for one pass: iterate it for its rows (dicts with ``_where``)."""

    def __init__(self, spec: str | Path) -> None:
        self.name = "<stdin>" if str(spec) == STDIN else str(spec)
        path = Path(spec)
        self.format = "text"
        if str(spec) != STDIN and any(s.lower() in FORMATS for s in path.suffixes):
            self.format = file_format(path)
        self.size: int | None = None
        if str(spec) == STDIN:
            self._raw: IO[bytes] = sys.stdin.buffer
        else:
            if not path.exists():
                raise TaskkitError(f"{path}: no such file")
            if path.is_dir():
                raise TaskkitError(f"{path}: is a folder, expected a file")
            try:
                self._raw = path.open("rb")
            except OSError as exc:
                raise TaskkitError(f"{path}: cannot read ({exc.strerror})") from None
            self.size = path.stat().st_size
        self._gzip = str(spec) != STDIN and path.suffix.lower() == ".gz"
        self._binary = cast(IO[bytes], gzip.GzipFile(fileobj=self._raw, mode="rb")) if self._gzip else self._raw

    def position(self) -> int:
        """Bytes of the file read so far (of the compressed file for ``.gz``)."""
        try:
            return self._raw.tell()
        except (OSError, ValueError):
            return 0

    def close(self) -> None:
        if self._raw is not sys.stdin.buffer:
            self._raw.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _byte_lines(self) -> Iterator[bytes]:
        try:
            yield from self._binary  # split at b"\n" only
        except (OSError, EOFError, zlib.error) as exc:
            if self._gzip:
                raise TaskkitError(f"{self.name}: not a valid gzip file ({exc})") from None
            raise TaskkitError(f"{self.name}: cannot read ({exc})") from None

    def _text_lines(self, universal: bool) -> Iterator[str]:
        """Decoded lines, each with its line end; ``universal``: a lone ``\\r`` ends a line too (as
        the table readers read a whole file), else lines end at ``\\n`` only."""
        number = 0
        for raw in self._byte_lines():
            number += 1
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise TaskkitError(f"{self.name}:{number}: not UTF-8 text (byte 0x{raw[exc.start]:02x})") from None
            if universal and "\r" in line.rstrip("\r\n"):
                parts = list(io.StringIO(line, newline=""))
                number += len(parts) - 1
                yield from parts
            else:
                yield line

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self.format == "text":
            yield from self._plain_rows()
            return
        lines = self._text_lines(universal=True)
        if self.format == "jsonl":
            rows: Iterator[tuple[int, dict[str, Any]]] = jsonl_rows(self.name, lines)
        else:
            rows = table_rows(self.name, lines, "," if self.format == "csv" else "\t")
        seen = False
        for number, row in rows:
            row["_where"] = f"{self.name}:{number}"
            seen = True
            yield row
        if not seen:
            raise TaskkitError(f"{self.name}: no examples in file")

    def _plain_rows(self) -> Iterator[dict[str, Any]]:
        blank: str | None = None  # the first blank line since the last text: an error if a text follows
        seen = False
        for number, line in enumerate(self._text_lines(universal=False), start=1):
            text = line.removesuffix("\n").removesuffix("\r")
            where = f"{self.name}:{number}"
            if not text.strip():
                blank = blank or where
                continue
            if blank is not None:
                raise TaskkitError(f"{blank}: blank line (each line is one text to predict, so that output row i "
                                   "is input line i: remove it)")
            seen = True
            yield {"text": check_text(text, where), "_where": where}
        if not seen:
            raise TaskkitError(f"{self.name}: no texts to predict")
