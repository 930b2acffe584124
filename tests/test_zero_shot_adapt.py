"""Zero-shot fitted to the user's texts without labels: label-bias correction (saved in the model
folder), backends weighed by a label-free lexical check, abstain=auto, and the README's spam plugin
on taskkit's shipped models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

WORDS = {"sports": ["match", "goal", "striker", "league", "coach", "stadium"],
         "business": ["shares", "profit", "market", "bank", "investors", "earnings"]}
LABELS = {"sports": "sports", "business": "business and markets"}


def _texts(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    texts, gold = [], []
    for i in range(n):
        label = "sports" if i % 2 == 0 else "business"
        texts.append(" ".join(rng.choice(WORDS[label], 4)) + f" today number {i}")
        gold.append(label)
    return texts, gold


def _clf(tiny_nli: Path, tiny_encoder: Path, **kw):
    import taskkit

    return taskkit.zero_shot(LABELS, task="topic", model=str(tiny_nli), encoder=str(tiny_encoder),
                             precision="fp32", **kw)


# --- the label-free lexical check -------------------------------------------------------------
def test_lexical_check_rewards_labels_the_words_follow():
    from taskkit.zero_shot_adapt import lexical_agreement, lexical_features

    texts, gold = _texts(80)
    features = lexical_features(texts)
    follows = lexical_agreement(features, np.array(gold))
    random_labels = np.random.default_rng(1).choice(["sports", "business"], len(texts))
    assert follows > 0.8
    assert lexical_agreement(features, random_labels) < 0.3
    assert lexical_agreement(features, np.array(["sports"] * len(texts))) == 0.0  # one label for all: nothing


def test_nli_share_goes_to_the_backend_whose_labels_the_words_follow():
    from taskkit.zero_shot_adapt import choose_nli_share

    texts, gold = _texts(120)
    right = np.array([[0.9, 0.1] if g == "sports" else [0.1, 0.9] for g in gold])
    noise = np.random.default_rng(2).dirichlet([1, 1], len(texts))
    share, report = choose_nli_share(texts, right, noise)
    assert share >= 0.75 and report["kappa_by_nli_share"]["1"] > report["kappa_by_nli_share"]["0"]
    share, _ = choose_nli_share(texts, noise, right)
    assert share <= 0.25
    share, report = choose_nli_share(texts, right, right)
    assert share == 0.5  # equal evidence: the default stands


# --- label-bias correction -------------------------------------------------------------------
def test_label_bias_is_centred_on_unlabelled_texts_and_saved(tiny_nli, tiny_encoder, tmp_path):
    import taskkit

    texts, _ = _texts(40)
    plain = _clf(tiny_nli, tiny_encoder, backend="nli")
    assert len(set(plain.predict(texts))) == 1  # a random NLI model: one hypothesis wins everywhere
    clf = _clf(tiny_nli, tiny_encoder, backend="nli", unlabelled=texts, options={"self_train": False})
    record = clf.training.extra["adaptation"]
    assert record["correction"]["kind"] == "texts" and record["correction"]["texts"] == 40
    corrected = clf.backend_logits(texts)["nli"] - clf.label_bias()["nli"]
    means = corrected.mean(axis=0)
    assert np.allclose(means, means.mean(), atol=1e-7)  # every label's score centred on one level over the texts
    assert len(set(clf.predict(texts))) == 2
    clf.save(tmp_path / "zs")
    meta = json.loads((tmp_path / "zs" / "taskkit.json").read_text())
    assert meta["settings"]["label_bias"]["kind"] == "texts"
    again = taskkit.load(tmp_path / "zs")
    assert np.allclose(again.predict_proba(texts), clf.predict_proba(texts), atol=1e-5)
    # a folder saved before the correction existed loads and scores as it did then
    del meta["settings"]["label_bias"]
    (tmp_path / "zs" / "taskkit.json").write_text(json.dumps(meta))
    old = taskkit.load(tmp_path / "zs")
    assert np.allclose(old.predict_proba(texts), plain.predict_proba(texts), atol=1e-5)


def test_few_texts_no_correction_unless_asked(tiny_nli, tiny_encoder):
    texts, _ = _texts(6)
    clf = _clf(tiny_nli, tiny_encoder, unlabelled=texts)
    assert clf.training.extra["adaptation"]["correction"]["kind"] == "none"
    asked = _clf(tiny_nli, tiny_encoder, options={"correction": "content-free"})
    assert asked.settings["label_bias"]["kind"] == "content-free"
    assert set(asked.label_bias()) == {"nli", "embedding"}


def test_backend_weights_and_self_training_are_chosen_and_recorded(tiny_nli, tiny_encoder):
    texts, _ = _texts(120)
    clf = _clf(tiny_nli, tiny_encoder, unlabelled=texts)
    weights = clf.training.extra["adaptation"]["weights"]
    assert weights["nli_share"] in (0.0, 0.25, 0.5, 0.75, 1.0) and clf.settings["nli_share"] == weights["nli_share"]
    assert set(weights["kappa_by_nli_share"]) == {"0", "0.25", "0.5", "0.75", "1"}
    assert "kept" in clf.training.extra["adaptation"]["self_training"]
    fixed = _clf(tiny_nli, tiny_encoder, unlabelled=texts, options={"weigh": False})
    assert fixed.settings["nli_share"] == 0.5 and "weigh=false" in fixed.training.extra["adaptation"]["weights"]["chosen_by"]


def test_relation_label_bias_is_centred_over_the_examples(tiny_nli):
    import taskkit

    rel = {"text": "The fire was caused by a cigarette.", "head": {"start": 4, "end": 8}, "tail": {"start": 25, "end": 34}}
    labels = {"Cause-Effect(e1,e2)": None, "Cause-Effect(e2,e1)": "{tail} causes {head}.", "Other": None}
    clf = taskkit.zero_shot(labels, task="relation", model=str(tiny_nli), precision="fp32", unlabelled=[rel["text"]])
    assert "label_bias" not in clf.settings  # one text: nothing to centre on
    from taskkit.zero_shot_adapt import adapt_relation

    record = adapt_relation(clf, [clf.task.as_example(rel)] * 25, "auto")
    assert record["correction"]["kind"] == "texts" and len(clf.label_bias()["nli"]) == 2
    assert np.isclose(clf.predict_proba([rel])[0].sum(), 1, atol=1e-5)


# --- abstain=auto ----------------------------------------------------------------------------
def test_abstain_auto_chooses_the_cut_on_dev(tiny_nli, tiny_encoder):
    import taskkit
    from taskkit.errors import TaskkitError
    from taskkit.zero_shot_adapt import choose_abstain
    from taskkit.zero_shot_predictor import ZeroShotOptions

    assert ZeroShotOptions(abstain="auto").abstain == "auto"
    with pytest.raises(ValueError):
        ZeroShotOptions(abstain=1.5)
    clf = taskkit.zero_shot(LABELS, task="intent", model=str(tiny_nli), encoder=str(tiny_encoder), precision="fp32")
    texts, gold = _texts(20)
    dev = [{"text": t, "label": g} for t, g in zip(texts, gold)] + [{"text": f"weather {i}", "label": "oos"} for i in range(10)]
    cut, record = choose_abstain(clf, dev)
    curve = record["curve"]
    best = max(row["objective"] for row in curve)
    assert record["dev_examples"] == 30 and cut == (next(r["threshold"] for r in curve if r["objective"] == best) or None)
    topic = _clf(tiny_nli, tiny_encoder)
    cut, record = choose_abstain(topic, dev[:20])
    assert cut is None and "no dev example should go without a label" in record["reason"]
    with pytest.raises(TaskkitError):
        _clf(tiny_nli, tiny_encoder, options={"abstain": "sometimes"})


# --- the README's spam plugin on the shipped models -------------------------------------------
SPAM = ["WIN a FREE cruise now, click the link", "Cheap pills, no prescription needed",
        "You have been selected for a cash prize", "Limited offer: 90% off designer watches",
        "Claim your lottery winnings today", "Earn $5000 a week from home, ask me how",
        "Hot singles in your area want to meet", "Your account is locked, send your password",
        "Congratulations, you won an iPhone", "Buy followers cheap, instant delivery"]
HAM = ["Are we still on for lunch tomorrow?", "The meeting moved to 3pm, room 204",
       "Can you send me the slides from today?", "Happy birthday! Hope you have a great day",
       "I left the keys under the mat", "Dinner is at seven, bring the salad",
       "Thanks for the review comments, fixed them", "Mum called, please ring her back",
       "The train is late, start without me", "Here is the report you asked for"]


@pytest.fixture
def readme_spam():
    """The README's "Writing a plugin" spam task, registered in-process as a plugin."""
    import taskkit
    from taskkit import plugins, registry
    from taskkit.classification import ClassificationTask

    class Spam(ClassificationTask):
        name = "spam"
        description = "is a message spam?"
        label_descriptions = {"spam": "unsolicited advertising or scams", "ham": "an ordinary message"}

    class Plugin:
        @taskkit.hookimpl
        def register_tasks(self, register):
            register(Spam())

    plugins.get_plugin_manager().register(Plugin(), name="readme-spam")
    registry.clear()
    yield
    plugins.get_plugin_manager().unregister(name="readme-spam")
    registry.clear()


def test_readme_spam_plugin_zero_shot_on_the_shipped_models(readme_spam):
    """The README's descriptions, default backend, the messages being scored as the unlabelled
    texts (as `taskkit run spam --mode zero-shot` does): before the correction every obvious
    message but three went to one label (0.65 of the 20 right, the six below not all right)."""
    import taskkit

    texts = SPAM + HAM
    clf = taskkit.zero_shot("spam,ham", task="spam", unlabelled=texts)
    predicted = dict(zip(texts, clf.predict(texts)))
    six = {**{t: "spam" for t in SPAM[:3]}, **{t: "ham" for t in HAM[:3]}}
    assert {t: predicted[t] for t in six} == six
    assert sum(predicted[t] == "spam" for t in SPAM) + sum(predicted[t] == "ham" for t in HAM) >= 16
