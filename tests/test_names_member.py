"""Small single-label data: full (and peft) mode keep the zero-shot classifier of the label names beside
the trained model, at a share the dev split chooses (issue 15, the README's first command)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import DEMO, write_jsonl


def test_the_share_follows_what_the_names_are_worth_on_dev():
    from taskkit.names_member import SHARES, choose_share

    rng = np.random.default_rng(0)
    gold = rng.integers(0, 2, 60)
    weak = np.full((60, 2), 0.5) + rng.normal(0, 0.05, (60, 1)) * np.array([1, -1])  # the trained model: a coin
    telling = np.where(np.eye(2)[gold] == 1, 0.9, 0.1)  # names that know the answer
    share, losses = choose_share(weak, telling, gold)
    assert share == max(SHARES) and set(losses) == {str(w) for w in SHARES}
    noise = rng.dirichlet([1, 1], 60)  # names that say nothing (codes)
    sure = np.where(np.eye(2)[gold] == 1, 0.8, 0.2)  # a trained model that knows
    assert choose_share(sure, noise, gold)[0] == 0.0
    # two members of about the same worth: a few dozen dev texts cannot tell the shares apart, so the
    # plain average stands (the dev loss's minimum alone would pick a share by noise)
    right, minima = np.eye(2)[gold], set()
    for _ in range(5):
        trained, zero = (np.clip(0.5 + (right - 0.5) * rng.uniform(-0.2, 0.9, (60, 1)), 0.01, 0.99) for _ in "tz")
        share, losses = choose_share(trained, zero, gold)
        assert share == 0.5, losses
        minima.add(min(losses, key=lambda w: losses[w]))
    assert minima - {"0.5"}  # the noise did put the minimum elsewhere, and the rule did not follow it


def test_auto_tries_a_member_on_small_single_label_data_of_the_default_model():
    from taskkit import registry
    from taskkit.contracts import RunConfig, Splits
    from taskkit.names_member import member_backend

    task = registry.get_task("sentiment")
    rows = [{"text": f"text {i}", "label": "positive" if i % 2 else "negative"} for i in range(1001)]
    labels = task.label_space(rows)

    def backend(train: int, dev: int, model: str = "minilm") -> str:
        splits = Splits(train=rows[:train], dev=rows[:dev], test=[], source="x")
        return member_backend(task, splits, RunConfig(model=model), labels, "auto")

    assert backend(120, 30) == "both"
    assert backend(1000, 20) == "both"
    assert backend(1001, 30) == "none"  # enough examples: the trained model alone
    assert backend(120, 19) == "none"  # too few dev examples to choose a share on
    assert backend(120, 30, model="/my/german-bert") == "none"  # the member's models are English MiniLM
    splits = Splits(train=rows[:120], dev=rows[:30], test=[], source="x")
    assert member_backend(task, splits, RunConfig(model="/my/model"), labels, "nli") == "nli"  # asked for


def test_full_mode_keeps_a_member_through_the_cli(tiny_model: Path, tmp_path: Path, run_taskkit):
    """A given share builds the ensemble; it is saved, loads in a new process and predicts; the dev
    losses of every share are in metrics.json; zero_shot=none keeps the trained model alone."""
    out = tmp_path / "run"
    proc = run_taskkit("run", "sentiment", "--model", tiny_model, "--epochs", "1", "--max-length", "32", "--out", out,
                       "-q", "--option", "zero_shot=both", "--option", "zero_shot_weight=0.5")
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    training = metrics["training"]
    assert training["zero_shot"] == "both" and training["zero_shot_share"] == 0.5
    assert training["shares"]["chosen_by"] == "--option zero_shot_weight"
    assert len(training["shares"]["dev_loss"]) == 5 and all(v > 0 for v in training["shares"]["dev_loss"].values())
    meta = json.loads((out / "model" / "taskkit.json").read_text())
    assert meta["format"] == "ensemble.v1" and meta["ensemble"]["weights"] == [0.5, 0.5]
    assert meta["mode"] == "full" and (out / "model" / "members" / "1").is_dir()
    predicted = run_taskkit("predict", out, "a wonderful, moving film")
    assert predicted.returncode == 0, predicted.stderr
    row = json.loads(predicted.stdout.splitlines()[0])
    assert row["predicted"] in ("negative", "positive") and abs(sum(row["probabilities"].values()) - 1) < 1e-4

    alone = tmp_path / "alone"
    proc = run_taskkit("run", "sentiment", "--model", tiny_model, "--epochs", "1", "--max-length", "32", "--out", alone,
                       "-q", "--option", "zero_shot=none")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((alone / "metrics.json").read_text())["training"]["zero_shot_share"] == 0.0
    assert json.loads((alone / "model" / "taskkit.json").read_text())["format"] != "ensemble.v1"


@pytest.mark.parametrize("mode", ["full", "peft"])
def test_the_dev_split_chooses_the_share(tiny_model: Path, tmp_path: Path, mode: str):
    """Left to choose, the share is the plain average's (0.5) or, where the dev split clearly prefers
    another, the one of lowest dev loss (``choose_share``, tested above)."""
    from taskkit import api
    from taskkit.ensemble import EnsemblePredictor
    from taskkit.names_member import DEFAULT_SHARE

    for split in ("train", "dev", "test"):
        rows = [json.loads(line) for line in (DEMO / f"{split}.jsonl").read_text().splitlines()]
        write_jsonl(tmp_path / "data" / f"{split}.jsonl", rows[:60] if split == "train" else rows)
    result = api.run("sentiment", mode, tmp_path / "data", tmp_path / "out", model=str(tiny_model), epochs=1,
                     max_length=32, progress=False, options={"zero_shot": "embedding"})
    training = result.metrics["training"]
    losses = {float(k): v for k, v in training["shares"]["dev_loss"].items()}
    share = training["zero_shot_share"]
    assert share in (DEFAULT_SHARE, min(losses, key=lambda w: losses[w])), (share, losses)
    assert isinstance(result.predictor, EnsemblePredictor) == (share > 0)
    assert training["shares"]["chosen_by"] == "dev split (30 examples)"


def test_full_mode_can_start_its_head_at_the_label_names(tiny_model: Path, tmp_path: Path, run_taskkit):
    out = tmp_path / "run"
    proc = run_taskkit("run", "sentiment", "--model", tiny_model, "--epochs", "1", "--max-length", "32", "--out", out,
                       "-q", "--option", "start=names", "--option", "zero_shot=none")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "metrics.json").read_text())["training"]["extra"]["head_start"] == "label names"
    bad = run_taskkit("run", "sentiment", "--model", tiny_model, "--out", tmp_path / "bad", "--option", "start=zero")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "start" in bad.stderr


def test_a_peft_run_with_a_member_merges_into_an_ensemble_that_predicts_the_same(tiny_model: Path, tmp_path: Path,
                                                                                run_taskkit):
    from taskkit import api

    out = tmp_path / "run"
    proc = run_taskkit("run", "sentiment", "--mode", "peft", "--model", tiny_model, "--epochs", "1", "--max-length", "32",
                       "--out", out, "-q", "--option", "zero_shot=embedding", "--option", "zero_shot_weight=0.5")
    assert proc.returncode == 0, proc.stderr
    merged = tmp_path / "merged"
    done = run_taskkit("merge", out, merged)
    assert done.returncode == 0, done.stderr
    assert json.loads((merged / "taskkit.json").read_text())["format"] == "ensemble.v1"
    assert (merged / "members" / "0" / "model.safetensors").is_file()  # the adapter folded into the base weights
    texts = ["a wonderful, moving film", "a dull, lifeless mess"]
    after, before = api.load(merged), api.load(out)
    assert after.weights == before.weights == [0.5, 0.5]
    np.testing.assert_allclose(after.members[0].predict_proba(texts, precision="fp32"),
                               before.members[0].predict_proba(texts, precision="fp32"), atol=1e-5)
