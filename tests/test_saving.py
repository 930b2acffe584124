"""Model folders: reload in a new process, atomic saves, predict from files, run outputs."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import read_jsonl

from taskkit import api
from taskkit.artifacts import read_metadata
from taskkit.cli import main
from taskkit.errors import TaskkitError

TEXTS = ["The best hotel we ever stayed in.", "Cold food, rude staff, never again.",
         "It arrived on time.", "Gripping from the first page to the last, I loved every chapter of it."]


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_model_folder_layout(trained_run):
    model = trained_run.out / "model"
    names = set(os.listdir(model))
    assert {"taskkit.json", "model.safetensors", "config.json", "tokenizer.json"} <= names
    meta = json.loads((model / "taskkit.json").read_text())
    assert meta["task"] == "sentiment" and meta["mode"] == "full"
    assert meta["labels"] == ["negative", "positive"] and meta["multi_label"] is False
    assert meta["settings"]["max_length"] == 64
    assert meta["format"] == "torch.v1" and meta["taskkit_version"]  # the format, apart from the mode
    assert _leftovers(trained_run.out) == []


def test_reload_in_process_gives_identical_probabilities(trained_run):
    reloaded = api.load(trained_run.out / "model")
    np.testing.assert_array_equal(reloaded.predict_proba(TEXTS), trained_run.predictor.predict_proba(TEXTS))
    from_run_folder = api.load(trained_run.out)  # a run's output folder works too
    assert from_run_folder.labels == trained_run.predictor.labels


def test_reload_in_a_new_process_gives_identical_probabilities(trained_run, run_taskkit):
    proc = run_taskkit("predict", trained_run.out / "model", *TEXTS)
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert records == api.predict(trained_run.predictor, TEXTS)
    assert [r["text"] for r in records] == TEXTS
    probabilities = trained_run.predictor.predict_proba(TEXTS)
    for record, row in zip(records, probabilities):
        assert record["probabilities"] == {"negative": round(float(row[0]), 6), "positive": round(float(row[1]), 6)}
        assert record["predicted"] == ("positive" if row[1] > row[0] else "negative")


def test_predict_from_input_files(trained_run, tmp_path, run_taskkit, capsys):
    expected = api.predict(trained_run.predictor, TEXTS)
    plain = tmp_path / "inputs.txt"
    plain.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    proc = run_taskkit("predict", trained_run.out, "--input", plain)
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line) for line in proc.stdout.splitlines()] == expected

    rows = tmp_path / "inputs.jsonl"
    rows.write_text("".join(json.dumps({"text": t, "id": i}) + "\n" for i, t in enumerate(TEXTS)), encoding="utf-8")
    assert main(["predict", str(trained_run.out), "--input", str(rows)]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["id"] for r in records] == [0, 1, 2, 3]
    assert [r["probabilities"] for r in records] == [r["probabilities"] for r in expected]

    table = tmp_path / "inputs.csv"
    table.write_text("text\n" + "\n".join(f'"{t}"' for t in TEXTS) + "\n", encoding="utf-8")
    assert main(["predict", str(trained_run.out), "extra text first", "--input", str(table)]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in records] == ["extra text first", *TEXTS]


def test_predict_input_not_utf8(trained_run, tmp_path, capsys):
    path = tmp_path / "inputs.txt"
    path.write_bytes(b"caf\xe9\n")
    assert main(["predict", str(trained_run.out), "--input", str(path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}") and "not UTF-8 text" in lines[0]


def test_metrics_and_predictions_files(trained_run, demo_rows):
    metrics = json.loads((trained_run.out / "metrics.json").read_text())
    assert metrics["task"] == "sentiment" and metrics["mode"] == "full"
    assert metrics["evaluated_on"] == "test" and metrics["examples"] == len(demo_rows["test"])
    assert set(metrics["per_class"]) == {"negative", "positive"}
    assert metrics["config"]["epochs"] == 2 and metrics["config"]["seed"] == 7
    assert metrics["training"]["train_examples"] == len(demo_rows["train"])

    records = read_jsonl(trained_run.out / "predictions.jsonl")
    assert len(records) == len(demo_rows["test"])
    for record, row in zip(records, demo_rows["test"]):
        assert record["text"] == row["text"]
        assert record["gold"] == row["label"]
        assert "label" not in record
        probabilities = record["probabilities"]
        assert set(probabilities) == {"negative", "positive"}
        assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert record["predicted"] == max(probabilities, key=probabilities.get)
    accuracy = sum(r["gold"] == r["predicted"] for r in records) / len(records)
    assert metrics["accuracy"] == pytest.approx(accuracy)
    assert records == trained_run.predictions


@pytest.fixture
def good_model(trained_run, tmp_path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(trained_run.out / "model", folder)
    return folder


def _assert_intact(folder: Path, before: dict[str, bytes], trained_run) -> None:
    assert _files(folder) == before
    reloaded = api.load(folder)
    np.testing.assert_array_equal(reloaded.predict_proba(TEXTS), trained_run.predictor.predict_proba(TEXTS))
    assert _leftovers(folder.parent) == []


def test_interrupted_weight_write_keeps_the_previous_model(trained_run, good_model, monkeypatch):
    import safetensors.torch

    before = _files(good_model)

    def failing_save_model(model, filename, *args, **kwargs):
        Path(filename).write_bytes(b"half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_model", failing_save_model)
    with pytest.raises(OSError, match="No space left"):
        trained_run.predictor.save(good_model)
    _assert_intact(good_model, before, trained_run)


def test_interrupt_at_the_folder_swap_keeps_the_previous_model(trained_run, good_model, monkeypatch):
    """Ctrl-C at the moment the complete new folder was to be swapped in (one atomic exchange)."""
    from taskkit import atomic

    before = _files(good_model)

    def exchange(a, b):
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic, "exchange", exchange)
    with pytest.raises(KeyboardInterrupt):
        trained_run.predictor.save(good_model)
    monkeypatch.undo()
    _assert_intact(good_model, before, trained_run)


def test_interrupt_between_the_fallback_renames_keeps_the_previous_model(trained_run, good_model, monkeypatch):
    """Without an atomic exchange: Ctrl-C after the old folder was moved aside but before the new
    one took its place puts the old one back."""
    from taskkit import atomic

    before = _files(good_model)
    real_rename = os.rename

    def rename(src, dst):
        if Path(src).name.startswith(".model.tmp-"):
            raise KeyboardInterrupt
        return real_rename(src, dst)

    monkeypatch.setattr(atomic, "exchange", lambda a, b: False)
    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(KeyboardInterrupt):
        trained_run.predictor.save(good_model)
    monkeypatch.undo()
    _assert_intact(good_model, before, trained_run)


def test_saving_over_a_model_replaces_it_cleanly(trained_run, good_model):
    (good_model / "config.json").write_text("{}")  # a file taskkit wrote, since changed: still taskkit's
    trained_run.predictor.save(good_model)
    meta = read_metadata(good_model)
    assert meta["task"] == "sentiment"
    assert sorted(meta["files"]) == sorted(p.name for p in good_model.iterdir() if p.name != "taskkit.json")
    assert (good_model / "config.json").read_text() != "{}"
    assert _leftovers(good_model.parent) == []


def test_saving_over_a_model_with_a_foreign_file_is_refused(trained_run, good_model):
    """Before, a file the user added to a model folder was deleted by the next save."""
    (good_model / "stale-file.bin").write_bytes(b"not taskkit's")
    before = _files(good_model)
    with pytest.raises(TaskkitError, match=r"holds files taskkit did not write \(stale-file.bin\)"):
        trained_run.predictor.save(good_model)
    assert _files(good_model) == before and _leftovers(good_model.parent) == []


def test_saved_folder_permissions_follow_the_umask(trained_run, tmp_path):
    previous = os.umask(0o027)
    try:
        trained_run.predictor.save(tmp_path / "model")
    finally:
        os.umask(previous)
    assert (tmp_path / "model").stat().st_mode & 0o777 == 0o750
    assert {p.stat().st_mode & 0o777 for p in (tmp_path / "model").iterdir()} == {0o640}
    os.umask(0o022)
    try:
        trained_run.predictor.save(tmp_path / "model")
    finally:
        os.umask(previous)
    assert (tmp_path / "model").stat().st_mode & 0o777 == 0o755
    assert {p.stat().st_mode & 0o777 for p in (tmp_path / "model").iterdir()} == {0o644}


def test_model_folder_without_weights(good_model):
    (good_model / "model.safetensors").unlink()
    with pytest.raises(TaskkitError, match="has no model.safetensors"):
        api.load(good_model)
