"""Data readers and splits: formats, line numbers, custom columns, dev carving."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest

from taskkit import registry
from taskkit.contracts import RunConfig
from taskkit.data import load_splits, read_records, stratified_split
from taskkit.errors import TaskkitError

from conftest import DATASETS, write_jsonl

ROWS = [{"text": "I loved it, truly", "label": "positive"},
        {"text": 'He said "awful", and meant it', "label": "negative"},
        {"text": "Fine, I guess; nothing special", "label": "neutral"}]


@pytest.fixture
def sentiment():
    return registry.get_task("sentiment")


def _csv(rows, delimiter=","):
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["text", "label"], delimiter=delimiter, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _plain(records):
    return [{k: v for k, v in r.items() if k != "_where"} for r in records]


def test_csv_with_quoting_and_line_numbers(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text(_csv(ROWS), encoding="utf-8")
    records = read_records(path)
    assert _plain(records) == ROWS
    assert [r["_where"] for r in records] == [f"{path}:2", f"{path}:3", f"{path}:4"]


def test_csv_with_byte_order_mark_and_blank_rows(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufefftext,label\nhello,positive\n,\nbye,negative\n".encode("utf-8"))
    records = read_records(path)
    assert _plain(records) == [{"text": "hello", "label": "positive"}, {"text": "bye", "label": "negative"}]
    assert records[1]["_where"] == f"{path}:4"


def test_tsv(tmp_path):
    path = tmp_path / "data.tsv"
    path.write_text(_csv(ROWS, delimiter="\t"), encoding="utf-8")
    assert "\t" in path.read_text()
    assert _plain(read_records(path)) == ROWS


def test_jsonl_skips_blank_lines_and_keeps_line_numbers(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n\n" + json.dumps(ROWS[1]) + "\n", encoding="utf-8")
    records = read_records(path)
    assert _plain(records) == ROWS[:2]
    assert [r["_where"] for r in records] == [f"{path}:1", f"{path}:3"]


def test_gzipped_jsonl(tmp_path):
    path = tmp_path / "data.jsonl.gz"
    path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in ROWS).encode("utf-8")))
    records = read_records(path)
    assert _plain(records) == ROWS
    assert records[2]["_where"] == f"{path}:3"


def test_gzipped_csv(tmp_path):
    path = tmp_path / "data.csv.gz"
    path.write_bytes(gzip.compress(_csv(ROWS).encode("utf-8")))
    assert _plain(read_records(path)) == ROWS


def test_task_reads_examples(tmp_path, sentiment):
    path = write_jsonl(tmp_path / "train.jsonl", [{"text": "ok", "label": 1}, {"text": "meh", "label": " 0 "}])
    examples = sentiment.read(path, RunConfig())
    assert [(e["text"], e["label"]) for e in examples] == [("ok", "1"), ("meh", "0")]
    assert examples[1]["_where"] == f"{path}:2"


def test_custom_text_and_label_columns(tmp_path, sentiment):
    path = tmp_path / "reviews.csv"
    path.write_text("id,review,stars\n1,Great value,good\n2,Broke in a day,bad\n", encoding="utf-8")
    examples = sentiment.read(path, RunConfig(text_column="review", label_column="stars"))
    assert [(e["text"], e["label"]) for e in examples] == [("Great value", "good"), ("Broke in a day", "bad")]
    with pytest.raises(TaskkitError, match=r"reviews.csv:2: missing column 'text' \(found: id, review, stars\)"):
        sentiment.read(path, RunConfig())


def test_custom_columns_through_a_run(tmp_path, tiny_model):
    from taskkit import api

    rows = [{"review": f"review {i} " + ("great" if i % 2 else "awful"), "stars": "good" if i % 2 else "bad"}
            for i in range(20)]
    path = write_jsonl(tmp_path / "reviews.jsonl", rows)
    result = api.run("sentiment", "full", path, None, model=str(tiny_model), epochs=1, progress=False,
                     text_column="review", label_column="stars")
    assert result.predictor.labels.names == ("bad", "good")
    assert result.metrics["evaluated_on"] == "dev"
    assert result.metrics["examples"] == 2  # 10% of 20 carved off as dev


def test_multi_label_csv_column(tmp_path, sentiment):
    path = tmp_path / "multi.csv"
    path.write_text('text,labels\n"joy and surprise","joy;surprise"\nplain anger,anger\n', encoding="utf-8")
    examples = sentiment.read(path, RunConfig())
    assert [e["labels"] for e in examples] == [["joy", "surprise"], ["anger"]]
    space = sentiment.label_space(examples)
    assert space.multi_label and space.names == ("anger", "joy", "surprise")


def test_real_gzipped_dataset(sentiment):
    path = DATASETS / "sentiment" / "sst2" / "dev.jsonl.gz"
    assert path.is_file(), f"shared datasets missing at {DATASETS}"
    examples = sentiment.read(path, RunConfig())
    assert len(examples) == 872
    assert set(Counter(e["label"] for e in examples)) == {"positive", "negative"}
    assert all(e["text"].strip() for e in examples)


# --- splits ---------------------------------------------------------------------------------
def _labelled(n_pos: int, n_neg: int) -> list[dict]:
    return ([{"text": f"pos {i}", "label": "positive"} for i in range(n_pos)]
            + [{"text": f"neg {i}", "label": "negative"} for i in range(n_neg)])


def test_folder_with_train_validation_test(tmp_path, sentiment):
    write_jsonl(tmp_path / "train.jsonl", _labelled(5, 5))
    path = tmp_path / "validation.csv"
    path.write_text(_csv(_labelled(2, 2)), encoding="utf-8")
    with gzip.open(tmp_path / "test.jsonl.gz", "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in _labelled(3, 1))
    (tmp_path / "README.md").write_text("not data")
    splits = load_splits(sentiment, tmp_path, RunConfig())
    assert (len(splits.train), len(splits.dev), len(splits.test)) == (10, 4, 4)
    assert not splits.dev_carved
    assert splits.source == str(tmp_path)


def test_dev_is_carved_stratified_when_absent(tmp_path, sentiment):
    path = write_jsonl(tmp_path / "all.jsonl", _labelled(70, 30))
    splits = load_splits(sentiment, path, RunConfig(dev_fraction=0.1, seed=1))
    assert splits.dev_carved and splits.test == []
    assert (len(splits.train), len(splits.dev)) == (90, 10)
    assert Counter(e["label"] for e in splits.dev) == {"positive": 7, "negative": 3}
    assert Counter(e["label"] for e in splits.train) == {"positive": 63, "negative": 27}
    texts_train = {e["text"] for e in splits.train}
    texts_dev = {e["text"] for e in splits.dev}
    assert not texts_train & texts_dev and len(texts_train | texts_dev) == 100


def test_dev_carving_is_seeded(tmp_path, sentiment):
    path = write_jsonl(tmp_path / "all.jsonl", _labelled(50, 50))

    def dev_texts(seed: int, fraction: float = 0.2) -> list[str]:
        return [e["text"] for e in load_splits(sentiment, path, RunConfig(seed=seed, dev_fraction=fraction)).dev]

    assert dev_texts(3) == dev_texts(3)
    assert dev_texts(3) != dev_texts(4)
    assert len(dev_texts(3)) == 20
    assert len(dev_texts(3, fraction=0.3)) == 30


def test_dev_is_carved_from_train_file_in_folder(tmp_path, sentiment):
    write_jsonl(tmp_path / "train.jsonl", _labelled(10, 10))
    write_jsonl(tmp_path / "test.jsonl", _labelled(2, 2))
    splits = load_splits(sentiment, tmp_path, RunConfig())
    assert splits.dev_carved
    assert (len(splits.train), len(splits.dev), len(splits.test)) == (18, 2, 4)
    assert Counter(e["label"] for e in splits.dev) == {"positive": 1, "negative": 1}


def test_stratified_split_falls_back_for_rare_classes():
    examples = _labelled(10, 1)
    kept, held = stratified_split(examples, 0.2, seed=0)
    assert len(kept) + len(held) == 11 and len(held) == 2


def test_missing_data_path(tmp_path, sentiment):
    with pytest.raises(TaskkitError, match="no such file or folder"):
        load_splits(sentiment, tmp_path / "missing", RunConfig())
