"""What a text, a label and a character offset may be: one rule for every reader and for predict.

A text must hold at least one visible character: whitespace, zero-width characters (U+200B,
U+200C, U+200D, U+2060, U+FEFF...), control characters and lone combining marks do not count,
since the tokenizer turns such a text into nothing and the model would score an empty input.
A label is a string or an integer (``1`` becomes ``"1"``); a float (NaN included), a bool, a
list or an object is an error, and so is a file mixing integer and string labels. Offsets are
integers (``true`` is not offset 1). Each rule raises a :class:`TaskkitError` naming ``where``.
"""

from __future__ import annotations

import math
import unicodedata
from typing import Any

from taskkit.errors import TaskkitError

#: Unicode categories that show nothing: controls, formats (zero-width), surrogates, separators,
#: and combining marks without a base character
INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Zs", "Zl", "Zp", "Mn", "Me"})


def has_text(value: str) -> bool:
    """Whether ``value`` has a visible character (the first one found ends the scan)."""
    return any(not ch.isspace() and unicodedata.category(ch) not in INVISIBLE for ch in value)


def show(value: Any, limit: int = 40) -> str:
    """A short one-line rendering of a user's value for an error message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def show_name(name: str) -> str:
    """A column name as typed, or its repr when it would break the one-line message."""
    return name if name.isprintable() else repr(name)


def kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else "a float"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def check_text(value: Any, where: str, column: str | None = None) -> str:
    """``value`` if it is a string with visible content, else an error naming ``where`` (and ``column``)."""
    field = f"column {column!r}" if column else "the input"
    if not isinstance(value, str):
        raise TaskkitError(f"{where}: {field} must be text, got {kind_of(value)}")
    if not has_text(value):
        why = "" if not value.strip() else " (only zero-width, control or other invisible characters)"
        raise TaskkitError(f"{where}: empty text{f' in {field}' if column else ''}{why}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise TaskkitError(f"{where}: text in {field} has an unpaired surrogate "
                           f"{value[exc.start]!r} at character {exc.start}") from None
    return value


def require_text(row: dict[str, Any], column: str) -> str:
    """The text in ``column`` of a row (which names its line in ``_where``), or an error."""
    where = row.get("_where", "input")
    if column not in row:
        present = ", ".join(show_name(k) for k in row if not k.startswith("_"))
        raise TaskkitError(f"{where}: missing column {column!r} (found: {present or 'none'})")
    return check_text(row[column], where, column)


def label_name(value: Any, where: str, column: str) -> str:
    """A label as the model names it: a stripped string, or an integer as a string."""
    if value is None or (isinstance(value, str) and not has_text(value)):
        raise TaskkitError(f"{where}: no label (column {column!r} is missing or empty)")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        hint = " (for several labels use a 'labels' column)" if isinstance(value, list) and column == "label" else ""
        raise TaskkitError(f"{where}: label {show(value)} in column {column!r} must be a string or an integer, "
                           f"got {kind_of(value)}{hint}")
    return str(value).strip()


def _integer_text(value: str) -> bool:
    text = value.strip()
    return text.lstrip("-").isdigit() and text.isascii() and str(int(text)) == text


class LabelTypes:
    """Integer and string labels may mix in one file only as ``1`` and ``"1"`` (the same class);
    ``1`` beside ``"positive"`` (or ``"01"``) is a broken export, not two kinds of class."""

    def __init__(self) -> None:
        self.number: tuple[Any, str] | None = None  # the first integer label and its line
        self.word: tuple[Any, str] | None = None  # the first string label that is no integer

    def see(self, value: Any, where: str, column: str) -> None:
        if isinstance(value, int):
            self.number = self.number or (value, where)
        elif isinstance(value, str) and not _integer_text(value):
            self.word = self.word or (value, where)
        if self.number and self.word:
            first, other = (self.number, self.word) if where == self.word[1] else (self.word, self.number)
            raise TaskkitError(f"{where}: label {show(other[0])} in column {column!r} mixes types with label "
                               f"{show(first[0])} at {first[1]}: use integers or names for all labels in a file")


def offset(value: Any, where: str, field: str) -> int:
    """A character offset: an integer (a bool or a float is an error)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TaskkitError(f"{where}: {field} must be an integer character offset, got {show(value)}")
    return value
