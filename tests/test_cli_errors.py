"""Bad input through the CLI: exit code 2, one line on stderr naming the problem, no traceback."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Callable

import pytest

from taskkit.cli import main

from conftest import write_jsonl

GOOD = [{"text": f"good text number {i}", "label": "positive"} for i in range(6)] + \
       [{"text": f"bad text number {i}", "label": "negative"} for i in range(6)]


def _folder(tmp: Path, train: list[dict] | None = None, test: list[dict] | None = None,
            dev: list[dict] | None = None) -> Path:
    folder = tmp / "data"
    write_jsonl(folder / "train.jsonl", train if train is not None else GOOD)
    if test is not None:
        write_jsonl(folder / "test.jsonl", test)
    if dev is not None:
        write_jsonl(folder / "dev.jsonl", dev)
    return folder


def _write(tmp: Path, name: str, content: str | bytes) -> Path:
    path = tmp / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


# Each case: (tmp folder, tiny model) -> (argv, substrings the one stderr line must contain)
Case = Callable[[Path, Path], tuple[list[str], list[str]]]


def _run(data: Path | str, *extra: str, model: Path | None = None) -> list[str]:
    argv = ["run", "sentiment", "--data", str(data), "--epochs", "1", "-q"]
    if model is not None:
        argv += ["--model", str(model)]
    return argv + list(extra)


CASES: dict[str, Case] = {
    "missing file": lambda tmp, m: (_run(tmp / "nope.csv", model=m), [f"{tmp / 'nope.csv'}: no such file"]),
    "non-utf8 file": lambda tmp, m: (
        _run(_write(tmp, "latin.csv", b"text,label\nfine,positive\ncaf\xe9 au lait,negative\n"), model=m),
        [f"{tmp / 'latin.csv'}:3: not UTF-8 text"]),
    "corrupt gzip": lambda tmp, m: (
        _run(_write(tmp, "train.jsonl.gz", b"this is not gzip data"), model=m),
        [f"{tmp / 'train.jsonl.gz'}: not a valid gzip file"]),
    "invalid json line": lambda tmp, m: (
        _run(_write(tmp, "bad.jsonl", '{"text": "ok", "label": "positive"}\n{"text": oops}\n'), model=m),
        [f"{tmp / 'bad.jsonl'}:2: invalid JSON"]),
    "json line not an object": lambda tmp, m: (
        _run(_write(tmp, "list.jsonl", '["text", "label"]\n'), model=m),
        [f"{tmp / 'list.jsonl'}:1: expected a JSON object"]),
    "empty csv": lambda tmp, m: (_run(_write(tmp, "empty.csv", ""), model=m),
                                 [f"{tmp / 'empty.csv'}: empty file"]),
    "blank jsonl": lambda tmp, m: (_run(_write(tmp, "blank.jsonl", "\n\n"), model=m),
                                   [f"{tmp / 'blank.jsonl'}: no examples in file"]),
    "unknown file type": lambda tmp, m: (_run(_write(tmp, "data.xlsx", "x"), model=m),
                                         ["data.xlsx: unknown file type"]),
    "folder without splits": lambda tmp, m: (
        _run(_write(tmp, "notes.md", "hi").parent, model=m), ["no train or test file in folder"]),
    "missing text column": lambda tmp, m: (
        _run(_write(tmp, "cols.csv", "sentence,label\nhello there,positive\n"), model=m),
        [f"{tmp / 'cols.csv'}:2: missing column 'text'", "sentence"]),
    "custom text column missing": lambda tmp, m: (
        _run(_folder(tmp), "--text-column", "review", model=m),
        [f"{tmp / 'data' / 'train.jsonl'}:1: missing column 'review'"]),
    "more fields than header": lambda tmp, m: (
        _run(_write(tmp, "wide.csv", "text,label\nok,positive\nsplit,text,negative\n"), model=m),
        [f"{tmp / 'wide.csv'}:3: more fields than the header has"]),
    "empty text": lambda tmp, m: (
        _run(_write(tmp, "empty_text.csv", "text,label\nhello,positive\n   ,negative\n"), model=m),
        [f"{tmp / 'empty_text.csv'}:3: empty text in column 'text'"]),
    "text not a string": lambda tmp, m: (
        _run(_write(tmp, "num.jsonl", '{"text": 42, "label": "positive"}\n'), model=m),
        [f"{tmp / 'num.jsonl'}:1: column 'text' must be text"]),
    "row without label": lambda tmp, m: (
        _run(_write(tmp, "nolabel.jsonl", '{"text": "a", "label": "positive"}\n{"text": "b"}\n'), model=m),
        [f"{tmp / 'nolabel.jsonl'}:2: no label"]),
    "empty label in csv": lambda tmp, m: (
        _run(_write(tmp, "nolabel.csv", "text,label\na,positive\nb,\n"), model=m),
        [f"{tmp / 'nolabel.csv'}:3: no label"]),
    "single class": lambda tmp, m: (
        _run(_folder(tmp, train=[{"text": f"t{i}", "label": "positive"} for i in range(12)]), model=m),
        ["single class ('positive')"]),
    "too few examples to carve dev": lambda tmp, m: (
        _run(_folder(tmp, train=GOOD[:2] + GOOD[-1:]), model=m), ["too few training examples (3)"]),
    "unknown task": lambda tmp, m: (["run", "no-such-task", "--model", str(m)],
                                    ["unknown task 'no-such-task'", "sentiment"]),
    "unknown mode": lambda tmp, m: (_run(_folder(tmp), "--mode", "no-such-mode", model=m),
                                    ["unknown mode 'no-such-mode'", "full"]),
    "model path does not exist": lambda tmp, m: (
        _run(_folder(tmp), model=tmp / "no-model-here"), [f"model '{tmp / 'no-model-here'}': no such folder"]),
    "relative model path does not exist": lambda tmp, m: (
        _run(_folder(tmp)) + ["--model", "./no-model-here"], ["model './no-model-here': no such folder"]),
    "folder that is no model": lambda tmp, m: (
        _run(_folder(tmp), model=tmp / "data"), ["not a model folder (no config.json)"]),
    "hub id while offline": lambda tmp, m: (
        _run(_folder(tmp)) + ["--model", "some-org/some-model"], ["'some-org/some-model'", "HF_HUB_OFFLINE"]),
    "test label never seen in training": lambda tmp, m: (
        _run(_folder(tmp, test=[{"text": "x", "label": "positive"}, {"text": "y", "label": "neutral"}]), model=m),
        [f"{tmp / 'data' / 'test.jsonl'}:2: label 'neutral' in test never occurs in training data"]),
    "dev label never seen in training": lambda tmp, m: (
        _run(_folder(tmp, dev=[{"text": "x", "label": "mixed"}]), model=m),
        [f"{tmp / 'data' / 'dev.jsonl'}:1: label 'mixed' in dev never occurs"]),
    "unknown precision": lambda tmp, m: (_run(_folder(tmp), "--precision", "fp8", model=m),
                                         ["--precision", "'fp8'", "auto | fp32 | bf16"]),
    "unknown freeze": lambda tmp, m: (_run(_folder(tmp), "--freeze", "bottom", model=m),
                                      ["--freeze", "'bottom'"]),
    "bad --option": lambda tmp, m: (_run(_folder(tmp), "--option", "novalue", model=m),
                                    ["--option 'novalue': expected KEY=VALUE"]),
    "predict: no model folder": lambda tmp, m: (["predict", str(tmp / "nothing"), "hi"],
                                                [f"{tmp / 'nothing'}: no such model folder"]),
    "predict: folder without metadata": lambda tmp, m: (["predict", str(m), "hi"],
                                                        ["not a taskkit model folder (no taskkit.json)"]),
    "predict: missing input file": lambda tmp, m: (["predict", str(m), "--input", str(tmp / "in.txt")],
                                                   [f"{tmp / 'in.txt'}: no such file"]),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_input_is_one_line_exit_2(case, tmp_path, tiny_model, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default --out and relative paths land in the test's folder
    argv, expected = CASES[case](tmp_path, tiny_model)
    if "--out" not in argv and argv[0] == "run":
        argv += ["--out", str(tmp_path / "out")]
    code = main(argv)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured.err
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ")
    for part in expected:
        assert part in lines[0], lines[0]
    assert "Traceback" not in captured.err
    assert not (tmp_path / "out" / "model").exists()  # a failed run saves nothing


def test_unreadable_file(tmp_path, capsys, monkeypatch):
    path = _write(tmp_path, "locked.csv", "text,label\nhello,positive\n")
    real = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self.name == "locked.csv":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    assert main(_run(path) + ["--out", str(tmp_path / "out")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"error: {path}: cannot read (Permission denied)"]


def test_predict_rejects_empty_text(trained_run, capsys):
    assert main(["predict", str(trained_run.out), "   "]) == 2
    assert capsys.readouterr().err.strip().splitlines() == ["error: empty text given to predict"]


def test_predict_with_nothing_to_predict(trained_run, capsys):
    assert main(["predict", str(trained_run.out)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == ["error: nothing to predict: give texts or --input FILE"]


def test_corrupt_model_metadata(trained_run, tmp_path, capsys):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(trained_run.out / "model", model)
    (model / "taskkit.json").write_text("{not json", encoding="utf-8")
    assert main(["predict", str(model), "hello"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "corrupt metadata" in lines[0]


# The same contract, seen from a real process: the console script's exit code and stderr.
@pytest.mark.parametrize("case", ["missing file", "non-utf8 file", "unknown task", "hub id while offline",
                                  "test label never seen in training"])
def test_bad_input_in_a_new_process(case, tmp_path, tiny_model, run_taskkit):
    argv, expected = CASES[case](tmp_path, tiny_model)
    proc = run_taskkit(*argv, "--out", tmp_path / "out", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    for part in expected:
        assert part in lines[0]
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
