"""Zero-shot mode: label sets, both backends, self-training, saving, the direct command, bad input.

Unit tests use conftest's tiny random models (``tiny_nli``, an NLI-labelled BERT, and
``tiny_encoder``, a sentence-transformers wrapper of the tiny BERT); the integration tests run taskkit's shipped NLI model end to end.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from taskkit.cli import main
from taskkit.errors import TaskkitError

from conftest import read_jsonl, write_jsonl

TEXTS = ["The striker scored twice in the cup final.", "Shares fell after the bank cut its forecast.",
         "A new telescope photographed a distant galaxy.", "The prime minister met foreign leaders."]
GOLD = ["Sports", "Business", "Sci/Tech", "World"]


LABELS = {"Sports": "sports", "Business": None, "Sci/Tech": "science", "World": "world news"}


def _clf(tiny_nli: Path, tiny_encoder: Path, backend: str = "both", **kw):
    import taskkit

    model = str(tiny_encoder) if backend == "embedding" else str(tiny_nli)
    return taskkit.zero_shot(LABELS, task="topic", backend=backend, model=model, encoder=str(tiny_encoder), **kw)


# --- label sets ----------------------------------------------------------------------------
def test_labels_from_names_file_and_dict(tmp_path):
    from taskkit.label_sets import hypotheses, parse_labels

    assert parse_labels("a, b,c") == {"a": None, "b": None, "c": None}
    (tmp_path / "labels.yaml").write_text("sports: games and teams\nbusiness: markets\n", encoding="utf-8")
    (tmp_path / "labels.json").write_text(json.dumps({"sports": "games and teams", "business": "markets"}))
    assert parse_labels(tmp_path / "labels.yaml") == parse_labels(tmp_path / "labels.json") == \
        {"sports": "games and teams", "business": "markets"}
    assert hypotheses({"card_arrival": None, "sports": "games"}, "This is about {}.") == \
        ["This is about card arrival.", "This is about games."]


def test_task_descriptions_fill_in_missing_ones(tiny_nli, tiny_encoder):
    clf = _clf(tiny_nli, tiny_encoder)
    from taskkit_plugins.topic import Topic

    assert clf.hypotheses[1] == f"This text is about {Topic.label_descriptions['Business']}."
    assert clf.hypotheses[0] == "This text is about sports."


def test_pair_layout_matches_the_tokenizers_own_pairs(tiny_nli):
    from taskkit.hypothesis_scoring import NLIScorer

    scorer = NLIScorer(str(tiny_nli), max_length=24)
    for text in ["short one", "a much longer text " * 10]:
        hyp = "This text is about sports."
        ref = scorer.tokenizer(text, hyp, truncation="only_first", max_length=24)
        mine = scorer.layout.join(scorer.token_ids([text])[0], scorer.token_ids([hyp])[0], 24)
        assert mine["input_ids"] == ref["input_ids"]
        assert mine["token_type_ids"] == ref["token_type_ids"]


# --- scoring -------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["nli", "embedding", "both"])
def test_single_label_probabilities_sum_to_one(tiny_nli, tiny_encoder, backend):
    clf = _clf(tiny_nli, tiny_encoder, backend)
    proba = clf.predict_proba(TEXTS)
    assert proba.shape == (4, 4)
    assert np.allclose(proba.sum(1), 1, atol=1e-4)
    assert clf.predict(TEXTS) == [clf.labels.names[i] for i in proba.argmax(1)]


def test_nli_single_label_is_a_softmax_over_entailment_logits(tiny_nli, tiny_encoder):
    clf = _clf(tiny_nli, tiny_encoder, "nli", precision="fp32")
    logits = clf.scorer().logits(TEXTS, clf.hypotheses)
    entail = logits[..., 0]  # the tiny model's ENTAILMENT column
    expected = np.exp(entail) / np.exp(entail).sum(1, keepdims=True)
    assert np.allclose(clf.predict_proba(TEXTS), expected, atol=1e-5)


def test_multi_label_scores_each_label_on_its_own(tiny_nli, tiny_encoder):
    clf = _clf(tiny_nli, tiny_encoder, "nli", multi_label=True, threshold=0.0, precision="fp32")
    proba = clf.predict_proba(TEXTS)
    logits = clf.scorer().logits(TEXTS, clf.hypotheses)
    assert np.allclose(proba, 1 / (1 + np.exp(-(logits[..., 0] - logits[..., 2]))), atol=1e-5)
    assert all(len(p) == 4 for p in clf.predict(TEXTS))  # cut 0: every label


def test_abstain_threshold_returns_no_label(tiny_nli, tiny_encoder):
    clf = _clf(tiny_nli, tiny_encoder, threshold=0.99)
    assert clf.predict(TEXTS) == [None] * 4


def test_intent_abstains_as_out_of_scope(tiny_nli, tiny_encoder):
    import taskkit

    clf = taskkit.zero_shot("balance,transfer", task="intent", backend="nli", model=str(tiny_nli), threshold=0.99)
    assert clf.predict(["what is my balance"]) == ["oos"]


def test_embeddings_match_sentence_transformers(tiny_encoder):
    from sentence_transformers import SentenceTransformer

    from taskkit.hypothesis_scoring import EmbeddingScorer

    ref = SentenceTransformer(str(tiny_encoder), device="cpu").encode(TEXTS)
    mine = EmbeddingScorer(str(tiny_encoder), precision="fp32").encode(TEXTS)
    assert np.allclose(mine, ref, atol=1e-5)


# --- self-training and saving --------------------------------------------------------------
def test_self_training_fits_a_head_and_survives_save_and_load(tiny_nli, tiny_encoder, tmp_path):
    import taskkit

    pool = [f"{t} number {i}" for i in range(6) for t in TEXTS]
    clf = _clf(tiny_nli, tiny_encoder, unlabelled=pool)
    assert clf.head is not None
    assert clf.training.self_training["unlabelled_texts"] == len(pool)
    before = clf.predict_proba(TEXTS)
    clf.save(tmp_path / "zs")
    again = taskkit.load(tmp_path / "zs")
    assert again.labels == clf.labels and again.head is not None
    assert np.allclose(again.predict_proba(TEXTS), before, atol=1e-5)


def test_run_without_training_labels_writes_metrics_predictions_and_model(tiny_nli, tiny_encoder, tmp_path):
    from taskkit import api

    data = tmp_path / "data"
    write_jsonl(data / "test.jsonl", [{"text": t, "label": g} for t, g in zip(TEXTS, GOLD)])
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps(LABELS))
    result = api.run("topic", "zero-shot", data, tmp_path / "out", labels=str(labels), model=str(tiny_nli),
                     options={"encoder": str(tiny_encoder)}, progress=False)
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["mode"] == "zero-shot" and metrics["examples"] == 4 and "accuracy" in metrics
    assert metrics["training"]["self_training"]["unlabelled_texts"] == 4  # the test texts, labels unused
    assert len(read_jsonl(tmp_path / "out" / "predictions.jsonl")) == 4
    assert np.allclose(api.load(tmp_path / "out").predict_proba(TEXTS), result.predictor.predict_proba(TEXTS), atol=1e-5)


# --- bad input -------------------------------------------------------------------------------
def _error_line(capsys, argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("labels, template, expected", [
    (",", None, "zero-shot needs labels"),
    ("sports", None, "one label in single-label mode"),
    ("sports,business,Sports", None, "'Sports' is given twice"),
    ("sports,business", "This text is about sports.", "has no {} for the label"),
])
def test_bad_labels_and_templates(tiny_nli, capsys, labels, template, expected):
    argv = ["zero-shot", "some text", "--labels", labels, "--model", str(tiny_nli), "--backend", "nli"]
    argv += ["--template", template] if template else []
    assert expected in _error_line(capsys, argv)


def test_run_without_labels(tmp_path, capsys):
    data = write_jsonl(tmp_path / "test.jsonl", [{"text": t, "label": g} for t, g in zip(TEXTS, GOLD)])
    line = _error_line(capsys, ["run", "topic", "--mode", "zero-shot", "--data", str(data), "-q",
                                "--out", str(tmp_path / "out")])
    assert "zero-shot needs labels" in line


def test_model_without_entailment_label(tiny_model, tmp_path, capsys):
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    folder = tmp_path / "sentiment-model"
    config = BertConfig.from_pretrained(tiny_model)
    config.id2label, config.label2id = {0: "negative", 1: "positive"}, {"negative": 0, "positive": 1}
    BertForSequenceClassification(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(folder)
    line = _error_line(capsys, ["zero-shot", "text", "--labels", "a,b", "--model", str(folder), "--backend", "nli"])
    assert "names no entailment label" in line and "negative, positive" in line


def test_unknown_backend_and_bad_labels_file(tmp_path, capsys):
    assert "unknown zero-shot backend 'cosine'" in _error_line(capsys, ["zero-shot", "t", "--labels", "a,b",
                                                                        "--backend", "cosine"])
    bad = tmp_path / "labels.yaml"
    bad.write_text("a: [unclosed\n", encoding="utf-8")
    assert f"{bad}: not a valid labels file" in _error_line(capsys, ["zero-shot", "t", "--labels", str(bad)])


def test_test_label_outside_the_label_set(tiny_nli, tmp_path, capsys):
    data = write_jsonl(tmp_path / "test.jsonl", [{"text": "x", "label": "Sports"}, {"text": "y", "label": "Weather"}])
    line = _error_line(capsys, ["run", "topic", "--mode", "zero-shot", "--data", str(data), "--labels", "Sports,World",
                                "--model", str(tiny_nli), "--backend", "nli", "-q", "--out", str(tmp_path / "o")])
    assert f"{data}:2" in line and "'Weather'" in line and "not one of the zero-shot labels" in line


# --- the shipped model, end to end (CI) ------------------------------------------------------
@pytest.mark.integration
def test_shipped_model_end_to_end(run_taskkit, tmp_path):
    data = tmp_path / "data"
    write_jsonl(data / "test.jsonl", [{"text": t, "label": g} for t, g in zip(TEXTS, GOLD)])
    done = run_taskkit("run", "topic", "--mode", "zero-shot", "--data", data, "--labels", "World,Sports,Business,Sci/Tech",
                       "--out", tmp_path / "out", "-q")
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["training"]["nli_model"] == "nli-minilm" and metrics["accuracy"] >= 0.75
    predicted = run_taskkit("predict", tmp_path / "out", "The goalkeeper saved a penalty in extra time.")
    assert predicted.returncode == 0, predicted.stderr
    assert json.loads(predicted.stdout)["predicted"] == "Sports"
    direct = run_taskkit("zero-shot", "I loved every minute of this film.", "A dull, lifeless mess.",
                         "--labels", "positive,negative", "--task", "sentiment", "--backend", "nli")
    assert direct.returncode == 0, direct.stderr
    assert [json.loads(line)["predicted"] for line in direct.stdout.splitlines()] == ["positive", "negative"]


@pytest.mark.integration
def test_shipped_nli_model_entails():
    import taskkit

    clf = taskkit.zero_shot({"sports": "sports", "cooking": "cooking and recipes"}, backend="nli")
    assert clf.predict(["Whisk the eggs with sugar, then bake for twenty minutes."]) == ["cooking"]
    assert clf.settings["nli_model"] == "nli-minilm"


# --- relation extraction: hypotheses filled in per example -----------------------------------
REL = {"text": "The fire was caused by a cigarette.", "head": {"start": 4, "end": 8}, "tail": {"start": 25, "end": 34}}


def test_zero_shot_relation_fills_entities_and_gives_other_the_rest(tiny_nli):
    import taskkit

    labels = {"Cause-Effect(e2,e1)": "{tail} causes {head}.", "Cause-Effect(e1,e2)": None, "Other": None}
    clf = taskkit.zero_shot(labels, task="relation", model=str(tiny_nli), precision="fp32")
    assert clf.settings["backend"] == "nli"  # the default for per-example hypotheses
    proba = clf.predict_proba([REL])
    scorer = clf.scorer()
    logits = scorer.pair_logits([REL["text"]], [["cigarette causes fire.", "fire causes cigarette."]])[0]
    some = (1 / (1 + np.exp(-(logits[:, 0] - logits[:, 2])))).max()
    assert np.isclose(proba[0, 2], 1 - some, atol=1e-5)  # Other: no hypothesis entailed
    assert np.isclose(proba[0].sum(), 1, atol=1e-5)


def test_zero_shot_relation_needs_the_nli_backend(tiny_nli, capsys):
    import taskkit

    with pytest.raises(TaskkitError, match="zero-shot relation needs the nli backend"):
        taskkit.zero_shot("a,b", task="relation", backend="embedding", model=str(tiny_nli))


def test_bf16_scoring_keeps_fp32_decisions(tiny_nli):
    """bf16 is fast but moves logits a little; near ties are scored again in fp32."""
    from taskkit.hypothesis_scoring import NLIScorer

    hyps = [f"This text is about topic number {i}." for i in range(12)]
    texts = [f"text {i} about something or other" for i in range(30)]
    fast, exact = NLIScorer(str(tiny_nli), precision="auto"), NLIScorer(str(tiny_nli), precision="fp32")
    assert (fast.probabilities(texts, hyps, False).argmax(1) == exact.probabilities(texts, hyps, False).argmax(1)).all()


def test_token_budget_batches():
    from taskkit.kernel.batching import sorted_batches

    lengths = [5, 300, 40, 41, 7, 120, 3, 300, 64]
    batches = sorted_batches(lengths, batch_size=4, max_tokens=256)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) <= 4 and (len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= 256)


def test_zero_shot_relation_threshold_falls_back_to_other(tiny_nli):
    import taskkit

    clf = taskkit.zero_shot({"Cause-Effect(e2,e1)": None}, task="relation", model=str(tiny_nli), threshold=0.99)
    assert clf.predict([REL]) == ["Other"]
