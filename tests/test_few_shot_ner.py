"""Few-shot NER and relation extraction: K-mention sampling, the description prior, training and
predicting on the tiny model, reloading in a new process, and K larger than the data allows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import RELATION_ROWS, write_conll, write_jsonl

from taskkit.data.kshot import mentions, sample_mentions
from taskkit.errors import TaskkitError

NER = [
    (["John", "Smith", "lives", "in", "Paris", "."], ["B-PER", "I-PER", "O", "O", "B-LOC", "O"]),
    (["Mary", "works", "for", "Acme", "Corp", "in", "Berlin"], ["B-PER", "O", "O", "B-ORG", "I-ORG", "O", "B-LOC"]),
    (["Acme", "Corp", "hired", "Anna", "."], ["B-ORG", "I-ORG", "O", "B-PER", "O"]),
    (["Berlin", "and", "Paris", "are", "cities"], ["B-LOC", "O", "B-LOC", "O", "O"]),
    (["It", "rained", "all", "day", "."], ["O", "O", "O", "O", "O"]),
    (["Globex", "opened", "an", "office", "in", "Rome"], ["B-ORG", "O", "O", "O", "O", "B-LOC"]),
]


def examples(sentences) -> list[dict]:
    return [{"tokens": w, "tags": t, "_where": f"train:{i}"} for i, (w, t) in enumerate(sentences)]




# --- sampling ------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 2, 3])
def test_every_entity_type_reaches_k_mentions_and_the_sample_is_seeded(k: int):
    data = examples(NER * 3)
    chosen, indices = sample_mentions(data, k, seed=7)
    counts = sum((mentions(e) for e in chosen), start=mentions({}))
    assert set(counts) == {"PER", "LOC", "ORG"} and min(counts.values()) >= k
    assert [data[i] for i in indices] == chosen and indices == sorted(set(indices))
    assert all(sum(mentions(e).values()) for e in chosen)  # no sentence without an entity is taken
    assert sample_mentions(data, k, seed=7)[1] == indices  # the same seed, the same sentences
    assert len(chosen) < len(data)  # a sample, not the whole set
    seeds = {tuple(sample_mentions(data, k, seed=s)[1]) for s in range(8)}
    assert len(seeds) > 1  # another seed, other sentences


def test_k_larger_than_the_data_names_the_type_and_its_count():
    with pytest.raises(TaskkitError, match=r"'ORG' has 3\b") as info:
        sample_mentions(examples(NER), 4, seed=1)
    assert "\n" not in str(info.value) and "--shots 4" in str(info.value)
    chosen, _ = sample_mentions(examples(NER), 4, seed=1, allow_fewer=True)  # all there is of ORG
    assert sum(mentions(e)["ORG"] for e in chosen) == 3


def test_cli_shots_too_large_is_one_line_and_exit_2(tmp_path: Path, tiny_model: Path, run_taskkit):
    data = tmp_path / "data"
    write_conll(data / "train.conll", NER)
    write_conll(data / "test.conll", NER[:2])
    proc = run_taskkit("run", "ner", "--mode", "few-shot", "--shots", "5", "--data", data, "--model", tiny_model,
                       "--out", tmp_path / "out", "-q")
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "'ORG' has 3" in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "model").exists()


# --- the prior -----------------------------------------------------------------------------
def test_prototype_rows_classify_their_own_examples_and_a_label_without_examples_by_its_description():
    import torch

    from taskkit_plugins.few_shot.tokens import set_prototypes

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16)) * 3
    x = np.concatenate([c + rng.normal(size=(20, 16)) for c in centres[:2]]).astype(np.float32)
    y = np.repeat([0, 1], 20)
    prior = [None, None, centres[2] - x.mean(0)]  # label 2: described, never seen
    out = torch.nn.Linear(16, 3)
    set_prototypes(out, x, y, prior, 3)
    with torch.no_grad():
        logits = out(torch.from_numpy(x)).numpy()
        unseen = out(torch.from_numpy((centres[2] + rng.normal(size=(5, 16))).astype(np.float32))).numpy()
    assert (logits.argmax(1) == y).mean() > 0.95
    row = out.weight[2].detach().numpy()
    assert row @ prior[2] / np.linalg.norm(row) / np.linalg.norm(prior[2]) > 0.999  # the description's row
    assert unseen[:, 2].mean() > logits[:, 2].max()  # it answers to its description's neighbourhood
    assert out.bias[0] > out.bias[2]  # and starts as rare as its (absent) examples say


def test_verbalisations_become_marked_examples_of_their_labels():
    from taskkit_plugins.few_shot.relations import verbalised
    from taskkit_plugins.relation import RelationTask

    task = RelationTask()
    shots = [task.as_example(r) | {"label": r["label"]} for r in RELATION_ROWS]
    anchors = {a["label"]: a for a in verbalised(task, shots, {}, seed=0)}
    assert set(anchors) == {r["label"] for r in RELATION_ROWS} - {"Other"}  # Other has no verbalisation
    forward, backward = anchors["Cause-Effect(e1,e2)"], anchors["Cause-Effect(e2,e1)"]
    assert forward["text"] == "spark causes fire." and backward["text"] == "spark causes fire."
    assert forward["text"][forward["head"]["start"]:forward["head"]["end"]] == "spark"
    assert backward["text"][backward["head"]["start"]:backward["head"]["end"]] == "fire"  # direction kept
    mine = verbalised(task, shots, {"Component-Whole(e1,e2)": "{head} belongs inside {tail}."}, seed=0)
    assert "engine belongs inside car." in {a["text"] for a in mine}


# --- training, predicting, reloading -------------------------------------------------------
def test_few_shot_ner_trains_predicts_offsets_and_reloads_in_a_new_process(tiny_model: Path, tmp_path: Path,
                                                                           run_taskkit):
    from taskkit import api

    data = tmp_path / "data"
    write_conll(data / "train.conll", NER * 4)
    write_conll(data / "test.conll", NER[:3])
    out = tmp_path / "run"
    result = api.run("ner", "few-shot", data, out, model=str(tiny_model), shots=2, epochs=3, lr=1e-3, seed=3,
                     progress=False)
    metrics = json.loads((out / "metrics.json").read_text())
    train = examples(NER * 4)
    chosen = [train[i] for i in metrics["train_indices"]]
    assert min(sum((mentions(e) for e in chosen), start=mentions({})).values()) >= 2
    assert metrics["mode"] == "few-shot" and "micro_f1" in metrics
    assert metrics["training"]["extra"]["dev_from_shots"]["held_out"] >= 1  # early stopping on held-out shots
    assert json.loads((out / "model" / "taskkit.json").read_text())["format"] == "torch.v1"
    text = "John Smith lives in Paris ."
    here = api.predict(result.predictor, [text])
    proc = run_taskkit("predict", out, text)
    assert proc.returncode == 0, proc.stderr
    there = json.loads(proc.stdout.strip().splitlines()[0])
    assert there["entities"] == here[0]["entities"]
    for entity in there["entities"]:  # character offsets into the text
        assert text[entity["start"]:entity["end"]] == entity["text"]
    exported = run_taskkit("export", out, tmp_path / "onnx", "--format", "onnx")  # exported as in full mode
    assert exported.returncode == 0 and "Traceback" not in exported.stderr, exported.stderr
    predictor = result.predictor  # the exported tags are the torch model's (fp32; tests/test_export_tokens.py)
    assert api.load(tmp_path / "onnx").predict([text]) == \
        predictor.task.decode(predictor.predict_proba([text], precision="fp32"), predictor.labels)


def test_the_description_prior_tags_before_any_fine_tuning(tiny_model: Path):
    """Epoch 0 is the prototype classifier: it already tags the training words it was built from."""
    from taskkit.contracts import RunConfig
    from taskkit.kernel.model import TaskModel
    from taskkit.kernel.predictor import TorchPredictor
    from taskkit.models import load_body, load_tokenizer
    from taskkit_plugins.few_shot.tokens import init_head
    from taskkit_plugins.ner import NERTask

    task = NERTask()
    train = task.from_records([{"tokens": w, "tags": t} for w, t in NER], RunConfig())
    labels = task.label_space(train)
    body = load_body(str(tiny_model))
    model = TaskModel(body, task.head(body.config.hidden_size, labels, 0.0))
    config = RunConfig(model=str(tiny_model), max_length=32)
    predictor = TorchPredictor(model, load_tokenizer(str(tiny_model)), task, labels, "few-shot",
                               {"max_length": 32})
    before = _token_accuracy(task, predictor, train)
    init_head(task, config, {}, model, train)
    after = _token_accuracy(task, predictor, train)
    assert after > max(before, 0.6)


def _token_accuracy(task, predictor, train) -> float:
    predicted = task.decode(predictor.predict_proba(train), predictor.labels)
    pairs = [(g, p) for e, tags in zip(train, predicted) for g, p in zip(e["tags"], tags)]
    return sum(g == p for g, p in pairs) / len(pairs)


def test_few_shot_relation_trains_with_verbalisations_and_reloads(tiny_model: Path, tmp_path: Path, run_taskkit):
    from taskkit import api

    data = tmp_path / "data"
    write_jsonl(data / "train.jsonl", RELATION_ROWS * 4)
    write_jsonl(data / "test.jsonl", RELATION_ROWS)
    out = tmp_path / "run"
    result = api.run("relation", "few-shot", data, out, model=str(tiny_model), shots=3, epochs=2, lr=1e-3,
                     max_length=32, seed=1, progress=False)
    assert "official_macro_f1" in result.metrics
    assert result.metrics["training"]["extra"]["anchors"] == 4  # one per directed label, none for Other
    assert len(result.metrics["train_indices"]) == 15  # 3 of each of the 5 labels
    query = {k: v for k, v in RELATION_ROWS[0].items() if k != "label"}
    proc = run_taskkit("predict", out, "--input", write_jsonl(tmp_path / "q.jsonl", [query]))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[0])["predicted"] == api.predict(result.predictor, [query])[0]["predicted"]


def test_the_few_shot_mode_offers_ner_and_relation_but_not_plain_text_pairs():
    from taskkit import registry

    mode = registry.get_mode("few-shot")
    assert mode.supports(registry.get_task("ner")) and mode.supports(registry.get_task("relation"))
    assert not mode.supports(registry.get_task("nli"))


def test_held_out_shots_that_never_score_do_not_choose_one_epoch():
    """A seed whose held-out quarter scored 0 throughout used to train one epoch (F1 0.02 on WikiANN)."""
    from taskkit.kernel.train import TrainResult
    from taskkit_plugins.few_shot.tokens import chosen_epochs

    assert chosen_epochs(TrainResult(best_epoch=1, best_score=0.0), 20, 3, 12)[0] == 20
    assert chosen_epochs(TrainResult(best_epoch=6, best_score=0.4), 20, 3, 12)[0] == 6
