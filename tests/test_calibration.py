"""Calibrated probabilities: a temperature fitted on dev (or by cross-validation), saved with the
model, applied in predict_proba, reported in metrics.json; intent's oos_threshold=auto."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import DEMO, write_jsonl
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from taskkit.calibration import Calibration, as_logits, fit_temperature
from taskkit.errors import TaskkitError
from taskkit.probability_scores import scores


# --- the maths --------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 8), st.integers(2, 6)),
              elements=st.floats(-30, 30, allow_nan=False)),
       st.floats(0.05, 20))
def test_a_temperature_never_moves_the_arg_max(logits, temperature):
    from scipy.special import softmax

    after = softmax(Calibration("temperature", temperature).apply(logits), axis=1)
    before = softmax(logits, axis=1)
    # where the largest logit is unique, it stays the largest
    unique = np.sort(logits, axis=1)[:, -1] - np.sort(logits, axis=1)[:, -2] > 1e-9
    assert (after.argmax(1) == before.argmax(1))[unique].all()


def test_fitting_recovers_the_overconfidence_and_lowers_ece():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 1.5, size=(4000, 4))
    gold = np.array([rng.choice(4, p=np.exp(z) / np.exp(z).sum()) for z in true_logits])
    overconfident = 3.0 * true_logits  # the model says what the data says, three times as sure
    fitted = fit_temperature(overconfident, gold)
    assert fitted.temperature == pytest.approx(3.0, rel=0.1)
    before = scores(np.exp(overconfident) / np.exp(overconfident).sum(1, keepdims=True), gold, False)
    z = fitted.apply(overconfident)
    after = scores(np.exp(z) / np.exp(z).sum(1, keepdims=True), gold, False)
    assert after["ece"] < 0.03 < before["ece"]
    assert after["nll"] < before["nll"] and after["brier"] < before["brier"]


def test_vector_scaling_only_when_asked_and_where_it_clearly_helps():
    from taskkit.calibration import choose

    rng = np.random.default_rng(0)
    gold = rng.integers(0, 3, 600)
    logits = rng.normal(0, 1, (600, 3))
    logits[np.arange(600), gold] += 2.0
    logits[:, 0] += 1.5  # a biased model: class 0 favoured everywhere, which a temperature cannot undo
    default, _ = choose(logits, gold, False)
    assert default.method == "temperature"
    asked, decided = choose(logits, gold, False, vector=True)
    assert asked.method == "vector", decided
    assert decided["cross_validated_nll"]["vector"] < decided["cross_validated_nll"]["temperature"]
    unbiased = logits.copy()
    unbiased[:, 0] -= 1.5
    assert choose(unbiased * 3, gold, False, vector=True)[0].method == "temperature"  # nothing a bias would fix


def test_ece_brier_and_nll_by_hand():
    p = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    gold = np.array([0, 1, 0, 0])
    got = scores(p, gold, False)
    # bin of 0.9: confidence 0.9, accuracy 0.5; bin of 0.6: confidence 0.6, accuracy 1.0
    assert got["ece"] == pytest.approx(0.5 * 0.4 + 0.5 * 0.4)
    assert got["brier"] == pytest.approx((0.02 + 1.62 + 0.32 + 0.32) / 4)
    assert got["nll"] == pytest.approx(-np.mean(np.log([0.9, 0.1, 0.6, 0.6])))


def test_multi_label_temperature_keeps_every_decision_at_the_cut():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 3, size=(500, 5))
    gold = (rng.random((500, 5)) < 1 / (1 + np.exp(-logits / 3))).astype(float)
    cut = 0.35
    pivot = float(np.log(cut / (1 - cut)))
    fitted = fit_temperature(logits, gold, multi_label=True, pivot=pivot)
    assert fitted.temperature > 1.5  # the logits were three times too sharp
    before = 1 / (1 + np.exp(-logits))
    after = 1 / (1 + np.exp(-fitted.apply(logits)))
    assert ((before >= cut) == (after >= cut)).all()


def test_probabilities_to_logits_and_back():
    from scipy.special import expit, softmax

    p = np.array([[0.2, 0.5, 0.3]])
    assert np.allclose(softmax(as_logits(p, False), axis=1), p)
    assert np.allclose(expit(as_logits(p, True)), p)


def test_a_saved_calibration_is_checked():
    assert Calibration.from_dict({"method": "temperature", "temperature": 2.0}, 2).temperature == 2.0
    with pytest.raises(TaskkitError, match="settings.calibration.temperature"):
        Calibration.from_dict({"method": "temperature", "temperature": -1}, 2)
    with pytest.raises(TaskkitError, match="settings.calibration.scale"):
        Calibration.from_dict({"method": "vector", "temperature": 1.0, "scale": [1.0], "bias": [0.0, 0.0]}, 2)


# --- runs -------------------------------------------------------------------------------------
def test_run_fits_saves_applies_and_reports_calibration(trained_run):
    import taskkit
    from taskkit.calibration import Calibration

    report = trained_run.metrics["calibration"]
    # the default is a temperature: calibrating never changes a prediction
    assert report["method"] == "temperature" and report["fitted_on"].startswith("dev split (30")
    for side in ("before", "after"):
        assert set(report["test"][side]) == {"ece", "brier", "nll", "accuracy"}
    assert report["test"]["after"]["accuracy"] == report["test"]["before"]["accuracy"] == trained_run.metrics["accuracy"]
    assert report["test"]["after"]["nll"] <= report["test"]["before"]["nll"] + 0.05
    saved = json.loads((trained_run.out / "metrics.json").read_text())["calibration"]
    assert saved["test"] == report["test"]
    meta = json.loads((trained_run.out / "model" / "taskkit.json").read_text())
    assert meta["settings"]["calibration"]["method"] == report["method"]
    loaded = taskkit.load(trained_run.out)
    assert isinstance(loaded.calibration, Calibration)
    texts = ["a lovely film", "a dull mess", "it was fine"]
    assert np.allclose(loaded.predict_proba(texts), trained_run.predictor.predict_proba(texts), atol=1e-5)
    # the calibrated probabilities are the predictions.jsonl ones, and not the raw softmax
    raw = loaded.task.probabilities(loaded.logits(texts), loaded.labels)
    if report["method"] == "temperature" and abs(report["temperature"] - 1) > 1e-3:
        assert not np.allclose(raw, loaded.predict_proba(texts), atol=1e-6)
        assert (raw.argmax(1) == loaded.predict_proba(texts).argmax(1)).all()


def test_a_folder_without_calibration_loads_as_the_identity(trained_run, tmp_path):
    import taskkit

    folder = tmp_path / "old"
    shutil.copytree(trained_run.out / "model", folder)
    meta_file = folder / "taskkit.json"
    meta = json.loads(meta_file.read_text())
    meta["settings"].pop("calibration")
    meta_file.write_text(json.dumps(meta))
    old = taskkit.load(folder)
    assert old.calibration is None
    texts = ["a lovely film", "a dull mess"]
    assert np.allclose(old.predict_proba(texts), old.task.probabilities(old.logits(texts), old.labels), atol=1e-6)
    meta["settings"]["calibration"] = {"method": "temperature", "temperature": "hot"}
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(TaskkitError, match="settings.calibration"):
        taskkit.load(folder).predict_proba(texts)


def test_calibrate_false_keeps_the_models_probabilities(tiny_model, tmp_path):
    from taskkit import api

    result = api.run("sentiment", "full", DEMO, tmp_path / "out", model=str(tiny_model), epochs=1, lr=1e-3,
                     max_length=32, seed=7, progress=False, options={"calibrate": False})
    assert result.metrics["calibration"]["method"] == "none"
    assert "calibrate=false" in result.metrics["calibration"]["reason"]
    assert result.predictor.calibration is None
    meta = json.loads((tmp_path / "out" / "model" / "taskkit.json").read_text())
    assert "calibration" not in meta["settings"]


def test_without_dev_the_temperature_is_cross_validated(tiny_model, tmp_path):
    from taskkit import api

    # --shots: no dev split; 12 per class -> 24 training examples, three folds refitted
    result = api.run("sentiment", "full", DEMO, tmp_path / "out", model=str(tiny_model), epochs=1, lr=1e-3,
                     max_length=32, seed=7, progress=False, shots=12)
    report = result.metrics["calibration"]
    assert report["fitted_on"] == "3-fold cross-validation on the 24 training examples", report
    assert report["method"] == "temperature" and report["test"]["after"]["ece"] >= 0
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_ensemble_and_zero_shot_predictors_apply_their_calibration():
    from taskkit import registry
    from taskkit.calibration import Calibration
    from taskkit.ensemble import EnsemblePredictor
    from taskkit.zero_shot_predictor import ZeroShotPredictor

    task = registry.get_task("topic")

    class Fixed(ZeroShotPredictor):
        def uncalibrated_proba(self, inputs):
            return np.tile([0.7, 0.2, 0.1], (len(inputs), 1)).astype(np.float32)

    def fixed():
        return Fixed(task, {"a": None, "b": None, "c": None}, {"backend": "nli", "template": "{}"})

    zero, ensemble = fixed(), EnsemblePredictor([fixed()], [1.0], "few-shot")
    for predictor in (zero, ensemble):
        assert predictor.calibratable
        assert np.allclose(predictor.predict_proba(["x"]), [[0.7, 0.2, 0.1]], atol=1e-6)
        predictor.calibration = Calibration("temperature", 2.0)
        softened = predictor.predict_proba(["x"])[0]
        expected = np.sqrt([0.7, 0.2, 0.1]) / np.sqrt([0.7, 0.2, 0.1]).sum()
        assert np.allclose(softened, expected, atol=1e-5)
        assert predictor.settings["calibration"] == {"method": "temperature", "temperature": 2.0}


# --- intent: oos_threshold=auto ---------------------------------------------------------------
INTENTS = {
    "balance": ["what is my balance", "how much money do I have", "show my account balance", "balance please",
                "tell me my balance", "what's left in my account", "current balance", "check balance now"],
    "transfer": ["send money to mom", "transfer 50 dollars to john", "move cash to savings", "wire money abroad",
                 "pay my friend back", "send 20 to alice", "transfer funds now", "move money to checking"],
}
OUT_OF_SCOPE = ["what is the weather in paris", "tell me a joke", "who won the game", "play some music",
                "how tall is everest", "recommend a movie", "what time is it", "book a flight",
                "translate hello", "set an alarm", "order a pizza", "how do I cook rice"]


def _write_intent_data(folder):
    """Two intents (6 train texts each, twice), a dev split with in-scope and ``oos`` texts (returned), a small test."""
    train = [{"text": t, "label": k} for k, texts in INTENTS.items() for t in texts[:6]] * 2
    dev = [{"text": t, "label": k} for k, texts in INTENTS.items() for t in texts[6:]] * 8
    dev += [{"text": t, "label": "oos"} for t in OUT_OF_SCOPE]
    write_jsonl(folder / "train.jsonl", train)
    write_jsonl(folder / "dev.jsonl", dev)
    write_jsonl(folder / "test.jsonl", dev[:4] + [{"text": "sing me a song", "label": "oos"}])
    return dev


def test_intent_oos_threshold_auto_chooses_the_cut_on_dev(tiny_model, tmp_path):
    import taskkit
    from taskkit import api

    dev = _write_intent_data(tmp_path / "data")
    result = api.run("intent", "full", tmp_path / "data", tmp_path / "out", model=str(tiny_model), epochs=1,
                     lr=1e-3, max_length=32, seed=0, progress=False, options={"oos_threshold": "auto"})
    chosen = result.metrics["training"]["extra"]["oos_threshold"]
    curve = chosen["curve"]
    assert {"threshold", "in_scope_accuracy", "oos_recall"} <= set(curve[0]) and len(curve) == 50
    # the highest cut whose dev in-scope accuracy stays within 2 points of no cut
    kept = [row["threshold"] for row in curve if row["in_scope_accuracy"] >= curve[0]["in_scope_accuracy"] - 0.02]
    assert chosen["chosen"] == max(kept) and "within 0.02 of no cut" in chosen["rule"]
    assert result.predictor.threshold == chosen["chosen"] == result.metrics["calibration"].get("threshold",
                                                                                               chosen["chosen"])
    assert taskkit.load(tmp_path / "out").threshold == chosen["chosen"]
    # the curve is that of the calibrated dev probabilities
    probabilities = result.predictor.predict_proba(dev)
    row = next(r for r in curve if r["threshold"] == chosen["chosen"])
    outside = [p.max() < chosen["chosen"] for p, e in zip(probabilities, dev) if e["label"] == "oos"]
    assert row["oos_recall"] == pytest.approx(np.mean(outside), abs=1e-4)


def test_oos_cut_gives_up_no_more_in_scope_accuracy_than_the_tolerance():
    from taskkit import registry
    from taskkit.contracts import LabelSpace, RunConfig

    intent = registry.get_task("intent")
    labels = LabelSpace(["balance", "transfer", "oos"])
    rng = np.random.default_rng(0)
    # in scope: confident and right, with a tail of unsure ones; out of scope: unsure
    top = np.concatenate([rng.uniform(0.6, 1.0, 90), rng.uniform(0.34, 0.6, 10), rng.uniform(0.34, 0.7, 20)])
    probabilities = np.stack([top, (1 - top) / 2, (1 - top) / 2], axis=1)
    dev = [{"text": "x", "label": "balance"}] * 100 + [{"text": "y", "label": "oos"}] * 20

    def cut(**options):
        return intent.choose_threshold(SimpleNamespace(training=None), dev, labels, RunConfig(options={"oos_threshold": "auto", **options}),
                                       probabilities)

    default, loose = cut(), cut(oos_tolerance=0.1)
    assert default > 0.3 and np.mean(top[:100] < default) <= 0.02
    assert loose > default and 0.02 < np.mean(top[:100] < loose) <= 0.1
    assert np.mean(top[100:] < loose) > np.mean(top[100:] < default)  # more recall for the accuracy given up
    assert cut(oos_tolerance=0) <= default
    # no oos example in dev: the cut still keeps in-scope accuracy, judged on the in-scope examples alone
    assert intent.choose_threshold(SimpleNamespace(training=None), dev[:100], labels, RunConfig(options={"oos_threshold": "auto"}),
                                   probabilities[:100]) == default


def test_oos_threshold_takes_a_number_or_auto(tmp_path):
    from taskkit import registry
    from taskkit.contracts import RunConfig

    intent = registry.get_task("intent")
    assert intent.fixed_threshold(RunConfig(options={"oos_threshold": "auto"})) is None
    with pytest.raises(TaskkitError, match="oos_threshold"):
        intent.fixed_threshold(RunConfig(options={"oos_threshold": "sometimes"}))
    with pytest.raises(TaskkitError, match="oos_threshold"):
        intent.fixed_threshold(RunConfig(options={"oos_threshold": 1.5}))


def test_calibrate_is_an_option_of_every_mode():
    from taskkit import registry
    from taskkit.options import merged

    for name in ("full", "peft", "few-shot", "zero-shot"):
        mode = registry.modes()[name][0]
        assert "calibrate" in merged(registry.get_task("sentiment"), mode).model_fields, name


def test_oos_threshold_auto_and_its_tolerance_through_the_cli(tiny_model, tmp_path):
    from taskkit.cli import main

    _write_intent_data(tmp_path / "data")
    code = main(["run", "intent", "--mode", "full", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "out"),
                 "--model", str(tiny_model), "--epochs", "1", "--lr", "1e-3", "--max-length", "32", "-q",
                 "--option", "oos_threshold=auto", "--option", "oos_tolerance=0.05", "--option", "calibrate=vector"])
    assert code == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    chosen = metrics["training"]["extra"]["oos_threshold"]
    assert "within 0.05 of no cut" in chosen["rule"]
    kept = [r["threshold"] for r in chosen["curve"] if r["in_scope_accuracy"] >= chosen["curve"][0]["in_scope_accuracy"] - 0.05]
    assert chosen["chosen"] == max(kept)
    assert metrics["config"]["options"]["calibrate"] == "vector"
