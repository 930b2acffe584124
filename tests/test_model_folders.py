"""Model folders checked against their metadata: every tampered folder is one line and exit 2.

Each test tampers with a copy of the session's tiny trained model (``trained_run``) and asks
``taskkit predict`` for a prediction; an untouched copy still predicts the same probabilities.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import DEMO, REPO

from taskkit.cli import main

TEXT = "a gripping, beautifully shot film"


@pytest.fixture
def folder(trained_run, tmp_path) -> Path:
    """A private copy of the trained model folder."""
    copy = tmp_path / "model"
    shutil.copytree(trained_run.out / "model", copy)
    return copy


def _meta(folder: Path) -> dict:
    return json.loads((folder / "taskkit.json").read_text(encoding="utf-8"))


def _write_meta(folder: Path, meta: dict) -> None:
    (folder / "taskkit.json").write_text(json.dumps(meta), encoding="utf-8")


def _edit_meta(folder: Path, **changes) -> None:
    meta = _meta(folder)
    for key, value in changes.items():
        if value is ...:
            meta.pop(key, None)
        else:
            meta[key] = value
    _write_meta(folder, meta)


def _refused(capsys, folder: Path, *fragments: str) -> str:
    """``taskkit predict FOLDER TEXT`` exits 2 with one line containing each fragment."""
    capsys.readouterr()
    assert main(["predict", str(folder), TEXT]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ") and "Traceback" not in captured.err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert captured.out == ""
    return lines[0]


def _predicted(capsys, folder: Path) -> dict:
    capsys.readouterr()
    assert main(["predict", str(folder), TEXT]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out.strip())


def _resave_weights(folder: Path, edit=None, metadata: dict | None = None) -> None:
    """Rewrite model.safetensors with ``edit(tensors)`` applied and the given header metadata."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(folder / "model.safetensors"))
    if edit is not None:
        edit(tensors)
    save_file(tensors, str(folder / "model.safetensors"), metadata=metadata)


# --- an untouched folder, and one written before header metadata --------------------------------
def test_untouched_copy_predicts_the_original_probabilities(trained_run, folder, capsys):
    record = _predicted(capsys, folder)
    original = _predicted(capsys, trained_run.out)
    assert record == original and set(record["probabilities"]) == {"negative", "positive"}


def test_weights_record_their_task_and_labels(folder):
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), framework="pt") as handle:
        header = handle.metadata()
    assert header["taskkit.task"] == "sentiment"
    assert json.loads(header["taskkit.labels"]) == _meta(folder)["labels"]


def test_folder_written_before_header_metadata_still_loads(trained_run, folder, capsys):
    _resave_weights(folder, metadata=None)
    assert _predicted(capsys, folder) == _predicted(capsys, trained_run.out)


# --- taskkit.json --------------------------------------------------------------------------------
def test_newer_format_version(folder, capsys):
    _edit_meta(folder, format=99)
    _refused(capsys, folder, "taskkit.json", "written by a newer taskkit", "format 99")


@pytest.mark.parametrize("changes, fragment", [
    ({"labels": ...}, "missing field 'labels'"),
    ({"task": ...}, "missing field 'task'"),
    ({"format": ...}, "missing field 'format'"),
    ({"format": "1"}, "field 'format' must name a format as NAME.vN"),
    ({"labels": "negative,positive"}, "field 'labels' must be a list"),
    ({"labels": []}, "field 'labels' is empty"),
    ({"labels": ["negative", "negative"]}, "label 'negative' appears twice"),
    ({"labels": ["negative", 1]}, "must hold non-empty strings"),
    ({"labels": ["negative", None]}, "must hold non-empty strings"),
    ({"multi_label": "no"}, "field 'multi_label' must be true or false"),
    ({"settings": []}, "field 'settings' must be an object"),
    ({"task": ""}, "field 'task' is empty"),
    ({"mode": 3}, "field 'mode' must be a string"),
])
def test_bad_metadata_fields(folder, capsys, changes, fragment):
    _edit_meta(folder, **changes)
    _refused(capsys, folder, str(folder / "taskkit.json"), fragment)


def test_metadata_not_an_object_or_not_json(folder, capsys):
    (folder / "taskkit.json").write_text("[1, 2]", encoding="utf-8")
    _refused(capsys, folder, "taskkit.json", "expected a JSON object")
    (folder / "taskkit.json").write_text('{"task": "sentiment",', encoding="utf-8")
    _refused(capsys, folder, "taskkit.json", "corrupt metadata")


def test_unknown_task_names_the_missing_plugin(folder, capsys):
    _edit_meta(folder, task="legal-clauses")
    _refused(capsys, folder, "unknown task 'legal-clauses'", "plugin that provides it is not installed",
             "known: ")


# --- paths that leave the folder ----------------------------------------------------------------
def test_delta_path_outside_the_folder_is_not_read(folder, tmp_path, capsys):
    outside = tmp_path / "outside.safetensors"
    shutil.copy(folder / "model.safetensors", outside)
    _edit_meta(folder, delta="../outside.safetensors", settings={**_meta(folder)["settings"], "base_model": "minilm"})
    _refused(capsys, folder, "delta '../outside.safetensors' points outside the model folder")
    _edit_meta(folder, delta=str(outside))
    _refused(capsys, folder, "must be a relative path inside the model folder")


def test_symlink_leading_out_of_the_folder(folder, tmp_path, capsys):
    outside = tmp_path / "elsewhere.json"
    shutil.move(folder / "tokenizer.json", outside)
    (folder / "tokenizer.json").symlink_to(outside)
    _refused(capsys, folder, "tokenizer.json is a link to", "outside the model folder")


def test_symlink_inside_the_folder_is_fine(trained_run, folder, capsys):
    shutil.move(folder / "tokenizer.json", folder / "tok.json")
    (folder / "tokenizer.json").symlink_to("tok.json")
    assert _predicted(capsys, folder) == _predicted(capsys, trained_run.out)


# --- weights ----------------------------------------------------------------------------------
def test_truncated_weights(folder, capsys):
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    _refused(capsys, folder, "model.safetensors", "corrupt or truncated safetensors file")


def test_garbage_weights(folder, capsys):
    (folder / "model.safetensors").write_bytes(b"\x00" * 7)
    _refused(capsys, folder, "model.safetensors", "corrupt or truncated")


def test_head_rows_do_not_match_the_label_count(folder, capsys):
    _resave_weights(folder, metadata=None)  # an older folder: only the shapes can tell
    _edit_meta(folder, labels=["negative", "neutral", "positive"])
    _refused(capsys, folder, "model.safetensors", "'head.out.weight' has shape [2, 32]",
             "expects [3, 32]", "taskkit.json lists 3 labels")


def test_missing_and_unexpected_tensors(folder, capsys):
    _resave_weights(folder, edit=lambda t: t.pop("head.out.bias"))
    _refused(capsys, folder, "missing tensor(s) 'head.out.bias'")

    def add(tensors):
        import torch

        tensors["head.out.bias"] = torch.zeros(2)
        tensors["head.extra.weight"] = torch.zeros(2, 2)

    _resave_weights(folder, edit=add)
    _refused(capsys, folder, "unexpected tensor(s) 'head.extra.weight'")


def test_wrong_shape_in_the_body(folder, capsys):
    def shrink(tensors):
        key = next(k for k in tensors if k.endswith("query.weight"))
        tensors[key] = tensors[key][:16].clone()

    _resave_weights(folder, edit=shrink)
    _refused(capsys, folder, "query.weight' has shape [16, 32]", "expects [32, 32]")


def test_metadata_naming_another_task_than_the_weights(folder, capsys):
    _edit_meta(folder, task="topic")
    _refused(capsys, folder, "weights trained for task 'sentiment'", "taskkit.json names task 'topic'")


def test_relabelled_metadata(folder, capsys):
    _edit_meta(folder, labels=["positive", "negative"])  # same count, swapped meaning
    _refused(capsys, folder, "weights trained for labels ['negative', 'positive']")


# --- tokenizer ----------------------------------------------------------------------------------
def test_missing_tokenizer(folder, capsys):
    (folder / "tokenizer.json").unlink()
    _refused(capsys, folder, "has no tokenizer.json")


def test_tokenizer_larger_than_the_embeddings(folder, capsys):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    tokenizer.add_tokens([f"newword{i}" for i in range(5)])
    tokenizer.save_pretrained(str(folder))
    _refused(capsys, folder, "the tokenizer has", "tokens but the model's embedding matrix only")


def test_corrupt_config(folder, capsys):
    (folder / "config.json").write_text("{}", encoding="utf-8")
    _refused(capsys, folder, "cannot load config of model", "model_type")
    (folder / "config.json").write_text("{not json", encoding="utf-8")
    _refused(capsys, folder, "cannot load config of model")


# --- base models: safetensors only, and never a taskkit folder --------------------------------
def test_base_model_with_only_pickled_weights_is_refused(tiny_model, tmp_path, capsys):
    base = tmp_path / "pickled-base"
    base.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_model / name, base / name)
    (base / "pytorch_model.bin").write_bytes(b"not even read")
    out = tmp_path / "out"
    assert main(["run", "sentiment", "--data", str(DEMO), "--model", str(base), "--out", str(out),
                 "--epochs", "1", "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "no model.safetensors (only pytorch_model.bin); taskkit never loads pickled weights" in err[0]
    assert not (out / "model").exists()


def test_model_option_naming_a_taskkit_folder_says_to_use_from(trained_run, tmp_path, capsys):
    for given in (trained_run.out, trained_run.out / "model"):
        assert main(["run", "sentiment", "--data", str(DEMO), "--model", str(given),
                     "--out", str(tmp_path / "out"), "--epochs", "1", "-q"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "a taskkit model folder, not a base model" in err[0]
        assert f"use --from {given}" in err[0]


def test_no_pickle_loading_anywhere_in_taskkit():
    """No pickle.load anywhere; torch.load only with its restricted ``weights_only=True`` unpickler."""
    import re

    offenders = []
    for path in [*(REPO / "taskkit").rglob("*.py"), *(REPO / "taskkit_plugins").rglob("*.py")]:
        source = path.read_text(encoding="utf-8")
        if re.search(r"\bpickle\.loads?\(|\bjoblib\.load\(", source):
            offenders.append(f"{path}: pickle")
        for call in re.finditer(r"torch\.load\(([^()]|\([^()]*\))*\)", source):
            if "weights_only=True" not in call.group(0):
                offenders.append(f"{path}: {call.group(0)}")
    assert offenders == []


def test_weights_loader_asks_for_safetensors(monkeypatch, tiny_model):
    from taskkit import models

    seen = {}

    def loader(ref, **kwargs):
        seen.update(kwargs)
        return "loaded"

    assert models._load("weights", loader, str(tiny_model)) == "loaded"
    assert seen == {"use_safetensors": True}


# --- other model kinds --------------------------------------------------------------------------
def _zero_shot_folder(tmp_path: Path, coef_rows: int) -> Path:
    import torch
    from safetensors.torch import save_file

    folder = tmp_path / "zs"
    folder.mkdir(parents=True)
    labels = ["sports", "cooking"]
    _write_meta(folder, {"format": 1, "task": "topic", "mode": "zero-shot", "labels": labels,
                         "multi_label": False, "descriptions": {"sports": None, "cooking": None},
                         "settings": {"backend": "embedding", "template": "This text is about {}.",
                                      "self_trained": True}})
    save_file({"coef": torch.zeros(coef_rows, 8), "intercept": torch.zeros(coef_rows)},
              str(folder / "self_train.safetensors"))
    return folder


def test_zero_shot_classifier_rows_must_match_the_labels(tmp_path, capsys):
    from taskkit.api import load

    assert load(_zero_shot_folder(tmp_path / "ok", 2)).labels.names == ("sports", "cooking")
    folder = _zero_shot_folder(tmp_path / "bad", 3)
    _refused(capsys, folder, "self_train.safetensors", "for the 2 labels in taskkit.json")


def test_zero_shot_settings_and_descriptions(tmp_path, capsys):
    folder = _zero_shot_folder(tmp_path, 2)
    meta = _meta(folder)
    _write_meta(folder, {**meta, "descriptions": {"sports": None, "baking": None}})
    _refused(capsys, folder, "field 'descriptions' names other labels")
    _write_meta(folder, {**meta, "settings": {"self_trained": False}})
    _refused(capsys, folder, "needs the setting 'backend'")


def test_ensemble_member_of_another_task(folder, tmp_path, capsys):
    ensemble = tmp_path / "ensemble"
    shutil.copytree(folder, ensemble / "members" / "0")
    _write_meta(ensemble, {"format": 1, "task": "topic", "mode": "few-shot", "labels": ["negative", "positive"],
                           "ensemble": {"weights": [1.0]}})
    _refused(capsys, ensemble, "ensemble member 0 is a 'sentiment' model")
    _write_meta(ensemble, {"format": 1, "task": "sentiment", "mode": "few-shot", "labels": ["negative", "positive"],
                           "ensemble": {"weights": "1"}})
    _refused(capsys, ensemble, "'ensemble.weights' must be a non-empty list")


@pytest.fixture
def adapter_folder(tiny_model, tmp_path) -> Path:
    """A peft (LoRA) model folder over the tiny model, saved untrained (no fit needed)."""
    from taskkit import registry
    from taskkit.contracts import LabelSpace
    from taskkit.kernel.predictor import AdapterPredictor
    from taskkit_plugins.peft.adapters import add_adapter
    from taskkit.kernel.model import TaskModel
    from taskkit.models import load_body, load_tokenizer

    task = registry.get_task("sentiment")
    labels = LabelSpace(("negative", "positive"))
    body = load_body(str(tiny_model))
    model = TaskModel(body, task.head(body.config.hidden_size, labels, 0.1))
    add_adapter(model, {})
    settings = {"base_model": str(tiny_model), "max_length": 32}
    predictor = AdapterPredictor(model, load_tokenizer(str(tiny_model)), task, labels, "peft", settings)
    return predictor.save(tmp_path / "peft-model")


def test_adapter_folder_checks(adapter_folder, capsys):
    _predicted(capsys, adapter_folder)
    weights = adapter_folder / "adapter" / "adapter_model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[:100])
    _refused(capsys, adapter_folder, "adapter_model.safetensors", "corrupt or truncated")
    weights.unlink()
    (adapter_folder / "adapter" / "adapter_model.bin").write_bytes(b"pickle")
    _refused(capsys, adapter_folder, "no adapter/adapter_model.safetensors; taskkit never loads pickled weights")
    weights.write_bytes(data)
    _edit_meta(adapter_folder, labels=["negative", "neutral", "positive"])
    _refused(capsys, adapter_folder, "head.safetensors", "weights trained for labels")
