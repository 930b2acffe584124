"""The peft mode, continued training (--from) and long-text windows, on the tiny random BERT."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from taskkit import api
from taskkit.cli import main

from conftest import DEMO, write_jsonl

TEXTS = ["The best hotel we ever stayed in.", "Cold food, rude staff, never again.", "It arrived on time."]


@pytest.fixture(scope="module")
def lora_run(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("lora-run")
    return api.run("sentiment", "peft", DEMO, out, model=str(tiny_model), epochs=2, max_length=64, seed=3,
                   progress=False)


def test_lora_trains_few_parameters_and_saves_only_the_adapter(lora_run):
    training = lora_run.predictor.training
    assert 0 < training.trainable_parameters < training.total_parameters
    assert lora_run.metrics["config"]["lr"] == 5e-4  # the mode's default, not full fine-tuning's
    folder = lora_run.out / "model"
    assert (folder / "adapter" / "adapter_model.safetensors").is_file()
    assert (folder / "head.safetensors").is_file()
    assert not (folder / "model.safetensors").exists()  # the base is referenced, not copied
    meta = json.loads((folder / "taskkit.json").read_text())
    assert meta["mode"] == "peft" and Path(meta["settings"]["base_model"]).name.startswith("tiny-bert")


def test_adapter_reloads_with_identical_probabilities(lora_run, run_taskkit):
    reloaded = api.load(lora_run.out)
    np.testing.assert_array_equal(reloaded.predict_proba(TEXTS), lora_run.predictor.predict_proba(TEXTS))
    proc = run_taskkit("predict", lora_run.out, *TEXTS)
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line) for line in proc.stdout.splitlines()] == api.predict(lora_run.predictor, TEXTS)


def test_merged_adapter_predicts_the_same(lora_run, tmp_path, run_taskkit):
    proc = run_taskkit("merge", lora_run.out, tmp_path / "merged")
    assert proc.returncode == 0, proc.stderr
    merged = api.load(tmp_path / "merged")
    assert (tmp_path / "merged" / "model.safetensors").is_file()
    unmerged = api.load(lora_run.out)
    np.testing.assert_allclose(merged.predict_proba(TEXTS, precision="fp32"),
                               unmerged.predict_proba(TEXTS, precision="fp32"), atol=1e-5)


def test_ia3_method(tiny_model, tmp_path):
    result = api.run("sentiment", "peft", DEMO, tmp_path, model=str(tiny_model), epochs=1, max_length=32,
                     options={"method": "ia3"}, progress=False)
    assert result.predictor.training.trainable_share < 0.05
    np.testing.assert_array_equal(api.load(tmp_path).predict_proba(TEXTS), result.predictor.predict_proba(TEXTS))


def test_continued_training_keeps_labels_adds_new_ones_and_reports_forgetting(lora_run, tiny_model, tmp_path):
    rows = [{"text": f"nothing special, it was fine {i}", "label": "neutral"} for i in range(12)]
    rows += [{"text": f"truly wonderful, loved it {i}", "label": "positive"} for i in range(12)]
    data = write_jsonl(tmp_path / "new" / "train.jsonl", rows)
    for mode, source in (("full", lora_run.out), ("peft", lora_run.out)):
        out = tmp_path / f"cont-{mode}"
        result = api.run("sentiment", mode, data, out, init_from=str(source), epochs=1, max_length=32, progress=False)
        assert result.predictor.labels.names == ("negative", "positive", "neutral")  # old order kept
        old = result.metrics["old_test"]
        assert old["data"] == str(DEMO) and old["before"]["examples"] == old["after"]["examples"] == 50
        assert result.predictor.predict_proba(TEXTS).shape == (3, 3)
        assert api.load(out).labels.names == ("negative", "positive", "neutral")


@pytest.mark.parametrize("case", ["not-a-model", "other-task", "missing-base"])
def test_bad_from(case, lora_run, tmp_path, capsys):
    data = DEMO
    if case == "not-a-model":
        source = tmp_path / "empty"
        source.mkdir()
        expected = "not a taskkit model folder"
    elif case == "other-task":
        source = tmp_path / "nli-model"
        shutil.copytree(lora_run.out / "model", source)
        meta = json.loads((source / "taskkit.json").read_text())
        meta["task"] = "nli"
        (source / "taskkit.json").write_text(json.dumps(meta))
        expected = "a model of task 'nli'"
    else:
        source = tmp_path / "orphan"
        shutil.copytree(lora_run.out / "model", source)
        meta = json.loads((source / "taskkit.json").read_text())
        meta["settings"]["base_model"] = str(tmp_path / "gone")
        (source / "taskkit.json").write_text(json.dumps(meta))
        expected = "cannot be found"
    code = main(["run", "sentiment", "--mode", "full", "--data", str(data), "--from", str(source), "--epochs", "1",
                 "--out", str(tmp_path / "out"), "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and expected in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_long_texts_become_pooled_windows_not_truncated(trained_run):
    predictor = trained_run.predictor
    long_text = " ".join(["The staff were friendly but the room was dirty and the food was cold."] * 20)
    features = predictor.features([long_text, "short and sweet"])
    windows = [f for f in features if f["_example"] == 0]
    assert len(windows) > 1 and all(len(f["input_ids"]) <= 64 for f in features)
    covered = {t for f in windows for t in f["input_ids"]}
    truncated = predictor.tokenizer(long_text, truncation=True, max_length=64)["input_ids"]
    assert covered >= set(truncated)
    proba = predictor.predict_proba([long_text, "short and sweet"])
    assert proba.shape == (2, 2) and np.allclose(proba.sum(axis=1), 1)
    predictor.settings["truncate"] = True
    try:
        assert len(predictor.features([long_text])) == 1
    finally:
        predictor.settings["truncate"] = False
