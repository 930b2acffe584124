"""Token-level data: CoNLL files, tag schemes (IOB1, IOB2, BIOES -> IOB2), words and character spans.

Everything here is plain Python; the NER task builds on it. Internally tags are always IOB2
(``B-X`` starts an entity, ``I-X`` continues it), the scheme seqeval scores by default.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

from taskkit.data.readers import text_lines
from taskkit.data.values import has_text, show
from taskkit.errors import TaskkitError

SCHEMES = ("auto", "iob1", "iob2", "bioes")
#: words for raw text: runs of word characters (keeping inner ' - . as in "U.S" or "don't"), or one symbol
WORD = re.compile(r"\w+(?:['’\-.]\w+)*|[^\w\s]")


def _split_tag(tag: str, where: str) -> tuple[str, str]:
    if tag == "O":
        return "O", ""
    prefix, sep, kind = tag.partition("-")
    if not sep or prefix not in ("B", "I", "E", "S") or not kind:
        raise TaskkitError(f"{where}: tag {tag!r} is neither O nor B-/I-/E-/S- followed by a type")
    return prefix, kind


def detect_scheme(tags: Sequence[Sequence[str]]) -> str:
    """``bioes`` when any E-/S- tag appears, else ``iob1`` (which also reads IOB2 correctly)."""
    return "bioes" if any(t[:2] in ("E-", "S-") for seq in tags for t in seq) else "iob1"


def to_iob2(tags: Sequence[str], scheme: str, wheres: Sequence[str]) -> list[str]:
    """One sentence's tags in IOB2; ``wheres[i]`` names tag i's line for errors.

    IOB1 (and lenient IOB2 input) repair: an ``I-X`` that does not continue an ``X`` entity
    starts one. Strict ``iob2`` and ``bioes`` cannot repair that: it is an error.
    """
    out: list[str] = []
    prev_prefix, prev_kind = "O", ""
    for i, tag in enumerate(tags):
        prefix, kind = _split_tag(tag, wheres[i])
        open_same = prev_prefix in ("B", "I") and prev_kind == kind
        if scheme in ("iob1", "iob2"):
            if prefix in ("E", "S"):
                raise TaskkitError(f"{wheres[i]}: tag {tag!r} is BIOES, but the data is {scheme.upper()}")
            if prefix == "I" and not open_same:
                if scheme == "iob2":
                    raise TaskkitError(f"{wheres[i]}: tag {tag!r} continues no {kind} entity (IOB2 needs B-{kind} first)")
                prefix = "B"
            out.append("O" if prefix == "O" else f"{prefix}-{kind}")
        else:  # bioes: an entity is S, or B I* E
            if prefix in ("I", "E") and not open_same:
                raise TaskkitError(f"{wheres[i]}: tag {tag!r} continues no {kind} entity (BIOES needs B-{kind} first)")
            if prev_prefix in ("B", "I") and prefix not in ("I", "E"):
                where = wheres[i - 1]
                raise TaskkitError(f"{where}: entity {prev_kind} opened with B-/I- is never closed by E-{prev_kind}")
            out.append("O" if prefix == "O" else f"{'B' if prefix in ('B', 'S') else 'I'}-{kind}")
        prev_prefix, prev_kind = ("O", "") if prefix in ("O", "E", "S") else (prefix, kind)
    if scheme == "bioes" and prev_prefix in ("B", "I"):
        raise TaskkitError(f"{wheres[-1]}: entity {prev_kind} opened with B-/I- is never closed by E-{prev_kind}")
    return out


def read_conll(path: Path, text: str) -> list[tuple[list[str], list[str], list[str]]]:
    """Sentences of a ``token<TAB>tag`` file as (tokens, tags, line of each token)."""
    sentences: list[tuple[list[str], list[str], list[str]]] = []
    tokens: list[str] = []
    tags: list[str] = []
    wheres: list[str] = []
    # lines end at "\n" only: U+2028, U+0085 or a form feed inside a token never start a new line
    for number, line in enumerate(text_lines(text), start=1):
        if not line.strip(" \t"):
            if tokens:
                sentences.append((tokens, tags, wheres))
                tokens, tags, wheres = [], [], []
            continue
        if line.startswith("-DOCSTART-"):
            continue
        # columns: tab-separated, else space-separated (CoNLL-2003); a token keeps any other space
        line = line.rstrip(" \t")
        parts = [p.strip(" ") for p in line.split("\t")] if "\t" in line else [p for p in line.split(" ") if p]
        where = f"{path}:{number}"
        if len(parts) < 2 or not parts[-1]:
            raise TaskkitError(f"{where}: expected 'token<TAB>tag', found one column")
        if not parts[0]:
            raise TaskkitError(f"{where}: empty token")
        tokens.append(parts[0])
        tags.append(parts[-1])
        wheres.append(where)
    if tokens:
        sentences.append((tokens, tags, wheres))
    return sentences


def join_words(tokens: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    """A text for pre-split words (joined by spaces) and each word's character span in it."""
    offsets, position = [], 0
    for token in tokens:
        offsets.append((position, position + len(token)))
        position += len(token) + 1
    return " ".join(tokens), offsets


def split_words(text: str, cuts: Sequence[int] = ()) -> tuple[list[str], list[tuple[int, int]]]:
    """Words of raw text with their character spans; a word is also cut at each offset in ``cuts``
    (entity boundaries that fall inside a word, as in "Paris-based")."""
    cut_set = set(cuts)
    offsets: list[tuple[int, int]] = []
    for match in WORD.finditer(text):
        start = match.start()
        for position in range(match.start() + 1, match.end()):
            if position in cut_set:
                offsets.append((start, position))
                start = position
        offsets.append((start, match.end()))
    return [text[s:e] for s, e in offsets], offsets


def tags_from_spans(text: str, spans: Any, where: str) -> tuple[list[str], list[tuple[int, int]], list[str]]:
    """(words, offsets, IOB2 tags) for raw text with entity character spans; bad spans are errors."""
    if not isinstance(spans, list):
        raise TaskkitError(f"{where}: 'entities' must be a list of {{start, end, type}}")
    checked: list[tuple[int, int, str]] = []
    for span in spans:
        kind = span.get("type", span.get("label")) if isinstance(span, dict) else None
        start, end = (span.get("start"), span.get("end")) if isinstance(span, dict) else (None, None)
        if not isinstance(start, int) or not isinstance(end, int) or isinstance(start, bool) \
                or isinstance(end, bool) or not isinstance(kind, str) or not kind.strip():
            raise TaskkitError(f"{where}: each entity needs integer 'start', 'end' and a 'type', got {show(span, 80)}")
        if not 0 <= start < end <= len(text):
            raise TaskkitError(f"{where}: entity span [{start}, {end}) out of range for a text of {len(text)} characters")
        if not has_text(text[start:end]):
            raise TaskkitError(f"{where}: entity span [{start}, {end}) covers only spaces or invisible characters")
        checked.append((start, end, kind.strip()))
    checked.sort()
    for (s1, e1, _), (s2, e2, _) in pairwise(checked):
        if s2 < e1:
            raise TaskkitError(f"{where}: entity spans [{s1}, {e1}) and [{s2}, {e2}) overlap")
    words, offsets = split_words(text, [x for s, e, _ in checked for x in (s, e)])
    tags = ["O"] * len(words)
    for start, end, kind in checked:
        inside = [i for i, (ws, we) in enumerate(offsets) if ws >= start and we <= end]
        for n, i in enumerate(inside):
            tags[i] = f"{'B' if n == 0 else 'I'}-{kind}"
    return words, offsets, tags


def entities_from_tags(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """(type, first word, last word) of each entity in an IOB2 tag sequence (stray I- starts one)."""
    found: list[tuple[str, int, int]] = []
    kind, first = "", -1
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, _, this = tag.partition("-")
        if kind and not (prefix == "I" and this == kind):
            found.append((kind, first, i - 1))
            kind = ""
        if prefix == "B" or (prefix == "I" and not kind):
            kind, first = this, i
    return found
