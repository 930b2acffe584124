"""Validation at the edge (issue 11): bad data and predict inputs are one line naming file, line and
field; the silent wrong answers (shifted rows, bool offsets, NaN classes, --shots 0, a singleton
class carved into dev) are refused or correct."""

from __future__ import annotations

import importlib
import io
import json
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import write_jsonl

from taskkit import registry
from taskkit.cli import main
from taskkit.contracts import RunConfig
from taskkit.data import load_splits, stratified_split
from taskkit.data.readers import read_inputs, text_lines
from taskkit.data.sampling import sample_per_class
from taskkit.errors import TaskkitError

relation = importlib.import_module("taskkit_plugins.relation")
ner = importlib.import_module("taskkit_plugins.ner")

#: characters str.splitlines() splits at, but which are no line break in a text file
NOT_NEWLINES = ["\x85", "\u2028", "\u2029", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e"]
#: texts with nothing a model could read
INVISIBLE_TEXTS = ["\u200b", "\u200c\u200d", "\u2060 \ufeff", "\x00\x01", " \t\u200b ", "\u0301"]


@pytest.fixture
def sentiment():
    return registry.get_task("sentiment")


def _write(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def _one_line_error(argv: list[str], capsys) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


# --- tables: duplicate headers, big fields, start lines -------------------------------------
@pytest.mark.parametrize("name, content", [
    ("two.csv", "text,label,label\nhello,positive,negative\n"),
    ("two.tsv", "label\ttext\tlabel\npositive\thello\tnegative\n"),
])
def test_duplicate_header_is_refused_naming_file_and_column(tmp_path, sentiment, name, content):
    path = _write(tmp_path / name, content)
    with pytest.raises(TaskkitError, match=rf"^{path}:1: duplicate column 'label' in the header"):
        sentiment.read(path, RunConfig())


def test_duplicate_json_key_is_refused(tmp_path, sentiment):
    path = _write(tmp_path / "dup.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label": "x", "label": "y"}\n')
    with pytest.raises(TaskkitError, match=rf"^{path}:2: duplicate key 'label'"):
        sentiment.read(path, RunConfig())


def test_megabyte_field_is_read_and_later_faults_name_their_own_line(tmp_path, sentiment):
    big = "word " * 200_000  # 1 MB, eight times the csv module's default field limit
    content = f'text,label\nshort,positive\n"{big}",negative\n"two\nlines",positive\nlast,negative\n'
    path = _write(tmp_path / "big.csv", content)
    examples = sentiment.read(path, RunConfig())
    assert [len(e["text"]) for e in examples] == [5, len(big), 9, 4]
    assert [e["_where"] for e in examples] == [f"{path}:{n}" for n in (2, 3, 4, 6)]  # a record's first line
    broken = _write(tmp_path / "broken.csv", content + '"never closed,positive\nmore,negative\n')
    with pytest.raises(TaskkitError, match=rf"^{broken}:7: malformed CSV row"):
        sentiment.read(broken, RunConfig())


# --- labels ----------------------------------------------------------------------------------
@pytest.mark.parametrize("raw, kind", [
    ("NaN", "NaN"), ("1.5", "a float"), ("2.0", "a float"), ('["a", "b"]', "a list"),
    ('{"name": "a"}', "an object"), ("true", "a boolean"), ("false", "a boolean"),
])
def test_label_of_a_wrong_type_is_refused(tmp_path, sentiment, raw, kind):
    path = _write(tmp_path / "labels.jsonl", f'{{"text": "fine", "label": "a"}}\n{{"text": "odd", "label": {raw}}}\n')
    with pytest.raises(TaskkitError) as caught:
        sentiment.read(path, RunConfig())
    message = str(caught.value)
    assert message.startswith(f"{path}:2: label ") and "column 'label'" in message and kind in message


def test_null_and_blank_labels_are_missing(tmp_path, sentiment):
    for raw in ("null", '"  "', '"\\u200b"'):
        path = _write(tmp_path / "null.jsonl", f'{{"text": "fine", "label": "a"}}\n{{"text": "odd", "label": {raw}}}\n')
        with pytest.raises(TaskkitError, match=rf"^{path}:2: no label \(column 'label' is missing or empty\)"):
            sentiment.read(path, RunConfig())


def test_integer_labels_become_names_but_do_not_mix_with_words(tmp_path, sentiment):
    path = write_jsonl(tmp_path / "ints.jsonl", [{"text": "a", "label": 1}, {"text": "b", "label": "0"},
                                                 {"text": "c", "label": -2}])
    assert [e["label"] for e in sentiment.read(path, RunConfig())] == ["1", "0", "-2"]
    mixed = write_jsonl(tmp_path / "mixed.jsonl", [{"text": "a", "label": 1}, {"text": "b", "label": "positive"}])
    with pytest.raises(TaskkitError, match=rf"^{mixed}:2: label 'positive' in column 'label' mixes types with "
                                           rf"label 1 at {mixed}:1"):
        sentiment.read(mixed, RunConfig())


def test_multi_label_elements_follow_the_same_rule(tmp_path, sentiment):
    good = write_jsonl(tmp_path / "multi.jsonl", [{"text": "a", "labels": ["joy", "fear"]}, {"text": "b", "labels": []}])
    assert [e["labels"] for e in sentiment.read(good, RunConfig())] == [["joy", "fear"], []]
    for bad, kind in (([["joy"], "fear"], "a list"), (["joy", True], "a boolean"), (["joy", None], "no label"),
                      ("not-a-list-but-a-number", None)):
        rows = [{"text": "a", "labels": ["joy"]}, {"text": "b", "labels": bad if kind else 7}]
        path = write_jsonl(tmp_path / "bad.jsonl", rows)
        with pytest.raises(TaskkitError) as caught:
            sentiment.read(path, RunConfig())
        assert str(caught.value).startswith(f"{path}:2: ") and "'labels'" in str(caught.value)
        if kind:
            assert kind in str(caught.value)


# --- texts that are empty after normalisation ----------------------------------------------
@pytest.mark.parametrize("text", INVISIBLE_TEXTS)
def test_invisible_training_text_is_refused(tmp_path, sentiment, text):
    path = write_jsonl(tmp_path / "t.jsonl", [{"text": "fine", "label": "a"}, {"text": text, "label": "b"}])
    with pytest.raises(TaskkitError, match=rf"^{path}:2: empty text in column 'text'"):
        sentiment.read(path, RunConfig())


def test_invisible_text_in_csv_and_visible_control_text_kept(tmp_path, sentiment):
    path = _write(tmp_path / "t.csv", "text,label\nfine,a\n\u200b\u2060,b\n")
    with pytest.raises(TaskkitError, match=rf"^{path}:3: empty text in column 'text'"):
        sentiment.read(path, RunConfig())
    ok = write_jsonl(tmp_path / "ok.jsonl", [{"text": "tab\tand\x00nul", "label": "a"}])
    assert sentiment.read(ok, RunConfig())[0]["text"] == "tab\tand\x00nul"


def test_unpaired_surrogate_is_refused(tmp_path, sentiment):
    path = _write(tmp_path / "s.jsonl", '{"text": "ok \\ud800", "label": "a"}\n')
    with pytest.raises(TaskkitError, match=rf"^{path}:1: text in column 'text' has an unpaired surrogate"):
        sentiment.read(path, RunConfig())


# --- relation offsets and NER spans --------------------------------------------------------
REL = {"text": "The spark caused the fire.", "head": {"start": 4, "end": 9}, "tail": {"start": 21, "end": 25},
       "label": "Cause-Effect(e1,e2)"}


@pytest.mark.parametrize("change, message", [
    ({"head": {"start": True, "end": 9}}, r"head 'start' must be an integer character offset, got True"),
    ({"tail": {"start": 21, "end": 25.0}}, r"tail 'end' must be an integer character offset, got 25.0"),
    ({"head": {"start": "4", "end": 9}}, r"head 'start' must be an integer"),
    ({"head": {"start": 9, "end": 4}}, r"head span \[9, 4\) out of range"),
    ({"head": {"start": 9, "end": 9}}, r"head span \[9, 9\) out of range"),
    ({"tail": {"start": -1, "end": 3}}, r"tail span \[-1, 3\) out of range"),
    ({"head": {"start": 3, "end": 4}}, r"head span \[3, 4\) covers only spaces"),
    ({"head": {"start": 4, "end": 9, "text": 5}}, r"head text 5 differs"),
    ({"tail": {"start": 21, "end": 25, "type": ["x"]}}, r"tail 'type' must be a string"),
    ({"label": True}, r"label True in column 'label' must be a string or an integer"),
    ({"label": 3.0}, r"label 3.0 in column 'label' must be a string or an integer"),
    ({"text": "\u200b\u200b\u200b\u200b\u200b\u200b\u200b\u200b\u200b\u200b\u200b\u200b\u200b\u200b\u200b\u200b\u200b"
              "\u200b\u200b\u200b\u200b\u200b\u200b\u200b\u200b\u200b"}, "missing or empty 'text'"),
])
def test_relation_offsets_are_checked(tmp_path, change, message):
    path = write_jsonl(tmp_path / "rel.jsonl", [REL, {**REL, **change}])
    with pytest.raises(TaskkitError, match=rf"^{path}:2: {message}"):
        relation.RelationTask().read(path, RunConfig())


def test_relation_int_label_becomes_a_name(tmp_path):
    path = write_jsonl(tmp_path / "rel.jsonl", [{**REL, "label": 3}])
    assert relation.RelationTask().read(path, RunConfig())[0]["label"] == "3"


def test_ner_span_offsets_must_be_integers(tmp_path):
    row = {"text": "Visit Paris", "entities": [{"start": True, "end": 11, "type": "LOC"}]}
    path = write_jsonl(tmp_path / "ner.jsonl", [{"tokens": ["ok"], "tags": ["O"]}, row])
    with pytest.raises(TaskkitError, match=rf"^{path}:2: each entity needs integer 'start'"):
        ner.NERTask().read(path, RunConfig())
    invisible = write_jsonl(tmp_path / "inv.jsonl", [{"text": "\u200b\u2060", "entities": []}])
    with pytest.raises(TaskkitError, match=rf"^{invisible}:1: empty sentence"):
        ner.NERTask().read(invisible, RunConfig())


def test_conll_lines_end_at_newlines_only(tmp_path):
    tokens = [f"a{c}b" for c in NOT_NEWLINES]
    content = "".join(f"{t}\tO\n" for t in tokens) + "Paris\tB-LOC\r\n\r\nNew\u00a0York B-LOC\n"
    path = _write(tmp_path / "odd.conll", content)
    first, second = ner.NERTask().read(path, RunConfig())
    assert first["tokens"] == tokens + ["Paris"] and first["tags"] == ["O"] * len(tokens) + ["B-LOC"]
    assert second["tokens"] == ["New\u00a0York"] and second["_where"] == f"{path}:{len(tokens) + 3}"
    broken = _write(tmp_path / "broken.conll", content + "Rome\tX-LOC\n")
    with pytest.raises(TaskkitError, match=rf"^{broken}:{len(tokens) + 4}: tag 'X-LOC' is neither O"):
        ner.NERTask().read(broken, RunConfig())


# --- splits and sampling ---------------------------------------------------------------------
def test_singleton_class_stays_in_training_when_dev_is_carved(tmp_path, sentiment):
    rows = ([{"text": f"good {i}", "label": "positive"} for i in range(15)]
            + [{"text": f"bad {i}", "label": "negative"} for i in range(15)] + [{"text": "meh", "label": "neutral"}])
    path = write_jsonl(tmp_path / "all.jsonl", rows)
    for seed in range(20):
        splits = load_splits(sentiment, path, RunConfig(seed=seed))
        assert splits.dev_carved and len(splits.train) + len(splits.dev) == len(rows)
        assert "neutral" in {e["label"] for e in splits.train}
        assert "neutral" not in {e["label"] for e in splits.dev}
        sentiment.check_known(splits.dev, sentiment.label_space(splits.train), "dev")  # no "never occurs"


def test_carving_keeps_every_entity_type_in_training(tmp_path):
    sentences = [{"tokens": ["Ann", "ran", str(i)], "tags": ["B-PER", "O", "O"]} for i in range(12)]
    sentences.append({"tokens": ["Acme", "won"], "tags": ["B-ORG", "O"]})
    path = write_jsonl(tmp_path / "ner.jsonl", sentences)
    task = ner.NERTask()
    for seed in range(20):
        splits = load_splits(task, path, RunConfig(seed=seed, dev_fraction=0.3))
        assert splits.dev and all("B-ORG" not in e["tags"] for e in splits.dev)
        task.check_known(splits.dev, task.label_space(splits.train), "dev")


def test_carving_with_only_singleton_classes_is_refused():
    examples = [{"text": f"t{i}", "label": f"class {i}"} for i in range(6)]
    with pytest.raises(TaskkitError, match="cannot carve a dev split: every class .* has a single example"):
        stratified_split(examples, 0.2, seed=0)
    with pytest.raises(TaskkitError, match="dev_fraction must be between 0 and 1"):
        stratified_split(examples, 1.0, seed=0)


@pytest.mark.parametrize("shots", [0, -3])
def test_shots_below_one_is_refused(tmp_path, sentiment, shots):
    path = write_jsonl(tmp_path / "all.jsonl", [{"text": f"t{i}", "label": "ab"[i % 2]} for i in range(20)])
    with pytest.raises(TaskkitError, match=rf"^--shots must be .*at least 1, got {shots}"):
        load_splits(sentiment, path, RunConfig(shots=shots))


def test_shots_0_through_the_cli(tmp_path, tiny_model, capsys):
    path = write_jsonl(tmp_path / "all.jsonl", [{"text": f"t{i}", "label": "ab"[i % 2]} for i in range(20)])
    line = _one_line_error(["run", "sentiment", "--data", str(path), "--model", str(tiny_model), "--shots", "0",
                            "--epochs", "1", "-q", "--out", str(tmp_path / "out")], capsys)
    assert "--shots" in line and "0" in line
    assert not (tmp_path / "out" / "model").exists()


def test_sampling_errors_name_the_class_and_allow_fewer_must_be_a_boolean(tmp_path, sentiment):
    examples = [{"text": "x", "label": "rare"}] + [{"text": f"t{i}", "label": "common"} for i in range(9)]
    with pytest.raises(TaskkitError, match=r"--shots 4 needs 4 examples per class, but 'rare' has 1"):
        sample_per_class(examples, 4, seed=0)
    chosen, _ = sample_per_class(examples, 4, seed=0, allow_fewer=True)
    assert Counter(e["label"] for e in chosen) == {"rare": 1, "common": 4}
    path = write_jsonl(tmp_path / "all.jsonl", examples)
    with pytest.raises(TaskkitError, match=r"--option allow_fewer=yes: expected true or false"):
        load_splits(sentiment, path, RunConfig(shots=4, options={"allow_fewer": "yes"}))


# --- predict inputs --------------------------------------------------------------------------
def test_text_lines_split_at_newline_only():
    text = "".join(f"line {i}{c}still line {i}\n" for i, c in enumerate(NOT_NEWLINES)) + "crlf\r\nlast"
    lines = text_lines(text)
    assert len(lines) == len(NOT_NEWLINES) + 2
    assert lines[0] == f"line 0{NOT_NEWLINES[0]}still line 0" and lines[-2:] == ["crlf", "last"]


def test_large_input_reads_every_line_once_in_linear_time(tmp_path):
    n = 20_000
    path = _write(tmp_path / "big.txt", "".join(f"text {i}{NOT_NEWLINES[i % 8]}tail\n" for i in range(n)))
    started = time.perf_counter()
    inputs = read_inputs(path)
    assert time.perf_counter() - started < 5
    assert len(inputs) == n  # str.splitlines() made 40,000 of them
    assert inputs[-1] == {"text": f"text {n - 1}{NOT_NEWLINES[(n - 1) % 8]}tail", "_where": f"{path}:{n}"}


def test_predict_rows_match_input_lines(trained_run, tmp_path, capsys):
    texts = [f"great {i}{c}fun" for i, c in enumerate(NOT_NEWLINES)] + ["plain and\ttabbed"]
    path = _write(tmp_path / "in.txt", "\r\n".join(texts) + "\r\n\n\n")  # CRLF, and blank lines at the end
    assert main(["predict", str(trained_run.out), "--input", str(path)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.split("\n") if line]
    assert [r["text"] for r in rows] == texts
    assert all(set(r) == {"text", "predicted", "probabilities"} for r in rows)


def test_predict_reads_stdin(trained_run, monkeypatch, capsys):
    stdin = io.TextIOWrapper(io.BytesIO("first\u2028review\nsecond review\n".encode("utf-8")), encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", stdin)
    assert main(["predict", str(trained_run.out), "--input", "-"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.split("\n") if line]
    assert [r["text"] for r in rows] == ["first\u2028review", "second review"]


def test_predict_reads_stdin_in_a_new_process(trained_run):
    import subprocess

    from conftest import subprocess_env, taskkit_command

    lines = ["a fine\u2028film", "dull\x85and long", "fine"]
    done = subprocess.run([*taskkit_command(), "predict", str(trained_run.out), "--input", "-"],
                          check=False, input=("\n".join(lines) + "\n").encode("utf-8"), capture_output=True,
                          env=subprocess_env(), timeout=300)
    assert done.returncode == 0, done.stderr.decode()
    rows = [json.loads(line) for line in done.stdout.decode("utf-8").split("\n") if line]
    assert [r["text"] for r in rows] == lines


@pytest.mark.parametrize("content, message", [
    ("good\n\nbad\n", ":2: blank line"),
    ("good\n \t\nbad\n", ":2: blank line"),
    ("good\nbad\n\u200b\u2060\n", ":3: empty text (only zero-width"),
    ("good\n\ufeff\n", ":2: empty text"),
    (b"good\nbad \xff\n", ":2: not UTF-8 text"),
    ("\n\n", ": no texts to predict"),
])
def test_bad_predict_text_file_names_the_line(trained_run, tmp_path, capsys, content, message):
    path = _write(tmp_path / "in.txt", content)
    line = _one_line_error(["predict", str(trained_run.out), "--input", str(path)], capsys)
    assert line.startswith(f"error: {path}{message}"), line


def test_predict_stdin_names_its_line(trained_run, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("good\n\u200b\nbad\n".encode()), encoding="utf-8"))
    line = _one_line_error(["predict", str(trained_run.out), "--input", "-"], capsys)
    assert line.startswith("error: <stdin>:2: empty text")


@pytest.mark.parametrize("name, content, message", [
    ("in.csv", "review,id\nnice film,1\n", ":2: missing column 'text' (found: review, id)"),
    ("in.jsonl", '{"text": "fine"}\n{"review": "nice", "id": 1}\n', ":2: missing column 'text' (found: review, id)"),
    ("in.jsonl", '{"text": "fine"}\n{"text": "\\u200b"}\n', ":2: empty text in column 'text'"),
    ("in.jsonl", '{"text": "fine"}\n{"text": 5}\n', ":2: column 'text' must be text"),
    ("in.csv", "text,text\na,b\n", ":1: duplicate column 'text'"),
])
def test_bad_predict_table_names_row_and_column(trained_run, tmp_path, capsys, name, content, message):
    path = _write(tmp_path / name, content)
    line = _one_line_error(["predict", str(trained_run.out), "--input", str(path)], capsys)
    assert line.startswith(f"error: {path}{message}"), line


def test_predict_table_rows_keep_their_other_columns(trained_run, tmp_path, capsys):
    path = _write(tmp_path / "in.csv", "id,text\n7,a fine film\n8,\"a long,\nquoted review\"\n")
    assert main(["predict", str(trained_run.out), "--input", str(path)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.split("\n") if line]
    assert [(r["id"], r["text"]) for r in rows] == [("7", "a fine film"), ("8", "a long,\nquoted review")]


def test_api_predict_refuses_invisible_text(trained_run):
    from taskkit import api

    for bad in ("\u200b", {"text": "\u2060\ufeff"}):
        with pytest.raises(TaskkitError, match="empty text"):
            api.predict(trained_run.predictor, ["fine", bad])

