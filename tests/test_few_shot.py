"""The few-shot mode on tiny data with the packaged MiniLM: fit, save, load, predict_proba, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import write_jsonl

POSITIVE = ["a wonderful, moving film", "great acting and a clever story", "I loved every minute of it",
            "brilliant and funny", "a delight from start to finish", "beautifully shot and deeply felt",
            "the best film this year", "warm, witty and charming"]
NEGATIVE = ["a dull, lifeless mess", "boring and far too long", "I hated every minute of it",
            "clumsy and unfunny", "a waste of two hours", "badly acted and poorly written",
            "the worst film this year", "tedious, flat and forgettable"]
FAST = ["--option", "steps=4", "--option", "eval_every=2", "--max-length", "32", "--epochs", "2", "-q"]


def rows(texts: list[str], label: str) -> list[dict]:
    return [{"text": t, "label": label} for t in texts]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-sentiment")
    write_jsonl(folder / "train.jsonl", rows(POSITIVE[:6], "positive") + rows(NEGATIVE[:6], "negative"))
    write_jsonl(folder / "dev.jsonl", rows(POSITIVE[6:7], "positive") + rows(NEGATIVE[6:7], "negative"))
    write_jsonl(folder / "test.jsonl", rows(POSITIVE[7:], "positive") + rows(NEGATIVE[7:], "negative")
                + rows(["an excellent, joyful movie"], "positive") + rows(["an awful, painful movie"], "negative"))
    return folder


@pytest.fixture(scope="module")
def few_shot_run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory):
    from taskkit import api

    out = tmp_path_factory.mktemp("few-shot-run")
    return api.run("sentiment", "few-shot", tiny_data, out, shots=4, seed=3, max_length=32, epochs=2, progress=False,
                   options={"steps": 4, "eval_every": 2})


def test_fit_records_shots_and_predicts(few_shot_run):
    metrics = few_shot_run.metrics
    assert len(metrics["train_indices"]) == 8  # 4 per class, and which ones
    assert metrics["training"]["contrastive"]["steps_run"] <= 4
    assert metrics["accuracy"] >= 0.75  # the label prior alone gets these right
    proba = few_shot_run.predictor.predict_proba(["a lovely film", "a terrible film"])
    assert proba.shape == (2, 2) and np.allclose(proba.sum(1), 1.0, atol=1e-5)


def test_save_load_same_probabilities(few_shot_run):
    import taskkit

    loaded = taskkit.load(few_shot_run.out)
    texts = ["a lovely film", "a terrible film", "it was fine"]
    assert json.loads((few_shot_run.out / "model" / "taskkit.json").read_text())["mode"] == "few-shot"
    assert np.allclose(loaded.predict_proba(texts), few_shot_run.predictor.predict_proba(texts), atol=1e-4)
    assert loaded.predict(["a lovely film"]) == few_shot_run.predictor.predict(["a lovely film"])


def test_few_labels_average_with_a_zero_shot_classifier(few_shot_run, tiny_data: Path, tmp_path: Path):
    """Few examples never throw away what the label names say: the trained classifier is averaged
    with a zero-shot one (the default for single-label tasks of at most 10 labels)."""
    from taskkit import api
    from taskkit.ensemble import EnsemblePredictor

    ensemble = few_shot_run.predictor
    assert isinstance(ensemble, EnsemblePredictor) and few_shot_run.metrics["training"]["zero_shot"] == "both"
    assert (few_shot_run.out / "model" / "members" / "1" / "taskkit.json").is_file()
    texts = ["a lovely film", "a terrible film"]
    trained, zero = (m.predict_proba(texts) for m in ensemble.members)
    share = few_shot_run.metrics["training"]["zero_shot_share"]  # cross-validated on the shots (issue 17)
    assert 0 < share <= 1 and few_shot_run.metrics["training"]["shares"]["ensemble"] == share
    assert np.allclose(ensemble.predict_proba(texts), (1 - share) * trained + share * zero, atol=1e-5)
    plain = api.run("sentiment", "few-shot", tiny_data, tmp_path, shots=4, seed=3, max_length=32, epochs=1,
                    progress=False, options={"steps": 2, "zero_shot": "none"})
    assert not isinstance(plain.predictor, EnsemblePredictor) and not (tmp_path / "model" / "members").exists()


@pytest.mark.parametrize("head", ["torch"])
def test_torch_head_saves_and_loads(tiny_data: Path, tmp_path: Path, head: str):
    import taskkit
    from taskkit import api

    result = api.run("sentiment", "few-shot", tiny_data, tmp_path, shots=4, seed=1, max_length=32, epochs=1,
                     progress=False, options={"steps": 2, "head": head})
    loaded = taskkit.load(tmp_path)
    assert np.allclose(loaded.predict_proba(["so good"]), result.predictor.predict_proba(["so good"]), atol=1e-3)


def test_taskkit_predict_cli_reads_few_shot_model(few_shot_run, run_taskkit):
    proc = run_taskkit("predict", few_shot_run.out, "what a lovely film")
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout.splitlines()[0])
    assert set(record["probabilities"]) == {"negative", "positive"}


def _cli(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    from taskkit.cli import main

    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def test_too_few_examples_names_class_and_counts(tiny_data: Path, tmp_path: Path, capsys):
    code, err = _cli(["run", "sentiment", "--mode", "few-shot", "--data", tiny_data, "--out", tmp_path,
                      "--shots", "7", *FAST], capsys)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "'negative' has 6" in err and "'positive' has 6" in err and "allow_fewer" in err


def test_one_class_only(tmp_path: Path, capsys):
    write_jsonl(tmp_path / "train.jsonl", rows(POSITIVE, "positive"))
    code, err = _cli(["run", "sentiment", "--mode", "few-shot", "--data", tmp_path / "train.jsonl", "--out",
                      tmp_path / "out", *FAST], capsys)
    assert code == 2 and "single class" in err and len(err.strip().splitlines()) == 1


def test_test_label_never_seen_in_training(tiny_data: Path, tmp_path: Path, capsys):
    for name in ("train", "dev"):
        (tmp_path / f"{name}.jsonl").write_text((tiny_data / f"{name}.jsonl").read_text())
    write_jsonl(tmp_path / "test.jsonl", rows(["meh"], "neutral") + rows(POSITIVE[:1], "positive"))
    code, err = _cli(["run", "sentiment", "--mode", "few-shot", "--data", tmp_path, "--out", tmp_path / "out",
                      *FAST], capsys)
    assert code == 2 and "'neutral'" in err and "never occurs in training" in err


def test_unknown_option_and_head(tiny_data: Path, tmp_path: Path, capsys):
    code, err = _cli(["run", "sentiment", "--mode", "few-shot", "--data", tiny_data, "--out", tmp_path,
                      "--option", "head=forest", *FAST], capsys)
    assert code == 2 and "--option head=forest" in err and "'logistic' or 'torch'" in err
    code, err = _cli(["run", "sentiment", "--mode", "few-shot", "--data", tiny_data, "--out", tmp_path,
                      "--option", "stepz=3", *FAST], capsys)
    assert code == 2 and "stepz" in err


def test_multi_label_few_shot_tunes_and_keeps_threshold(tmp_path: Path):
    import taskkit
    from taskkit import api

    texts = {("joy",): ["so happy today", "what a joyful day"], ("anger",): ["I am furious", "this makes me mad"],
             ("joy", "surprise"): ["wow, what a happy surprise", "amazed and delighted"],
             ("surprise",): ["I did not expect that at all", "what a shock"]}
    train = [{"text": t, "labels": list(k)} for k, ts in texts.items() for t in ts]
    write_jsonl(tmp_path / "train.jsonl", train)
    write_jsonl(tmp_path / "dev.jsonl", train[::2])
    write_jsonl(tmp_path / "test.jsonl", train[1::2])
    result = api.run("sentiment", "few-shot", tmp_path, tmp_path / "out", seed=0, max_length=32, progress=False,
                     options={"steps": 2})
    threshold = result.predictor.threshold
    assert threshold is not None and 0 < threshold < 1
    assert {"micro_f1", "macro_f1"} <= set(result.metrics)
    loaded = taskkit.load(tmp_path / "out")
    assert loaded.threshold == threshold
    assert all(isinstance(p, list) for p in loaded.predict(["so happy"]))


def test_the_cli_gives_the_mode_default_max_length(tiny_data: Path, tiny_model: Path, tmp_path: Path, run_taskkit):
    """`taskkit run --mode few-shot` without --max-length: each text's first 128 tokens (the mode's
    default, chosen on AG News dev texts); --max-length still wins."""
    for flags, expected in (([], 128), (["--max-length", "48"], 48)):
        out = tmp_path / str(expected)
        proc = run_taskkit("run", "sentiment", "--mode", "few-shot", "--model", tiny_model, "--data", tiny_data,
                           "--out", out, "--option", "steps=2", "--option", "zero_shot=none", "--epochs", "1", "-q",
                           *flags)
        assert proc.returncode == 0, proc.stderr
        assert json.loads((out / "metrics.json").read_text())["config"]["max_length"] == expected
