"""The run folder's pictures: valid PNGs of a sensible size in model/, linked from the run folder,
owned like metrics.json, and named in the printed report."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import write_jsonl

from taskkit.errors import TaskkitError

PNG = b"\x89PNG\r\n\x1a\n"
POSITIVE = ["a lovely, moving film", "great acting and a fine story", "I enjoyed every minute", "wonderful and warm",
            "a delight from start to end", "brilliant, funny and sharp", "beautifully shot", "a joy to watch"]
TEXTS = ["The striker scored twice in the cup final.", "Shares fell after the bank cut its forecast.",
         "A new telescope photographed a distant galaxy.", "The prime minister met foreign leaders."]
GOLD = ["Sports", "Business", "Sci/Tech", "World"]
NEGATIVE = ["a dull, lifeless mess", "boring and far too long", "I hated every minute", "awful acting throughout",
            "a waste of two hours", "clumsy, flat and tedious", "badly written", "painful to sit through"]


def check_picture(path: Path) -> None:
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == PNG, path
    image = imread(path)
    height, width = image.shape[:2]
    assert 200 <= width <= 2000 and 200 <= height <= 2000, (path, width, height)
    assert image.std() > 0.01, path  # something is drawn


def check_run(out: Path, expected: set[str]) -> None:
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["plots"]) == expected
    meta = json.loads((out / "model" / "taskkit.json").read_text())
    for name in expected:
        assert os.readlink(out / name) == f"model/{name}"  # linked, as metrics.json is
        assert name in meta["files"]  # taskkit's own file of the model folder
        check_picture(out / name)


def test_full_run_draws_confusion_matrix_reliability_and_training_curve(trained_run, capsys):
    from taskkit.report import print_report

    check_run(trained_run.out, {"confusion_matrix.png", "reliability.png", "training_curve.png"})
    print_report(trained_run.metrics, trained_run.out)
    shown = capsys.readouterr().out
    assert f"pictures: {trained_run.out / 'confusion_matrix.png'}" in shown
    assert "probabilities calibrated" in shown


def test_few_shot_run_draws_its_pictures(tiny_model, tmp_path):
    from taskkit import api

    data = tmp_path / "data"
    write_jsonl(data / "train.jsonl", [{"text": t, "label": "positive"} for t in POSITIVE[:4]]
                + [{"text": t, "label": "negative"} for t in NEGATIVE[:4]])
    dev = [{"text": t, "label": "positive"} for t in POSITIVE[4:]] + [{"text": t, "label": "negative"} for t in NEGATIVE[4:]]
    write_jsonl(data / "dev.jsonl", dev * 3)
    write_jsonl(data / "test.jsonl", dev)
    result = api.run("sentiment", "few-shot", data, tmp_path / "out", model=str(tiny_model), seed=3, max_length=32,
                     progress=False, options={"steps": 4, "eval_every": 2, "zero_shot": "none"})
    assert result.metrics["calibration"]["method"] != "none"
    check_run(tmp_path / "out", {"confusion_matrix.png", "reliability.png", "training_curve.png"})


def test_zero_shot_run_draws_confusion_matrix_and_reliability(tiny_nli, tiny_encoder, tmp_path):
    from taskkit import api

    data = tmp_path / "data"
    rows = [{"text": t, "label": g} for t, g in zip(TEXTS, GOLD)]
    write_jsonl(data / "dev.jsonl", rows * 6)
    write_jsonl(data / "test.jsonl", rows)
    result = api.run("topic", "zero-shot", data, tmp_path / "out", labels="World,Sports,Business,Sci/Tech",
                     model=str(tiny_nli), options={"encoder": str(tiny_encoder), "self_train": False}, progress=False)
    assert result.metrics["calibration"]["fitted_on"].startswith("dev split (24")
    check_run(tmp_path / "out", {"confusion_matrix.png", "reliability.png"})


def test_pictures_are_owned_like_the_metrics(trained_run, tmp_path):
    from taskkit.ownership import check_run_folder

    out = tmp_path / "run"
    shutil.copytree(trained_run.out, out, symlinks=True)
    check_run_folder(out)  # taskkit's own run folder, pictures included
    (out / "reliability.png").unlink()
    (out / "reliability.png").write_bytes(PNG + b"a user's own picture")
    with pytest.raises(TaskkitError, match="reliability.png is not one taskkit wrote"):
        check_run_folder(out, overwrite=True)


def test_a_later_run_unlinks_pictures_it_does_not_draw(trained_run, tmp_path):
    from taskkit.artifacts import save_run

    out = tmp_path / "run"
    shutil.copytree(trained_run.out, out, symlinks=True)
    metrics = (out / "metrics.json").read_text()
    save_run(out, trained_run.predictor.save, {"metrics.json": metrics, "predictions.jsonl": "",
                                               "confusion_matrix.png": PNG + b"new"})
    assert (out / "confusion_matrix.png").read_bytes() == PNG + b"new"
    assert not os.path.lexists(out / "training_curve.png")  # no link left dangling
    assert not (out / "model" / "training_curve.png").exists()
