"""The intent task: out-of-scope by threshold or by labelled examples, and its separate metrics."""

from __future__ import annotations

import numpy as np
import pytest

from taskkit.contracts import LabelSpace, RunConfig
from taskkit.errors import TaskkitError


@pytest.fixture
def intent():
    from taskkit import registry

    return registry.get_task("intent")


def test_oos_threshold_decodes_low_confidence_as_oos(intent):
    labels = LabelSpace(("balance", "transfer"))
    proba = np.array([[0.9, 0.1], [0.55, 0.45], [0.2, 0.8]])
    assert intent.decode(proba, labels) == ["balance", "balance", "transfer"]
    assert intent.decode(proba, labels, 0.6) == ["balance", "oos", "transfer"]


def test_metrics_report_in_scope_accuracy_and_oos_recall(intent):
    labels = LabelSpace(("balance", "oos", "transfer"))
    gold = ["balance", "transfer", "oos", "oos"]
    predicted = ["balance", "balance", "oos", "transfer"]
    scores = intent.metrics(gold, predicted, labels)
    assert scores["in_scope_accuracy"] == 0.5
    assert scores["oos_recall"] == 0.5
    assert scores["accuracy"] == 0.5


def test_oos_threshold_option_is_validated(intent):
    assert intent.fixed_threshold(RunConfig(options={"oos_threshold": 0.4})) == 0.4
    assert intent.fixed_threshold(RunConfig()) is None
    with pytest.raises(TaskkitError, match="oos_threshold"):
        intent.fixed_threshold(RunConfig(options={"oos_threshold": 3}))


def test_oos_in_test_is_allowed_without_oos_in_training(intent):
    labels = LabelSpace(("balance", "transfer"))
    intent.check_known([{"text": "x", "label": "oos"}, {"text": "y", "label": "balance"}], labels, "test")
    with pytest.raises(TaskkitError, match="'weather'"):
        intent.check_known([{"text": "x", "label": "weather", "_where": "test.jsonl:1"}], labels, "test")


def test_few_shot_intent_with_oos_threshold_saves_it(tmp_path):
    import taskkit
    from conftest import write_jsonl
    from taskkit import api

    train = [{"text": t, "label": "balance"} for t in ("what is my balance", "how much money do I have",
                                                       "show my account balance")]
    train += [{"text": t, "label": "transfer"} for t in ("send money to mom", "transfer 50 dollars to john",
                                                         "move cash to savings")]
    test = [{"text": "check my balance please", "label": "balance"},
            {"text": "what is the weather in paris", "label": "oos"}]
    write_jsonl(tmp_path / "train.jsonl", train)
    write_jsonl(tmp_path / "test.jsonl", test)
    # a threshold above any two-class probability: everything becomes oos (deterministic check)
    result = api.run("intent", "few-shot", tmp_path, tmp_path / "out", seed=0, max_length=32, progress=False,
                     options={"steps": 2, "oos_threshold": 0.999})
    assert result.metrics["oos_recall"] == 1.0
    assert result.metrics["in_scope_accuracy"] == 0.0
    loaded = taskkit.load(tmp_path / "out")
    assert loaded.threshold == 0.999
    assert loaded.predict(["check my balance please"]) == ["oos"]
    assert taskkit.predict(tmp_path / "out", ["check my balance please"])[0]["predicted"] == "oos"
