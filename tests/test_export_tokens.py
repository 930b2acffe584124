"""taskkit export of NER (per-token logits, entities decoded by taskkit in numpy) and relation models
(entity markers placed by the task's torch-free encoding): the same predictions as torch, without torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import RELATION_ROWS, relation_row, subprocess_env, write_conll, write_jsonl
from test_export import NO_TORCH

NER_LABELS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")
RELATION_LABELS = ("Other", "Cause-Effect(e1,e2)", "Cause-Effect(e2,e1)", "Component-Whole(e1,e2)")
NER_MAX_LENGTH = 16  # sentences of more than 14 sub-words are read in windows
RELATION_MAX_LENGTH = 24

SENTENCES = ["John Smith moved to Paris, France.", "Mary works for Acme Corp in Berlin",
             "Ünïcode façade — naïve café in Zürich!", "x"]
LONG = " ".join(SENTENCES[:3] * 3)  # ~45 sub-words: several windows of NER_MAX_LENGTH


def _typed(row: dict, head: str, tail: str) -> dict:
    return {**row, "head": {**row["head"], "type": head}, "tail": {**row["tail"], "type": tail}}


FILLER = "and then, after a very long and winding preamble about nothing much at all, "
RELATIONS = [
    *[{k: v for k, v in r.items() if k != "label"} for r in RELATION_ROWS],
    _typed(relation_row("The spark from Acme caused the fire.", "spark", "fire", "x"), "CAUSE", "EFFECT"),
    _typed(relation_row("The engine is part of the car.", "engine", "car", "x"), "PART", "UNSEEN"),  # an unseen type
    relation_row(FILLER * 2 + "the spark caused the fire " + FILLER * 2, "spark", "fire", "x"),  # cut around both
]


def _save_torch(tiny_model: Path, out: Path, task_name: str, peft: bool = False) -> Path:
    """A tiny NER / relation model with a random head, its tokenizer holding the task's markers as
    training adds them, saved as taskkit saves it (torch.v1; adapter.v1 with ``peft``)."""
    import torch

    from taskkit import registry
    from taskkit.contracts import LabelSpace
    from taskkit.kernel.model import TaskModel
    from taskkit.kernel.predictor import AdapterPredictor, TorchPredictor
    from taskkit.models import load_body, load_tokenizer

    task = registry.get_task(task_name)
    space = LabelSpace(NER_LABELS if task_name == "ner" else RELATION_LABELS)
    tokenizer, body = load_tokenizer(str(tiny_model)), load_body(str(tiny_model))
    markers = task.special_tokens([task.as_example(x) for x in RELATIONS[5:6]]) if task_name == "relation" else []
    if markers:
        tokenizer.add_tokens(markers, special_tokens=True)
        body.resize_token_embeddings(len(tokenizer))
    torch.manual_seed(11)
    head = task.head(body.config.hidden_size, space, 0.1)
    with torch.no_grad():  # decisive logits, as a trained head gives
        for param in head.parameters():
            param.normal_(std=1.0)
    cls = TorchPredictor
    if peft:
        from peft import LoraConfig, get_peft_model

        body = get_peft_model(body, LoraConfig(r=4, target_modules=["query", "value"]))
        with torch.no_grad():
            for name, param in body.named_parameters():
                if "lora_B" in name:
                    param.normal_(std=0.5)
        cls = AdapterPredictor
    max_length = NER_MAX_LENGTH if task_name == "ner" else RELATION_MAX_LENGTH
    settings = {"base_model": str(tiny_model), "max_length": max_length, "eval_batch_size": 3, "precision": "fp32"}
    return cls(TaskModel(body, head), tokenizer, task, space, "peft" if peft else "full", settings).save(out)


@pytest.fixture(scope="module")
def folders(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """torch NER and relation folders and their fp32 and int8 exports."""
    from taskkit.export import export_model

    root = tmp_path_factory.mktemp("tokens")
    out = {"ner": _save_torch(tiny_model, root / "ner", "ner"),
           "relation": _save_torch(tiny_model, root / "relation", "relation")}
    for task in ("ner", "relation"):
        out[f"{task}-fp32"] = export_model(out[task], root / f"{task}-fp32")
        out[f"{task}-int8"] = export_model(out[task], root / f"{task}-int8", quantize="int8")
    return out


def _entities(records: list[dict]) -> list[list[tuple]]:
    return [[(e["type"], e["start"], e["end"], e["text"]) for e in r["entities"]] for r in records]


def _assert_same_ner(torch_dir: Path, onnx_dir: Path, texts: list[str]) -> None:
    """Entities (types and character offsets) identical, per-word probabilities within 1e-4."""
    from taskkit import api

    torch_model, onnx_model = api.load(torch_dir), api.load(onnx_dir)
    torch_p, onnx_p = torch_model.predict_proba(texts, precision="fp32"), onnx_model.predict_proba(texts)
    assert [p.shape for p in onnx_p] == [p.shape for p in torch_p]
    assert max(np.abs(a - b).max() for a, b in zip(torch_p, onnx_p)) <= 1e-4
    torch_records, onnx_records = api.predict(torch_dir, texts), api.predict(onnx_dir, texts)
    assert _entities(onnx_records) == _entities(torch_records)
    assert sum(len(r["entities"]) for r in torch_records) >= len(texts)  # entities to compare, not empty lists
    for got, want in zip(onnx_records, torch_records):
        assert [e["score"] for e in got["entities"]] == pytest.approx([e["score"] for e in want["entities"]], abs=2e-4)


def test_ner_export_gives_the_torch_entities_with_windows(folders: dict[str, Path]) -> None:
    from taskkit import api
    from taskkit.export.onnx_predictor import OnnxPredictor

    onnx = api.load(folders["ner-fp32"])
    assert isinstance(onnx, OnnxPredictor)
    assert len(api.load(folders["ner"]).features([LONG])) > 2  # the torch path windows the long sentence...
    assert len(onnx.features([LONG])[0]) == len(api.load(folders["ner"]).features([LONG]))  # ...and so does ONNX
    _assert_same_ner(folders["ner"], folders["ner-fp32"], [*SENTENCES, LONG])
    meta = json.loads((folders["ner-fp32"] / "taskkit.json").read_text())
    assert meta["format"] == "onnx.v1" and meta["task"] == "ner" and meta["settings"]["inputs"] == ["input_ids", "attention_mask"]


def test_ner_int8_export_loads_and_tags(folders: dict[str, Path]) -> None:
    from taskkit import api

    records = api.predict(folders["ner-int8"], [*SENTENCES, LONG])
    assert (folders["ner-int8"] / "model.onnx").stat().st_size < (folders["ner-fp32"] / "model.onnx").stat().st_size
    assert len(records) == len(SENTENCES) + 1 and sum(len(r["entities"]) for r in records) > 0
    for record in records:
        for entity in record["entities"]:
            assert record["text"][entity["start"]:entity["end"]] == entity["text"] and entity["type"] in ("PER", "LOC")
    proba = api.load(folders["ner-int8"]).predict_proba([LONG])[0]
    assert proba.shape == api.load(folders["ner"]).predict_proba([LONG])[0].shape  # a row per word of the long text
    assert np.allclose(proba.sum(1), 1.0, atol=1e-5)


def test_relation_export_matches_torch_markers_and_cut_windows(folders: dict[str, Path]) -> None:
    from taskkit import api

    torch_model, onnx_model = api.load(folders["relation"]), api.load(folders["relation-fp32"])
    long_ids = torch_model.features(RELATIONS[-1:])[0]["input_ids"]
    assert len(long_ids) == RELATION_MAX_LENGTH  # the long text is cut around its entities
    typed = torch_model.tokenizer.convert_tokens_to_ids(["<h:CAUSE>", "<t:EFFECT>", "<h>", "<t>"])
    assert typed[0] in torch_model.features(RELATIONS[5:6])[0]["input_ids"]  # a typed marker the tokenizer knows
    # the torch-free encoding is the torch one: the marker tokens come from the exported tokenizer.json
    assert onnx_model.features(RELATIONS)[0] == torch_model.features(RELATIONS)
    torch_p, onnx_p = torch_model.predict_proba(RELATIONS, precision="fp32"), onnx_model.predict_proba(RELATIONS)
    assert onnx_p.shape == torch_p.shape == (len(RELATIONS), len(RELATION_LABELS))
    assert np.abs(torch_p - onnx_p).max() <= 1e-4
    assert onnx_model.predict(RELATIONS) == torch_model.predict(RELATIONS)
    assert len(set(torch_model.predict(RELATIONS))) > 1  # labels that differ between inputs
    records = api.predict(folders["relation-fp32"], RELATIONS)
    assert [r["predicted"] for r in records] == [r["predicted"] for r in api.predict(folders["relation"], RELATIONS)]
    int8 = api.load(folders["relation-int8"]).predict_proba(RELATIONS)
    assert int8.shape == torch_p.shape and np.allclose(int8.sum(1), 1.0, atol=1e-5)
    assert (int8.argmax(1) == torch_p.argmax(1)).mean() >= 0.75  # int8 weights: close, not identical


def test_peft_ner_is_merged_and_exported(tiny_model: Path, tmp_path: Path) -> None:
    from taskkit.export import export_model

    source = _save_torch(tiny_model, tmp_path / "peft", "ner", peft=True)
    assert (source / "adapter").is_dir()
    _assert_same_ner(source, export_model(source, tmp_path / "onnx"), [*SENTENCES, LONG])


def test_few_shot_trained_ner_and_relation_folders_export(tiny_model: Path, tmp_path: Path) -> None:
    from taskkit import api
    from taskkit.export import export_model

    ner_data = write_conll(tmp_path / "ner" / "train.conll", [
        (["John", "Smith", "lives", "in", "Paris", "."], ["B-PER", "I-PER", "O", "O", "B-LOC", "O"]),
        (["Mary", "works", "in", "Berlin"], ["B-PER", "O", "O", "B-LOC"]),
        (["Anna", "and", "Paris", "are", "here"], ["B-PER", "O", "B-LOC", "O", "O"]),
    ] * 2).parent
    api.run("ner", "few-shot", ner_data, tmp_path / "ner-run", model=str(tiny_model), shots=1, epochs=1, lr=1e-3,
            max_length=NER_MAX_LENGTH, seed=3, precision="fp32", progress=False)
    assert json.loads((tmp_path / "ner-run" / "model" / "taskkit.json").read_text())["format"] == "torch.v1"
    _assert_same_ner(tmp_path / "ner-run", export_model(tmp_path / "ner-run", tmp_path / "ner-onnx"), [*SENTENCES, LONG])

    rel_data = write_jsonl(tmp_path / "rel" / "train.jsonl", RELATION_ROWS * 3).parent
    api.run("relation", "few-shot", rel_data, tmp_path / "rel-run", model=str(tiny_model), shots=2, epochs=1, lr=1e-3,
            max_length=RELATION_MAX_LENGTH, seed=1, precision="fp32", progress=False)
    out = export_model(tmp_path / "rel-run", tmp_path / "rel-onnx")
    torch_model = api.load(tmp_path / "rel-run")
    onnx_p = api.load(out).predict_proba(RELATIONS)
    assert np.abs(torch_model.predict_proba(RELATIONS, precision="fp32") - onnx_p).max() <= 1e-4
    assert [r["predicted"] for r in api.predict(out, RELATIONS)] == torch_model.predict(RELATIONS)


def test_predicting_exported_ner_and_relation_imports_no_torch(folders: dict[str, Path], tmp_path: Path) -> None:
    from taskkit import api

    def predict(*args: str) -> list[dict]:
        done = subprocess.run([sys.executable, "-c", NO_TORCH, "predict", *args], capture_output=True, text=True,
                              env=subprocess_env(), timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        return [json.loads(line) for line in done.stdout.splitlines()]

    want = api.predict(folders["ner"], [*SENTENCES, LONG])
    for kind in ("ner-fp32", "ner-int8"):
        got = predict(str(folders[kind]), *SENTENCES, LONG)
        assert [r["text"] for r in got] == [*SENTENCES, LONG] and all("entities" in r for r in got)
        if kind == "ner-fp32":
            assert _entities(got) == _entities(want)
    inputs = write_jsonl(tmp_path / "pairs.jsonl", RELATIONS)
    want = api.predict(folders["relation"], RELATIONS)
    for kind in ("relation-fp32", "relation-int8"):
        got = predict(str(folders[kind]), "--input", str(inputs))
        assert [set(r) for r in got] == [set(r) for r in want]  # the torch model's record shape
        if kind == "relation-fp32":
            assert [r["predicted"] for r in got] == [r["predicted"] for r in want]
    from taskkit.cli import main  # the relation export as a user types it

    assert main(["export", str(folders["relation"]), str(tmp_path / "rel-cli"), "--format", "onnx"]) == 0
    got = predict(str(tmp_path / "rel-cli"), "--input", str(inputs))
    assert [r["predicted"] for r in got] == [r["predicted"] for r in want]


def test_serving_an_exported_ner_folder_answers_like_the_torch_one(folders: dict[str, Path]) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient
    from test_serve import make_app, wait_ready

    texts = [*SENTENCES, LONG]
    with TestClient(make_app({"torch": folders["ner"], "onnx": folders["ner-fp32"],
                              "relation": folders["relation-fp32"]})) as client:
        wait_ready(client)
        torch_out = client.post("/v1/models/torch/predict", json={"inputs": texts})
        onnx_out = client.post("/v1/models/onnx/predict", json={"inputs": texts})
        assert torch_out.status_code == onnx_out.status_code == 200
        assert _entities(onnx_out.json()["outputs"]) == _entities(torch_out.json()["outputs"])
        assert [set(r) for r in onnx_out.json()["outputs"]] == [set(r) for r in torch_out.json()["outputs"]]
        models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
        assert models["onnx"]["task"] == "ner" and models["onnx"]["format"] == "onnx.v1"
        rel = client.post("/v1/models/relation/predict", json={"inputs": RELATIONS[:2]})
        assert rel.status_code == 200 and all(r["predicted"] in RELATION_LABELS for r in rel.json()["outputs"])


def test_a_token_task_without_a_torch_free_encoding_is_refused(folders: dict[str, Path]) -> None:
    from taskkit import api
    from taskkit.errors import TaskkitError
    from taskkit.export.onnx import exportable
    from taskkit_plugins.ner import NERTask

    class NoFastEncoding(NERTask):
        def encode_fast(self, examples, tokenizer, labels, max_length, truncate=False):
            return None

    class DriftingEncoding(NERTask):  # a torch-free encoding that is not the task's encode
        def encode_fast(self, examples, tokenizer, labels, max_length, truncate=False):
            return [{**f, "input_ids": f["input_ids"][:-1]} for f in super().encode_fast(examples, tokenizer, labels,
                                                                                       max_length, truncate)]

    predictor = api.load(folders["ner"])
    predictor.task = NoFastEncoding()
    with pytest.raises(TaskkitError, match=r"^runs/x: token-level task 'ner' .* no torch-free version of that encoding"):
        exportable(predictor, "runs/x")
    predictor.task = DriftingEncoding()
    with pytest.raises(TaskkitError, match=r"^runs/x: .*differs from its encode"):
        exportable(predictor, "runs/x")
