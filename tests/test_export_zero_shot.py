"""taskkit export of zero-shot models and of few-shot ensembles with a zero-shot member: the exported
folder scores as the torch one (every saved setting kept), int8, no torch, the CLI, serve with labels."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import subprocess_env
from test_export import NO_TORCH

LABELS = {"Sports": "sports", "Business": None, "Sci/Tech": "science", "World": "world news"}
TEXTS = ["The striker scored twice in the cup final.", "Shares fell after the bank cut its forecast.",
         "A new telescope photographed a distant galaxy.", "The prime minister met foreign leaders.",
         "Rain all day, then a quiet evening.",
         " ".join(["Markets rallied while the team won the derby and a probe reached Mars."] * 8)]  # windows
POOL = [f"{t} number {i}" for i in range(5) for t in TEXTS[:5]]  # 25 unlabelled texts: a label-bias correction


def _zero_shot(tiny_nli: Path, tiny_encoder: Path, backend: str, **kw):
    import taskkit

    model = str(tiny_encoder) if backend == "embedding" else str(tiny_nli)
    return taskkit.zero_shot(LABELS, task="topic", backend=backend, model=model, encoder=str(tiny_encoder),
                             precision="fp32", max_length=32, **kw)


@pytest.fixture(scope="module")
def saved(tiny_nli: Path, tiny_encoder: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Torch zero-shot folders: each backend with a label-bias correction fitted on unlabelled texts
    (both: also self-trained, calibrated and abstaining), and multi-label ones with a cut."""
    from taskkit.calibration import Calibration

    root = tmp_path_factory.mktemp("zero-shot")
    folders = {}
    for backend in ("nli", "embedding", "both"):
        clf = _zero_shot(tiny_nli, tiny_encoder, backend, unlabelled=POOL,
                         options={"self_train": backend == "both"})
        assert clf.settings["label_bias"]["kind"] == "texts"
        if backend == "both":
            assert clf.head is not None
            clf.calibration = Calibration(temperature=1.7)
            clf.threshold = 0.3
        folders[backend] = clf.save(root / backend)
    for backend in ("nli", "both"):
        folders[f"multi-{backend}"] = _zero_shot(tiny_nli, tiny_encoder, backend, multi_label=True,
                                                 threshold=0.5).save(root / f"multi-{backend}")
    return folders


@pytest.fixture(scope="module")
def exported(saved: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from taskkit.export import export_model

    root = tmp_path_factory.mktemp("exported")
    out = {name: export_model(folder, root / name) for name, folder in saved.items()}
    out["both-int8"] = export_model(saved["both"], root / "both-int8", quantize="int8")
    return out


@pytest.mark.parametrize("name", ["nli", "embedding", "both", "multi-nli", "multi-both"])
def test_exported_zero_shot_scores_as_the_torch_model(saved, exported, name):
    from taskkit import api
    from taskkit.export.zero_shot_onnx import OnnxZeroShotPredictor

    torch_model, onnx_model = api.load(saved[name]), api.load(exported[name])
    assert isinstance(onnx_model, OnnxZeroShotPredictor) and onnx_model.labels == torch_model.labels
    if name == "both":  # the long text is scored in windows by both backends
        assert len(onnx_model.encoder().windows(TEXTS[-1:])[0]) > 1
        assert len(onnx_model.scorer().token_ids(TEXTS[-1:])[0]) > 2 * onnx_model.scorer().max_length
    expected, got = torch_model.predict_proba(TEXTS), onnx_model.predict_proba(TEXTS)
    assert got.shape == expected.shape == (len(TEXTS), len(LABELS))
    assert np.abs(expected - got).max() <= 1e-4
    assert onnx_model.predict(TEXTS) == torch_model.predict(TEXTS)
    meta = json.loads((exported[name] / "taskkit.json").read_text())
    assert meta["format"] == "zero-shot-onnx.v1" and meta["descriptions"] == json.loads(
        (saved[name] / "taskkit.json").read_text())["descriptions"]


def test_relation_zero_shot_is_exported(tiny_nli, tmp_path):
    from conftest import RELATION_ROWS

    import taskkit
    from taskkit.export import export_model

    labels = {"Cause-Effect(e1,e2)": "{head} causes {tail}", "Component-Whole(e1,e2)": "{head} is part of {tail}",
              "Other": None}
    source = taskkit.zero_shot(labels, task="relation", backend="nli", model=str(tiny_nli), precision="fp32").save(
        tmp_path / "relation")
    rows = [{k: v for k, v in r.items() if k != "label"} for r in RELATION_ROWS]
    exported = taskkit.load(export_model(source, tmp_path / "onnx"))
    assert np.abs(taskkit.load(source).predict_proba(rows) - exported.predict_proba(rows)).max() <= 1e-4
    assert exported.predict(rows) == taskkit.load(source).predict(rows)


def test_every_saved_setting_survives_the_export(saved, exported):
    from taskkit import api

    torch_model, onnx_model = api.load(saved["both"]), api.load(exported["both"])
    for key in ("template", "label_bias", "nli_share", "calibration", "threshold", "self_trained"):
        assert onnx_model.settings[key] == torch_model.settings[key], key
    assert onnx_model.head is not None and np.array_equal(onnx_model.head[0], torch_model.head[0])
    assert sorted(p.name for p in exported["both"].iterdir() if p.is_dir()) == ["encoder", "nli"]
    nli_only = sorted(p.name for p in exported["nli"].iterdir() if p.is_dir())
    assert nli_only == ["nli"]  # no graph of a backend the model does not run
    assert onnx_model.predict(TEXTS[:1], threshold=0.99) == [None]  # abstains as the torch model does


def test_int8_zero_shot_loads_and_predicts_close(saved, exported):
    from taskkit import api

    int8 = api.load(exported["both-int8"])
    assert int8.settings["quantize"] == "int8"
    import onnx

    def ops(name: str, part: str) -> set[str]:
        return {n.op_type for n in onnx.load(str(exported[name] / part / "model.onnx")).graph.node}

    for part in ("nli", "encoder"):  # both backends' graphs are quantized, the fp32 export's are not
        assert "DynamicQuantizeLinear" in ops("both-int8", part) and "DynamicQuantizeLinear" not in ops("both", part)
    proba = int8.predict_proba(TEXTS)
    assert np.allclose(proba.sum(1), 1.0, atol=1e-5)
    assert np.abs(api.load(saved["both"]).predict_proba(TEXTS) - proba).max() < 0.05


def test_few_shot_ensemble_with_a_zero_shot_member_is_exported(saved, tiny_model, tmp_path):
    from test_export import _save_torch

    from taskkit import api
    from taskkit.ensemble import EnsemblePredictor
    from taskkit.export import export_model

    head = _save_torch(tiny_model, tmp_path / "head", task_name="topic", labels=tuple(LABELS), embedding_head=True)
    zero = api.load(saved["both"])
    source = EnsemblePredictor([api.load(head), zero], [0.6, 0.4], "few-shot").save(tmp_path / "few-shot")
    loaded = api.load(export_model(source, tmp_path / "onnx", quantize=None))
    assert [type(m).__name__ for m in loaded.members] == ["OnnxPredictor", "OnnxZeroShotPredictor"]
    expected = 0.6 * api.load(head).predict_proba(TEXTS, precision="fp32") + 0.4 * zero.predict_proba(TEXTS)
    assert np.abs(expected - loaded.predict_proba(TEXTS)).max() <= 1e-4
    assert loaded.predict(TEXTS) == api.load(source).predict(TEXTS)


def test_predict_with_exported_zero_shot_imports_no_torch(saved, exported):
    from taskkit import api

    for name in ("both", "both-int8", "multi-nli"):
        done = subprocess.run([sys.executable, "-c", NO_TORCH, "predict", str(exported[name]), *TEXTS],
                              capture_output=True, text=True, env=subprocess_env(), timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        records = [json.loads(line) for line in done.stdout.splitlines()]
        assert len(records) == len(TEXTS)
        if name != "both-int8":
            assert [r["predicted"] for r in records] == api.load(saved[name]).predict(TEXTS)
    blocked = subprocess.run([sys.executable, "-c", NO_TORCH, "predict", str(saved["nli"]), TEXTS[0]],
                             capture_output=True, text=True, env=subprocess_env(), timeout=120, check=False)
    assert blocked.returncode != 0  # the check is real: the torch zero-shot model cannot score there


def test_cli_exports_a_zero_shot_model_and_refuses_an_exported_one(saved, exported, tmp_path, capsys):
    from taskkit import api
    from taskkit.cli import main

    out = tmp_path / "out"
    assert main(["export", str(saved["embedding"]), str(out), "--format", "onnx", "--quantize", "int8"]) == 0
    assert "exported" in capsys.readouterr().out
    assert (out / "encoder" / "model.onnx").is_file() and api.load(out).predict(TEXTS[:2])
    assert main(["export", str(exported["nli"]), str(tmp_path / "again")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already an exported (ONNX) zero-shot model" in err[0]
    assert not (tmp_path / "again").exists()


def test_per_request_labels_from_the_exported_folder(saved, exported):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient
    from test_serve import make_app, wait_ready

    from taskkit import api

    labels = {"cats": None, "weather": "the weather", "football": "a football match"}
    expected = api.load(saved["both"]).with_labels(labels).predict_proba(TEXTS[:3])
    mine = api.load(exported["both"]).with_labels(labels)
    assert type(mine).__name__ == "OnnxZeroShotPredictor" and mine.head is None  # fitted to the saved labels
    assert np.abs(mine.predict_proba(TEXTS[:3]) - expected).max() <= 1e-4
    with TestClient(make_app({"topics": exported["both"]})) as client:
        wait_ready(client)
        info = client.get("/v1/models").json()["models"][0]
        assert info["per_request_labels"] and info["format"] == "zero-shot-onnx.v1"
        response = client.post("/v1/models/topics/predict", json={"inputs": TEXTS[:3], "labels": labels})
        assert response.status_code == 200, response.text
        for record, row in zip(response.json()["outputs"], expected):
            assert list(record["probabilities"]) == list(labels)
            assert np.allclose(list(record["probabilities"].values()), row, atol=1e-4)
        saved_labels = client.post("/v1/models/topics/predict", json={"inputs": TEXTS[:1]}).json()["outputs"][0]
        assert set(saved_labels["probabilities"]) == set(LABELS)
