"""End to end with the packaged MiniLM on small slices of real data (a minute or so in all)."""

from __future__ import annotations

import gzip
import itertools
import json
from pathlib import Path

import pytest

from conftest import DATASETS, read_jsonl

pytestmark = pytest.mark.integration


def test_demo_run_beats_chance(tmp_path, run_taskkit):
    """`taskkit run sentiment` without --data trains on the packaged demo data."""
    out = tmp_path / "demo"
    proc = run_taskkit("run", "sentiment", "--epochs", "2", "--out", out, "-q", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "accuracy" in proc.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "minilm" and metrics["data"].endswith(str(Path("demo") / "sentiment"))
    assert metrics["evaluated_on"] == "test" and metrics["examples"] == 50
    gold = [r["gold"] for r in read_jsonl(out / "predictions.jsonl")]
    majority = max(gold.count(label) for label in set(gold)) / len(gold)
    assert metrics["accuracy"] > max(0.6, majority), metrics["accuracy"]
    # small single-label data: the trained model, alone or averaged with the names' zero-shot member
    share = metrics["training"]["zero_shot_share"]
    trained = out / "model" / ("members/0" if share else "") / "model.safetensors"
    assert trained.is_file() and (share > 0) == (out / "model" / "members" / "1" / "taskkit.json").is_file()
    assert not (tmp_path / "runs").exists()


def _slice(source: Path, target: Path, n: int) -> list[dict]:
    with gzip.open(source, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in itertools.islice(f, n)]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return rows


def test_sst2_slice_full_mode(tmp_path, run_taskkit):
    sst2 = DATASETS / "sentiment" / "sst2"
    assert (sst2 / "train.jsonl.gz").is_file(), f"shared datasets missing at {DATASETS}"
    train = _slice(sst2 / "train.jsonl.gz", tmp_path / "data" / "train.jsonl", 400)
    test = _slice(sst2 / "test.jsonl.gz", tmp_path / "data" / "test.jsonl", 200)
    assert len(train) == 400 and len(test) == 200
    out = tmp_path / "out"
    proc = run_taskkit("run", "sentiment", "--mode", "full", "--data", tmp_path / "data", "--model", "minilm",
                       "--epochs", "1", "--max-length", "64", "--batch-size", "8", "--lr", "1e-4",
                       "--out", out, "-q")
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["evaluated_on"] == "test" and metrics["examples"] == 200
    assert metrics["training"]["train_examples"] == 360  # 40 carved off as dev
    assert metrics["accuracy"] > 0.70, metrics["accuracy"]

    # the saved model, reloaded in a new process, agrees with the run's own predictions
    saved = read_jsonl(out / "predictions.jsonl")[:5]
    predicted = run_taskkit("predict", out, *[r["text"] for r in saved])
    assert predicted.returncode == 0, predicted.stderr
    records = [json.loads(line) for line in predicted.stdout.splitlines()]
    assert [r["text"] for r in records] == [r["text"] for r in saved]
    for record, expected in zip(records, saved):
        for label, p in expected["probabilities"].items():
            assert record["probabilities"][label] == pytest.approx(p, abs=0.02)
