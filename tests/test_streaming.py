"""``taskkit predict MODEL --input FILE --output FILE``: chunked, every input format (gzip too), the
records ``taskkit predict`` prints, refusal of an existing OUTPUT, resume after a SIGKILL."""

from __future__ import annotations

import csv
import gzip
import io
import json
import subprocess
from pathlib import Path

import pytest
from conftest import DEMO, read_jsonl, subprocess_env, taskkit_command

from taskkit.cli import main

TEXTS = [r["text"] for split in ("train", "test") for r in read_jsonl(DEMO / f"{split}.jsonl")][:150]


def _write(path: Path, content: str | bytes) -> Path:
    data = content if isinstance(content, bytes) else content.encode("utf-8")
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def _table(rows: list[dict[str, str]], delimiter: str) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), delimiter=delimiter, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


ROWS = [{"id": str(i), "text": t} for i, t in enumerate(TEXTS)]
FILES = {
    "in.txt": "\n".join(TEXTS) + "\n",
    "in.txt.gz": "\n".join(TEXTS) + "\n",
    "in.jsonl": "".join(json.dumps(r) + "\n" for r in ROWS),
    "in.jsonl.gz": "".join(json.dumps(r) + "\n" for r in ROWS),
    "in.csv": _table(ROWS, ","),
    "in.tsv.gz": _table(ROWS, "\t"),
}


def _printed(model: Path, path: Path, capsys) -> str:
    """What ``taskkit predict MODEL --input PATH`` prints (the whole file in memory)."""
    assert main(["predict", str(model), "--input", str(path)]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("name", list(FILES))
def test_output_file_holds_the_records_predict_prints(trained_run, tmp_path, capsys, name):
    path = _write(tmp_path / name, FILES[name])
    printed = _printed(trained_run.out, path, capsys)
    out = tmp_path / "out.jsonl"
    assert main(["predict", str(trained_run.out), "--input", str(path), "--output", str(out)]) == 0
    assert f"wrote {len(TEXTS)} record(s) to {out}" in capsys.readouterr().err
    assert out.read_text(encoding="utf-8") == printed  # one chunk: the same batches, byte for byte
    records = read_jsonl(out)
    assert [r["text"] for r in records] == TEXTS
    assert all(r["predicted"] in {"positive", "negative"} for r in records)
    if "id" in records[0]:
        assert [r["id"] for r in records] == [r["id"] for r in ROWS]  # other columns kept, in order


def test_small_chunks_keep_the_input_order_and_predictions(trained_run, tmp_path, capsys):
    path = _write(tmp_path / "in.jsonl.gz", FILES["in.jsonl.gz"])
    whole = read_jsonl(_write(tmp_path / "printed.jsonl", _printed(trained_run.out, path, capsys)))
    out = tmp_path / "out.jsonl"
    assert main(["predict", str(trained_run.out), "-i", str(path), "-o", str(out), "--chunk-size", "16", "-q"]) == 0
    assert capsys.readouterr().err == ""  # --quiet
    chunked = read_jsonl(out)
    assert [r["id"] for r in chunked] == [r["id"] for r in ROWS]
    for a, b in zip(chunked, whole):  # other batches: equal up to float rounding
        assert a["probabilities"] == pytest.approx(b["probabilities"], abs=0.02)


def test_existing_output_is_refused_and_overwrite_replaces_it(trained_run, tmp_path, capsys):
    path = _write(tmp_path / "in.txt", FILES["in.txt"])
    out = _write(tmp_path / "mine.jsonl", "my own notes\n")
    argv = ["predict", str(trained_run.out), "--input", str(path), "--output", str(out), "-q"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {out}: already exists") and "--overwrite" in err and len(err.splitlines()) == 1
    assert out.read_text() == "my own notes\n"
    assert main([*argv, "--resume", "--overwrite"]) == 2
    assert main(["predict", str(trained_run.out), "--input", str(path), "--output", str(path), "--overwrite"]) == 2
    assert "is the input file" in capsys.readouterr().err
    assert path.read_text(encoding="utf-8") == FILES["in.txt"]
    assert main([*argv, "--overwrite"]) == 0
    assert [r["text"] for r in read_jsonl(out)] == TEXTS
    assert main(["predict", str(trained_run.out), "a text", "--output", str(out)]) == 2  # texts are not streamed


@pytest.mark.parametrize("name, content, message", [
    ("in.txt", "good\n\nbad\n", ":2: blank line"),
    ("in.txt.gz", "good\nbad\n\u200b\u2060\n", ":3: empty text (only zero-width"),
    ("in.txt", b"good\nbad \xff\n", ":2: not UTF-8 text"),
    ("in.jsonl", '{"text": "fine"}\n{"review": "nice", "id": 1}\n', ":2: missing column 'text' (found: review, id)"),
    ("in.csv", "text,text\na,b\n", ":1: duplicate column 'text'"),
    ("in.jsonl.gz", "\n", ": no examples in file"),
])
def test_bad_input_is_the_readers_one_line_error_and_leaves_no_output(trained_run, tmp_path, capsys, name, content,
                                                                      message):
    path = _write(tmp_path / name, content)
    out = tmp_path / "out.jsonl"
    assert main(["predict", str(trained_run.out), "--input", str(path), "--output", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}{message}") and len(err.strip().splitlines()) == 1, err
    assert not out.exists()  # nothing written: a rerun needs no --overwrite


def test_bad_row_after_written_chunks_keeps_them_and_resume_finishes(trained_run, tmp_path, capsys):
    lines = TEXTS[:40] + ["\u200b"] + TEXTS[41:60]
    path = _write(tmp_path / "in.txt", "\n".join(lines) + "\n")
    out = tmp_path / "out.jsonl"
    argv = ["predict", str(trained_run.out), "--input", str(path), "--output", str(out), "--chunk-size", "8", "-q"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}:41: empty text") and "--resume" in err
    assert [r["text"] for r in read_jsonl(out)] == TEXTS[:40]  # the 5 chunks before the bad one
    _write(path, "\n".join(TEXTS[:60]) + "\n")
    assert main([*argv, "--resume"]) == 0
    assert [r["text"] for r in read_jsonl(out)] == TEXTS[:60]


def test_resume_after_sigkill_is_byte_identical(trained_run, tmp_path):
    path = _write(tmp_path / "in.jsonl", FILES["in.jsonl"])
    whole, out = tmp_path / "whole.jsonl", tmp_path / "out.jsonl"
    argv = [*taskkit_command(), "predict", str(trained_run.out), "--input", str(path), "--chunk-size", "16", "-q"]
    assert main([*argv[len(taskkit_command()):], "--output", str(whole)]) == 0
    # SIGKILLed halfway through writing chunk 4 (of 10): 4 whole chunks and a torn line are left
    killed = subprocess.run([*argv, "--output", str(out)], capture_output=True, timeout=300,
                            env=subprocess_env(TASKKIT_FAULT_AT="predict-chunk-4"))
    assert killed.returncode == -9, killed.stderr.decode()
    left = out.read_bytes()
    assert whole.read_bytes().startswith(left) and not left.endswith(b"\n") and left.count(b"\n") > 64
    assert main(["predict", str(trained_run.out), "--input", str(path), "--output", str(out), "--chunk-size", "16",
                 "-q"]) == 2  # not without --resume
    assert main(["predict", str(trained_run.out), "--input", str(path), "--output", str(out), "--chunk-size", "16",
                 "-q", "--resume"]) == 0
    assert out.read_bytes() == whole.read_bytes()
    # resuming a finished run, or one torn inside its first chunk, changes nothing
    for cut in (None, 100):
        if cut:
            out.write_bytes(whole.read_bytes()[:cut])
        assert main(["predict", str(trained_run.out), "--input", str(path), "--output", str(out), "--chunk-size",
                     "16", "-q", "--resume"]) == 0
        assert out.read_bytes() == whole.read_bytes()


def test_resume_refuses_a_file_that_is_not_its_output(trained_run, tmp_path, capsys):
    path = _write(tmp_path / "in.txt", "\n".join(TEXTS[:10]) + "\n")
    out = _write(tmp_path / "notes.txt", "line one\nline two\n")
    assert main(["predict", str(trained_run.out), "-i", str(path), "-o", str(out), "--resume", "-q"]) == 2
    assert "not a prediction record" in capsys.readouterr().err
    assert out.read_text() == "line one\nline two\n"
    longer = _write(tmp_path / "longer.jsonl", "".join(json.dumps({"text": t}) + "\n" for t in TEXTS[:40]))
    assert main(["predict", str(trained_run.out), "-i", str(path), "-o", str(longer), "--resume", "-q",
                 "--chunk-size", "4"]) == 2
    assert "not an output of this input" in capsys.readouterr().err
