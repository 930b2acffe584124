"""Interrupted training: SIGINT / SIGTERM end with one line and leave the saved model alone;
``--checkpoint-every`` + ``--resume`` continue a killed run to exactly the model an uninterrupted
run gives (bitwise, CPU fp32)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import DEMO, subprocess_env, taskkit_command

from taskkit.cli import main


def _args(tiny_model: Path, out: Path, *extra: str, epochs: int = 4) -> list[str]:
    return ["run", "sentiment", "--data", str(DEMO), "--model", str(tiny_model), "--out", str(out),
            "--epochs", str(epochs), "--lr", "1e-3", "--max-length", "32", "--batch-size", "16",
            "--precision", "fp32", "--patience", "0", "--seed", "3", "-q", *extra]


def _tensors(folder: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    found = {}
    for path in sorted(folder.rglob("*.safetensors")):
        for name, tensor in load_file(str(path)).items():
            found[f"{path.relative_to(folder)}:{name}"] = tensor
    assert found
    return found


def _same_model(a: Path, b: Path) -> None:
    import torch

    left, right = _tensors(a), _tensors(b)
    assert sorted(left) == sorted(right)
    different = [name for name in left if not torch.equal(left[name], right[name])]
    assert not different, f"tensors differ: {different[:5]}"


def _scores(out: Path) -> dict[str, Any]:
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    return {k: v for k, v in metrics.items() if k.endswith(("accuracy", "f1"))} | {
        "history": metrics["training"]["history"]}


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _steps(out: Path) -> list[int]:
    folder = out / "checkpoints"
    if not folder.is_dir():
        return []
    return [int(p.name[5:]) for p in folder.iterdir() if p.name.startswith("step-") and (p / "meta.json").is_file()]


def _start(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen([*taskkit_command(), *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=subprocess_env())


def _wait_for_checkpoint(proc: subprocess.Popen, out: Path, step: int, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not any(s >= step for s in _steps(out)):
        assert proc.poll() is None, f"the run ended before checkpoint {step}: {proc.stderr.read() if proc.stderr else ''}"
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.002)


def test_a_run_killed_at_a_random_step_resumes_to_the_same_weights_and_scores(
        tiny_model: Path, tmp_path: Path, run_taskkit) -> None:
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    assert main(_args(tiny_model, reference)) == 0  # uninterrupted, no checkpoints (in this process)
    # 120 training examples in batches of 16: 8 steps an epoch, 32 in all
    step = random.SystemRandom().randrange(2, 24, 2)  # the run above seeded the global RNG
    print(f"killing after checkpoint step {step}")
    proc = _start(_args(tiny_model, killed, "--checkpoint-every", "2"))
    _wait_for_checkpoint(proc, killed, step)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "model").exists()  # killed mid-training, before any save

    resumed = run_taskkit(*_args(tiny_model, killed, "--resume"))
    assert resumed.returncode == 0, resumed.stderr
    _same_model(reference / "model", killed / "model")
    assert _scores(killed) == _scores(reference)
    assert not (killed / "checkpoints").exists()  # a finished run removes its checkpoints


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_during_training_is_one_line_and_the_saved_model_is_untouched(
        sig: signal.Signals, code: int, tiny_model: Path, trained_run, tmp_path: Path) -> None:
    out = tmp_path / "run"
    shutil.copytree(trained_run.out, out)
    before = _digest(out)
    proc = _start(_args(tiny_model, out, "--checkpoint-every", "2", epochs=500))
    _wait_for_checkpoint(proc, out, 2)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"interrupted ({sig.name}) during training (epoch "), err
    assert f"the model in {out} is untouched" in lines[0] and "--resume" in lines[0]
    assert str(out / "checkpoints" / "step-") in lines[0]
    after = _digest(out)
    assert {k: v for k, v in after.items() if not k.startswith("checkpoints")} == before


def _interrupt_at(monkeypatch: pytest.MonkeyPatch, batch: int) -> None:
    """Send this process SIGINT when the training loop collates its ``batch``-th batch."""
    import importlib

    train = importlib.import_module("taskkit.kernel.train")  # the module (taskkit.kernel.train is the loop)

    calls = {"n": 0}
    collate = train.collate

    def collate_then_interrupt(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == batch:
            os.kill(os.getpid(), signal.SIGINT)
        return collate(*args, **kwargs)

    monkeypatch.setattr(train, "collate", collate_then_interrupt)


def test_ctrl_c_without_checkpoints_says_nothing_was_written(
        tiny_model: Path, trained_run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    shutil.copytree(trained_run.out, out)
    before, handler = _digest(out), signal.getsignal(signal.SIGINT)
    _interrupt_at(monkeypatch, 11)
    assert main(_args(tiny_model, out)) == 130
    err = capsys.readouterr().err
    assert err == f"interrupted (SIGINT) during training (epoch 2 of 4, step 3 of 8); nothing was written to {out}\n"
    assert _digest(out) == before
    assert signal.getsignal(signal.SIGINT) is handler  # main put the handlers back


def test_resume_in_process_and_its_refusals(tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    reference, out = tmp_path / "reference", tmp_path / "run"

    def one_line(argv: list[str], expected: str) -> None:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and expected in err, err

    one_line(_args(tiny_model, out, "--resume"), f"--resume: no checkpoint in {out / 'checkpoints'}")
    one_line(_args(tiny_model, out, "--checkpoint-every", "2", "--mode", "few-shot"),
             "--checkpoint-every: mode 'few-shot' does not write checkpoints")

    _interrupt_at(monkeypatch, 20)  # epoch 3, batch 4: checkpoints at steps 16 and 18
    assert main(_args(tiny_model, out, "--checkpoint-every", "2")) == 130
    err = capsys.readouterr().err
    assert err.endswith(f"to continue from {out / 'checkpoints' / 'step-0000018'}, run the same command with --resume\n")
    assert sorted(_steps(out)) == [16, 18]  # only the newest two are kept
    monkeypatch.undo()

    one_line(_args(tiny_model, out, "--resume", "--lr", "0.002"),
             f"--resume: --lr is 0.002 but the checkpoint {out / 'checkpoints' / 'step-0000018'} was written with 0.001")
    one_line(_args(tiny_model, out, "--checkpoint-every", "2"),
             "an interrupted run's checkpoint is there; add --resume to continue it")
    other = tmp_path / "other.jsonl"
    other.write_text("".join(json.dumps({"text": f"text {i}", "label": "ab"[i % 2]}) + "\n" for i in range(40)))
    one_line(_args(tiny_model, out, "--resume", "--data", str(other)), "--resume: the training data")

    (out / "checkpoints" / ".step-0000020.tmp-999").mkdir()  # a checkpoint write a kill interrupted
    assert main(_args(tiny_model, out, "--resume")) == 0, capsys.readouterr().err
    assert main(_args(tiny_model, reference)) == 0
    _same_model(reference / "model", out / "model")
    assert _scores(out) == _scores(reference)
    assert not (out / "checkpoints").exists()  # the finished run removed its checkpoints and the leftover


def test_a_damaged_checkpoint_is_one_line(tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    _interrupt_at(monkeypatch, 7)
    assert main(_args(tiny_model, out, "--checkpoint-every", "3e", epochs=2)) == 130
    assert _steps(out) == []  # epoch checkpoints: none before the first epoch ends
    capsys.readouterr()
    monkeypatch.undo()
    _interrupt_at(monkeypatch, 12)
    assert main(_args(tiny_model, out, "--checkpoint-every", "4")) == 130
    monkeypatch.undo()
    capsys.readouterr()
    assert sorted(_steps(out)) == [4, 8]
    weights = out / "checkpoints" / "step-0000008" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    assert main(_args(tiny_model, out, "--resume")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[-1].startswith(f"error: {out / 'checkpoints' / 'step-0000008'}: damaged checkpoint")


def test_resume_in_bf16_ends_within_tolerance_of_an_uninterrupted_run(
        tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from taskkit.kernel.device import bf16_supported

    if not bf16_supported():
        pytest.skip("this machine has no bf16 support")
    reference, out = tmp_path / "reference", tmp_path / "run"
    bf16 = ("--precision", "bf16", "--grad-accum", "3")  # the last --precision wins; accumulation spans epochs
    assert main(_args(tiny_model, reference, *bf16)) == 0
    _interrupt_at(monkeypatch, 13)
    assert main(_args(tiny_model, out, "--checkpoint-every", "1e", *bf16)) == 130
    monkeypatch.undo()
    assert _steps(out) == [2]  # after epoch 1: 8 batches, 2 optimiser steps, 2 batches' gradients pending
    assert main(_args(tiny_model, out, "--resume", *bf16)) == 0
    left, right = _tensors(reference / "model"), _tensors(out / "model")
    assert sorted(left) == sorted(right)
    for name in left:
        assert torch.allclose(left[name].float(), right[name].float(), rtol=1e-2, atol=1e-3), name
    assert abs(_scores(out)["accuracy"] - _scores(reference)["accuracy"]) <= 0.05
