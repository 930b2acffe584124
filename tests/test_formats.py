"""Predictor formats: every model folder names its format (``torch.v1``, ``adapter.v1``,
``embedding-head.v1``, ``ensemble.v1``, ``zero-shot.v1``) and loads with only its task's plugin,
whatever mode trained it; folders written by taskkit 0.1.0 (``"format": 1`` + ``mode``) still load;
an unknown or newer format is one line; a plugin adds a format through ``register_formats``.

The few-shot folders are built here from their predictors exactly as the few-shot mode saves them
(its logistic head, and that head averaged with a zero-shot classifier), on the tiny BERT.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import DEMO, subprocess_env

import taskkit
from taskkit.cli import main
from taskkit.contracts import LabelSpace, Predictor

TEXTS = ["a gripping, beautifully shot film", "two hours I will never get back", "fine"]
TOPIC_TEXTS = ["The striker scored twice in the final.", "Oil prices jumped after the OPEC meeting."]
#: folder kind -> (format written, the task plugin alone that must be enough to load it)
KINDS = {
    "full": ("torch.v1", "sentiment"),
    "peft": ("adapter.v1", "sentiment"),
    "peft-merged": ("torch.v1", "sentiment"),
    "few-shot": ("embedding-head.v1", "sentiment"),
    "few-shot-ensemble": ("ensemble.v1", "sentiment"),
    "zero-shot": ("zero-shot.v1", "topic"),
}

MODES = {"full": "full", "peft": "peft", "peft-merged": "peft", "few-shot": "few-shot",
         "few-shot-ensemble": "few-shot", "zero-shot": "zero-shot"}


def _texts(kind: str) -> list[str]:
    return TOPIC_TEXTS if kind == "zero-shot" else TEXTS


@pytest.fixture(scope="module")
def saved(tiny_model: Path, tiny_nli: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Predictor]]:
    """kind -> (model folder, the predictor that saved it)."""
    import torch

    from taskkit import api, registry
    from taskkit.ensemble import EnsemblePredictor
    from taskkit.kernel.model import TaskModel
    from taskkit.kernel.predictor import EmbeddingHeadPredictor
    from taskkit.models import load_body, load_tokenizer

    root = tmp_path_factory.mktemp("formats")
    out: dict[str, tuple[Path, Predictor]] = {}
    for mode in ("full", "peft"):
        result = api.run("sentiment", mode, DEMO, root / mode, model=str(tiny_model), epochs=1, lr=1e-3,
                         max_length=32, seed=5, progress=False)
        out[mode] = (root / mode / "model", result.predictor)
    merged = out["peft"][1].merged()  # type: ignore[attr-defined]
    out["peft-merged"] = (merged.save(root / "peft-merged"), merged)

    # the few-shot mode's logistic head: a linear layer on normalised embeddings
    task = registry.get_task("sentiment")
    labels = LabelSpace(("negative", "positive"))
    body = load_body(str(tiny_model))
    settings = {"base_model": str(tiny_model), "max_length": 32, "eval_batch_size": 16, "precision": "fp32",
                "dropout": 0.1, "head": "logistic"}
    head = EmbeddingHeadPredictor.build_head(task, body.config.hidden_size, labels, settings)
    torch.manual_seed(2)
    with torch.no_grad():
        for p in head.parameters():
            p.normal_(0, 1.0)
    few = EmbeddingHeadPredictor(TaskModel(body, head), load_tokenizer(str(tiny_model)), task, labels, "few-shot",
                                 settings)
    out["few-shot"] = (few.save(root / "few-shot"), few)
    # averaged with a zero-shot classifier of the same labels (its NLI model a hub-style folder)
    zero = api.zero_shot(["negative", "positive"], task="sentiment", backend="nli", model=str(tiny_nli),
                         precision="fp32")
    ensemble = EnsemblePredictor([few, zero], [0.5, 0.5], "few-shot", {"threshold": None})
    out["few-shot-ensemble"] = (ensemble.save(root / "few-shot-ensemble"), ensemble)
    # zero-shot with taskkit's shipped NLI model (itself a taskkit model folder of the nli task)
    topic = api.zero_shot("World,Sports,Business", task="topic", backend="nli", precision="fp32")
    out["zero-shot"] = (topic.save(root / "zero-shot"), topic)
    return out


def _meta(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "taskkit.json").read_text(encoding="utf-8"))


def _as_0_1_0(folder: Path) -> None:
    """Rewrite a model folder's taskkit.json (and its members') as taskkit 0.1.0 wrote it."""
    for meta_file in [folder / "taskkit.json", *sorted(folder.glob("members/*/taskkit.json"))]:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        old = {"format": 1, "taskkit_version": "0.1.0",
               **{k: v for k, v in meta.items() if k not in ("format", "taskkit_version", "files")}}
        meta_file.write_text(json.dumps(old, indent=2) + "\n", encoding="utf-8")


@pytest.mark.parametrize("kind", KINDS)
def test_each_format_is_named_and_round_trips(saved, kind: str):
    from taskkit import api

    folder, predictor = saved[kind]
    meta = _meta(folder)
    assert meta["format"] == KINDS[kind][0]
    assert meta["mode"] == MODES[kind]  # the mode that trained it stays, as information
    loaded = api.load(folder)
    assert type(loaded).format == KINDS[kind][0]
    np.testing.assert_allclose(loaded.predict_proba(_texts(kind)), predictor.predict_proba(_texts(kind)), atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_folders_written_by_0_1_0_still_load_and_predict(saved, kind: str, tmp_path: Path, monkeypatch):
    """Converted on read (mode -> format), with only the task's plugin loaded."""
    from taskkit import api, plugins

    folder, predictor = saved[kind]
    old = tmp_path / "old"
    shutil.copytree(folder, old)
    _as_0_1_0(old)
    assert _meta(old)["format"] == 1 and "files" not in _meta(old)
    monkeypatch.setenv("TASKKIT_LOAD_PLUGINS", KINDS[kind][1])
    plugins.reset()
    loaded = api.load(old)
    assert type(loaded).format == KINDS[kind][0]
    np.testing.assert_allclose(loaded.predict_proba(_texts(kind)), predictor.predict_proba(_texts(kind)), atol=1e-5)
    assert loaded.predict(_texts(kind)) == predictor.predict(_texts(kind))


def test_the_shipped_nli_model_is_a_0_1_0_folder_that_loads_without_the_nli_plugin(monkeypatch):
    """taskkit's own NLI model ships in the 0.1.0 layout (mode full): it loads as torch.v1, and the
    zero-shot scorer reads it with no nli (or full) plugin loaded."""
    from taskkit import packaged, plugins
    from taskkit.hypothesis_scoring import DEFAULT_NLI, _load_nli

    assert _meta(packaged.path(DEFAULT_NLI))["format"] == 1
    monkeypatch.setenv("TASKKIT_LOAD_PLUGINS", "topic")
    plugins.reset()
    _, _, id2label, _ = _load_nli(DEFAULT_NLI)
    assert sorted(id2label.values()) == ["contradiction", "entailment", "neutral"]


@pytest.mark.parametrize("kind", ["full", "peft", "few-shot-ensemble", "zero-shot"])
def test_taskkit_predict_needs_only_the_task_plugin(saved, kind: str, run_taskkit):
    """In a new process with TASKKIT_LOAD_PLUGINS limited to the task's plugin: no mode plugin."""
    folder, predictor = saved[kind]
    texts = _texts(kind)
    done = run_taskkit("predict", folder, *texts, env=subprocess_env(TASKKIT_LOAD_PLUGINS=KINDS[kind][1]))
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert [r["predicted"] for r in records] == predictor.predict(texts)
    expected = predictor.predict_proba(texts)
    for record, row in zip(records, expected):
        assert [record["probabilities"][n] for n in predictor.labels.names] == pytest.approx(row.tolist(), abs=1e-4)


def _edit_format(saved, tmp_path: Path, value: Any) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(saved["full"][0], folder)
    meta = _meta(folder)
    meta["format"] = value
    (folder / "taskkit.json").write_text(json.dumps(meta), encoding="utf-8")
    return folder


@pytest.mark.parametrize("value, fragments", [
    ("nosuch.v1", ["unknown model format 'nosuch.v1'", "plugin that provides it may not be installed", "torch.v1"]),
    ("torch.v9", ["model format 'torch.v9' is newer", "torch.v1", "upgrade"]),
    ("torch", ["field 'format' must name a format as NAME.vN"]),
    (2, ["written by a newer taskkit (format 2"]),
])
def test_unknown_or_newer_format_is_one_line(saved, tmp_path: Path, capsys, value, fragments):
    folder = _edit_format(saved, tmp_path, value)
    assert main(["predict", str(folder), "text"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err
    for fragment in fragments:
        assert fragment in err


# --- a plugin's own format ---------------------------------------------------------------------
class _MajorityPredictor(Predictor):
    """A torch-free predictor in a format a plugin registers (no mode of it need be installed)."""

    format = "majority.v1"

    def __init__(self, task: Any, labels: LabelSpace, majority: str) -> None:
        self.task, self.labels, self.majority = task, labels, majority

    def predict_proba(self, inputs: Any) -> np.ndarray:
        row = np.array([1.0 if n == self.majority else 0.0 for n in self.labels.names])
        return np.tile(row, (len(inputs), 1))

    def save(self, path: Any) -> Path:
        from taskkit.artifacts import write_atomically

        def write(folder: Path) -> None:
            (folder / "majority.json").write_text(json.dumps(self.majority), encoding="utf-8")

        return write_atomically(path, write, {"format": self.format, "task": self.task.name, "mode": "gone",
                                              "labels": list(self.labels.names)})

    @classmethod
    def load(cls, path: Path, task: Any, metadata: dict[str, Any]) -> _MajorityPredictor:
        majority = json.loads((path / "majority.json").read_text(encoding="utf-8"))
        return cls(task, LabelSpace(tuple(metadata["labels"])), majority)


class _FormatPlugin:
    @staticmethod
    @taskkit.hookimpl
    def register_formats(register):
        register("majority.v1", _MajorityPredictor.load)


def test_a_plugin_registers_a_format_and_its_folders_load_without_any_mode(tmp_path: Path):
    from taskkit import api, formats, plugins, registry

    predictor = _MajorityPredictor(registry.get_task("sentiment"), LabelSpace(("negative", "positive")), "positive")
    folder = predictor.save(tmp_path / "m")
    with pytest.raises(Exception, match="unknown model format 'majority.v1'"):
        api.load(folder)
    plugins.get_plugin_manager().register(_FormatPlugin(), name="majority")
    registry.clear()
    assert formats.formats()["majority.v1"][1] == "majority"
    loaded = api.load(folder)  # the folder's mode "gone" is installed nowhere
    assert isinstance(loaded, _MajorityPredictor) and loaded.predict(["x"]) == ["positive"]


def test_two_plugins_registering_one_format_is_an_error_naming_both():
    from taskkit import formats, plugins, registry

    class Clash:
        @staticmethod
        @taskkit.hookimpl
        def register_formats(register):
            register("torch.v1", _MajorityPredictor.load)

    plugins.get_plugin_manager().register(Clash(), name="clash")
    registry.clear()
    with pytest.raises(formats.FormatError, match="'torch.v1' is registered by two plugins: 'taskkit' and 'clash'"):
        formats.formats()


def test_a_plugin_whose_register_formats_raises_is_a_warning_and_the_rest_loads(saved):
    from taskkit import api, formats, plugins, registry

    class Broken:
        @staticmethod
        @taskkit.hookimpl
        def register_formats(register):
            register("broken.v1", _MajorityPredictor.load)
            raise RuntimeError("boom")

    plugins.get_plugin_manager().register(Broken(), name="broken")
    registry.clear()
    with pytest.warns(plugins.PluginLoadWarning, match="'broken' failed in its register_formats hook"):
        table = formats.formats()
    assert "broken.v1" not in table and "torch.v1" in table
    assert api.load(saved["full"][0]).predict(TEXTS) == saved["full"][1].predict(TEXTS)
