"""The training and inference kernel, on a tiny random BERT: reproducibility, early stopping,
freezing, precision, and input order under length-sorted inference."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

import taskkit.kernel.fit
from taskkit import api
from taskkit.errors import TaskkitError
from taskkit.kernel.batching import collate, grouped_batches, sorted_batches
from taskkit.kernel.device import bf16_supported, resolve_precision
from taskkit.kernel.infer import predict_logits

from conftest import DEMO

TEXTS = [
    "ok",
    "The food was cold and the waiter ignored us for an hour, never again.",
    "Great!",
    "I would not recommend this phone to anyone who needs a battery that lasts a full working day.",
    "Meh.",
    "A wonderful, moving film with a cast that clearly loved the material and each other.",
    "Terrible",
    "Shipping was quick and the box was well packed",
    "The plot drags in the middle but the ending makes up for it, mostly, if you are patient.",
    "Fine",
    "Absolutely the best purchase I have made this year, and I have bought a lot of gadgets.",
]


def _run(tiny_model, out=None, **settings):
    config = dict(model=str(tiny_model), epochs=2, lr=1e-3, max_length=64, progress=False)
    config.update(settings)
    return api.run("sentiment", "full", DEMO, out, **config)


# --- reproducibility ---------------------------------------------------------------------------
def test_same_seed_same_model(tiny_model):
    first = _run(tiny_model, seed=11)
    second = _run(tiny_model, seed=11)
    np.testing.assert_array_equal(first.predictor.predict_proba(TEXTS), second.predictor.predict_proba(TEXTS))
    assert first.metrics["training"]["history"] == second.metrics["training"]["history"]
    assert first.predictions == second.predictions
    other = _run(tiny_model, seed=12)
    assert not np.array_equal(first.predictor.predict_proba(TEXTS), other.predictor.predict_proba(TEXTS))


# --- early stopping ----------------------------------------------------------------------------
@pytest.fixture
def scripted_dev(monkeypatch):
    """Replace dev evaluation during training with scripted scores; snapshot the weights each epoch."""
    state = {"scores": [], "snapshots": []}

    def fake_evaluate(predictor, examples, threshold=None, probabilities=None):
        state["snapshots"].append({k: v.detach().clone() for k, v in predictor.model.state_dict().items()})
        score = state["scores"][len(state["snapshots"]) - 1]
        return {"accuracy": score, "examples": len(examples)}, [], None

    monkeypatch.setattr(taskkit.kernel.fit, "evaluate", fake_evaluate)
    return state


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


def test_early_stopping_stops_and_restores_best_epoch(tiny_model, tmp_path, scripted_dev):
    scripted_dev["scores"] = [0.50, 0.80, 0.70, 0.60, 0.90, 0.95]
    result = _run(tiny_model, tmp_path, epochs=6, patience=2)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    training = metrics["training"]
    assert training["epochs_run"] == 4  # epochs 3 and 4 did not beat epoch 2
    assert training["stopped_early"] is True
    assert training["best_epoch"] == 2
    assert training["watched_metric"] == "accuracy"
    assert [row["epoch"] for row in training["history"]] == [1, 2, 3, 4]
    assert [row["dev_accuracy"] for row in training["history"]] == [0.50, 0.80, 0.70, 0.60]
    assert all(row["train_loss"] > 0 for row in training["history"])

    snapshots = scripted_dev["snapshots"]
    assert len(snapshots) == 4
    assert not _same_weights(snapshots[1], snapshots[3])  # training did move the weights
    assert _same_weights(result.predictor.model.state_dict(), snapshots[1])
    saved = api.load(tmp_path)  # and the saved model is the best epoch too
    assert _same_weights(saved.model.state_dict(), snapshots[1])


def test_patience_zero_runs_all_epochs_and_keeps_the_best(tiny_model, scripted_dev):
    scripted_dev["scores"] = [0.9, 0.5, 0.4]
    result = _run(tiny_model, epochs=3, patience=0)
    training = result.metrics["training"]
    assert training["epochs_run"] == 3 and training["stopped_early"] is False and training["best_epoch"] == 1
    assert _same_weights(result.predictor.model.state_dict(), scripted_dev["snapshots"][0])


def test_real_dev_evaluation_recorded_each_epoch(trained_run):
    history = trained_run.metrics["training"]["history"]
    assert [row["epoch"] for row in history] == [1, 2]
    for row in history:
        assert 0.0 <= row["dev_accuracy"] <= 1.0 and row["dev_examples"] == 30
    best = trained_run.metrics["training"]["best_epoch"]
    assert history[best - 1]["dev_accuracy"] == max(row["dev_accuracy"] for row in history)


# --- freezing ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def original_body(tiny_model):
    from transformers import AutoModel

    return {k: v.clone() for k, v in AutoModel.from_pretrained(str(tiny_model)).state_dict().items()}


def test_freeze_head_leaves_the_body_unchanged(tiny_model, original_body):
    result = _run(tiny_model, freeze="head", lr=1e-2)
    body = result.predictor.model.body.state_dict()
    assert _same_weights(body, original_body)
    training = result.metrics["training"]
    head_parameters = 32 * 2 + 2  # linear layer from hidden size 32 to two labels
    assert training["trainable_parameters"] == head_parameters
    assert training["total_parameters"] > 100 * head_parameters
    assert result.predictor.predict_proba(TEXTS).shape == (len(TEXTS), 2)


def test_freeze_top_layer_trains_only_that_layer(tiny_model, original_body):
    result = _run(tiny_model, freeze="top:1", lr=1e-2)
    body = result.predictor.model.body.state_dict()
    changed = {k for k in body if not torch.equal(body[k].cpu(), original_body[k])}
    assert changed, "the top layer should have been trained"
    assert all(k.startswith("encoder.layer.1.") for k in changed), sorted(changed)


def test_no_freeze_trains_the_body(tiny_model, original_body):
    result = _run(tiny_model, lr=1e-2)
    body = result.predictor.model.body.state_dict()
    assert not torch.equal(body["embeddings.word_embeddings.weight"].cpu(),
                           original_body["embeddings.word_embeddings.weight"])
    assert not torch.equal(body["encoder.layer.0.attention.self.query.weight"].cpu(),
                           original_body["encoder.layer.0.attention.self.query.weight"])


# --- precision ---------------------------------------------------------------------------------
def test_inference_in_fp32_and_bf16(trained_run):
    predictor = trained_run.predictor
    fp32 = predictor.predict_proba(TEXTS, precision="fp32")
    assert fp32.shape == (len(TEXTS), 2) and fp32.dtype.kind == "f"
    np.testing.assert_allclose(fp32.sum(axis=1), 1.0, rtol=1e-5)
    if bf16_supported():
        bf16 = predictor.predict_proba(TEXTS, precision="bf16")
        np.testing.assert_allclose(bf16.sum(axis=1), 1.0, rtol=1e-4)
        np.testing.assert_allclose(bf16, fp32, atol=0.05)
        assert resolve_precision("auto") == "bf16"
    else:
        with pytest.raises(TaskkitError, match="no bf16 support"):
            predictor.predict_proba(TEXTS, precision="bf16")
        assert resolve_precision("auto") == "fp32"


def test_one_process_trains_in_fp32_then_in_the_default_precision(tiny_model):
    """Runs in one process (a notebook, a sweep) may each pick their own precision."""
    fp32 = _run(tiny_model, precision="fp32", epochs=1)
    assert fp32.predictor.settings["precision"] == "fp32"
    assert fp32.metrics["config"]["precision"] == "fp32"
    auto = _run(tiny_model, epochs=1)
    assert auto.metrics["config"]["precision"] == "auto"
    again = _run(tiny_model, precision="fp32", epochs=1)
    np.testing.assert_array_equal(fp32.predictor.predict_proba(TEXTS), again.predictor.predict_proba(TEXTS))
    assert auto.predictor.predict_proba(TEXTS).shape == (len(TEXTS), 2)


# --- input order under length-sorted batches ----------------------------------------------------
def test_batched_prediction_matches_one_by_one(trained_run, monkeypatch):
    predictor = trained_run.predictor
    monkeypatch.setitem(predictor.settings, "eval_batch_size", 3)  # several batches, sorted by length
    together = predictor.predict_proba(TEXTS, precision="fp32")
    alone = np.vstack([predictor.predict_proba([text], precision="fp32") for text in TEXTS])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    assert predictor.predict(TEXTS) == [predictor.predict([t])[0] for t in TEXTS]


class _Echo(torch.nn.Module):
    """Sequence logits = the number of real tokens; token logits = the token ids."""

    def __init__(self, per_token: bool) -> None:
        super().__init__()
        self.per_token = per_token

    def forward(self, input_ids, attention_mask):
        if self.per_token:
            return input_ids.unsqueeze(-1).float()
        return attention_mask.sum(dim=1, keepdim=True).float()


def test_predict_logits_returns_input_order():
    lengths = [3, 9, 1, 7, 7, 2, 12, 5]
    features = [{"input_ids": [100 + i] * n, "attention_mask": [1] * n, "labels": 0} for i, n in enumerate(lengths)]
    out = predict_logits(_Echo(per_token=False), features, pad_id=0, batch_size=3, precision="fp32")
    assert [float(row[0]) for row in out] == lengths
    tokens = predict_logits(_Echo(per_token=True), features, pad_id=0, batch_size=3, precision="fp32")
    for i, (row, n) in enumerate(zip(tokens, lengths)):
        assert row.shape == (n, 1) and set(row[:, 0].tolist()) == {100.0 + i}


# --- batching -------------------------------------------------------------------------------------
def test_collate_pads_per_feature():
    batch = collate([{"input_ids": [5, 6, 7], "attention_mask": [1, 1, 1], "labels": [1, 2, 0]},
                     {"input_ids": [8], "attention_mask": [1], "labels": [3]}], pad_id=9, multiple=1)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 9, 9]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[1, 2, 0], [3, -100, -100]]
    multi = collate([{"input_ids": [1], "labels": [1.0, 0.0]}, {"input_ids": [1, 2], "labels": [0.0, 1.0]}], 0)
    assert multi["labels"].dtype == torch.float32 and multi["labels"].tolist() == [[1.0, 0.0], [0.0, 1.0]]


def test_sorted_and_grouped_batches_cover_every_index_once():
    lengths = [random.Random(0).randint(1, 50) for _ in range(203)]
    batches = sorted_batches(lengths, 16)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(203)) and all(len(b) <= 16 for b in batches)
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)
    grouped = grouped_batches(lengths, 8, random.Random(1), group=5)
    assert sorted(i for b in grouped for i in b) == list(range(203))
    assert grouped == grouped_batches(lengths, 8, random.Random(1), group=5)
    assert grouped != grouped_batches(lengths, 8, random.Random(2), group=5)


def test_full_mode_multi_label_tunes_the_threshold_on_dev_and_keeps_it(tiny_model, tmp_path):
    """Each label's sigmoid starts far below 0.5 on rare labels: a fixed 0.5 cut predicts nothing."""
    import taskkit
    from conftest import write_jsonl
    from taskkit import api

    rows = [{"text": f"{w} story number {i}", "labels": labels}
            for i in range(12) for w, labels in (("happy", ["joy"]), ("angry", ["anger"]),
                                                 ("shocking happy", ["joy", "surprise"]))]
    write_jsonl(tmp_path / "train.jsonl", rows)
    write_jsonl(tmp_path / "dev.jsonl", rows[::3])
    write_jsonl(tmp_path / "test.jsonl", rows[1::3])
    result = api.run("sentiment", "full", tmp_path, tmp_path / "out", model=str(tiny_model), epochs=2, lr=1e-3,
                     max_length=32, seed=0, progress=False)
    threshold = result.predictor.threshold
    assert threshold is not None and 0 < threshold < 1
    assert result.metrics["training"]["threshold"] == threshold
    loaded = taskkit.load(tmp_path / "out")
    assert loaded.threshold == threshold
    assert all(isinstance(p, list) for p in loaded.predict(["happy story"]))


def test_full_mode_intent_keeps_the_oos_threshold(tiny_model, tmp_path):
    import taskkit
    from conftest import write_jsonl
    from taskkit import api

    train = [{"text": f"{t} {i}", "label": label} for i in range(6)
             for t, label in (("what is my balance", "balance"), ("send money to mom", "transfer"))]
    write_jsonl(tmp_path / "train.jsonl", train)
    write_jsonl(tmp_path / "test.jsonl", [{"text": "check my balance", "label": "balance"},
                                          {"text": "weather in paris", "label": "oos"}])
    result = api.run("intent", "full", tmp_path, tmp_path / "out", model=str(tiny_model), epochs=1, lr=1e-3,
                     max_length=32, seed=0, progress=False, dev_fraction=0,
                     options={"oos_threshold": 0.999})  # above any two-class probability: all oos
    assert result.metrics["oos_recall"] == 1.0 and result.metrics["in_scope_accuracy"] == 0.0
    assert taskkit.load(tmp_path / "out").predict(["check my balance"]) == ["oos"]


def test_multi_label_head_starts_at_each_labels_training_frequency():
    from taskkit.kernel.model import SequenceHead, start_at_label_priors

    head = SequenceHead(8, 3)
    features = [{"labels": [1.0, 0.0, 0.0]}] * 3 + [{"labels": [1.0, 1.0, 0.0]}]
    start_at_label_priors(head, features)
    rates = torch.sigmoid(head.out.bias).tolist()
    assert rates[0] == pytest.approx(0.8, abs=1e-6)  # 4/4, held off 1 so that the logit is finite
    assert rates[1] == pytest.approx(0.25, abs=1e-6)
    assert rates[2] == pytest.approx(0.2, abs=1e-6)  # never seen: 1/(n+1), not -inf
