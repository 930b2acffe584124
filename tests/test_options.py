"""Typed --option settings: one parser, checked against the task's and the mode's Options before
any data is read; `taskkit options`; `run`'s options from RunConfig; the typed training record."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest

import taskkit
from taskkit import api, registry
from taskkit.cli import main
from taskkit.contracts import RunConfig, TrainingRecord
from taskkit.errors import TaskkitError
from taskkit.options import parse_pairs, parse_value, validate
from taskkit.report import print_report, training_lines

from conftest import DEMO

#: each built-in mode, a key only it knows, and a sequence task it supports
MODES = {"full": ("allow_fewer", "sentiment"), "peft": ("r", "sentiment"),
         "few-shot": ("head", "sentiment"), "zero-shot": ("abstain", "topic")}


def _error_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


@pytest.mark.parametrize("mode", sorted(MODES))
def test_unknown_option_key_is_one_line_naming_it_and_the_valid_keys(mode, tmp_path, capsys):
    own, task = MODES[mode]
    # the data does not exist: the option is refused before any data is read
    code = main(["run", task, "--mode", mode, "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "out"),
                 "--labels", "a,b", "--option", "rnak=16"])
    assert code == 2
    (line,) = _error_lines(capsys)
    assert line.startswith(f"error: --option rnak=16: unknown option for task {task} / mode {mode} (valid: ")
    valid = line.split("(valid: ")[1].rstrip(")").split(", ")
    assert own in valid and "threshold" in valid  # the mode's keys and the task's, together
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("mode, pair, words", [
    ("peft", "r=abc", "expected a whole number"),
    ("peft", "merge=maybe", "expected true or false"),
    ("few-shot", "head=3", "'logistic' or 'torch'"),
    ("few-shot", "prior_weight=-1", "greater than or equal to 0"),
    ("zero-shot", "self_train=[1]", "expected true or false"),
    ("full", "calibrate=2", "expected true, false, temperature or vector"),
])
def test_wrong_typed_option_is_one_line(mode, pair, words, tmp_path, capsys):
    code = main(["run", "sentiment", "--mode", mode, "--data", str(tmp_path / "missing"), "--labels", "a,b",
                 "--option", pair])
    assert code == 2
    (line,) = _error_lines(capsys)
    assert line.startswith(f"error: --option {pair.split('=')[0]}=") and words in line


def test_values_are_parsed_in_one_place():
    assert [parse_value(w) for w in ("true", "Yes", "on")] == [True] * 3
    assert [parse_value(w) for w in ("false", "no", "OFF")] == [False] * 3
    assert parse_value("16") == 16 and parse_value("0.5") == 0.5 and parse_value("ia3") == "ia3"
    assert parse_value('{"positive": "a good film"}') == {"positive": "a good film"}
    assert parse_pairs(["target_modules=[\"query\", \"value\"]", "a=b=c"]) == {
        "target_modules": ["query", "value"], "a": "b=c"}
    with pytest.raises(TaskkitError, match="expected KEY=VALUE"):
        parse_pairs(["merge"])


def test_one_and_zero_are_numbers_for_a_number_and_yes_or_no_for_a_flag():
    intent, few_shot = registry.get_pair("intent", "few-shot")
    # a share or a tolerance of 1 (or 0) is a number a user types: not refused as a boolean
    options = validate(intent, few_shot, parse_pairs(["zero_shot_weight=1", "oos_tolerance=0", "prior=0",
                                                      "allow_fewer=1"]))
    assert options.zero_shot_weight == 1 and options.oos_tolerance == 0
    assert options.prior is False and options.allow_fewer is True
    assert validate(intent, few_shot, parse_pairs(["calibrate=0"])).calibrate is False
    assert validate(intent, few_shot, parse_pairs(["calibrate=vector"])).calibrate == "vector"
    with pytest.raises(TaskkitError, match="calibrate=2"):
        validate(intent, few_shot, parse_pairs(["calibrate=2"]))


@pytest.mark.parametrize("mode, task, pair, attribute", [
    ("peft", "sentiment", "merge=no", "merge"),
    ("few-shot", "sentiment", "allow_fewer=off", "allow_fewer"),
    ("full", "sentiment", "allow_fewer=off", "allow_fewer"),
    ("zero-shot", "topic", "self_train=false", "self_train"),
    ("few-shot", "sentiment", "prior=no", "prior"),
])
def test_boolean_words_are_false(mode, task, pair, attribute):
    task_obj, mode_obj = registry.get_pair(task, mode)
    options = validate(task_obj, mode_obj, parse_pairs([pair]))
    assert getattr(options, attribute) is False
    assert validate(task_obj, mode_obj, parse_pairs([f"{attribute}=yes"])).model_dump()[attribute] is True


def test_merge_no_keeps_the_adapter_unmerged(tiny_model, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["run", "sentiment", "--mode", "peft", "--data", str(DEMO), "--out", str(out), "--model",
                 str(tiny_model), "--epochs", "1", "--max-length", "32", "-q", "--option", "merge=no",
                 "--option", "r=4"])
    assert code == 0, capsys.readouterr().err
    assert (out / "model" / "adapter" / "adapter_model.safetensors").is_file()  # "no" was once truthy: merged
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["options"]["merge"] is False and metrics["config"]["options"]["r"] == 4
    assert metrics["training"]["epochs_run"] == 1 and "trained 1 epoch(s)" in capsys.readouterr().out


def test_allow_fewer_off_still_refuses_a_small_class(tmp_path, capsys):
    code = main(["run", "sentiment", "--mode", "few-shot", "--data", str(DEMO), "--shots", "1000",
                 "--option", "allow_fewer=off"])
    assert code == 2
    (line,) = _error_lines(capsys)
    assert "--shots 1000 needs 1000 examples per class" in line


def test_api_refuses_a_typo_too(tmp_path):
    with pytest.raises(TaskkitError, match=r"--option rnak=16: unknown option for task sentiment / mode peft"):
        taskkit.run("sentiment", "peft", tmp_path / "missing", options={"rnak": 16})
    with pytest.raises(TaskkitError, match=r"--option merge=no: expected true or false"):
        taskkit.run("sentiment", "peft", tmp_path / "missing", options={"merge": "no"})  # strings stay strings
    with pytest.raises(TaskkitError, match=r"--option treshold=0.5: unknown option for task topic / mode zero-shot"):
        api.zero_shot("a,b", options={"treshold": 0.5})


def test_options_command_lists_types_defaults_and_help(capsys):
    assert main(["options", "sentiment", "--mode", "peft"]) == 0
    out = capsys.readouterr().out.splitlines()
    (r,) = [line.split() for line in out if line.split()[:1] == ["r"]]
    assert r[:4] == ["r", "int", "default", "16"] and "rank" in " ".join(r[4:])
    assert any(line.split()[:1] == ["merge"] and "bool" in line for line in out)
    assert any(line.split()[:1] == ["threshold"] for line in out)  # the task's own
    assert any(line.split()[:2] == ["--lr", "float"] for line in out)  # run settings, from RunConfig
    assert main(["options", "ner", "--mode", "zero-shot"]) == 2  # an unsupported pair is refused


def test_run_options_come_from_runconfig(capsys):
    assert main(["run", "--help"]) == 0
    shown = capsys.readouterr().out
    for f in fields(RunConfig):
        cli = f.metadata.get("cli")
        assert f.metadata.get("help"), f"{f.name} has no help"
        if cli is True:
            assert "--" + f.name.replace("_", "-").replace("init-from", "from") in shown
    for name in ("--from", "--truncate", "--multi-label", "--quiet", "--overwrite", "--checkpoint-every",
                 "--resume", "--option"):
        assert name in shown


def test_report_reads_every_mode_record_with_missing_fields(capsys):
    records = [
        TrainingRecord(epochs_run=2, best_epoch=1, train_seconds=1.5),  # full / peft
        TrainingRecord(),  # a plugin's mode that says nothing
        TrainingRecord(contrastive={}, head="logistic", zero_shot="both"),  # few-shot, no epochs_run
        TrainingRecord(contrastive={"steps_run": 3}, head_training={"seconds": 1.0}),  # few-shot torch head
        TrainingRecord(setfit={"defaults": True}),
        TrainingRecord(backend="nli", self_training={}),  # zero-shot
    ]
    for record in records:
        print_report({"task": "sentiment", "mode": "?", "accuracy": 0.5, "training": record.as_dict()}, None)
        print_report({"task": "sentiment", "training": record}, None)
    assert training_lines(records[0]) == ["trained 2 epoch(s) in 1.5s, best epoch 1"]
    assert training_lines({"contrastive": {"steps_run": 3}, "head": "torch", "mine": 1})[0].startswith(
        "contrastive phase: 3 step(s); torch head")
    assert training_lines(records[-1]) == ["zero-shot, nli backend; self-trained on ? confident of ? unlabelled text(s)"]
    assert TrainingRecord.from_dict({"epochs_run": 1, "mine": 2}).extra == {"mine": 2}
    assert TrainingRecord(epochs_run=1, extra={}).as_dict() == {"epochs_run": 1}
