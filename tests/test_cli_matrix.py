"""Every registered task x every mode that supports it, through the real ``taskkit`` console script.

For each pair: ``taskkit run TASK --mode MODE`` on a few rows per class trains (or scores),
prints its report and saves; then ``taskkit predict`` in a new process, on the test inputs, gives
the records the run wrote to ``predictions.jsonl``. The matrix comes from the registry, so a new
mode is run for every task it supports; a new task needs tiny data in ``TINY_DATA`` (its test
fails until it has some).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import RELATION_ROWS, read_jsonl, write_conll, write_jsonl


def _pairs() -> list[tuple[str, str]]:
    from taskkit import plugins, registry

    plugins.reset()
    try:
        tasks, modes = registry.tasks(), registry.modes()
        return [(t, m) for t, (task, _) in sorted(tasks.items())
                for m, (mode, _) in sorted(modes.items()) if mode.supports(task)]
    finally:
        plugins.reset()


PAIRS = _pairs()

# --- tiny data: a few rows per class per split --------------------------------------------------
SEQUENCE_ROWS = {
    "sentiment": {
        "positive": ["a wonderful, moving film", "I loved every minute of it", "great acting and a clever plot",
                     "a delight from start to end", "warm, funny and beautifully shot"],
        "negative": ["a dull and lifeless mess", "I want my two hours back", "terrible acting, worse script",
                     "boring from the first scene", "a tedious, ugly film"],
    },
    "topic": {
        "World": ["The prime minister met foreign leaders.", "Elections were held in the capital.",
                  "Diplomats signed a peace treaty.", "Protests spread across the country."],
        "Sports": ["The striker scored twice in the final.", "The team won the championship.",
                   "The goalkeeper saved a penalty.", "The coach praised his players."],
        "Business": ["Shares fell after the bank cut its forecast.", "The company reported record earnings.",
                     "Oil prices jumped on Monday.", "The merger was approved by regulators."],
        "Sci/Tech": ["A new telescope photographed a galaxy.", "The software update fixes a security flaw.",
                     "Researchers sequenced the genome.", "The chip maker unveiled a faster processor."],
    },
    "intent": {
        "balance": ["what is my balance", "how much money do I have", "show my account balance",
                    "tell me my balance please"],
        "transfer": ["send 20 dollars to Anna", "transfer money to my savings", "move 100 to checking",
                     "wire cash to my brother"],
        "oos": ["what is the weather like", "tell me a joke", "who won the game last night",
                "how tall is mount everest"],
    },
}
NLI_ROWS = [
    ("A man is playing a guitar.", "A man plays music.", "entailment"),
    ("A man is playing a guitar.", "The man is asleep.", "contradiction"),
    ("A man is playing a guitar.", "The man is famous.", "neutral"),
    ("Two dogs run in a park.", "Animals are outside.", "entailment"),
    ("Two dogs run in a park.", "The dogs are sleeping.", "contradiction"),
    ("Two dogs run in a park.", "The dogs are brothers.", "neutral"),
]
NER_SENTENCES = [
    (["John", "Smith", "lives", "in", "Paris", "."], ["B-PER", "I-PER", "O", "O", "B-LOC", "O"]),
    (["Mary", "works", "for", "Acme", "Corp", "in", "Berlin"], ["B-PER", "O", "O", "B-ORG", "I-ORG", "O", "B-LOC"]),
    (["Acme", "Corp", "hired", "Anna", "."], ["B-ORG", "I-ORG", "O", "B-PER", "O"]),
    (["Berlin", "and", "Paris", "are", "cities"], ["B-LOC", "O", "B-LOC", "O", "O"]),
]




def _split_sequence(rows: dict[str, list[str]]) -> dict[str, list[dict[str, Any]]]:
    """train: all but the last two texts of each class; dev and test: one text of each."""
    splits: dict[str, list[dict[str, Any]]] = {"train": [], "dev": [], "test": []}
    for label, texts in rows.items():
        splits["train"] += [{"text": t, "label": label} for t in texts[:-2]]
        splits["dev"].append({"text": texts[-2], "label": label})
        splits["test"].append({"text": texts[-1], "label": label})
    return splits


def _sequence_data(task: str) -> Callable[[Path], tuple[list[str], list[Any]]]:
    def write(folder: Path) -> tuple[list[str], list[Any]]:
        splits = _split_sequence(SEQUENCE_ROWS[task])
        for name, rows in splits.items():
            write_jsonl(folder / f"{name}.jsonl", rows)
        return list(SEQUENCE_ROWS[task]), [{"text": r["text"]} for r in splits["test"]]

    return write


def _nli_data(folder: Path) -> tuple[list[str], list[Any]]:
    rows = [{"premise": p, "hypothesis": h, "label": label} for p, h, label in NLI_ROWS]
    write_jsonl(folder / "train.jsonl", rows * 2)
    write_jsonl(folder / "test.jsonl", rows)
    # (the run's records name the two texts text / text_pair, whatever the file's columns)
    return sorted({r["label"] for r in rows}), [{"text": r["premise"], "text_pair": r["hypothesis"]} for r in rows]


def _ner_data(folder: Path) -> tuple[list[str], list[Any]]:
    write_conll(folder / "train.conll", NER_SENTENCES * 3)
    write_conll(folder / "test.conll", NER_SENTENCES)
    # predict takes raw text; its words are the CoNLL tokens joined by spaces
    return ["LOC", "ORG", "PER"], [{"text": " ".join(words)} for words, _ in NER_SENTENCES]


def _relation_data(folder: Path) -> tuple[list[str], list[Any]]:
    write_jsonl(folder / "train.jsonl", RELATION_ROWS * 3)
    write_jsonl(folder / "test.jsonl", RELATION_ROWS)
    labels = sorted({r["label"] for r in RELATION_ROWS})
    return labels, [{k: v for k, v in r.items() if k != "label"} for r in RELATION_ROWS]


#: task -> writer of tiny train/(dev/)test files into a folder; returns (label names, predict inputs)
TINY_DATA: dict[str, Callable[[Path], tuple[list[str], list[Any]]]] = {
    **{task: _sequence_data(task) for task in SEQUENCE_ROWS},
    "nli": _nli_data, "ner": _ner_data, "relation": _relation_data,
}


def mode_args(mode: str, labels: list[str], tiny_model: Path, request: pytest.FixtureRequest) -> list[str]:
    """The mode's own arguments: zero-shot scores with tiny NLI and embedding models (no training:
    seconds; the shipped models run in tests/test_readme_commands.py), every other mode trains the
    tiny random BERT for one epoch."""
    from taskkit import registry

    if mode != "distill" and not registry.get_mode(mode).needs_training_data:  # distill trains a student
        nli, encoder = request.getfixturevalue("tiny_nli"), request.getfixturevalue("tiny_encoder")
        return ["--labels", ",".join(labels), "--model", str(nli), "--option", f"encoder={encoder}"]
    return ["--model", str(tiny_model), "--epochs", "1", "--lr", "1e-3"]


def same_records(got: dict[str, Any], want: dict[str, Any], where: str) -> None:
    """Equal records, numbers within float noise (the run scored in one process, predict in another)."""
    assert got.keys() == want.keys(), f"{where}: keys {sorted(got)} != {sorted(want)}"
    for key, value in want.items():
        _same(got[key], value, f"{where}.{key}")


def _same(got: Any, want: Any, where: str) -> None:
    if isinstance(want, float) or isinstance(got, float):
        assert math.isclose(got, want, abs_tol=1e-4), f"{where}: {got} != {want}"
    elif isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), f"{where}: {got} != {want}"
        for key in want:
            _same(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{where}: {got} != {want}"
        for i, (g, w) in enumerate(zip(got, want)):
            _same(g, w, f"{where}[{i}]")
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"


def test_the_matrix_covers_every_built_in_pair():
    """The registry is read, not skipped: today's tasks and modes are all in the matrix."""
    expected = {(t, m) for t in ("sentiment", "topic", "intent") for m in ("full", "peft", "few-shot", "zero-shot")}
    expected |= {("ner", "full"), ("ner", "peft"), ("nli", "full"), ("nli", "peft"),
                 ("relation", "full"), ("relation", "peft"), ("relation", "zero-shot")}
    expected |= {("ner", "few-shot"), ("relation", "few-shot")}  # few_shot/tokens.py
    expected |= {(t, "distill") for t in ("sentiment", "topic", "intent")}  # taskkit_plugins/distill
    assert expected <= set(PAIRS)
    missing = sorted({t for t, _ in PAIRS} - set(TINY_DATA))
    assert not missing, f"tasks without tiny data in TINY_DATA: {missing}"


def test_relation_labels_keep_the_commas_inside_brackets():
    """``--labels`` for relation zero-shot: SemEval's directed labels hold a comma each."""
    from taskkit.label_sets import parse_labels

    assert list(parse_labels("Cause-Effect(e1,e2), Cause-Effect(e2,e1),Other")) == \
        ["Cause-Effect(e1,e2)", "Cause-Effect(e2,e1)", "Other"]
    assert list(parse_labels("World,Sports,Sci/Tech")) == ["World", "Sports", "Sci/Tech"]


@dataclass
class PairRun:
    folder: Path
    inputs: list[Any]
    run: subprocess.CompletedProcess
    predict: subprocess.CompletedProcess | None


def _run_and_predict(task: str, mode: str, folder: Path, args: list[str], inputs: list[Any],
                     run_taskkit: Callable[..., subprocess.CompletedProcess],
                     teacher_args: list[str] | None = None) -> PairRun:
    out = folder / "out"
    if teacher_args is not None:  # distill: a teacher folder first (zero-shot of the tiny models: seconds)
        teacher = folder / "teacher"
        made = run_taskkit("run", task, "--mode", "zero-shot", "--data", folder / "data", "--out", teacher,
                           "--max-length", "32", "--quiet", *teacher_args, timeout=600)
        if made.returncode != 0:
            return PairRun(folder, inputs, made, None)
        args = [*args, "--option", f"teacher={teacher}"]
    done = run_taskkit("run", task, "--mode", mode, "--data", folder / "data", "--out", out, "--max-length", "32",
                       "--quiet", *args, timeout=600)
    predicted = None
    if done.returncode == 0:
        write_jsonl(folder / "inputs.jsonl", inputs)
        predicted = run_taskkit("predict", out, "--input", folder / "inputs.jsonl", timeout=300)
    return PairRun(folder, inputs, done, predicted)


TEST_NAME = "test_run_reports_saves_and_predict_agrees"


@pytest.fixture(scope="module")
def matrix_runs(request: pytest.FixtureRequest, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory,
                run_taskkit) -> Iterator[dict[tuple[str, str], Future]]:
    """The selected pairs' runs, started at once, two processes at a time (CI has two cores and
    each process spends most of its few seconds importing torch on one)."""
    wanted = [(item.callspec.params["task"], item.callspec.params["mode"]) for item in request.session.items
              if getattr(item, "originalname", None) == TEST_NAME and item.module is request.module]
    with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        futures = {}
        for task, mode in wanted:
            if task not in TINY_DATA:
                continue
            folder = tmp_path_factory.mktemp(f"{task}-{mode}")
            labels, inputs = TINY_DATA[task](folder / "data")
            args = mode_args(mode, labels, tiny_model, request)
            teacher_args = mode_args("zero-shot", labels, tiny_model, request) if mode == "distill" else None
            futures[task, mode] = pool.submit(_run_and_predict, task, mode, folder, args, inputs, run_taskkit,
                                              teacher_args)
        yield futures
        for future in futures.values():
            future.cancel()


@pytest.mark.parametrize("task, mode", PAIRS, ids=[f"{t}-{m}" for t, m in PAIRS])
def test_run_reports_saves_and_predict_agrees(task: str, mode: str, matrix_runs) -> None:
    assert task in TINY_DATA, f"add tiny data for task {task!r} to TINY_DATA"
    result: PairRun = matrix_runs[task, mode].result()
    done, out, inputs = result.run, result.folder / "out", result.inputs
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert f"{task} / {mode} on test" in done.stdout, done.stdout
    assert f"written to {out}" in done.stdout, done.stdout
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert (metrics["task"], metrics["mode"], metrics["evaluated_on"]) == (task, mode, "test")
    saved = read_jsonl(out / "predictions.jsonl")
    assert len(saved) == len(inputs)

    predicted = result.predict  # a new process, reading the saved folder
    assert predicted is not None and predicted.returncode == 0, predicted and predicted.stderr[-3000:]
    records = [json.loads(line) for line in predicted.stdout.splitlines()]
    assert len(records) == len(inputs), predicted.stdout
    for i, (got, want) in enumerate(zip(records, saved)):
        want = {k: v for k, v in want.items() if k != "gold"}
        if task == "ner":  # a run's records also show the CoNLL words and tags; predict's raw text has none
            want = {k: v for k, v in want.items() if k in got}
        same_records(got, want, f"{task}/{mode} record {i}")


# --- the report's training line, for what each mode records ------------------------------------
@pytest.mark.parametrize("training, expected", [
    ({"epochs_run": 2, "best_epoch": 1, "stopped_early": True, "train_seconds": 3.04, "examples_per_second": 40.0},
     ["trained 2 epoch(s) in 3.0s (40.0 examples/s), best epoch 1, stopped early"]),
    ({"prior_mix": 0.5, "contrastive": {"steps": 20, "steps_run": 20, "best_step": 10, "seconds": 0.5},
      "head": "logistic", "zero_shot": "both", "train_examples": 16, "train_seconds": 4.0},
     [("contrastive phase: 20 step(s) in 0.5s, best step 10; logistic head, averaged with zero-shot (both); "
       "16 training example(s) in 4.0s")]),
    ({"contrastive": {"steps_run": 5}, "head": "torch", "zero_shot": "none",
      "head_training": {"epochs_run": 3, "best_epoch": 2, "seconds": 1.0}},
     ["contrastive phase: 5 step(s); torch head (trained 3 epoch(s) in 1.0s, best epoch 2)"]),
    ({"setfit": {"defaults": True}, "train_seconds": 9.0}, ["few-shot with the setfit library's Trainer in 9.0s"]),
    ({"backend": "nli", "nli_model": "nli-minilm", "encoder": "minilm", "hypotheses": {},
      "self_training": {"unlabelled_texts": 8, "pseudo_labelled": 4}},
     ["zero-shot, nli backend (NLI model nli-minilm); self-trained on 4 confident of 8 unlabelled text(s)"]),
    ({"train_seconds": 1.25}, ["trained in 1.2s"]),  # a plugin mode's own record
    ({"anything": 1}, []), ({}, []), (None, []),
])
def test_training_line_for_each_modes_record(training, expected):
    from taskkit.report import training_lines

    assert training_lines(training) == expected


def test_report_prints_a_few_shot_run_without_epochs(capsys):
    """The few-shot record has no ``epochs_run``: the report used to die with a KeyError after saving."""
    from taskkit.report import print_report

    metrics = {"task": "sentiment", "mode": "few-shot", "evaluated_on": "test", "examples": 2, "accuracy": 0.5,
               "per_class": {"negative": {"precision": 1.0, "recall": 0.5, "f1-score": 0.67, "support": 2}},
               "training": {"contrastive": {"steps_run": 20, "seconds": 0.3}, "head": "logistic",
                            "train_seconds": 4.2, "train_examples": 16}}
    print_report(metrics, Path("runs/x"))
    out = capsys.readouterr().out
    assert "sentiment / few-shot on test (2 examples)" in out and "accuracy 0.5000" in out
    assert "contrastive phase: 20 step(s) in 0.3s; logistic head; 16 training example(s) in 4.2s" in out
    assert "written to runs/x" in out


# --- zero-shot: the data's kind of label must match --multi-label -------------------------------
@pytest.mark.parametrize("rows, flag, message", [
    ([{"text": "the match", "labels": ["sports"]}, {"text": "the bank", "labels": ["money", "sports"]}], [],
     "test.jsonl:1: this test row has a 'labels' list: add --multi-label to score each label on its own"),
    ([{"text": "the match", "label": "sports"}, {"text": "the bank", "label": "money"}], ["--multi-label"],
     "test.jsonl:1: --multi-label needs a 'labels' list in every row, this test row has one 'label'"),
])
def test_zero_shot_label_kind_must_match_multi_label(rows, flag, message, tmp_path: Path, capsys):
    """Either mismatch used to score everything, then die with KeyError in the evaluation."""
    from taskkit.cli import main

    data = write_jsonl(tmp_path / "data" / "test.jsonl", rows)
    code = main(["run", "topic", "--mode", "zero-shot", "--data", str(data.parent), "--labels", "sports,money",
                 "--backend", "nli", "--out", str(tmp_path / "out"), "-q", *flag])
    err = capsys.readouterr().err
    assert code == 2 and err.strip().splitlines() == [f"error: {data.parent / message}"], err
    assert not (tmp_path / "out" / "model").exists()
