"""Defaults that hold: the settings behind RESULTS.md's figures are what a run gets with no flags.

A task declares its own run settings per mode (``Task.defaults``: ner and relation in full mode,
``--lr 1e-4``), applied over the mode's (``Mode.defaults``) and under the user's explicit flags.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from taskkit import api, registry
from taskkit.cli import main


def _config(task: str, mode: str, **given):
    task_obj, mode_obj = registry.get_pair(task, mode)
    return api.make_config(task_obj.run_defaults(mode_obj), task_obj=task_obj, mode_obj=mode_obj, **given)


@pytest.mark.parametrize(("task", "mode", "lr", "epochs"), [
    ("ner", "full", 1e-4, 5), ("relation", "full", 1e-4, 3),  # the WNUT / WikiANN and SemEval figures' settings
    ("sentiment", "full", 5e-5, 5),  # tasks without defaults of their own keep the mode's
    ("ner", "peft", 5e-4, 5),  # a task's full-mode settings leave another mode's alone
    ("intent", "distill", 5e-5, 20),  # a student learns a soft teacher slowly: early stopping decides
])
def test_a_run_without_flags_gets_the_task_and_mode_defaults(task: str, mode: str, lr: float, epochs: int):
    config = _config(task, mode)
    assert (config.lr, config.epochs) == (lr, epochs)


def test_explicit_flags_win_over_task_defaults():
    config = _config("relation", "full", lr=3e-5, epochs=1)
    assert (config.lr, config.epochs) == (3e-5, 1)


def test_options_command_shows_the_task_defaults(capsys):
    assert main(["options", "relation"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip().startswith("--")}
    assert rows["--lr"][3] == "0.0001" and rows["--epochs"][3] == "3", out


def test_ner_run_without_lr_trains_at_the_task_default(tiny_model: Path, tmp_path: Path):
    sentences = [(["John", "lives", "in", "Paris"], ["B-PER", "O", "O", "B-LOC"]),
                 (["Mary", "visited", "Berlin"], ["B-PER", "O", "B-LOC"])] * 4
    text = "\n\n".join("\n".join(f"{w}\t{t}" for w, t in zip(*s)) for s in sentences) + "\n"
    for split in ("train", "dev", "test"):
        (tmp_path / "data").mkdir(exist_ok=True)
        (tmp_path / "data" / f"{split}.conll").write_text(text, encoding="utf-8")
    code = main(["run", "ner", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "out"), "--model",
                 str(tiny_model), "--epochs", "1", "--max-length", "16", "-q"])
    assert code == 0
    config = json.loads((tmp_path / "out" / "metrics.json").read_text(encoding="utf-8"))["config"]
    assert config["lr"] == 1e-4 and config["epochs"] == 1


# --- small data: enough optimiser steps (--min-steps) ----------------------------------------------
@pytest.mark.parametrize(("examples", "batch", "epochs"), [
    (120, 8, 7),  # the demo: 20 steps at batch 32 -> batches of 8, 7 epochs (105 steps)
    (300, 15, 5),  # the batch shrinks only as far as needed
    (30, 8, 25),  # a handful of texts: the epochs grow once the batch is down to 8
    (6920, 32, 5),  # SST-2: enough steps already, left alone
])
def test_small_data_gets_at_least_min_steps_optimiser_steps(examples: int, batch: int, epochs: int):
    sized = _config("sentiment", "full").for_data(examples)
    assert (sized.batch_size, sized.epochs) == (batch, epochs)
    assert -(-examples // sized.batch_size) * sized.epochs >= 100


@pytest.mark.parametrize("given", [{"epochs": 2}, {"batch_size": 16}, {"min_steps": 0}])
def test_a_user_who_sizes_training_keeps_it(given):
    config = _config("sentiment", "full", **given)
    assert config.for_data(120) == config


def test_demo_run_without_flags_records_the_resized_training(tiny_model: Path, tmp_path: Path):
    result = api.run("sentiment", "full", None, tmp_path / "out", model=str(tiny_model), max_length=32,
                     progress=False, patience=0)
    training = result.metrics["training"]
    assert training["extra"]["small_data"] == {"batch_size": 8, "epochs": 7, "min_steps": 100}
    assert training["epochs_run"] == 7 and result.metrics["config"]["auto_size"] is True


@pytest.mark.integration
def test_readme_first_command_gives_a_result_worth_having(tmp_path: Path, run_taskkit):
    """`taskkit run sentiment` as README's set-up shows it: packaged MiniLM, demo data, no flags.

    Before --min-steps: 0.72 on the 50 test texts (20 optimiser steps, dev flat at 0.60); now 0.82
    (105 steps in batches of 8). The issue's target, 0.85, is not reached yet."""
    done = run_taskkit("run", "sentiment", "-q", cwd=tmp_path, timeout=900)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "runs" / "sentiment-full" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["training"]["extra"]["small_data"]["batch_size"] == 8
    assert metrics["examples"] == 50 and metrics["accuracy"] >= 0.78, metrics["accuracy"]
