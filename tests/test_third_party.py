"""Third-party distributions written only against taskkit's public API, pip-installed and used
through the real CLI: a token task (``pii``), a torch-free mode with its own model format
(``tfidf``) and a mode training on the public kernel with its own loss (``smooth``).

Each saved folder is loaded by ``taskkit predict`` in a new process with ``TASKKIT_LOAD_PLUGINS``
limited to the task's plugin (and the mode's, where the folder's format is the mode's own).
"""

from __future__ import annotations

import ast
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DEMO, TESTS, pip_install, plugin_env, read_jsonl

PLUGINS = {"pii": ("plugins_pii", "taskkit_pii", 40), "tfidf": ("plugins_tfidf", "taskkit_tfidf", 80),
           "smooth": ("plugins_smooth", "taskkit_smooth", 40)}
PII_TYPES = {"EMAIL", "PHONE", "PERSON"}


# --- the distributions ------------------------------------------------------------------------
@pytest.fixture(scope="session")
def third_party_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The three distributions pip-installed (one ``--target`` folder) from their own pyproject.toml."""
    return pip_install([TESTS / folder for folder, _, _ in PLUGINS.values()], tmp_path_factory.mktemp("third-party"))


def _env(site: Path, load: str | None = None) -> dict[str, str]:
    return plugin_env(site, **({"TASKKIT_LOAD_PLUGINS": load} if load is not None else {}))


def _source(plugin: str) -> str:
    folder, module, _ = PLUGINS[plugin]
    return (TESTS / folder / f"{module}.py").read_text(encoding="utf-8")


@pytest.mark.parametrize("plugin", sorted(PLUGINS))
def test_plugin_uses_only_the_public_api_and_stays_short(plugin: str):
    source = _source(plugin)
    assert "taskkit_plugins" not in source
    imported = []  # (module, name) of every import
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported += [(alias.name, "") for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            imported += [(node.module or "", alias.name) for alias in node.names]
    private = [(m, n) for m, n in imported if n.startswith("_") or any(p.startswith("_") for p in m.split("."))]
    assert private == [], f"{plugin} imports private names: {private}"
    assert any(m.startswith("taskkit") for m, _ in imported)
    lines = [line for line in source.splitlines() if line.strip()]
    assert len(lines) <= PLUGINS[plugin][2], f"{plugin}: {len(lines)} non-blank lines"


def test_distributions_are_installed_with_their_entry_points(third_party_site: Path, run_taskkit):
    for plugin, (_, module, _) in PLUGINS.items():
        (info,) = third_party_site.glob(f"taskkit_{plugin}-*.dist-info")
        assert f"{plugin} = {module}" in (info / "entry_points.txt").read_text()
    listed = run_taskkit("plugins", env=_env(third_party_site))
    assert listed.returncode == 0, listed.stderr
    for plugin, (_, module, _) in PLUGINS.items():
        assert f"{plugin}\t{module}" in listed.stdout.splitlines()
    tasks = run_taskkit("tasks", env=_env(third_party_site)).stdout.splitlines()
    pii = next(line for line in tasks if line.startswith("pii\t"))
    assert "\ttoken\t" in pii and "smooth" in pii and "full" in pii and "peft" in pii and "tfidf" not in pii
    sentiment = next(line for line in tasks if line.startswith("sentiment\t"))
    assert "tfidf" in sentiment and "smooth" in sentiment


# --- pii: a token task of its own --------------------------------------------------------------
FIRST = ["Anna", "Bruno", "Chen", "Dana", "Emil", "Fatima", "Gustav", "Hana", "Ivan", "Julia"]
LAST = ["Berg", "Costa", "Li", "Novak", "Weber", "Haddad", "Lund", "Sato", "Petrov", "Moreau"]
DOMAINS = ["mail.com", "example.org", "post.net"]
TEMPLATES = [
    "Please email {PERSON} at {EMAIL} today .",
    "Call {PERSON} on {PHONE} after lunch .",
    "{PERSON} wrote from {EMAIL} yesterday .",
    "The number of {PERSON} is {PHONE} .",
    "Write to {EMAIL} or call {PHONE} for help .",
    "The meeting moved to Friday morning .",
]


def _pii_sentence(rng: random.Random) -> list[tuple[str, str]]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    words = {"PERSON": [first, last],
             "EMAIL": [f"{first.lower()}.{last.lower()}", "@", rng.choice(DOMAINS)],
             "PHONE": [f"555-{rng.randrange(100, 1000)}-{rng.randrange(1000, 10000)}"]}
    pairs: list[tuple[str, str]] = []
    for word in rng.choice(TEMPLATES).split():
        kind = word.strip("{}") if word.startswith("{") else None
        if kind is None:
            pairs.append((word, "O"))
        else:
            pairs += [(w, ("B-" if i == 0 else "I-") + kind) for i, w in enumerate(words[kind])]
    return pairs


@pytest.fixture(scope="session")
def pii_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny CoNLL train / dev / test files of made-up personal data (words split as taskkit splits raw text)."""
    folder, rng = tmp_path_factory.mktemp("pii-data"), random.Random(0)
    for split, count in (("train", 60), ("dev", 12), ("test", 12)):
        blocks = ["\n".join(f"{w}\t{t}" for w, t in _pii_sentence(rng)) for _ in range(count)]
        (folder / f"{split}.conll").write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return folder


# --- runs through the CLI, predictions in a new process -----------------------------------------
TORCH_PROBE = ("import sys\nfrom taskkit.cli import main\ntry:\n    code = main(sys.argv[1:])\nfinally:\n"
               "    print('torch imported:', 'torch' in sys.modules, file=sys.stderr)\nsys.exit(code)")


def _probe(*args: object, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``taskkit ARGS`` in a new process that says on its last stderr line whether torch was imported."""
    return subprocess.run([sys.executable, "-c", TORCH_PROBE, *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300, check=False)


def _train(run_taskkit, site: Path, task: str, mode: str, data: Path, out: Path, *settings: object) -> list[dict]:
    proc = run_taskkit("run", task, "--mode", mode, "--data", data, "--out", out, "-q", *settings, env=_env(site))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"{task} / {mode} on test" in proc.stdout  # the report
    meta = json.loads((out / "model" / "taskkit.json").read_text())
    assert meta["task"] == task and meta["mode"] == mode
    return read_jsonl(out / "predictions.jsonl")


def _predict(run_taskkit, site: Path, out: Path, texts: list[str], load: str, tmp_path: Path) -> list[dict]:
    """``taskkit predict OUT --input FILE`` in a new process with only the plugins ``load`` names."""
    inputs = tmp_path / f"{out.name}-inputs.txt"
    inputs.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
    proc = run_taskkit("predict", out, "--input", inputs, env=_env(site, load))
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def _same_entities(records: list[dict], predicted: list[dict]) -> None:
    assert len(records) == len(predicted)
    for record, again in zip(records, predicted):
        assert again["text"] == record["text"]
        assert [(e["type"], e["start"], e["end"], e["text"]) for e in again["entities"]] == \
               [(e["type"], e["start"], e["end"], e["text"]) for e in record["entities"]]
        assert [e["score"] for e in again["entities"]] == pytest.approx([e["score"] for e in record["entities"]],
                                                                       abs=1e-3)


def _same_labels(records: list[dict], predicted: list[dict]) -> None:
    assert [r["predicted"] for r in predicted] == [r["predicted"] for r in records]
    for record, again in zip(records, predicted):
        assert again["probabilities"] == pytest.approx(record["probabilities"], abs=1e-4)


PII_SETTINGS = ("--epochs", "2", "--batch-size", "4", "--max-length", "32")


@pytest.mark.parametrize("mode, lr", [("full", "3e-3"), ("peft", "2e-2"), ("smooth", "3e-3")])
def test_pii_task_trains_and_its_folder_loads_with_the_pii_plugin_only(
        mode, lr, third_party_site, pii_data, tiny_model, tmp_path, run_taskkit):
    out = tmp_path / f"pii-{mode}"
    records = _train(run_taskkit, third_party_site, "pii", mode, pii_data, out, "--model", tiny_model,
                     "--lr", lr, *PII_SETTINGS)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["training"]["epochs_run"] == 2 and {"micro_f1", "per_type"} <= set(metrics)
    assert set(metrics["per_type"]) == PII_TYPES
    predicted = _predict(run_taskkit, third_party_site, out, [r["text"] for r in records], "pii", tmp_path)
    _same_entities(records, predicted)
    for record in predicted:  # character offsets into the text, and the task's own redacted copy
        redacted = record["text"]
        for entity in reversed(record["entities"]):
            assert entity["type"] in PII_TYPES and record["text"][entity["start"]:entity["end"]] == entity["text"]
            redacted = redacted[:entity["start"]] + f"[{entity['type']}]" + redacted[entity["end"]:]
        assert record["redacted"] == redacted
    if mode != "peft":  # a few dozen sentences teach the tiny model most entities (LoRA learns slower)
        assert metrics["micro_f1"] > 0.4
        assert sum(len(r["entities"]) for r in predicted) >= 5


def test_tfidf_mode_trains_without_torch_and_loads_with_its_own_format(third_party_site, tmp_path, run_taskkit):
    out = tmp_path / "tfidf"
    proc = _probe("run", "sentiment", "--mode", "tfidf", "--data", DEMO, "--out", out, "-q",
                  env=_env(third_party_site))
    assert proc.returncode == 0, proc.stderr
    assert "sentiment / tfidf on test" in proc.stdout
    assert proc.stderr.strip().splitlines()[-1] == "torch imported: False"
    meta = json.loads((out / "model" / "taskkit.json").read_text())
    assert meta["format"] == "tfidf.v1" and meta["mode"] == "tfidf"
    saved = sorted(p.name for p in (out / "model").iterdir())
    assert "tfidf.json" in saved and not any(p.endswith((".pkl", ".pickle", ".joblib", ".bin")) for p in saved)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["evaluated_on"] == "test" and metrics["accuracy"] > 0.58  # 50 balanced test texts: chance is 0.5
    records = read_jsonl(out / "predictions.jsonl")

    # a new process with only the task's plugin and the format's plugin: same predictions, still no torch
    inputs = tmp_path / "texts.txt"
    inputs.write_text("".join(r["text"] + "\n" for r in records), encoding="utf-8")
    again = _probe("predict", out, "--input", inputs, env=_env(third_party_site, "sentiment,tfidf"))
    assert again.returncode == 0, again.stderr
    assert again.stderr.strip().splitlines()[-1] == "torch imported: False"
    _same_labels(records, [json.loads(line) for line in again.stdout.splitlines()])

    # without the plugin that registers the format, the folder says what is missing
    missing = run_taskkit("predict", out, "fine", env=_env(third_party_site, "sentiment"))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert "unknown model format 'tfidf.v1'" in missing.stderr


def test_tfidf_options_are_typed(third_party_site, tmp_path, run_taskkit):
    listed = run_taskkit("options", "sentiment", "--mode", "tfidf", env=_env(third_party_site))
    assert listed.returncode == 0, listed.stderr
    assert any(line.split()[:2] == ["analyzer", "char_wb"] for line in listed.stdout.splitlines())
    bad = run_taskkit("run", "sentiment", "--mode", "tfidf", "--option", "analyzer=chars", "--out", tmp_path / "x",
                      env=_env(third_party_site))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "--option analyzer=chars" in bad.stderr
    assert not (tmp_path / "x").exists()


def test_smooth_mode_trains_a_sequence_task_and_its_folder_loads_without_the_mode(
        third_party_site, tiny_model, tmp_path, run_taskkit):
    out = tmp_path / "smooth"
    records = _train(run_taskkit, third_party_site, "sentiment", "smooth", DEMO, out, "--model", tiny_model,
                     "--epochs", "1", "--lr", "1e-3", "--max-length", "32", "--option", "smoothing=0.2")
    meta = json.loads((out / "model" / "taskkit.json").read_text())
    assert meta["format"] == "torch.v1"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["options"]["smoothing"] == 0.2 and metrics["training"]["epochs_run"] == 1
    predicted = _predict(run_taskkit, third_party_site, out, [r["text"] for r in records], "sentiment", tmp_path)
    _same_labels(records, predicted)
    bad = run_taskkit("run", "sentiment", "--mode", "smooth", "--option", "smoothing=1.5", "--out", tmp_path / "x",
                      env=_env(third_party_site))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--option smoothing=1.5" in bad.stderr


def test_smooth_mode_trains_on_its_own_loss(third_party_site, tiny_model, monkeypatch):
    """With smoothing 0 the mode's loss is the task's cross-entropy: the same model as ``full``; with
    smoothing it is another model. (In-process: the installed plugins on ``sys.path``.)"""
    import numpy as np

    from taskkit import api, plugins

    monkeypatch.syspath_prepend(str(third_party_site))
    monkeypatch.setenv("TASKKIT_LOAD_PLUGINS", "sentiment,full,smooth")
    plugins.reset()
    settings = {"model": str(tiny_model), "epochs": 1, "lr": 1e-3, "max_length": 32, "seed": 3, "progress": False}
    texts = [r["text"] for r in read_jsonl(DEMO / "test.jsonl")]
    full, plain, smoothed = (api.run("sentiment", mode, DEMO, **settings, **extra).predictor.predict_proba(texts)
                             for mode, extra in [("full", {}), ("smooth", {"options": {"smoothing": 0.0}}),
                                                 ("smooth", {"options": {"smoothing": 0.5}})])
    assert np.allclose(full, plain, atol=1e-5)
    assert not np.allclose(full, smoothed, atol=1e-3)
