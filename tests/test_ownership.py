"""taskkit writes only where it owns: ``run --out``, ``merge`` and ``save`` never delete a file they
did not write. Each refusal is one line, exit code 2, before any work; every foreign file is still
there byte for byte afterwards."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from conftest import DEMO

from taskkit import api
from taskkit.cli import main
from taskkit.errors import TaskkitError
from taskkit.ownership import check_run_folder


def _snapshot(root: Path) -> dict[str, bytes | str]:
    """Every file and link below ``root``: its bytes (a link: its target)."""
    found: dict[str, bytes | str] = {}
    for current, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(current) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                found[rel] = os.readlink(path)
            elif path.is_file():
                found[rel] = path.read_bytes()
    return found


def _project(root: Path) -> Path:
    (root / "src" / "app").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'app'\n")
    (root / "src" / "app" / "__init__.py").write_text("print('hello')\n")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    return root


def _notes(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "ideas.md").write_text("# ideas\n")
    (root / "todo.txt").write_text("buy milk\n")
    return root


def _one_line_error(code: int, err: str, *needles: str) -> str:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if taskkit reads any data (a refusal must come before any work)."""
    def refuse(*args, **kwargs):
        raise AssertionError("data was read before the output folder was checked")

    monkeypatch.setattr(api, "load_splits", refuse)


def _run(out: Path, *extra: str) -> list[str]:
    return ["run", "sentiment", "--out", str(out), "-q", *extra]


# --- run --out ------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [_project, _notes], ids=["project", "notes"])
def test_run_refuses_a_folder_that_is_not_taskkits(make, tmp_path, capsys, no_work):
    out = make(tmp_path / "folder")
    before = _snapshot(out)
    line = _one_line_error(main(_run(out)), capsys.readouterr().err, str(out), "--overwrite")
    assert "not write" in line
    assert _snapshot(out) == before


def test_run_refuses_a_file_and_a_path_under_a_file(tmp_path, capsys, no_work):
    out = tmp_path / "results"
    out.write_text("my results\n")
    _one_line_error(main(_run(out)), capsys.readouterr().err, str(out), "is a file")
    _one_line_error(main(_run(out / "sub")), capsys.readouterr().err, "is a file")
    assert out.read_text() == "my results\n"


def test_run_refuses_to_replace_entries_that_only_look_like_taskkits(trained_run, tmp_path, capsys, no_work):
    """A model/ with a foreign file, a model/ of the user's own, a metrics.json taskkit did not
    write: refused even with --overwrite, since taskkit would have to replace them."""
    cases = {}
    cases["foreign-file"] = tmp_path / "a"
    shutil.copytree(trained_run.out, cases["foreign-file"], symlinks=True)
    (cases["foreign-file"] / "model" / "my-notes.txt").write_text("mine\n")
    cases["own-model"] = tmp_path / "b"
    _notes(cases["own-model"] / "model")
    cases["own-metrics"] = tmp_path / "c"
    cases["own-metrics"].mkdir()
    (cases["own-metrics"] / "metrics.json").write_text('{"accuracy": 0.99, "by": "me"}\n')
    for name, out in cases.items():
        before = _snapshot(out)
        for flags in ([], ["--overwrite"]):
            line = _one_line_error(main(_run(out, *flags)), capsys.readouterr().err, str(out))
            assert "refusing to replace" in line, (name, line)
        assert _snapshot(out) == before, name


def test_unwritable_out_is_refused_before_training(tmp_path, capsys, no_work):
    if sys.platform.startswith("linux"):  # read-only even for root
        _one_line_error(main(_run(Path("/proc/taskkit-out"))), capsys.readouterr().err, "cannot write there")
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        try:
            _one_line_error(main(_run(locked / "out")), capsys.readouterr().err, "cannot write there")
        finally:
            locked.chmod(0o755)


def test_overwrite_writes_beside_foreign_files_and_keeps_them(tiny_model, tmp_path, capsys):
    out = _project(tmp_path / "project")
    before = _snapshot(out)
    args = _run(out, "--model", str(tiny_model), "--epochs", "1", "--max-length", "32", "--overwrite")
    assert main(args) == 0, capsys.readouterr().err
    after = _snapshot(out)
    assert {k: v for k, v in after.items() if k in before} == before
    assert (out / "model" / "taskkit.json").is_file() and (out / "metrics.json").is_file()
    assert sorted(set(os.listdir(out)) - {".git", "src", "pyproject.toml"}) == \
        ["confusion_matrix.png", "metrics.json", "model", "predictions.jsonl", "reliability.png", "training_curve.png"]
    assert main(args) == 0, capsys.readouterr().err  # again: taskkit's entries are replaced, the rest kept
    assert {k: v for k, v in _snapshot(out).items() if k in before} == before
    assert api.load(out).labels.names == ("negative", "positive")


def test_a_run_folder_taskkit_wrote_is_reused_without_a_flag(trained_run, tmp_path):
    linked = tmp_path / "linked"
    shutil.copytree(trained_run.out, linked, symlinks=True)
    check_run_folder(linked)
    copied = tmp_path / "copied"  # links made files by the copy, as cp -rL or a zip would
    shutil.copytree(trained_run.out, copied)
    assert not (copied / "metrics.json").is_symlink()
    check_run_folder(copied)
    (copied / "model" / "metrics.json").unlink()  # as written before metrics lived in model/
    (copied / "model" / "predictions.jsonl").unlink()
    check_run_folder(copied)
    (copied / "checkpoints" / "step-0000010").mkdir(parents=True)
    check_run_folder(copied)
    check_run_folder(tmp_path / "new" / "deeper")
    empty = tmp_path / "empty"
    empty.mkdir()
    check_run_folder(empty)


# --- Predictor.save -----------------------------------------------------------------------------
def test_save_refuses_anything_but_a_taskkit_model_folder(trained_run, tmp_path):
    project = _project(tmp_path / "project")
    notes = _notes(tmp_path / "notes")
    file = tmp_path / "model.bin"
    file.write_bytes(b"weights of my own")
    foreign = tmp_path / "tampered"
    shutil.copytree(trained_run.out / "model", foreign)
    (foreign / "README.md").write_text("my notes on this model\n")
    run_folder = tmp_path / "run"
    shutil.copytree(trained_run.out, run_folder, symlinks=True)
    before = _snapshot(tmp_path)
    for target, why in ((project, "not a taskkit model folder"), (notes, "not a taskkit model folder"),
                        (file, "is a file"), (foreign, "did not write (README.md)"),
                        (run_folder, "not a taskkit model folder")):
        with pytest.raises(TaskkitError, match="refusing to replace it") as caught:
            trained_run.predictor.save(target)
        assert why in str(caught.value) and str(target) in str(caught.value)
        assert "\n" not in str(caught.value)
    assert _snapshot(tmp_path) == before


def test_save_into_an_empty_folder_or_over_its_own_model(trained_run, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    trained_run.predictor.save(empty)
    assert (empty / "taskkit.json").is_file()
    trained_run.predictor.save(empty)  # its own model folder: replaced
    assert api.load(empty).labels == trained_run.predictor.labels


# --- merge ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def peft_run(tiny_model, tmp_path_factory):
    return api.run("sentiment", "peft", DEMO, tmp_path_factory.mktemp("peft-run"), model=str(tiny_model),
                   epochs=1, max_length=32, seed=3, progress=False)


def test_merge_into_the_current_project_folder_is_refused(peft_run, tmp_path, run_taskkit):
    project = _project(tmp_path / "project")
    before = _snapshot(project)
    done = run_taskkit("merge", peft_run.out, ".", cwd=project)
    _one_line_error(done.returncode, done.stderr, "not a taskkit model folder", "pyproject.toml")
    assert _snapshot(project) == before


def test_merge_refuses_what_is_not_taskkits_and_replaces_its_own(peft_run, tmp_path, capsys):
    notes = _notes(tmp_path / "notes")
    file = tmp_path / "merged.bin"
    file.write_text("mine\n")
    before = _snapshot(tmp_path)
    for target in (notes, file):
        _one_line_error(main(["merge", str(peft_run.out), str(target)]), capsys.readouterr().err, str(target))
    assert _snapshot(tmp_path) == before
    merged = tmp_path / "merged"
    for _ in range(2):  # a new folder, then its own merged model replaced
        assert main(["merge", str(peft_run.out), str(merged)]) == 0, capsys.readouterr().err
        assert api.load(merged).labels == peft_run.predictor.labels
    (merged / "deploy-notes.txt").write_text("mine\n")
    _one_line_error(main(["merge", str(peft_run.out), str(merged)]), capsys.readouterr().err,
                    "did not write (deploy-notes.txt)")
    assert (merged / "deploy-notes.txt").read_text() == "mine\n"


def test_a_model_folder_saved_before_the_file_list_is_judged_by_taskkits_names(trained_run, tmp_path):
    import json

    legacy = tmp_path / "legacy"
    shutil.copytree(trained_run.out / "model", legacy)
    for name in ("metrics.json", "predictions.jsonl", "README.md"):  # not in model folders of that time
        (legacy / name).unlink()
    for picture in legacy.glob("*.png"):  # the run's pictures came later still
        picture.unlink()
    meta = json.loads((legacy / "taskkit.json").read_text())
    del meta["files"]
    (legacy / "taskkit.json").write_text(json.dumps(meta))
    (legacy / "special_tokens_map.json").write_text("{}")  # a name taskkit's savers wrote
    trained_run.predictor.save(legacy)
    assert "files" in json.loads((legacy / "taskkit.json").read_text())
    (legacy / "taskkit.json").write_text(json.dumps(meta))  # again without the list
    for name in ("metrics.json", "predictions.jsonl", "README.md"):
        (legacy / name).unlink(missing_ok=True)
    (legacy / "notes.md").write_text("mine\n")
    with pytest.raises(TaskkitError, match=r"did not write \(notes.md\)"):
        trained_run.predictor.save(legacy)
    assert (legacy / "notes.md").read_text() == "mine\n"
