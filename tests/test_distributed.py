"""Training on several processes: ``accelerate launch`` and ``torchrun`` with 2 CPU processes (gloo).

Two launches start together, one per launcher, and run while this process trains the 1-process
references: ``accelerate launch -m taskkit run`` trains the sequence task in ``full`` mode;
``torchrun`` runs a small driver that calls the command line three times in the same two
processes (the token task in ``full`` mode, ``peft``, ``few-shot``). A 2-process run with batch
size B is compared with a 1-process run with batch size 2B: the same batches are drawn, each
process trains on half of each one with its loss weighted by its share of the labels, and the
averaged gradient is the 1-process gradient, so the saved models predict the same up to float
rounding (fp32, dropout off: dropout masks are drawn per process and could not match).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import DEMO, read_jsonl, subprocess_env, write_conll

SENTENCES = [
    (["John", "Smith", "lives", "in", "Paris", "."], ["B-PER", "I-PER", "O", "O", "B-LOC", "O"]),
    (["Mary", "works", "for", "Acme", "Corp", "in", "Berlin"], ["B-PER", "O", "O", "B-ORG", "I-ORG", "O", "B-LOC"]),
    (["Acme", "Corp", "hired", "Anna", "."], ["B-ORG", "I-ORG", "O", "B-PER", "O"]),
    (["Berlin", "and", "Paris", "are", "cities"], ["B-LOC", "O", "B-LOC", "O", "O"]),
    (["Anna", "visited", "the", "Acme", "office", "in", "Paris", "today"],
     ["B-PER", "O", "O", "B-ORG", "O", "O", "B-LOC", "O"]),
]
# fp32 (bf16 rounds differently for batches padded to other widths) and no dropout in the head
COMMON = ("--epochs", "2", "--lr", "1e-3", "--dropout", "0", "--precision", "fp32", "--seed", "3", "-q")
SEQUENCE = ("run", "sentiment", "--mode", "full", "--data", str(DEMO), "--max-length", "32", *COMMON)
DRIVER = """import json, sys
from taskkit.cli import main
codes = [main(args) for args in json.loads(sys.argv[1])]
sys.exit(max(codes))
"""


def _free_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


def _no_dropout_copy(tiny_model: Path, folder: Path) -> Path:
    shutil.copytree(tiny_model, folder)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def runs(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from taskkit import api

    root = tmp_path_factory.mktemp("ddp")
    model = str(_no_dropout_copy(tiny_model, root / "tiny"))
    for split, rows in (("train", SENTENCES * 4), ("dev", SENTENCES), ("test", SENTENCES)):
        write_conll(root / "ner" / f"{split}.conll", rows)
    token = ("run", "ner", "--mode", "full", "--data", str(root / "ner"), "--max-length", "16", *COMMON)
    small = ("--data", str(DEMO), "--model", model, "--max-length", "32", "--epochs", "1", "--precision", "fp32", "-q")
    driven = [[*token, "--model", model, "--batch-size", "3", "--out", str(root / "ner-2")],
              ["run", "sentiment", "--mode", "peft", "--batch-size", "4", *small, "--out", str(root / "peft-2")],
              ["run", "sentiment", "--mode", "few-shot", "--shots", "8", "--batch-size", "8", *small,
               "--out", str(root / "few-shot-2")]]
    (root / "driver.py").write_text(DRIVER, encoding="utf-8")
    env = subprocess_env(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    accelerate = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                  "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                  "--main_process_port", _free_port(), "-m", "taskkit", *SEQUENCE, "--model", model,
                  "--batch-size", "4", "--out", str(root / "sequence-2")]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", _free_port(),
                str(root / "driver.py"), json.dumps(driven)]
    launches = {name: subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                       env=env, cwd=root)
                for name, command in (("accelerate", accelerate), ("torchrun", torchrun))}
    try:  # meanwhile, the 1-process references with twice the batch size
        one = {
            "sequence": api.run("sentiment", "full", DEMO, root / "sequence-1", model=model, batch_size=8,
                                max_length=32, epochs=2, lr=1e-3, dropout=0.0, precision="fp32", seed=3,
                                progress=False),
            "ner": api.run("ner", "full", root / "ner", root / "ner-1", model=model, batch_size=6, max_length=16,
                           epochs=2, lr=1e-3, dropout=0.0, precision="fp32", seed=3, progress=False),
        }
        done = {name: (proc, *proc.communicate(timeout=900)) for name, proc in launches.items()}
    finally:
        for proc in launches.values():
            if proc.poll() is None:
                proc.kill()
    for name, (proc, out, err) in done.items():
        assert proc.returncode == 0, f"{name} launch failed:\n{out}\n{err[-4000:]}"
    return {"root": root, "one": one, "done": done}


def _model_folders(out: Path) -> list[Path]:
    return sorted(p.parent for p in out.rglob("taskkit.json"))


def _one_folder_that_loads(out: Path) -> Any:
    """The run folder holds exactly one model folder (no leftovers); it loads in this one process."""
    from taskkit import api

    model = out / "model"  # (an ensemble's members are folders inside it)
    assert (model / "taskkit.json").is_file()
    assert all(p == model or model in p.parents for p in _model_folders(out))
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporary folders
    return api.load(out)


def _same_training(one: dict[str, Any], two: dict[str, Any], metric: str) -> None:
    """Same dev scores each epoch, and the same train loss: the mean over both processes' halves."""
    first, second = one["training"]["history"], two["training"]["history"]
    assert [row[metric] for row in first] == [row[metric] for row in second]
    assert np.allclose([row["train_loss"] for row in first], [row["train_loss"] for row in second], rtol=1e-4)
    assert one["training"]["best_epoch"] == two["training"]["best_epoch"]


def test_sequence_task_on_two_processes_equals_one_process_with_twice_the_batch(runs):
    from taskkit import api

    root, reference = runs["root"], runs["one"]["sequence"]
    _, out, _ = runs["done"]["accelerate"]
    assert out.count("written to") == 1  # one report, from the main process
    two = _one_folder_that_loads(root / "sequence-2")
    metrics = json.loads((root / "sequence-2" / "metrics.json").read_text(encoding="utf-8"))
    _same_training(reference.metrics, metrics, "dev_accuracy")
    texts = [r["text"] for r in read_jsonl(DEMO / "test.jsonl")]
    assert np.allclose(two.predict_proba(texts), api.load(root / "sequence-1").predict_proba(texts), atol=1e-5)
    saved = read_jsonl(root / "sequence-2" / "predictions.jsonl")
    assert [r["predicted"] for r in saved] == [r["predicted"] for r in reference.predictions]
    assert [r["predicted"] for r in saved] == two.predict(texts)


def test_token_task_on_two_processes_equals_one_process_with_twice_the_batch(runs):
    from taskkit import api

    root, reference = runs["root"], runs["one"]["ner"]
    two = _one_folder_that_loads(root / "ner-2")
    metrics = json.loads((root / "ner-2" / "metrics.json").read_text(encoding="utf-8"))
    _same_training(reference.metrics, metrics, "dev_micro_f1")
    sentences = [" ".join(words) for words, _ in SENTENCES]
    mine, theirs = two.predict_proba(sentences), api.load(root / "ner-1").predict_proba(sentences)
    assert len(mine) == len(theirs) == len(SENTENCES)
    for a, b in zip(mine, theirs):  # each token's distribution over the tags
        assert a.shape == b.shape and np.allclose(a, b, atol=1e-5)
    saved = read_jsonl(root / "ner-2" / "predictions.jsonl")
    assert [r["predicted_tags"] for r in saved] == [r["predicted_tags"] for r in reference.predictions]


@pytest.mark.parametrize("mode", ["peft", "few-shot"])
def test_other_modes_on_two_processes_write_one_folder_that_loads_in_one_process(runs, mode):
    root = runs["root"]
    out = root / f"{mode}-2"
    loaded = _one_folder_that_loads(out)
    saved = read_jsonl(out / "predictions.jsonl")
    assert len(saved) == len(read_jsonl(DEMO / "test.jsonl"))
    # the folder holds the model the main process evaluated
    assert loaded.predict([r["text"] for r in saved]) == [r["predicted"] for r in saved]
    assert json.loads((out / "metrics.json").read_text(encoding="utf-8"))["mode"] == mode


def test_only_the_main_process_reports(runs):
    _, out, err = runs["done"]["torchrun"]
    assert out.count("written to") == 3  # ner, peft, few-shot: one report each
    assert err.count("trainable parameters:") == 1  # peft's line, once


def test_steps_of_a_launch_are_split_or_dealt_whole():
    from taskkit.distributed import deal

    # default batches are cut: each process gets its half of every batch, the last one uneven
    assert deal([[0, 1, 2, 3], [4, 5, 6]], 2, split=True) == [[[0, 1], [2, 3]], [[4], [5, 6]]]
    assert deal([[7]], 2, split=True) == [[[], [7]]]  # process 0 runs process 1's batch, weight 0
    # a mode's own batches (pairs, class balance) are dealt whole, two to a step
    assert deal([[0, 1], [2, 3], [4, 5]], 2, split=False) == [[[0, 1], [2, 3]], [[4, 5], []]]
    assert deal([[0, 1], [2]], 1, split=True) == [[[0, 1]], [[2]]]  # one process: as before


def test_label_units_count_what_the_mean_loss_averages_over():
    import torch

    from taskkit.distributed import label_units

    assert label_units({"input_ids": torch.zeros(3, 5), "labels": torch.tensor([0, 1, 1])}) == 3
    tags = torch.tensor([[0, -100, 2, -100], [1, 1, -100, -100]])  # sub-tokens and padding carry -100
    assert label_units({"input_ids": torch.zeros(2, 4), "labels": tags}) == 4
    assert label_units({"input_ids": torch.zeros(2, 4), "labels": torch.ones(2, 6)}) == 2  # multi-hot rows


def test_sharded_engines_from_accelerate_config_are_refused_in_one_line():
    from types import SimpleNamespace

    from accelerate.utils import DistributedType

    from taskkit.distributed import check_distributed
    from taskkit.errors import TaskkitError

    for kind in (DistributedType.FSDP, DistributedType.DEEPSPEED):
        with pytest.raises(TaskkitError, match=f"distributed type {kind.value} is not supported"):
            check_distributed(SimpleNamespace(distributed_type=kind))
    for kind in (DistributedType.NO, DistributedType.MULTI_CPU, DistributedType.MULTI_GPU):
        check_distributed(SimpleNamespace(distributed_type=kind))


def test_one_process_writes_as_before():
    from taskkit.distributed import is_main_process, on_main, world_size

    assert world_size() == 1 and is_main_process()
    assert on_main(lambda: "written") == "written"
