"""The ``relation`` task: spans and markers, the SemEval-2010 Task 8 score, bad input, a tiny run."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from conftest import RELATION_ROWS, write_jsonl
from taskkit.contracts import RunConfig
from taskkit.errors import TaskkitError

relation = importlib.import_module("taskkit_plugins.relation")


def row(text: str, head: str, tail: str, label: str, **extra) -> dict:
    h, t = text.index(head), text.index(tail)
    return {"text": text, "head": {"start": h, "end": h + len(head), **extra.get("head_extra", {})},
            "tail": {"start": t, "end": t + len(tail), **extra.get("tail_extra", {})}, "label": label}


ROWS = RELATION_ROWS  # conftest's, the rows every relation test trains on


def test_semeval_score_counts_direction_and_leaves_other_out():
    names = ("Cause-Effect(e1,e2)", "Cause-Effect(e2,e1)", "Component-Whole(e1,e2)", "Other")
    gold = ["Cause-Effect(e1,e2)", "Cause-Effect(e1,e2)", "Component-Whole(e1,e2)", "Other", "Other"]
    pred = ["Cause-Effect(e1,e2)", "Cause-Effect(e2,e1)", "Other", "Component-Whole(e1,e2)", "Other"]
    scores = relation.semeval_scores(gold, pred, names)
    cause = scores["per_relation"]["Cause-Effect"]  # 1 hit of 2 proposed (one the wrong way), 2 gold
    assert (cause["precision"], cause["recall"]) == (0.5, 0.5)
    assert scores["per_relation"]["Component-Whole"]["f1"] == 0.0
    assert scores["official_macro_f1"] == pytest.approx((0.5 + 0.0) / 2)
    assert scores["micro_f1"] == pytest.approx(2 * (1 / 3) * (1 / 3) / (2 / 3))  # 1 hit, 3 proposed, 3 gold


@pytest.mark.parametrize("bad, message", [
    ({"head": {"start": 0, "end": 99}}, r"head span \[0, 99\) out of range"),
    ({"tail": {"start": 4, "end": 8}, "head": {"start": 0, "end": 8}}, r"head \[0, 8\) and tail \[4, 8\) overlap"),
    ({"head": {"start": 4, "end": 8, "text": "fish"}}, "head text 'fish' differs"),
    ({"tail": "fire"}, "'tail' must be"),
    ({"text": " "}, "missing or empty 'text'"),
    ({"label": ""}, "no label"),
])
def test_bad_rows_name_file_and_line(tmp_path: Path, bad, message):
    path = write_jsonl(tmp_path / "bad.jsonl", [ROWS[0], {**ROWS[1], **bad}])
    with pytest.raises(TaskkitError, match=rf"bad.jsonl:2: {message}"):
        relation.RelationTask().read(path, RunConfig())


def test_cli_overlapping_spans_is_one_line_and_exit_2(tmp_path: Path, run_taskkit):
    path = write_jsonl(tmp_path / "train.jsonl", [ROWS[0], {**ROWS[1], "tail": {"start": 19, "end": 23}}])
    done = run_taskkit("run", "relation", "--data", path, "--out", tmp_path / "out", timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == f"error: {path}:2: head [21, 25) and tail [19, 23) overlap"


def test_typed_markers_wrap_the_entities_and_positions_point_at_them(tiny_model: Path):
    from transformers import AutoTokenizer

    task = relation.RelationTask()
    examples = [task._example(row("Ann works at Acme.", "Ann", "Acme", "employee_of",
                                  head_extra={"type": "PER"}, tail_extra={"type": "ORG"}), RunConfig()),
                task._example(row("Bob met Ann.", "Bob", "Ann", "Other"), RunConfig())]
    markers = task.special_tokens(examples)
    assert {"<h:PER>", "</h:PER>", "<t:ORG>", "</t:ORG>", "<h>", "<t>"} <= set(markers)
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model))
    tokenizer.add_tokens(markers, special_tokens=True)
    labels = task.label_space(examples)
    first, second = task.encode(examples, tokenizer, labels, max_length=32)
    tokens = tokenizer.convert_ids_to_tokens(first["input_ids"])
    assert tokens[first["head_start"]] == "<h:PER>" and tokens[first["tail_start"]] == "<t:ORG>"
    assert tokens[first["head_start"] + 1] == "ann"
    plain = tokenizer.convert_ids_to_tokens(second["input_ids"])
    assert plain[second["head_start"]] == "<h>" and plain[second["tail_start"]] == "<t>"
    # a long text is cut around the two entities, never through them
    long = task._example(row("x " * 80 + "Ann met Bob there." + " y" * 80, "Ann", "Bob", "Other"), RunConfig())
    (cut,) = task.encode([long], tokenizer, labels, max_length=32)
    cut_tokens = tokenizer.convert_ids_to_tokens(cut["input_ids"])
    assert len(cut_tokens) == 32 and cut_tokens[cut["head_start"]] == "<h>" and cut_tokens[cut["tail_start"]] == "<t>"


def test_trains_saves_and_reloads_with_its_markers(tiny_model: Path, tmp_path: Path):
    from taskkit import api

    data = tmp_path / "data"
    write_jsonl(data / "train.jsonl", ROWS * 6)
    write_jsonl(data / "test.jsonl", ROWS)
    result = api.run("relation", "full", data, tmp_path / "out", model=str(tiny_model), epochs=2, lr=1e-3,
                     max_length=32, seed=1, progress=False)
    assert {"official_macro_f1", "micro_f1", "accuracy"} <= set(result.metrics)
    loaded = api.load(tmp_path / "out")
    query = {k: v for k, v in ROWS[0].items() if k != "label"}
    assert api.predict(loaded, [query]) == api.predict(result.predictor, [query])
    assert len(loaded.tokenizer) == len(result.predictor.tokenizer)  # markers came back with the model


def test_relation_is_offered_by_the_full_mode():
    from taskkit import registry

    assert registry.get_mode("full").supports(registry.get_task("relation"))


def test_every_other_training_mode_that_offers_relation_trains_it(tiny_model: Path, tmp_path: Path):
    from taskkit import api, registry

    modes = [m for m, (mode, _) in registry.modes().items()
             if m != "full" and mode.needs_training_data and mode.supports(registry.get_task("relation"))]
    if not modes:
        pytest.skip("no other training mode supports relation")
    data = tmp_path / "data"
    write_jsonl(data / "train.jsonl", ROWS * 6)
    write_jsonl(data / "test.jsonl", ROWS)
    query = [{k: v for k, v in ROWS[0].items() if k != "label"}]
    for mode in modes:
        result = api.run("relation", mode, data, tmp_path / mode, model=str(tiny_model), epochs=1, lr=1e-3,
                         max_length=32, progress=False)
        assert "official_macro_f1" in result.metrics
        assert api.predict(api.load(tmp_path / mode), query) == api.predict(result.predictor, query)


def test_each_directed_label_has_a_hypothesis_for_zero_shot():
    task = relation.RelationTask()
    example = task._example(ROWS[0], RunConfig())  # head "spark", tail "fire"
    assert task.hypothesis("Cause-Effect(e1,e2)", example) == "spark causes fire."
    assert task.hypothesis("Cause-Effect(e2,e1)", example) == "fire causes spark."
    assert task.hypothesis("Other", example) is None
    assert len(task.label_descriptions) == 18
