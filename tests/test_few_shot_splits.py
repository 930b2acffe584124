"""--shots N gives a sequence task N per class in all (no sampled dev set) unless --dev-shots M (issue 17)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import write_jsonl


def _rows(n: int, label: str, tag: str) -> list[dict]:
    return [{"text": f"{tag} {label} text {i}", "label": label} for i in range(n)]


@pytest.fixture
def sentiment():
    from taskkit import registry

    return registry.get_task("sentiment")


@pytest.fixture
def with_dev(tmp_path: Path) -> Path:
    write_jsonl(tmp_path / "train.jsonl", _rows(20, "positive", "train") + _rows(20, "negative", "train"))
    write_jsonl(tmp_path / "dev.jsonl", _rows(10, "positive", "dev") + _rows(10, "negative", "dev"))
    write_jsonl(tmp_path / "test.jsonl", _rows(3, "positive", "test") + _rows(3, "negative", "test"))
    return tmp_path


def test_shots_alone_mean_no_dev_set(sentiment, with_dev: Path):
    from taskkit.contracts import RunConfig
    from taskkit.data.splits import load_splits

    splits = load_splits(sentiment, with_dev, RunConfig(shots=4, seed=1))
    assert len(splits.train) == 8 and splits.dev == [] and len(splits.test) == 6


def test_dev_shots_sample_the_dev_split(sentiment, with_dev: Path):
    from taskkit.contracts import RunConfig
    from taskkit.data.splits import load_splits

    splits = load_splits(sentiment, with_dev, RunConfig(shots=4, dev_shots=3, seed=1))
    assert len(splits.train) == 8 and len(splits.dev) == 6
    assert all(e["text"].startswith("dev ") for e in splits.dev)
    assert sorted(e["label"] for e in splits.dev) == ["negative"] * 3 + ["positive"] * 3


def test_dev_shots_without_a_dev_split_come_from_the_rest_of_train(sentiment, with_dev: Path):
    from taskkit.contracts import RunConfig
    from taskkit.data.splits import load_splits

    splits = load_splits(sentiment, with_dev / "train.jsonl", RunConfig(shots=4, dev_shots=2, seed=1))
    assert len(splits.train) == 8 and len(splits.dev) == 4
    assert not {e["text"] for e in splits.dev} & {e["text"] for e in splits.train}


def test_dev_shots_need_shots_and_a_positive_count(with_dev: Path, tmp_path: Path, capsys):
    from taskkit.cli import main

    for extra, words in ((["--dev-shots", "2"], "--shots"), (["--shots", "2", "--dev-shots", "0"], "--dev-shots")):
        code = main(["run", "sentiment", "--mode", "few-shot", "--data", str(with_dev), "--out", str(tmp_path / "o"),
                     "-q", *extra])
        err = capsys.readouterr().err
        assert code == 2 and words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_dev_shots_and_min_steps_as_a_user_types_them(with_dev: Path, tmp_path: Path, tiny_model, run_taskkit):
    """``--dev-shots`` gives few-shot a dev set (the run calibrates on it); ``--min-steps`` sizes a
    small full run: both through the real console script."""
    import json

    few = run_taskkit("run", "sentiment", "--mode", "few-shot", "--data", with_dev, "--out", tmp_path / "few",
                      "--model", tiny_model, "--shots", "4", "--dev-shots", "10", "--max-length", "32", "-q",
                      "--option", "zero_shot=none", "--option", "steps=2", timeout=600)
    assert few.returncode == 0, few.stderr[-2000:]
    fitted_on = json.loads((tmp_path / "few" / "metrics.json").read_text())["calibration"].get("fitted_on", "")
    assert fitted_on.startswith("dev") and "(20 examples)" in fitted_on, fitted_on

    full = run_taskkit("run", "sentiment", "--data", with_dev, "--out", tmp_path / "full", "--model", tiny_model,
                       "--min-steps", "30", "--max-length", "32", "-q", timeout=600)
    assert full.returncode == 0, full.stderr[-2000:]
    small = json.loads((tmp_path / "full" / "metrics.json").read_text())["training"]["extra"]["small_data"]
    assert small["min_steps"] == 30 and small["epochs"] * -(-40 // small["batch_size"]) >= 30, small
