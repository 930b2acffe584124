"""``taskkit.integrations.ray.TaskkitPredictor`` with ``ray.data.Dataset.map_batches`` on a local Ray
cluster of 2 CPUs: the labels ``taskkit predict`` gives, for classification and NER columns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import DEMO, read_jsonl

from taskkit.cli import main
from taskkit.errors import TaskkitError
from taskkit.integrations.ray import TaskkitPredictor

ray = pytest.importorskip("ray", reason="the ray extra (pip install taskkit[ray]) is not installed")

TEXTS = [r["text"] for split in ("train", "dev", "test") for r in read_jsonl(DEMO / f"{split}.jsonl")]
ROWS = [{"id": i, "review": f"{TEXTS[i % len(TEXTS)]} ({i // len(TEXTS)})"} for i in range(2000)]


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


def test_map_batches_gives_the_labels_taskkit_predict_gives(trained_run, local_ray, tmp_path, capsys):
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"id": r["id"], "text": r["review"]}) + "\n" for r in ROWS), encoding="utf-8")
    assert main(["predict", str(trained_run.out), "--input", str(path), "--output", str(tmp_path / "out.jsonl"),
                 "-q"]) == 0
    expected = read_jsonl(tmp_path / "out.jsonl")

    scored = ray.data.from_items(ROWS).map_batches(
        TaskkitPredictor, fn_constructor_kwargs={"model_dir": str(trained_run.out), "text_column": "review"},
        batch_size=250, concurrency=2, num_cpus=1)
    rows = sorted(scored.take_all(), key=lambda r: r["id"])
    assert len(rows) == 2000 and {"id", "review", "predicted", "probabilities"} <= set(rows[0])
    assert "text" not in rows[0]  # the input's columns as they were, the prediction's added
    assert [r["predicted"] for r in rows] == [r["predicted"] for r in expected]
    for got, want in zip(rows, expected):
        assert got["probabilities"] == pytest.approx(want["probabilities"], abs=0.02)


def test_pandas_batches_and_token_tasks_get_their_columns(tiny_model: Path, tmp_path):
    import pandas as pd

    from taskkit import api

    sentences = [("Alice flew to Paris on Monday .", [(0, 5, "PER"), (14, 19, "LOC")]),
                 ("Bob met Carol in Berlin .", [(0, 3, "PER"), (8, 13, "PER"), (17, 23, "LOC")])]
    data = tmp_path / "ner"
    data.mkdir()
    for split, copies in (("train", 8), ("dev", 2)):
        (data / f"{split}.jsonl").write_text("".join(
            json.dumps({"text": t, "entities": [{"start": s, "end": e, "type": k} for s, e, k in spans]}) + "\n"
            for t, spans in sentences * copies), encoding="utf-8")
    run = api.run("ner", "full", data, tmp_path / "out", model=str(tiny_model), epochs=1, max_length=16, progress=False)
    frame = pd.DataFrame({"sentence": [t for t, _ in sentences] * 3, "n": range(6)})
    scored = TaskkitPredictor(tmp_path / "out", text_column="sentence", batch_size=4)(frame)
    assert isinstance(scored, pd.DataFrame) and list(scored.columns) == ["sentence", "n", "entities"]
    expected = api.predict(run.predictor, [t for t, _ in sentences] * 3)
    assert scored["entities"].tolist() == [r["entities"] for r in expected]
    with pytest.raises(TaskkitError, match="no column 'text'"):
        TaskkitPredictor(tmp_path / "out")({"sentence": frame["sentence"].to_numpy()})
