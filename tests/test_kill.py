"""SIGKILL at every stage of a save: the path holds the old or the new model whole, never neither.

A subprocess (it imports only ``taskkit.artifacts``, never torch, so each costs a fraction of a
second) saves a new model over an old one through ``write_atomically`` by copying the files of a
prepared folder, and ``TASKKIT_FAULT_AT=<stage>`` kills it at that stage. This process then
predicts from whatever is at the path and compares with the old and the new model's exact
probabilities, and the next save must clean every leftover. Both the atomic exchange (Linux
``renameat2``) and the fallback (two renames plus recovery by every reader) are killed at every
stage; so is a run folder, whose ``metrics.json`` must always describe the model beside it.
The whole cycle runs ``CYCLES`` times.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import subprocess_env

from taskkit import api, artifacts, atomic

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SIGKILL and renameat2: Linux")

CYCLES = 20
TEXTS = ["The best hotel we ever stayed in.", "Cold food, rude staff, never again.", "It arrived on time."]
RUN_FILES = ("metrics.json", "predictions.jsonl")
# A small helper process (it imports taskkit.artifacts only, never torch) forks one child per
# save: a real process, SIGKILLed at the stage TASKKIT_FAULT_AT names, for a few ms instead of an
# interpreter start each time.
SAVER = r"""
import json, os, shutil, sys, traceback
from pathlib import Path
from taskkit import artifacts, atomic

def save(src, dst, scheme, kind):
    if scheme == "fallback":
        atomic.exchange = lambda a, b: False  # as on a system without an atomic exchange
    meta = json.loads((src / "taskkit.json").read_text())
    for key in ("format", "taskkit_version", "files"):
        meta.pop(key, None)
    skip = {"taskkit.json"} | ({"metrics.json", "predictions.jsonl"} if kind == "run" else set())

    def write(folder):
        for f in src.iterdir():
            if f.name not in skip:
                (shutil.copytree if f.is_dir() else shutil.copy2)(f, folder / f.name)

    if kind == "model":
        artifacts.write_atomically(dst, write, meta)
    else:
        files = {n: (src / n).read_text() for n in ("metrics.json", "predictions.jsonl")}
        artifacts.save_run(dst, lambda path: artifacts.write_atomically(path, write, meta), files)

for line in sys.stdin:
    task = json.loads(line)
    pid = os.fork()
    if pid == 0:
        try:
            if task["stage"]:
                os.environ["TASKKIT_FAULT_AT"] = task["stage"]
            save(Path(task["src"]), Path(task["dst"]), task["scheme"], task["kind"])
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    print(os.waitstatus_to_exitcode(status), flush=True)
"""
EXCHANGE_STAGES = ("written", "synced", "ready", "swapped", "cleanup", "cleaned")
BEFORE_SWAP = ("written", "synced", "ready", "aside")  # a kill there leaves the old model
FALLBACK_STAGES = ("written", "synced", "ready", "aside", "swapped", "cleanup", "cleaned")


def _content(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` but taskkit.json (whose manifest and version a save rewrites)."""
    return {f: (folder / f).read_bytes() for f in atomic.files_under(folder) if f != "taskkit.json"}


@pytest.fixture(scope="module")
def models(trained_run, tmp_path_factory):
    """Two model folders of the same architecture and different weights, with distinct run
    files inside, and each one's probabilities on TEXTS."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    root = tmp_path_factory.mktemp("kill-models")
    old, new = root / "old", root / "new"
    shutil.copytree(trained_run.out / "model", old)
    shutil.copytree(trained_run.out / "model", new)
    weights = new / "model.safetensors"
    with safe_open(str(weights), "pt") as handle:
        header = handle.metadata()
    state = load_file(str(weights))
    head = [k for k in state if k.startswith("head.")]
    assert head
    for key in head:
        state[key] = state[key] + 0.5
    save_file(state, str(weights), metadata=header)
    for folder in (old, new):
        (folder / "metrics.json").write_text(json.dumps({"which": folder.name}) + "\n")
        (folder / "predictions.jsonl").write_text(json.dumps({"which": folder.name, "predicted": "x"}) + "\n")
    probabilities = {f.name: api.load(f).predict_proba(TEXTS) for f in (old, new)}
    assert not np.array_equal(probabilities["old"], probabilities["new"])
    return {"old": old, "new": new}, probabilities


@pytest.fixture(scope="module")
def saver():
    """``save(src, dst, scheme, kind, stage)``: save in a child process; its exit code (-9: killed)."""
    helper = subprocess.Popen([sys.executable, "-c", SAVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env=subprocess_env())

    def save(src: Path, dst: Path, scheme: str, kind: str, stage: str | None) -> int:
        task = {"src": str(src), "dst": str(dst), "scheme": scheme, "kind": kind, "stage": stage}
        helper.stdin.write(json.dumps(task) + "\n")
        helper.stdin.flush()
        code = int(helper.stdout.readline())
        assert code in (0, -signal.SIGKILL), f"the save failed ({code}): see the captured stderr"
        assert code == (-signal.SIGKILL if stage else 0), f"stage {stage!r} never reached"
        return code

    yield save
    helper.stdin.close()
    helper.wait(timeout=30)


def _which(folder: Path, models: dict[str, Path], probabilities: dict[str, np.ndarray]) -> str:
    """Which model ``folder`` holds, whole: its files and its predictions are exactly that model's."""
    predicted = api.load(folder).predict_proba(TEXTS)  # a reader honours the fallback's journal
    content = _content(folder)
    for name, source in models.items():
        if content == _content(source):
            np.testing.assert_array_equal(predicted, probabilities[name])
            assert artifacts.read_metadata(folder)["files"] == sorted(content)
            return name
    raise AssertionError(f"{folder} holds neither model whole: {sorted(content)}")


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def _kill_at_every_stage(save, folders, probabilities, dst: Path, scheme: str, kind: str) -> None:
    """Kill a save at each stage in turn. Each kill saves the other model over the one at the path
    (old and new swap roles), so every save also shows the leftovers of the kill before it cleaned."""
    stages = EXCHANGE_STAGES if scheme == "exchange" else FALLBACK_STAGES
    model = dst / "model" if kind == "run" else dst
    save(folders["old"], dst, scheme, kind, None)
    current = "old"
    for stage in stages:
        other = "new" if current == "old" else "old"
        save(folders[other], dst, scheme, kind, stage)
        found = _which(model, folders, probabilities)
        assert found == (current if stage in BEFORE_SWAP else other), (scheme, kind, stage)
        assert len(_leftovers(model.parent)) <= 1, (scheme, kind, stage, _leftovers(model.parent))
        if kind == "run":  # metrics and predictions, read as a user would: always the model's own
            for name in RUN_FILES:
                assert (dst / name).read_bytes() == (folders[found] / name).read_bytes(), (stage, name)
        current = found
    save(folders["new"], dst, scheme, kind, None)
    assert _which(model, folders, probabilities) == "new" and _leftovers(model.parent) == []
    if kind == "run":
        assert sorted(os.listdir(dst)) == ["metrics.json", "model", "predictions.jsonl"]
        assert json.loads((dst / "metrics.json").read_text()) == {"which": "new"}
        np.testing.assert_array_equal(api.load(dst).predict_proba(TEXTS), probabilities["new"])


@pytest.mark.parametrize("cycle", range(CYCLES))
def test_kill_at_every_stage_leaves_old_or_new_model_whole(models, saver, tmp_path, cycle):
    """The run folder of ``taskkit run`` (atomic exchange), and a model folder saved by the
    fallback (two renames; every reader recovers the folder a kill left aside)."""
    folders, probabilities = models
    _kill_at_every_stage(saver, folders, probabilities, tmp_path / "run", "exchange", "run")
    _kill_at_every_stage(saver, folders, probabilities, tmp_path / "model", "fallback", "model")


def test_kill_at_every_stage_of_a_plain_model_save(models, saver, tmp_path):
    folders, probabilities = models
    _kill_at_every_stage(saver, folders, probabilities, tmp_path / "model", "exchange", "model")


def test_first_save_killed_leaves_nothing_or_the_new_model(models, saver, tmp_path):
    folders, probabilities = models
    for stage in ("written", "synced", "ready", "swapped"):
        dst = tmp_path / stage / "model"
        saver(folders["new"], dst, "exchange", "model", stage)
        if stage == "swapped":
            assert _which(dst, folders, probabilities) == "new"
        else:
            assert not dst.exists()
        saver(folders["old"], dst, "exchange", "model", None)
        assert _which(dst, folders, probabilities) == "old" and _leftovers(dst.parent) == []


def test_next_save_cleans_leftovers_but_nothing_else(models, saver, tmp_path):
    """Leftovers of killed saves go; a look-alike folder that is not taskkit's, a save still
    running (locked) and the user's own hidden files stay."""
    import fcntl

    folders, _ = models
    dst = tmp_path / "model"
    saver(folders["old"], dst, "exchange", "model", None)
    lookalike = tmp_path / ".model.tmp-mine"
    lookalike.mkdir()
    (lookalike / "notes.txt").write_text("my notes")
    running = tmp_path / ".model.tmp-running"
    running.mkdir()
    (running / atomic.MARKER).write_text("")
    (tmp_path / ".model.secret").write_text("hidden but mine")
    mine = [".model.secret", ".model.tmp-mine", ".model.tmp-running"]
    fd = os.open(running, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        for stage in ("written", "ready", "cleanup"):
            saver(folders["new"], dst, "exchange", "model", stage)
            assert len(set(_leftovers(tmp_path)) - set(mine)) == 1, stage
        saver(folders["new"], dst, "exchange", "model", None)
    finally:
        os.close(fd)
    assert _leftovers(tmp_path) == mine
    assert (lookalike / "notes.txt").read_text() == "my notes"
