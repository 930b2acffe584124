"""CSV, TSV and JSONL files (optionally gzipped) into row dicts that remember their line.

Every problem is a :class:`TaskkitError` naming the file and the line, so a user with a
100,000-line file knows where to look.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path
from typing import Any, Iterator

from taskkit.errors import TaskkitError

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl"}


def file_format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    fmt = FORMATS.get(suffixes[-1]) if suffixes else None
    if fmt is None:
        raise TaskkitError(f"{path}: unknown file type (expected .csv, .tsv or .jsonl, optionally .gz)")
    return fmt


def _open_text(path: Path) -> io.TextIOBase:
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
        except (OSError, EOFError) as exc:
            raise TaskkitError(f"{path}: not a valid gzip file ({exc})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise TaskkitError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x})") from None
    return io.StringIO(text, newline="")


def _jsonl_rows(path: Path, stream: io.TextIOBase) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TaskkitError(f"{path}:{number}: invalid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise TaskkitError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
        yield number, row


def _table_rows(path: Path, stream: io.TextIOBase, delimiter: str) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.DictReader(stream, delimiter=delimiter)
    if not reader.fieldnames:
        raise TaskkitError(f"{path}: empty file (expected a header row)")
    try:
        for row in reader:
            if None in row:
                raise TaskkitError(f"{path}:{reader.line_num}: more fields than the header has")
            if not any((v or "").strip() for v in row.values()):
                continue
            yield reader.line_num, row
    except csv.Error as exc:
        raise TaskkitError(f"{path}:{reader.line_num}: malformed row ({exc})") from None


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """All rows of a file; each row gets ``_where`` = ``"file:line"``."""
    path = Path(path)
    fmt = file_format(path)
    stream = _open_text(path)
    if fmt == "jsonl":
        rows = _jsonl_rows(path, stream)
    else:
        rows = _table_rows(path, stream, "," if fmt == "csv" else "\t")
    records = []
    for number, row in rows:
        row["_where"] = f"{path}:{number}"
        records.append(row)
    if not records:
        raise TaskkitError(f"{path}: no examples in file")
    return records


def require_text(row: dict[str, Any], column: str) -> str:
    """The non-empty string in ``column``, or an error naming the line."""
    if column not in row:
        present = ", ".join(k for k in row if not k.startswith("_"))
        raise TaskkitError(f"{row['_where']}: missing column {column!r} (found: {present})")
    value = row[column]
    if not isinstance(value, str):
        raise TaskkitError(f"{row['_where']}: column {column!r} must be text, got {type(value).__name__}")
    if not value.strip():
        raise TaskkitError(f"{row['_where']}: empty text in column {column!r}")
    return value
