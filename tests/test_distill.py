"""The distill mode: a saved teacher labels unlabelled texts, a student learns its soft labels.

On the tiny random BERT and the demo data (teachers: a tiny full model, a tiny zero-shot model).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from conftest import DEMO, read_jsonl, subprocess_env, write_jsonl

from taskkit import api
from taskkit.cli import main

FAST = {"epochs": 2, "lr": 1e-3, "max_length": 32, "progress": False}
TEXTS = ["The best hotel we ever stayed in.", "Cold food, rude staff, never again.", "It arrived on time."]


@pytest.fixture(scope="module")
def teacher(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("teacher")
    api.run("sentiment", "full", DEMO, out, model=str(tiny_model), seed=7, **FAST)
    return out


@pytest.fixture(scope="module")
def student(teacher: Path, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("student")
    return api.run("sentiment", "distill", DEMO, out, model=str(tiny_model), options={"teacher": str(teacher)}, **FAST)


def _shuffled_copy(folder: Path, seed: int) -> Path:
    """The demo data with every train and dev label shuffled (test left as it is)."""
    for split in ("train", "dev", "test"):
        rows = read_jsonl(DEMO / f"{split}.jsonl")
        if split != "test":
            labels = [r["label"] for r in rows]
            random.Random(seed).shuffle(labels)
            rows = [{**r, "label": label} for r, label in zip(rows, labels)]
        write_jsonl(folder / f"{split}.jsonl", rows)
    return folder


def test_student_is_an_ordinary_model_folder_scored_on_test(student, teacher: Path):
    assert student.metrics["mode"] == "distill" and student.metrics["evaluated_on"] == "test"
    assert student.metrics["examples"] == len(read_jsonl(DEMO / "test.jsonl"))
    extra = student.metrics["training"]["extra"]
    assert extra["teacher"] == teacher.name and extra["teacher_mode"] == "full"
    assert extra["unlabelled_texts"] == 120 and extra["teacher_labelled_dev"] == 30  # the demo's train / dev texts
    assert extra["head_start"] == "label names"  # the student's head starts as the names' cosine classifier
    meta = json.loads((student.out / "model" / "taskkit.json").read_text(encoding="utf-8"))
    assert meta["format"] == "torch.v1" and meta["mode"] == "distill" and meta["labels"] == ["negative", "positive"]


def test_gold_labels_never_reach_the_student(student, teacher: Path, tiny_model: Path, tmp_path: Path):
    """Shuffling every train and dev gold label leaves the student exactly as it was."""
    shuffled = _shuffled_copy(tmp_path / "shuffled", seed=1)
    again = api.run("sentiment", "distill", shuffled, tmp_path / "out", model=str(tiny_model),
                    options={"teacher": str(teacher)}, **FAST)
    np.testing.assert_array_equal(again.predictor.predict_proba(TEXTS), student.predictor.predict_proba(TEXTS))
    assert again.metrics["training"]["history"] == student.metrics["training"]["history"]
    # while a full run on the same shuffled labels is a different model
    full = api.run("sentiment", "full", shuffled, tmp_path / "full", model=str(tiny_model), seed=7, **FAST)
    assert not np.allclose(full.predictor.predict_proba(TEXTS), api.load(teacher).predict_proba(TEXTS))


def test_student_learns_the_teachers_soft_labels_not_hard_ones(teacher: Path, tiny_model: Path, tmp_path: Path):
    """Fitted long enough, the student's probabilities on the taught texts approach the teacher's
    (soft, here mostly between 0.3 and 0.7), not the 0/1 of its arg-max."""
    texts = [r["text"] for r in read_jsonl(DEMO / "train.jsonl")][:24]
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    result = api.run("sentiment", "distill", DEMO / "test.jsonl", tmp_path / "out", model=str(tiny_model),
                     epochs=40, lr=2e-3, max_length=32, patience=0, progress=False,
                     options={"teacher": str(teacher), "unlabelled": str(tmp_path / "texts.txt")})
    taught = api.load(teacher).predict_proba(texts)[:, 1]
    learnt = result.predictor.predict_proba(texts)[:, 1]
    hard = (taught >= 0.5).astype(float)
    assert np.abs(taught - hard).mean() > 0.2  # the teacher is unsure: soft targets differ from hard ones
    assert np.abs(learnt - taught).mean() < 0.5 * np.abs(hard - taught).mean()
    assert result.metrics["training"]["extra"]["unlabelled_source"] == "texts.txt"
    assert result.metrics["evaluated_on"] == "test" and result.metrics["examples"] == 50  # the one --data file


def test_a_zero_shot_teacher(tiny_model: Path, tmp_path: Path):
    teacher = tmp_path / "zs"
    api.run("sentiment", "zero-shot", DEMO, teacher, model=str(tiny_model), backend="embedding",
            labels="negative,positive", progress=False, options={"self_train": False})
    result = api.run("sentiment", "distill", DEMO, tmp_path / "out", model=str(tiny_model),
                     options={"teacher": str(teacher)}, **FAST)
    assert result.metrics["training"]["extra"]["teacher_format"] == "zero-shot.v1"
    assert result.predictor.labels.names == ("negative", "positive")


def test_the_student_head_starts_as_the_label_names_cosine_classifier(tiny_model: Path, teacher: Path,
                                                                    tmp_path: Path, run_taskkit):
    """Before any training, each label's prompt is scored highest by its own row (cosine 1 with
    itself), and every row has the same length; ``start=random`` leaves the head as it was built."""
    import torch

    from taskkit import registry
    from taskkit.kernel.model import SequenceHead, TaskModel, start_at_label_names
    from taskkit.models import load_body, load_tokenizer, resolve

    ref = resolve(str(tiny_model))
    body, tokenizer = load_body(ref), load_tokenizer(ref)
    model = TaskModel(body, SequenceHead(body.config.hidden_size, 3, dropout=0.0)).eval()
    prompts = ["The user wants to pay a bill.", "The user wants a refund.", "The user asks about the weather."]
    assert start_at_label_names(model.head.out, body, tokenizer, prompts, TEXTS, 32)
    norms = model.head.out.weight.norm(dim=1)
    assert torch.allclose(norms, norms[0].expand(3)) and not model.head.out.bias.any()
    encoded = tokenizer(prompts, padding=True, return_tensors="pt")
    with torch.no_grad():
        assert model(**encoded).argmax(-1).tolist() == [0, 1, 2]
    assert not start_at_label_names(model.head.out, body, tokenizer, prompts[:2], TEXTS, 32)  # rows != prompts
    assert registry.get_task("sentiment").output_layer(model.head) is model.head.out
    done = run_taskkit("run", "sentiment", "--mode", "distill", "--option", f"teacher={teacher}", "--option",
                       "start=random", "--data", DEMO, "--out", tmp_path / "out", "--model", tiny_model, "--epochs",
                       "1", "--max-length", "32", "-q")
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["training"]["extra"]["head_start"] == "random"


def test_multi_label_student_learns_per_label_probabilities(tiny_model: Path, tmp_path: Path):
    texts = {("joy",): ["so happy today", "what a joyful day", "pure joy"],
             ("anger",): ["I am furious", "this makes me mad", "so angry now"],
             ("joy", "surprise"): ["wow, what a happy surprise", "amazed and delighted", "a lovely shock"],
             ("surprise",): ["I did not expect that at all", "what a shock", "out of nowhere"]}
    rows = [{"text": t, "labels": list(k)} for k, ts in texts.items() for t in ts]
    for split in ("train", "dev", "test"):
        write_jsonl(tmp_path / "data" / f"{split}.jsonl", rows)
    api.run("sentiment", "full", tmp_path / "data", tmp_path / "teacher", model=str(tiny_model), **FAST)
    result = api.run("sentiment", "distill", tmp_path / "data", tmp_path / "out", model=str(tiny_model),
                     options={"teacher": str(tmp_path / "teacher")}, **FAST)
    assert result.predictor.labels.multi_label and result.predictor.labels.names == ("anger", "joy", "surprise")
    assert {"micro_f1", "macro_f1"} <= set(result.metrics)
    assert all(isinstance(p, list) for p in api.load(tmp_path / "out").predict(["so happy"]))


def test_student_loads_in_a_new_process_without_the_distill_plugin(student, run_taskkit):
    done = run_taskkit("predict", student.out, *TEXTS, env=subprocess_env(TASKKIT_LOAD_PLUGINS="sentiment"))
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    expected = student.predictor.predict_proba(TEXTS)
    for record, row in zip(records, expected):
        assert abs(record["probabilities"]["positive"] - float(row[1])) < 1e-4
    assert [r["predicted"] for r in records] == student.predictor.predict(TEXTS)


def test_cli_distills(teacher: Path, tiny_model: Path, tmp_path: Path, run_taskkit):
    done = run_taskkit("run", "sentiment", "--mode", "distill", "--option", f"teacher={teacher}", "--data", DEMO,
                       "--out", tmp_path / "out", "--model", tiny_model, "--epochs", "1", "--max-length", "32", "-q")
    assert done.returncode == 0, done.stderr
    assert "sentiment / distill on test" in done.stdout
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["training"]["extra"]["teacher"] == teacher.name


def test_a_shallower_student_keeps_the_first_layers_and_loads_as_such(teacher: Path, tiny_model: Path,
                                                                      tmp_path: Path, run_taskkit):
    """--option student_layers=1: the saved student is a 1-layer model (config and weights), it
    loads in a new process and predicts what the trained one did; its first layer is the
    body's first layer, trained (not a fresh one)."""
    out = tmp_path / "out"
    done = run_taskkit("run", "sentiment", "--mode", "distill", "--option", f"teacher={teacher}",
                       "--option", "student_layers=1", "--data", DEMO, "--out", out, "--model", tiny_model,
                       "--epochs", "1", "--max-length", "32", "-q")
    assert done.returncode == 0, done.stderr
    config = json.loads((out / "model" / "config.json").read_text(encoding="utf-8"))
    assert config["num_hidden_layers"] == 1
    assert json.loads((tiny_model / "config.json").read_text(encoding="utf-8"))["num_hidden_layers"] == 2
    assert json.loads((out / "metrics.json").read_text())["training"]["extra"]["student_layers"] == "first 1 of 2"
    student = api.load(out)
    names = [n for n, _ in student.model.body.named_parameters()]
    assert any(".layer.0." in n for n in names) and not any(".layer.1." in n for n in names)
    done = run_taskkit("predict", out, *TEXTS)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    for record, row in zip(records, student.predict_proba(TEXTS), strict=True):
        assert abs(record["probabilities"]["positive"] - float(row[1])) < 1e-4


def _cli(argv: list, capsys) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("case", ["no-teacher", "missing-teacher", "other-task", "token-task", "missing-file",
                                  "too-many-layers"])
def test_bad_distill_runs_are_one_line(case: str, teacher: Path, tiny_model: Path, tmp_path: Path, capsys):
    argv = ["run", "sentiment", "--mode", "distill", "--data", DEMO, "--out", tmp_path / "out", "--model", tiny_model,
            "--epochs", "1", "-q"]
    expected = {"no-teacher": "--option teacher=DIR", "missing-teacher": "no such model folder",
                "other-task": "a model of task 'sentiment', not 'topic'",
                "token-task": "mode 'distill' does not support task 'ner'", "missing-file": "no such file",
                "too-many-layers": "has 2 transformer layers (keep 1..2)"}[case]
    if case == "missing-teacher":
        argv += ["--option", f"teacher={tmp_path / 'nowhere'}"]
    elif case == "other-task":
        argv[1] = "topic"
        argv += ["--option", f"teacher={teacher}"]
    elif case == "token-task":
        argv[1] = "ner"
        argv += ["--option", f"teacher={teacher}"]
    elif case == "missing-file":
        argv += ["--option", f"teacher={teacher}", "--option", f"unlabelled={tmp_path / 'none.txt'}"]
    elif case == "too-many-layers":
        argv += ["--option", f"teacher={teacher}", "--option", "student_layers=3"]
    code, err = _cli(argv, capsys)
    assert code == 2 and expected in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
