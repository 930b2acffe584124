"""Sharded ``taskkit predict --output`` over 2 CPU processes (gloo): ``accelerate launch`` and
``torchrun`` write one output, in input order, identical to one process's, and leave no parts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import DEMO, read_jsonl, subprocess_env

from taskkit.cli import main

TEXTS = [r["text"] for split in ("train", "test") for r in read_jsonl(DEMO / f"{split}.jsonl")][:150]
# on a machine without GPUs, accelerate's launcher starts several processes only with --multi_gpu (its --cpu
# runs one); they then find no GPU and talk over gloo
ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def _launch(launcher: list[str], *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([*launcher, "-m", "taskkit", "predict", *args], capture_output=True, text=True,
                          env=subprocess_env(OMP_NUM_THREADS="1"), timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert "Traceback" not in done.stderr, done.stderr[-4000:]
    return done


def test_two_processes_write_what_one_writes_in_input_order(trained_run, tmp_path):
    rows = [{"id": i, "text": t} for i, t in enumerate(TEXTS)]
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    one, two, resumed = tmp_path / "one.jsonl", tmp_path / "two.jsonl", tmp_path / "resumed.jsonl"
    common = ["--input", str(path), "--chunk-size", "16"]  # 10 chunks, 5 each, the last one short
    assert main(["predict", str(trained_run.out), *common, "--output", str(one), "-q"]) == 0

    done = _launch(ACCELERATE, str(trained_run.out), *common, "--output", str(two))
    assert two.read_bytes() == one.read_bytes()
    assert [r["id"] for r in read_jsonl(two)] == list(range(len(TEXTS)))
    assert done.stderr.count(f"wrote {len(TEXTS)} record(s) to {two} (2 processes)") == 1  # by the main process
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "one.jsonl", "two.jsonl"]  # parts removed

    # torchrun, resuming a run killed inside chunk 3: chunks 0-2 kept, 3-9 shared by the 2 processes
    torn = one.read_bytes()
    resumed.write_bytes(torn[: sum(map(len, torn.splitlines(keepends=True)[:50])) + 7])
    done = _launch(TORCHRUN, str(trained_run.out), *common, "--output", str(resumed), "--resume")
    assert f"wrote {len(TEXTS) - 48} record(s) to {resumed} (2 processes)" in done.stderr  # 3 chunks kept
    assert resumed.read_bytes() == one.read_bytes()
    assert not [p for p in tmp_path.iterdir() if ".part-" in p.name]
