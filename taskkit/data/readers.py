"""CSV, TSV and JSONL files (optionally gzipped) into row dicts that remember their line, and the
inputs of ``taskkit predict`` (a file of one text a line, a table, or ``-`` for stdin).

Every problem is a :class:`TaskkitError` naming the file and the line, so a user with a
100,000-line file knows where to look. A row's line is the line it starts on (a quoted CSV
field may span several).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import sys
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from taskkit.data.values import check_text, require_text, show_name
from taskkit.errors import TaskkitError

__all__ = ["FORMATS", "file_format", "jsonl_rows", "read_inputs", "read_records", "require_text", "table_rows"]

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl"}
#: the largest CSV field read: the csv module's default (128 KiB) refuses a long document
FIELD_LIMIT = 2**31 - 1
STDIN = "-"


def file_format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    fmt = FORMATS.get(suffixes[-1]) if suffixes else None
    if fmt is None:
        raise TaskkitError(f"{path}: unknown file type (expected .csv, .tsv or .jsonl, optionally .gz)")
    return fmt


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise TaskkitError(f"{path}: no such file")
    if path.is_dir():
        raise TaskkitError(f"{path}: is a folder, expected a file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TaskkitError(f"{path}: cannot read ({exc.strerror})") from None
    if path.suffix.lower() == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise TaskkitError(f"{path}: not a valid gzip file ({exc})") from None
    return raw


def decode(raw: bytes, name: str | Path) -> str:
    """UTF-8 text (a byte order mark dropped); a bad byte is an error naming its line."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + before.count(b"\r") - before.count(b"\r\n") + 1
        raise TaskkitError(f"{name}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x})") from None


def _open_text(path: Path) -> io.StringIO:
    return io.StringIO(decode(_read_bytes(path), path), newline="")


class _DuplicateKey(Exception):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    row = dict(pairs)
    if len(row) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return row


def jsonl_rows(path: Path | str, stream: Iterable[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, row) of JSON Lines read from ``stream`` (lines of text), lazily."""
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line, object_pairs_hook=_unique_keys)
        except _DuplicateKey as exc:
            raise TaskkitError(f"{path}:{number}: duplicate key {show_name(str(exc.args[0]))!r} in a JSON object") from None
        except RecursionError:
            raise TaskkitError(f"{path}:{number}: invalid JSON (nested too deeply)") from None
        except json.JSONDecodeError as exc:
            raise TaskkitError(f"{path}:{number}: invalid JSON ({exc.msg})") from None
        except ValueError:  # an integer of more digits than Python converts
            raise TaskkitError(f"{path}:{number}: invalid JSON (a number too long to read)") from None
        if not isinstance(row, dict):
            raise TaskkitError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
        yield number, row


def table_rows(path: Path | str, stream: Iterable[str], delimiter: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, row) of a CSV / TSV table read from ``stream`` (lines of text), lazily."""
    reader = csv.reader(stream, delimiter=delimiter, strict=True)
    kind = "CSV" if delimiter == "," else "TSV"
    old_limit = csv.field_size_limit(FIELD_LIMIT)
    start, header = 1, None
    try:
        for fields in reader:
            if not fields:  # a blank line
                start = reader.line_num + 1
                continue
            if header is None:
                header = fields
                _check_header(path, start, header)
            elif len(fields) > len(header):
                raise TaskkitError(f"{path}:{start}: more fields than the header has "
                                   f"({len(fields)} fields, {len(header)} columns)")
            elif any(v.strip() for v in fields):  # rows of empty fields are skipped
                yield start, dict(zip(header, fields + [""] * (len(header) - len(fields))))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise TaskkitError(f"{path}:{start}: malformed {kind} row ({exc})") from None
    finally:
        csv.field_size_limit(old_limit)
    if header is None:
        raise TaskkitError(f"{path}: empty file (expected a header row)")


def _check_header(path: Path | str, line: int, header: list[str]) -> None:
    seen: set[str] = set()
    for name in header:
        if name and name in seen:
            raise TaskkitError(f"{path}:{line}: duplicate column {show_name(name)!r} in the header "
                               "(a reader would silently keep only one of them)")
        seen.add(name)


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """All rows of a file; each row gets ``_where`` = ``"file:line"``."""
    path = Path(path)
    fmt = file_format(path)
    stream = _open_text(path)
    if fmt == "jsonl":
        rows: Any = jsonl_rows(path, stream)
    else:
        rows = table_rows(path, stream, "," if fmt == "csv" else "\t")
    records = []
    for number, row in rows:
        row["_where"] = f"{path}:{number}"
        records.append(row)
    if not records:
        raise TaskkitError(f"{path}: no examples in file")
    return records


def text_lines(text: str) -> list[str]:
    """Lines split on ``\\n`` only (``\\r\\n`` too): U+0085, U+2028, U+2029, ``\\v`` or ``\\f``
    inside a line never split it, unlike :meth:`str.splitlines`. A final newline ends the
    last line rather than starting an empty one."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def read_inputs(spec: str | Path) -> list[dict[str, Any]]:
    """What ``taskkit predict --input`` reads: each input a dict with ``_where`` naming its line.

    A ``.csv``/``.tsv``/``.jsonl`` file gives its rows (the task picks its fields); any other
    file, or ``-`` (stdin), is plain text, one text a line, so that output row i is input line
    i. Blank lines at the end are ignored; a blank line between texts is an error naming it.
    """
    name = str(spec)
    if name == STDIN:
        name, text = "<stdin>", decode(sys.stdin.buffer.read(), "<stdin>")
    else:
        path = Path(spec)
        if any(s.lower() in FORMATS for s in path.suffixes):
            return read_records(path)
        text = decode(_read_bytes(path), path)
    lines = text_lines(text)
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise TaskkitError(f"{name}: no texts to predict")
    inputs = []
    for number, line in enumerate(lines, start=1):
        where = f"{name}:{number}"
        if not line.strip():
            raise TaskkitError(f"{where}: blank line (each line is one text to predict, so that output row i "
                               "is input line i: remove it)")
        inputs.append({"text": check_text(line, where), "_where": where})
    return inputs
