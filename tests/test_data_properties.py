"""Property-based reading (issue 11): generated CSV / TSV / JSONL classification files, CoNLL files and
relation files, valid and with one injected fault.

Valid files read (through the task's own ``read``) into exactly the examples they were generated
from, lines included; a broken file raises a one-line :class:`TaskkitError` naming the file and the
line of the fault; nothing else ever escapes, not even from arbitrary bytes.
"""

from __future__ import annotations

import gzip
import importlib
import io
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from taskkit import registry
from taskkit.contracts import RunConfig
from taskkit.errors import TaskkitError

ner = importlib.import_module("taskkit_plugins.ner")
relation = importlib.import_module("taskkit_plugins.relation")

#: TASKKIT_PROPERTY_EXAMPLES=2000 for a longer hunt; 60 keeps the file well under a minute
SETTINGS = settings(deadline=None, max_examples=int(os.environ.get("TASKKIT_PROPERTY_EXAMPLES", "60")),
                    suppress_health_check=[HealthCheck.too_slow])
NEWLINES = re.compile(r"\r\n|\r|\n")
INVISIBLE = ["\u200b", "\u200c\u200d", " \u2060\t", "\ufeff", "\x00\x01", "   ", "\u0301\u0300"]

#: any character but a surrogate; a text is valid when it also has a letter or a digit
CHARS = st.characters(blacklist_categories=("Cs",))
TEXTS = st.text(CHARS, min_size=1, max_size=25).filter(lambda t: any(c.isalnum() for c in t))
NAMES = st.sampled_from(["positive", "negative", "neutral", "very good", "Ünïcode", "a,b", 'say "hi"'])
NUMBERS = st.integers(min_value=-3, max_value=10**12)


class Folder:
    """A fresh temporary folder per generated example (pytest's tmp_path is one per test)."""

    def __enter__(self) -> Path:
        self.path = Path(tempfile.mkdtemp(prefix="taskkit-prop-"))
        return self.path

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _save(folder: Path, name: str, data: bytes, gz: bool) -> Path:
    path = folder / (name + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def _read_error(read: Any, path: Path) -> str:
    """The message of the TaskkitError reading ``path`` raises (any other exception fails the test)."""
    with pytest.raises(TaskkitError) as caught:
        read(path)
    message = str(caught.value)
    assert len(message.splitlines()) == 1 and message == message.strip(), repr(message)
    assert str(path) in message, message
    return message


def _assert_at(message: str, path: Path, line: int, *parts: str) -> None:
    assert message.startswith(f"{path}:{line}: "), (message, line)
    for part in parts:
        assert part in message, (message, part)


# --- classification tables and JSON lines ----------------------------------------------------
@st.composite
def classification_files(draw: Any) -> dict[str, Any]:
    fmt = draw(st.sampled_from(["csv", "tsv", "jsonl"]))
    numbers = draw(st.booleans())
    n = draw(st.integers(min_value=2, max_value=6))
    rows = [{"text": draw(TEXTS), "label": draw(NUMBERS if numbers else NAMES)} for _ in range(n)]
    if draw(st.booleans()) and fmt == "jsonl":  # multi-label rows
        rows = [{"text": r["text"], "labels": draw(st.lists(NAMES, max_size=3))} for r in rows]
    blanks = [draw(st.booleans()) for _ in rows]  # a blank line before the row
    fault = draw(st.sampled_from([None, None, "non_utf8", "empty_text", "missing_label", "missing_text",
                                  "extra_field", "duplicate_header", "unterminated_quote", "label_type",
                                  "invalid_json", "not_object", "duplicate_key", "mixed_types"]))
    if fault in ("extra_field", "duplicate_header", "unterminated_quote") and fmt == "jsonl":
        fault = None
    if fault in ("label_type", "invalid_json", "not_object", "duplicate_key", "mixed_types") and fmt != "jsonl":
        fault = None
    if fault == "mixed_types" and "labels" in rows[0]:
        fault = None
    at = n - 1 if fault == "unterminated_quote" else draw(st.integers(min_value=0, max_value=n - 1))
    bad_label = draw(st.sampled_from(["NaN", "1.5", "true", "false", '["a"]', '{"a": 1}', "-0.0"]))
    return {"fmt": fmt, "rows": rows, "blanks": blanks, "fault": fault, "at": at, "numbers": numbers,
            "bad_label": bad_label, "invisible": draw(st.sampled_from(INVISIBLE)), "gz": draw(st.booleans()),
            "crlf": draw(st.booleans()), "quote_all": draw(st.booleans())}


def _render_table(spec: dict[str, Any]) -> tuple[bytes, list[int]]:
    """The file's bytes and the line each row starts on."""
    delimiter = "," if spec["fmt"] == "csv" else "\t"
    ending = "\r\n" if spec["crlf"] else "\n"
    header = ["text", "label"] + (["label"] if spec["fault"] == "duplicate_header" else [])
    if spec["fault"] == "missing_text":
        header[0] = "review"
    out = io.StringIO()

    def writerow(fields: list[str]) -> None:
        # quoted when needed (a lone "\r" too, which csv.writer leaves bare unless it ends lines) or when drawn
        out.write(delimiter.join('"' + f.replace('"', '""') + '"' if spec["quote_all"] or re.search(rf'[{delimiter}"\r\n]', f)
                                 else f for f in fields) + ending)

    writerow(header)
    lines = []
    for i, row in enumerate(spec["rows"]):
        if spec["blanks"][i]:
            out.write(ending)
        fields = [row["text"], str(row["label"])]
        if i == spec["at"]:
            fault = spec["fault"]
            if fault == "empty_text":
                fields[0] = spec["invisible"]
            elif fault == "missing_label":
                fields[1] = ""
            elif fault == "extra_field":
                fields.append("extra")
        if spec["fault"] == "duplicate_header":
            fields.append("other")
        lines.append(len(NEWLINES.findall(out.getvalue())) + 1)
        if i == spec["at"] and spec["fault"] == "unterminated_quote":
            out.write('"never closed' + delimiter + fields[1] + ending)
        else:
            writerow(fields)
    return out.getvalue().encode("utf-8"), lines


def _render_jsonl(spec: dict[str, Any]) -> tuple[bytes, list[int]]:
    out, lines = [], []
    ending = "\r\n" if spec["crlf"] else "\n"
    for i, row in enumerate(spec["rows"]):
        if spec["blanks"][i]:
            out.append(ending)
        row = dict(row)
        line = None
        if i == spec["at"]:
            fault = spec["fault"]
            if fault == "empty_text":
                row["text"] = spec["invisible"]
            elif fault == "missing_label":
                row.pop("label", None), row.pop("labels", None)
            elif fault == "missing_text":
                row["review"] = row.pop("text")
            elif fault == "mixed_types":
                row["label"] = "positive" if spec["numbers"] else 3
            elif fault == "label_type":
                key = "labels" if "labels" in row else "label"
                value = f'["ok", {spec["bad_label"]}]' if key == "labels" else spec["bad_label"]
                line = f'{{"text": {json.dumps(row["text"], ensure_ascii=False)}, "{key}": {value}}}'
            elif fault == "invalid_json":
                line = json.dumps(row, ensure_ascii=False)[:-1]
            elif fault == "not_object":
                line = json.dumps([row["text"]], ensure_ascii=False)
            elif fault == "duplicate_key":
                line = json.dumps(row, ensure_ascii=False)[:-1] + ', "text": "again"}'
        lines.append(len(NEWLINES.findall("".join(out))) + 1)
        out.append((line or json.dumps(row, ensure_ascii=False)) + ending)
    return "".join(out).encode("utf-8"), lines


def _inject_bad_byte(data: bytes, line: int) -> bytes:
    """``data`` with a byte that is never UTF-8 at the start of ``line`` (1-based)."""
    starts = [0] + [m.end() for m in re.finditer(rb"\r\n|\r|\n", data)]
    cut = starts[line - 1]
    return data[:cut] + b"\xff" + data[cut:]


def _expected_label(value: Any) -> str:
    return str(value).strip()


@SETTINGS
@given(classification_files())
def test_classification_files(spec: dict[str, Any]) -> None:
    task = registry.get_task("sentiment")
    render = _render_jsonl if spec["fmt"] == "jsonl" else _render_table
    data, lines = render(spec)
    fault, at = spec["fault"], spec["at"]
    event(f"{spec['fmt']}: {fault}")
    if fault == "non_utf8":
        data = _inject_bad_byte(data, lines[at])
    with Folder() as folder:
        path = _save(folder, f"data.{spec['fmt']}", data, spec["gz"])
        read = lambda p: task.read(p, RunConfig())
        if fault is None:
            examples = read(path)
            expected = []
            for row, line in zip(spec["rows"], lines):
                example = {"text": row["text"], "_where": f"{path}:{line}"}
                if "labels" in row:
                    example["labels"] = [_expected_label(x) for x in row["labels"]]
                else:
                    example["label"] = _expected_label(row["label"])
                expected.append(example)
            assert examples == expected
            return
        message = _read_error(read, path)
        line = lines[at]
        if fault == "non_utf8":
            _assert_at(message, path, line, "not UTF-8")
        elif fault == "empty_text":
            _assert_at(message, path, line, "empty text", "'text'")
        elif fault == "missing_label":
            _assert_at(message, path, line, "no label", "'label'")
        elif fault == "missing_text":
            _assert_at(message, path, line if spec["fmt"] == "jsonl" else lines[0], "missing column 'text'")
        elif fault == "extra_field":
            _assert_at(message, path, line, "more fields than the header")
        elif fault == "duplicate_header":
            _assert_at(message, path, 1, "duplicate column 'label'")
        elif fault == "unterminated_quote":
            _assert_at(message, path, line, "malformed")
        elif fault == "label_type":
            _assert_at(message, path, line, "label", "must be a string or an integer")
        elif fault in ("invalid_json", "not_object"):
            _assert_at(message, path, line, "invalid JSON" if fault == "invalid_json" else "expected a JSON object")
        elif fault == "duplicate_key":
            _assert_at(message, path, line, "duplicate key 'text'")
        elif fault == "mixed_types":
            _assert_at(message, path, lines[max(at, 1 if at == 0 else 0)], "mixes types")


# --- CoNLL -----------------------------------------------------------------------------------
TOKEN_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\t \n\r")
TOKENS = st.text(TOKEN_CHARS, min_size=1, max_size=8).filter(
    lambda t: any(c.isalnum() for c in t) and not t.startswith("-DOCSTART-"))


@st.composite
def sentences(draw: Any) -> tuple[list[str], list[str]]:
    tokens = draw(st.lists(TOKENS, min_size=1, max_size=6))
    tags, previous = [], "O"
    for _ in tokens:
        kind = draw(st.sampled_from(["PER", "LOC", "ORG"]))
        choices = ["O", f"B-{kind}"] + ([f"I-{previous[2:]}"] if previous != "O" else [])
        previous = draw(st.sampled_from(choices))
        tags.append(previous)
    return tokens, tags


@SETTINGS
@given(st.lists(sentences(), min_size=1, max_size=4), st.booleans(), st.booleans(),
       st.sampled_from([None, None, "one_column", "bad_tag", "empty_token", "non_utf8"]), st.data())
def test_conll_files(sents: list[tuple[list[str], list[str]]], crlf: bool, gz: bool, fault: str | None,
                     data: Any) -> None:
    event(f"conll: {fault}")
    ending = "\r\n" if crlf else "\n"
    text, starts, token_lines = "-DOCSTART-\tO" + ending + ending, [], []
    for tokens, tags in sents:
        starts.append(len(NEWLINES.findall(text)) + 1)
        for token, tag in zip(tokens, tags):
            token_lines.append(len(NEWLINES.findall(text)) + 1)
            text += f"{token}\t{tag}{ending}"
        text += ending
    line = data.draw(st.sampled_from(token_lines))
    raw = text.split(ending)
    if fault == "one_column":
        raw[line - 1] = raw[line - 1].split("\t")[0]
    elif fault == "bad_tag":
        raw[line - 1] = raw[line - 1].split("\t")[0] + "\tX-PER"
    elif fault == "empty_token":
        raw[line - 1] = "\t" + raw[line - 1].split("\t")[1]
    content = ending.join(raw).encode("utf-8")
    if fault == "non_utf8":
        content = _inject_bad_byte(content, line)
    task = ner.NERTask()
    with Folder() as folder:
        path = _save(folder, "train.conll", content, gz)
        read = lambda p: task.read(p, RunConfig())
        if fault is None:
            examples = read(path)
            assert [(e["tokens"], e["tags"], e["_where"]) for e in examples] == \
                [(tokens, tags, f"{path}:{start}") for (tokens, tags), start in zip(sents, starts)]
            assert all(e["text"] == " ".join(e["tokens"]) for e in examples)
            return
        message = _read_error(read, path)
        expected = {"one_column": "expected 'token<TAB>tag'", "bad_tag": "tag 'X-PER' is neither O",
                    "empty_token": "empty token", "non_utf8": "not UTF-8"}[fault]
        _assert_at(message, path, line, expected)


# --- relation JSON lines ---------------------------------------------------------------------
SPAN_TEXT = st.text(CHARS, min_size=1, max_size=6).filter(lambda t: any(c.isalnum() for c in t))


@st.composite
def relation_rows(draw: Any) -> dict[str, Any]:
    a, b, c = (draw(st.text(CHARS, max_size=6)) for _ in range(3))
    first, second = draw(SPAN_TEXT), draw(SPAN_TEXT)
    text = a + first + b + second + c
    spans = [(len(a), len(a) + len(first)), (len(a + first + b), len(a + first + b + second))]
    if draw(st.booleans()):
        spans.reverse()  # the tail comes first in the text
    row: dict[str, Any] = {"text": text, "label": draw(st.sampled_from(["Cause-Effect(e1,e2)", "Other", "no_relation"]))}
    for role, (start, end) in zip(("head", "tail"), spans):
        span: dict[str, Any] = {"start": start, "end": end}
        if draw(st.booleans()):
            span["text"] = text[start:end]
        if draw(st.booleans()):
            span["type"] = draw(st.sampled_from(["PER", "ORG", "Chemical"]))
        row[role] = span
    return row


RELATION_FAULTS = {
    "bool_offset": (lambda r: {**r, "head": {**r["head"], "start": True}}, "head 'start' must be an integer"),
    "float_offset": (lambda r: {**r, "tail": {**r["tail"], "end": float(r["tail"]["end"])}}, "tail 'end' must be an integer"),
    "past_the_end": (lambda r: {**r, "head": {**r["head"], "end": len(r["text"]) + 1}}, "out of range"),
    "reversed": (lambda r: {**r, "tail": {**r["tail"], "start": r["tail"]["end"], "end": r["tail"]["start"]}},
                 "out of range"),
    "wrong_span_text": (lambda r: {**r, "head": {**r["head"], "text": r["text"][r["head"]["start"]:r["head"]["end"]] + "x"}},
                        "differs from text"),
    "overlap": (lambda r: {**r, "tail": dict(r["head"])}, "overlap"),
    "bool_label": (lambda r: {**r, "label": False}, "must be a string or an integer"),
    "no_text": (lambda r: {k: v for k, v in r.items() if k != "text"}, "missing or empty 'text'"),
    "invisible_text": (lambda r: {**r, "text": "\u200b" * len(r["text"])}, "missing or empty 'text'"),
}


@SETTINGS
@given(st.lists(relation_rows(), min_size=1, max_size=5), st.booleans(),
       st.sampled_from([None, None, "invalid_json", "non_utf8", *RELATION_FAULTS]), st.data())
def test_relation_files(rows: list[dict[str, Any]], gz: bool, fault: str | None, data: Any) -> None:
    event(f"relation: {fault}")
    at = data.draw(st.integers(min_value=0, max_value=len(rows) - 1))
    lines = []
    for i, row in enumerate(rows):
        if i == at and fault in RELATION_FAULTS:
            row = RELATION_FAULTS[fault][0](row)
        line = json.dumps(row, ensure_ascii=False)
        lines.append(line[:-1] if i == at and fault == "invalid_json" else line)
    content = ("\n".join(lines) + "\n").encode("utf-8")
    if fault == "non_utf8":
        content = _inject_bad_byte(content, at + 1)
    task = relation.RelationTask()
    with Folder() as folder:
        path = _save(folder, "train.jsonl", content, gz)
        read = lambda p: task.read(p, RunConfig())
        if fault is None:
            examples = read(path)
            for n, (example, row) in enumerate(zip(examples, rows), start=1):
                assert example["_where"] == f"{path}:{n}" and example["text"] == row["text"]
                assert example["label"] == row["label"]
                for role in ("head", "tail"):
                    span = row[role]
                    expected = {"start": span["start"], "end": span["end"], "text": row["text"][span["start"]:span["end"]],
                                **({"type": span["type"]} if "type" in span else {})}
                    assert example[role] == expected
            assert len(examples) == len(rows)
            return
        message = _read_error(read, path)
        expected = {"invalid_json": "invalid JSON", "non_utf8": "not UTF-8"}.get(fault) or RELATION_FAULTS[fault][1]
        _assert_at(message, path, at + 1, expected)


# --- arbitrary bytes -------------------------------------------------------------------------
@SETTINGS
@given(st.sampled_from(["data.csv", "data.tsv", "data.jsonl", "data.conll", "data.jsonl.gz"]),
       st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)),
       st.sampled_from(["sentiment", "nli", "ner", "relation"]))
def test_arbitrary_bytes_read_or_raise_one_line(name: str, content: bytes, task_name: str) -> None:
    task = registry.get_task(task_name)
    with Folder() as folder:
        path = folder / name
        path.write_bytes(content)
        try:
            examples = task.read(path, RunConfig())
        except TaskkitError as exc:
            message = str(exc)
            assert len(message.splitlines()) == 1 and str(path) in message, repr(message)
        else:
            assert examples and all(str(path) in e["_where"] for e in examples)
