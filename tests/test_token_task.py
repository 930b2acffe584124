"""A new token-level task is a short subclass of the core ``TokenClassificationTask``: a ``pii``
task written here with public names only, read from CoNLL, trained in full mode on a tiny random
BERT, windowed over a long sentence and predicting entities with character offsets."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest

from taskkit import api, registry
from taskkit.data.splits import load_splits
from taskkit.token_classification import TokenClassificationTask


class PiiTask(TokenClassificationTask):
    """Personal data to redact: e-mail addresses and phone numbers."""

    name = "pii"
    description = "personal data (e-mail addresses, phone numbers) to redact, a tag per word"
    label_descriptions: ClassVar[dict[str, str]] = {"EMAIL": "an e-mail address", "PHONE": "a phone number"}


SENTENCES = [
    (["write", "to", "ann", "@", "mail.com", "today"], ["O", "O", "B-EMAIL", "I-EMAIL", "I-EMAIL", "O"]),
    (["call", "555", "0199", "now"], ["O", "B-PHONE", "I-PHONE", "O"]),
    (["mail", "bob", "@", "post.org", "or", "call", "555", "0142"],
     ["O", "B-EMAIL", "I-EMAIL", "I-EMAIL", "O", "O", "B-PHONE", "I-PHONE"]),
    (["nothing", "private", "here"], ["O", "O", "O"]),
]


def _conll(path: Path, sentences) -> None:
    path.write_text("\n\n".join("\n".join(f"{w}\t{t}" for w, t in zip(*s)) for s in sentences) + "\n",
                    encoding="utf-8")


@pytest.fixture(scope="module")
def pii_run(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("pii-data")
    _conll(data / "train.conll", SENTENCES * 8)
    _conll(data / "dev.conll", SENTENCES)
    _conll(data / "test.conll", SENTENCES)
    task, mode = PiiTask(), registry.get_mode("full")
    config = api.make_config(mode.defaults, model=str(tiny_model), epochs=12, lr=5e-3, max_length=16,
                             progress=False, patience=0, seed=1)
    splits = load_splits(task, data, config)
    return task, splits, config, mode.fit(task, splits, config)


def test_pii_is_a_token_task_read_from_conll(pii_run) -> None:
    task, splits, _, predictor = pii_run
    assert task.level == "token" and len(splits.train) == 32
    assert splits.train[1]["tokens"] == ["call", "555", "0199", "now"]
    assert predictor.labels.names == ("O", "B-EMAIL", "I-EMAIL", "B-PHONE", "I-PHONE")


def test_pii_predicts_entities_with_character_offsets(pii_run) -> None:
    task, splits, _, predictor = pii_run
    scores = task.metrics(task.gold(splits.test, predictor.labels), predictor.predict(splits.test), predictor.labels)
    assert scores["micro_f1"] == 1.0, scores
    text = "write to ann@mail.com today"  # raw text: the words and their offsets come from it
    [record] = api.predict(predictor, [text])
    found = [(e["type"], e["start"], e["end"], e["text"]) for e in record["entities"]]
    start = text.index("ann@mail.com")
    assert ("EMAIL", start, start + len("ann@mail.com"), "ann@mail.com") in found
    assert all(text[s:e] == t for _, s, e, t in found)
    assert all(0.0 <= e["score"] <= 1.0 for e in record["entities"])


def test_a_sentence_longer_than_max_length_is_tagged_word_by_word(pii_run) -> None:
    """max_length 16: this sentence needs several windows; every word gets one tag, none is cut."""
    task, _, config, predictor = pii_run
    text = " ".join(["nothing", "private", "here"] * 6) + " write to ann@mail.com today"
    example = task.as_example(text)
    assert len(example["tokens"]) == 18 + 6
    features = task.encode([example], predictor.tokenizer, predictor.labels, config.max_length)
    assert len(features) > 1 and all(len(f["input_ids"]) <= config.max_length for f in features)
    owned = sorted(w for f in features for w in f["_words"] if w >= 0)
    assert owned == list(range(24))  # each word predicted from exactly one window
    [tags] = predictor.predict([text])
    assert len(tags) == 24 and set(tags) <= set(predictor.labels.names)
    [record] = api.predict(predictor, [text])
    assert all(text[e["start"]:e["end"]] == e["text"] for e in record["entities"])
