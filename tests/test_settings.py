"""Run settings are checked at the edge: each bad value is one line naming the option, exit 2,
before any data is read or model loaded (the data and model below do not even exist)."""

from __future__ import annotations

from pathlib import Path

import pytest

import taskkit
from taskkit.cli import main
from taskkit.contracts import RunConfig
from taskkit.errors import TaskkitError

BAD = [
    (["--epochs", "0"], "--epochs must be >= 1, got 0"),  # used to save an untrained model
    (["--epochs", "-3"], "--epochs must be >= 1, got -3"),
    (["--lr", "-1"], "--lr must be > 0, got -1"),
    (["--lr", "0"], "--lr must be > 0, got 0"),
    (["--lr", "nan"], "--lr must be a finite number, got nan"),
    (["--lr", "inf"], "--lr must be a finite number, got inf"),
    (["--batch-size", "0"], "--batch-size must be >= 1, got 0"),
    (["--max-length", "4"], "--max-length must be >= 8, got 4"),
    (["--grad-accum", "0"], "--grad-accum must be >= 1, got 0"),
    (["--patience", "-1"], "--patience must be >= 0, got -1"),
    (["--weight-decay", "-0.1"], "--weight-decay must be >= 0, got -0.1"),
    (["--warmup-ratio", "1.5"], "--warmup-ratio must be <= 1, got 1.5"),
    (["--warmup-ratio", "-0.1"], "--warmup-ratio must be >= 0, got -0.1"),
    (["--dropout", "1"], "--dropout must be < 1, got 1"),
    (["--dropout", "-0.5"], "--dropout must be >= 0, got -0.5"),
    (["--shots", "0"], "--shots must be >= 1, got 0"),  # used to train on everything
    (["--seed", "-1"], "--seed must be >= 0, got -1"),
    (["--seed", str(2**32)], f"--seed must be <= {2**32 - 1}, got {2**32}"),
    (["--precision", "fp16"], "--precision must be one of auto | fp32 | bf16, got 'fp16'"),
    (["--freeze", "layers"], "--freeze must be one of none | head | embeddings | top:N, got 'layers'"),
    (["--freeze", "top:x"], "--freeze must be one of none | head | embeddings | top:N, got 'top:x'"),
    (["--checkpoint-every", "0"], "--checkpoint-every must be N (optimiser steps) or Ne (epochs) with N >= 1, got '0'"),
    (["--checkpoint-every", "often"], "--checkpoint-every must be N (optimiser steps) or Ne (epochs) with N >= 1"),
]


@pytest.mark.parametrize("extra,message", BAD, ids=[" ".join(argv) for argv, _ in BAD])
def test_a_bad_setting_is_one_line_naming_the_option_before_any_work(
        extra: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["run", "sentiment", "--data", str(tmp_path / "no-such-data"), "--model", str(tmp_path / "no-such-model"),
            "--out", str(tmp_path / "out"), "-q", *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}"), err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("setting,value,message", [
    ("eval_batch_size", 0, "--eval-batch-size must be >= 1, got 0"),
    ("max_grad_norm", -1.0, "--max-grad-norm must be >= 0, got -1"),
    ("dev_fraction", 1.0, "--dev-fraction must be < 1, got 1"),
    ("epochs", 2.5, "--epochs must be a whole number, got 2.5"),
    ("epochs", True, "--epochs must be a whole number, got True"),
    ("lr", "0.1", "--lr must be a finite number, got '0.1'"),
])
def test_the_python_api_refuses_the_same_way(setting: str, value: object, message: str, tmp_path: Path) -> None:
    with pytest.raises(TaskkitError, match="^" + message.replace("+", r"\+").replace(".", r"\.") + "$"):
        taskkit.run("sentiment", data=tmp_path / "no-such-data", out=tmp_path / "out", **{setting: value})
    assert not (tmp_path / "out").exists()


def test_checkpoints_need_an_output_folder() -> None:
    with pytest.raises(TaskkitError, match="--checkpoint-every needs an output folder"):
        taskkit.run("sentiment", checkpoint_every=5)
    with pytest.raises(TaskkitError, match="--resume needs an output folder"):
        taskkit.run("sentiment", resume=True)


def test_settings_at_the_edges_of_their_ranges_are_accepted() -> None:
    edge = RunConfig(epochs=1, lr=1e-9, batch_size=1, eval_batch_size=1, max_length=8, seed=0, weight_decay=0.0,
                     warmup_ratio=1.0, grad_accum=1, max_grad_norm=0.0, dropout=0.0, patience=0, shots=1,
                     dev_fraction=0.0, precision="bf16", freeze="top:2", checkpoint_every="3e", checkpoint_dir="x")
    assert edge.validate() is edge
    for freeze in ("none", "head", "embeddings", "top:0"):
        RunConfig(freeze=freeze).validate()
    for every in (1, "7", "2e"):
        RunConfig(checkpoint_every=every, checkpoint_dir="x").validate()
    RunConfig().validate()  # the defaults
