"""The plugin contract is declared: every capability the core calls on a task, mode or predictor is
a member of ``Task`` / ``Mode`` / ``Predictor`` with a default, and nothing in taskkit/ or the
built-in plugins probes plugin objects with ``getattr`` / ``hasattr``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

import pytest
from conftest import REPO

from taskkit.contracts import LabelSpace, Level, Mode, Predictor, RunConfig, Task
from taskkit.errors import TaskkitError

#: the capabilities the core calls, each declared on the contract with a default
CAPABILITIES = ("check_known", "fixed_threshold", "choose_threshold", "abstain_label", "negative_label",
                "hypothesis", "fills_hypotheses_per_example", "output_layer", "ragged", "special_tokens",
                "collect_logits", "format", "load", "out")
PROBE = re.compile(
    r"\b(?:get|has)attr\(\s*(?:self\.)?(?:task|mode|predictor|head|member|model\.head)\s*,"  # probing a plugin object
    r"|\b(?:get|has)attr\([^)\n]*[\"'](?:" + "|".join(CAPABILITIES) + r")[\"']")  # or probing for a capability


def test_no_getattr_probing_of_plugin_objects():
    found = []
    for folder in ("taskkit", "taskkit_plugins"):
        for file in sorted((REPO / folder).rglob("*.py")):
            for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
                if PROBE.search(line):
                    found.append(f"{file.relative_to(REPO)}:{number}: {line.strip()}")
    assert not found, "capabilities probed instead of declared:\n" + "\n".join(found)


def test_the_probe_pattern_catches_what_the_old_code_did():
    for line in ('check = getattr(task, "check_known", None)', 'out = getattr(head, "out", None)',
                 'abstain = getattr(self, "abstain_label", None)', 'return callable(getattr(task, "hypothesis", None))',
                 'if hasattr(predictor, "format"):'):
        assert PROBE.search(line), line
    for line in ('value = getattr(config, name)', 'fn = getattr(libc, "renameat2", None)'):
        assert not PROBE.search(line), line


class Bare(Task):
    """A task implementing only what is abstract: every capability keeps its default."""

    name = "bare"
    level: ClassVar[Level] = "sequence"

    def read(self, path: Path, config: RunConfig) -> list:
        return []

    def label_space(self, examples: Any) -> LabelSpace:
        return LabelSpace(("a", "b"))

    def as_example(self, item: Any) -> dict:
        return {"text": item}

    def encode(self, examples: Any, tokenizer: Any, labels: LabelSpace, max_length: int, truncate: bool = False) -> list:
        return []

    def head(self, hidden_size: int, labels: LabelSpace, dropout: float) -> Any:
        return None

    def loss(self, labels: LabelSpace) -> Any:
        return None

    def probabilities(self, logits: Any, labels: LabelSpace) -> Any:
        return logits

    def decode(self, probabilities: Any, labels: LabelSpace, threshold: float | None = None) -> list:
        return []

    def gold(self, examples: Any, labels: LabelSpace) -> list:
        return []

    def metrics(self, gold: Any, predicted: Any, labels: LabelSpace) -> dict:
        return {"accuracy": 1.0}


def test_task_capability_defaults():
    task, labels = Bare(), LabelSpace(("a", "b"))
    assert task.abstain_label is None and task.negative_label is None
    assert task.fills_hypotheses_per_example is False and task.ragged is False
    assert task.check_known([{"text": "x", "label": "never seen"}], labels, "dev") is None  # an open label set
    assert task.fixed_threshold(RunConfig()) is None
    assert task.choose_threshold(object(), [], labels, RunConfig()) is None
    assert task.hypothesis("a", {"text": "x"}) is None
    assert task.output_layer(object()) is None
    assert task.special_tokens([]) == [] and task.collect_logits([], [], 0, labels) is None


def test_predictor_and_mode_defaults():
    class P(Predictor):
        def predict_proba(self, inputs: Any) -> Any:
            return None

        def save(self, path: Any) -> Path:
            return Path(path)

    class M(Mode):
        name = "m"

        def supports(self, task: Task) -> bool:
            return True

        def fit(self, task: Task, splits: Any, config: RunConfig) -> Predictor:
            return P()

    assert P.format is None and P.threshold is None and P.training is None
    with pytest.raises(NotImplementedError):
        P.load(Path("."), Bare(), {})
    with pytest.raises(TaskkitError, match="names no format"):
        M().load(Path("."), Bare(), {})  # only 0.1.0-style folders without a format reach a mode


def test_built_in_tasks_declare_what_they_have():
    from taskkit import registry

    relation, intent, sentiment = (registry.get_task(n) for n in ("relation", "intent", "sentiment"))
    assert relation.fills_hypotheses_per_example and relation.negative_label == relation.abstain_label == "Other"
    assert intent.abstain_label == "oos" and intent.negative_label is None
    assert not sentiment.fills_hypotheses_per_example and sentiment.abstain_label is None
    labels = LabelSpace(("negative", "positive"))
    with pytest.raises(TaskkitError, match="dev.jsonl:3: label 'neutral' in dev never occurs in training data"):
        sentiment.check_known([{"text": "x", "label": "neutral", "_where": "dev.jsonl:3"}], labels, "dev")
    head = sentiment.head(8, labels, 0.1)
    assert sentiment.output_layer(head) is head.out and head.out.out_features == 2
    assert registry.get_task("ner").output_layer(registry.get_task("ner").head(8, labels, 0.1)) is None


def test_the_zero_shot_mode_reads_the_declared_flag():
    """A pair task that declares per-example hypotheses gets the zero-shot mode, one that does not
    (whatever attributes it happens to have) does not."""
    from taskkit import registry
    from taskkit.classification import PairClassificationTask

    class Filled(PairClassificationTask):
        name = "filled"
        fills_hypotheses_per_example = True

        def hypothesis(self, label: str, example: dict, template: str | None = None) -> str | None:
            return f"{example['text']} is {label}"

    class Plain(PairClassificationTask):
        name = "plain"
        hypothesis = "not a method"  # type: ignore[assignment]  # the old callable() probe's blind spot

    zero_shot = registry.get_mode("zero-shot")
    assert zero_shot.supports(Filled()) and not zero_shot.supports(Plain())


def test_one_host_owns_the_plugin_manager_and_every_table():
    """registry and formats ask the host for their tables; plugins.py imports neither (no circle),
    and one reset forgets the manager and every table at once."""
    source = (REPO / "taskkit" / "plugins.py").read_text(encoding="utf-8")
    imports = re.findall(r"^\s*(?:from|import) taskkit\S*(?: import .*)?$", source, re.MULTILINE)
    assert imports and not [line for line in imports if re.search(r"\b(registry|formats)\b", line)]
    from taskkit import formats, plugins, registry

    tasks, modes, table = registry.tasks(), registry.modes(), formats.formats()
    assert registry.tasks() is tasks and formats.formats() is table  # built once
    pm = plugins.get_plugin_manager()
    plugins.reset()
    assert plugins.get_plugin_manager() is not pm
    assert registry.tasks() is not tasks and registry.modes() is not modes and formats.formats() is not table
    assert set(registry.tasks()) == set(tasks) and set(formats.formats()) == set(table)
