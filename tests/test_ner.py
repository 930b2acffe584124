"""The ``ner`` task: tag schemes, readers, bad input, windows, training and offsets on a tiny model."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from conftest import write_jsonl
from taskkit.contracts import RunConfig
from taskkit.data import conll
from taskkit.errors import TaskkitError

ner = importlib.import_module("taskkit_plugins.ner")

SENTENCES = [
    (["John", "Smith", "lives", "in", "Paris", "."], ["B-PER", "I-PER", "O", "O", "B-LOC", "O"]),
    (["Mary", "works", "for", "Acme", "Corp", "in", "Berlin"], ["B-PER", "O", "O", "B-ORG", "I-ORG", "O", "B-LOC"]),
    (["Acme", "Corp", "hired", "Anna", "."], ["B-ORG", "I-ORG", "O", "B-PER", "O"]),
    (["Berlin", "and", "Paris", "are", "cities"], ["B-LOC", "O", "B-LOC", "O", "O"]),
]


def write_conll(path: Path, sentences, scheme=None) -> Path:
    blocks = ["\n".join(f"{w}\t{t}" for w, t in zip(words, tags)) for words, tags in sentences]
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return path


def task() -> "ner.NERTask":
    return ner.NERTask()


# --- schemes -------------------------------------------------------------------------------
def test_iob1_and_bioes_are_normalised_to_iob2():
    wheres = [""] * 6
    assert conll.to_iob2(["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "O"], "iob1", wheres) == \
        ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "O"]
    assert conll.to_iob2(["B-PER", "I-PER", "E-PER", "O", "S-LOC", "S-LOC"], "bioes", wheres) == \
        ["B-PER", "I-PER", "I-PER", "O", "B-LOC", "B-LOC"]
    assert conll.detect_scheme([["B-PER", "E-PER"]]) == "bioes"
    assert conll.entities_from_tags(["B-PER", "I-PER", "O", "I-LOC", "B-LOC"]) == [("PER", 0, 1), ("LOC", 3, 3), ("LOC", 4, 4)]


def test_reads_conll_bioes_and_jsonl_forms(tmp_path: Path):
    path = tmp_path / "a.conll"
    path.write_text("-DOCSTART-\tO\n\nJohn\tB-PER\nSmith\tE-PER\nin\tO\nParis\tS-LOC\n\n\n", encoding="utf-8")
    (example,) = task().read(path, RunConfig())
    assert example["tags"] == ["B-PER", "I-PER", "O", "B-LOC"] and example["_where"] == f"{path}:3"
    rows = write_jsonl(tmp_path / "b.jsonl", [
        {"tokens": ["Ann", "met", "Bob"], "tags": ["B-PER", "O", "B-PER"]},
        {"text": "Visit New York-based Acme.", "entities": [{"start": 6, "end": 14, "type": "LOC"},
                                                          {"start": 21, "end": 25, "type": "ORG"}]},
    ])
    a, b = task().read(rows, RunConfig())
    assert a["tags"] == ["B-PER", "O", "B-PER"]
    assert list(zip(b["tokens"], b["tags"])) == [("Visit", "O"), ("New", "B-LOC"), ("York", "I-LOC"),
                                                 ("-based", "O"), ("Acme", "B-ORG"), (".", "O")]


# --- bad input: one line naming file and line -------------------------------------------
@pytest.mark.parametrize("content, message", [
    ("John\tB-PER\nSmith\n", "a.conll:2: expected 'token<TAB>tag'"),
    ("John\tB-PER\nSmith\tE-PER\nParis\tI-LOC\n", "a.conll:3: tag 'I-LOC' continues no LOC entity"),
    ("John\tB-PER\nSmith\tQ-PER\n", "a.conll:2: tag 'Q-PER' is neither O"),
])
def test_bad_conll_names_file_and_line(tmp_path: Path, content: str, message: str):
    path = tmp_path / "a.conll"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(TaskkitError, match=message.replace("(", r"\(")):
        task().read(path, RunConfig())


def test_strict_iob2_refuses_a_stray_inside_tag(tmp_path: Path):
    path = write_conll(tmp_path / "a.conll", [(["in", "Paris"], ["O", "I-LOC"])])
    assert task().read(path, RunConfig())[0]["tags"] == ["O", "B-LOC"]  # auto: repaired as IOB1
    with pytest.raises(TaskkitError, match=r"a.conll:2: tag 'I-LOC' continues no LOC entity \(IOB2"):
        task().read(path, RunConfig(options={"scheme": "iob2"}))


@pytest.mark.parametrize("row, message", [
    ({"tokens": ["a", "b"], "tags": ["O"]}, "2 tokens but 1 tags"),
    ({"tokens": [], "tags": []}, "empty sentence"),
    ({"text": "  ", "entities": []}, "empty sentence"),
    ({"text": "Paris", "entities": [{"start": 0, "end": 9, "type": "LOC"}]}, r"span \[0, 9\) out of range"),
    ({"text": "New York", "entities": [{"start": 0, "end": 8, "type": "LOC"}, {"start": 4, "end": 8, "type": "LOC"}]},
     "overlap"),
])
def test_bad_jsonl_names_file_and_line(tmp_path: Path, row, message):
    path = write_jsonl(tmp_path / "bad.jsonl", [{"tokens": ["ok"], "tags": ["O"]}, row])
    with pytest.raises(TaskkitError, match=rf"bad.jsonl:2: .*{message}"):
        task().read(path, RunConfig())


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path: Path, run_taskkit):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.conll").write_text("John\tB-PER\nSmith\tE-PER\n\nin\tO\nParis\tI-LOC\n", encoding="utf-8")
    done = run_taskkit("run", "ner", "--data", data, "--out", tmp_path / "out", timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == f"error: {data / 'train.conll'}:5: tag 'I-LOC' continues no LOC entity (BIOES needs B-LOC first)"


# --- encoding ----------------------------------------------------------------------------
def test_long_sentences_become_windows_that_tag_every_word_once(tiny_model: Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model))
    words = [f"word{i}" if i % 3 else "Paris" for i in range(60)]
    example = {"tokens": words, "tags": ["B-LOC" if w == "Paris" else "O" for w in words]}
    labels = task().label_space([example])
    features = task().encode([example], tokenizer, labels, max_length=24)
    assert len(features) > 3 and all(len(f["input_ids"]) <= 24 for f in features)
    owned = sorted(w for f in features for w in f["_words"] if w >= 0)
    assert owned == list(range(len(words)))  # every word predicted by exactly one window
    for f in features:  # the label sits on a word's first sub-word, -100 elsewhere
        for token_id, label in zip(f["input_ids"], f["labels"]):
            if label >= 0:
                assert not tokenizer.convert_ids_to_tokens(token_id).startswith("##")


# --- end to end on a tiny random model -----------------------------------------------------
@pytest.fixture(scope="module")
def ner_run(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    from taskkit import api

    root = tmp_path_factory.mktemp("ner-data")
    data = root / "data"
    data.mkdir()
    write_conll(data / "train.conll", SENTENCES * 4)
    write_conll(data / "dev.conll", SENTENCES)
    write_conll(data / "test.conll", SENTENCES)
    return api.run("ner", "full", data, root / "out", model=str(tiny_model), epochs=2, lr=1e-3, max_length=16,
                   seed=3, progress=False)


def test_trains_evaluates_and_reports_seqeval_figures(ner_run):
    metrics = ner_run.metrics
    assert {"micro_f1", "macro_f1", "micro_precision", "micro_recall"} <= set(metrics)
    assert set(metrics["per_type"]) == {"LOC", "ORG", "PER"}
    record = ner_run.predictions[0]
    assert record["gold"] == SENTENCES[0][1] and len(record["predicted_tags"]) == len(SENTENCES[0][0])


def test_predict_raw_text_gives_character_offsets_that_round_trip(ner_run):
    from taskkit import api

    texts = ["John Smith moved to Paris, France.", "  Acme  Corp\thired\nMary in Berlin!"]
    loaded = api.load(ner_run.out)
    for record in api.predict(loaded, texts):
        for entity in record["entities"]:
            assert set(entity) == {"text", "type", "start", "end", "score"}
            assert record["text"][entity["start"]:entity["end"]] == entity["text"]
    # a saved and reloaded model predicts what the trained one did
    assert api.predict(loaded, texts) == api.predict(ner_run.predictor, texts)


def test_ner_is_offered_by_the_full_mode():
    from taskkit import registry

    assert registry.get_mode("full").supports(registry.get_task("ner"))


def test_every_other_training_mode_that_offers_ner_trains_it(tiny_model: Path, tmp_path: Path):
    from taskkit import api, registry

    modes = [m for m, (mode, _) in registry.modes().items()
             if m != "full" and mode.needs_training_data and mode.supports(registry.get_task("ner"))]
    if not modes:
        pytest.skip("no other training mode supports ner")
    data = tmp_path / "data"
    data.mkdir()
    write_conll(data / "train.conll", SENTENCES * 4)
    write_conll(data / "test.conll", SENTENCES)
    for mode in modes:
        result = api.run("ner", mode, data, tmp_path / mode, model=str(tiny_model), epochs=1, lr=1e-3,
                         max_length=16, progress=False)
        assert "micro_f1" in result.metrics
        text = ["John Smith lives in Paris"]
        assert api.predict(api.load(tmp_path / mode), text) == api.predict(result.predictor, text)
