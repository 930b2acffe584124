"""The plugin host: each hook, name clashes, broken plugins, and TASKKIT_LOAD_PLUGINS."""

from __future__ import annotations

import json
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import typer

import taskkit
from taskkit import plugins, registry
from taskkit.artifacts import write_atomically
from taskkit.classification import ClassificationTask
from taskkit.cli import main
from taskkit.contracts import LabelSpace, Mode, Predictor
from taskkit.errors import TaskkitError
from taskkit.registry import DuplicateNameError

from conftest import DEMO, read_jsonl


# --- a mock plugin --------------------------------------------------------------------------
class Topic(ClassificationTask):
    name = "mock-topic"
    description = "a task added by a test plugin"


class MajorityPredictor(Predictor):
    """Always the most frequent training label: a model without torch."""

    def __init__(self, task, labels: LabelSpace, majority: str) -> None:
        self.task, self.labels, self.majority = task, labels, majority
        self.training = {"majority": majority}

    def predict_proba(self, inputs):
        import numpy as np

        row = np.array([1.0 if n == self.majority else 0.0 for n in self.labels.names])
        return np.tile(row, (len(inputs), 1))

    def save(self, path):
        def write(folder: Path) -> None:
            (folder / "majority.json").write_text(json.dumps({"majority": self.majority}), encoding="utf-8")

        return write_atomically(path, write, {"task": self.task.name, "mode": "mock-majority",
                                              "labels": list(self.labels.names)})


class MajorityMode(Mode):
    name = "mock-majority"
    description = "predict the most frequent training label"

    def supports(self, task) -> bool:
        return task.level == "sequence"

    def fit(self, task, splits, config) -> Predictor:
        labels = task.label_space(splits.train)
        majority = Counter(e["label"] for e in splits.train).most_common(1)[0][0]
        return MajorityPredictor(task, labels, majority)

    def load(self, path: Path, task, metadata: dict[str, Any]) -> Predictor:
        saved = json.loads((path / "majority.json").read_text(encoding="utf-8"))
        return MajorityPredictor(task, LabelSpace(tuple(metadata["labels"])), saved["majority"])


class TokenOnlyMode(MajorityMode):
    name = "mock-token-only"

    def supports(self, task) -> bool:
        return task.level == "token"


class MockPlugin:
    @taskkit.hookimpl
    def register_tasks(self, register):
        register(Topic())

    @taskkit.hookimpl
    def register_modes(self, register):
        register(MajorityMode())
        register(TokenOnlyMode())

    @taskkit.hookimpl
    def register_commands(self, cli: typer.Typer):
        @cli.command("mock-hello")
        def hello(name: str = typer.Argument(...), shout: bool = typer.Option(False)) -> None:
            """Greet NAME (a command added by a plugin)."""
            text = f"hello {name}"
            typer.echo(text.upper() if shout else text)

        @cli.command("mock-fail")
        def fail(code: int = typer.Option(3)) -> None:
            """Exit with CODE."""
            raise typer.Exit(code)

        @cli.command("mock-user-error")
        def user_error() -> None:
            """Fail with a user error."""
            raise TaskkitError("the mock command was given bad input")


@pytest.fixture
def mock_plugin():
    """MockPlugin registered into the live plugin manager, and unregistered afterwards."""
    pm = plugins.get_plugin_manager()
    plugin = MockPlugin()
    pm.register(plugin, name="mock")
    registry.clear()
    yield plugin
    pm.unregister(name="mock")
    registry.clear()


def _register(name: str, obj: object) -> None:
    plugins.get_plugin_manager().register(obj, name=name)
    registry.clear()


# --- register_tasks -----------------------------------------------------------------------------
def test_register_tasks_adds_a_task(mock_plugin, capsys):
    task, plugin_name = registry.tasks()["mock-topic"]
    assert isinstance(task, Topic) and plugin_name == "mock"
    assert registry.get_task("mock-topic") is task
    assert "sentiment" in registry.tasks()  # built-ins are still there
    assert main(["tasks"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("mock-topic\t"))
    assert "(mock) a task added by a test plugin" in row
    assert "mock-majority" in row and "full" in row


def test_unregistering_removes_the_task(mock_plugin):
    assert "mock-topic" in registry.tasks()
    plugins.get_plugin_manager().unregister(name="mock")
    registry.clear()
    assert "mock-topic" not in registry.tasks()
    with pytest.raises(TaskkitError, match="unknown task 'mock-topic'"):
        registry.get_task("mock-topic")
    plugins.get_plugin_manager().register(mock_plugin, name="mock")  # for the fixture's teardown


# --- register_modes ---------------------------------------------------------------------------
def test_register_modes_adds_modes(mock_plugin, capsys):
    mode, plugin_name = registry.modes()["mock-majority"]
    assert isinstance(mode, MajorityMode) and plugin_name == "mock"
    assert main(["modes"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("mock-majority\t"))
    assert "sentiment" in row and "mock-topic" in row
    row = next(line for line in out.splitlines() if line.startswith("mock-token-only\t"))
    assert "sentiment" not in row


def test_a_plugin_mode_trains_saves_and_predicts(mock_plugin, tmp_path, capsys):
    """A mode from a plugin runs end to end through the API and the CLI, no torch involved."""
    result = taskkit.run("sentiment", "mock-majority", DEMO, tmp_path / "run")
    test_rows = read_jsonl(DEMO / "test.jsonl")
    majority = result.predictor.majority
    expected = sum(r["label"] == majority for r in test_rows) / len(test_rows)
    assert result.metrics["accuracy"] == pytest.approx(expected)
    assert result.metrics["training"] == {"majority": majority}
    meta = json.loads((tmp_path / "run" / "model" / "taskkit.json").read_text())
    assert meta["mode"] == "mock-majority" and meta["task"] == "sentiment"
    assert main(["predict", str(tmp_path / "run"), "any text at all"]) == 0
    record = json.loads(capsys.readouterr().out.strip())
    assert record["predicted"] == majority


def test_mode_that_does_not_support_the_task(mock_plugin, capsys):
    with pytest.raises(TaskkitError, match="does not support task 'sentiment'.*mock-majority"):
        registry.get_pair("sentiment", "mock-token-only")
    assert main(["run", "sentiment", "--mode", "mock-token-only"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mode 'mock-token-only' does not support task 'sentiment'" in err[0]


# --- register_commands -------------------------------------------------------------------------
def test_register_commands_adds_a_cli_command(mock_plugin, capsys):
    assert main(["--help"]) == 0
    assert "mock-hello" in capsys.readouterr().out
    assert main(["mock-hello", "world"]) == 0
    assert capsys.readouterr().out == "hello world\n"
    assert main(["mock-hello", "world", "--shout"]) == 0
    assert capsys.readouterr().out == "HELLO WORLD\n"


def test_plugin_command_exit_codes_and_errors(mock_plugin, capsys):
    assert main(["mock-fail", "--code", "3"]) == 3
    assert main(["mock-user-error"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: the mock command was given bad input"]


def test_plugin_commands_are_gone_without_the_plugin(capsys):
    assert main(["--help"]) == 0
    assert "mock-hello" not in capsys.readouterr().out


# --- name clashes ----------------------------------------------------------------------------
class Clash:
    def __init__(self, task_name: str) -> None:
        self.task_name = task_name

    @taskkit.hookimpl
    def register_tasks(self, register):
        task = Topic()
        task.name = self.task_name  # instance attribute shadows the class's name
        register(task)


def test_two_plugins_registering_one_task_name(capsys):
    _register("first-plugin", Clash("shared-name"))
    _register("second-plugin", Clash("shared-name"))
    with pytest.raises(DuplicateNameError) as info:
        registry.tasks()
    message = str(info.value)
    assert "'shared-name'" in message and "first-plugin" in message and "second-plugin" in message
    assert main(["tasks"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "first-plugin" in err[0] and "second-plugin" in err[0]


def test_plugin_clashing_with_a_builtin_task():
    _register("copycat", Clash("sentiment"))
    with pytest.raises(DuplicateNameError, match="'sentiment'.*two plugins") as info:
        registry.tasks()
    assert "'sentiment'" in str(info.value) and "'copycat'" in str(info.value)


def test_two_plugins_registering_one_mode_name():
    class ModeA:
        @taskkit.hookimpl
        def register_modes(self, register):
            register(MajorityMode())

    _register("mode-a", ModeA())
    _register("mode-b", ModeA())
    with pytest.raises(DuplicateNameError) as info:
        registry.modes()
    assert "mode-a" in str(info.value) and "mode-b" in str(info.value)


def test_a_registered_task_needs_a_name():
    class Nameless:
        @taskkit.hookimpl
        def register_tasks(self, register):
            register(object())

    _register("nameless", Nameless())
    with pytest.raises(TaskkitError, match="plugin 'nameless' registered a task without a name"):
        registry.tasks()


# --- broken plugins and TASKKIT_LOAD_PLUGINS -----------------------------------------------------
def _fake_distribution(site: Path, dist: str, entry: str, module: str, source: str) -> None:
    """A minimal installed distribution: a module plus a dist-info with a taskkit entry point."""
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[taskkit]\n{entry} = {module}\n", encoding="utf-8")
    (site / f"{module}.py").write_text(source, encoding="utf-8")


@pytest.fixture
def broken_site(tmp_path, monkeypatch):
    site = tmp_path / "site"
    _fake_distribution(site, "taskkit-fake-broken", "fake-broken", "taskkit_fake_broken",
                       "raise RuntimeError('fake plugin exploded on import')\n")
    monkeypatch.syspath_prepend(str(site))
    plugins.reset()
    return site


def test_plugin_failing_on_import_only_warns(broken_site, capsys):
    with pytest.warns(plugins.PluginLoadWarning, match="fake-broken.*RuntimeError: fake plugin exploded"):
        tasks = registry.tasks()
    assert "sentiment" in tasks
    assert "full" in registry.modes()
    names = [name for name, _ in plugins.plugin_names()]
    assert "fake-broken" not in names and "sentiment" in names
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", plugins.PluginLoadWarning)
        assert main(["tasks"]) == 0
    assert "sentiment\t" in capsys.readouterr().out


def test_load_plugins_env_can_leave_a_broken_plugin_out(broken_site, monkeypatch):
    monkeypatch.setenv("TASKKIT_LOAD_PLUGINS", "sentiment, full")
    plugins.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("error", plugins.PluginLoadWarning)
        assert "sentiment" in registry.tasks()
    assert sorted(name for name, _ in plugins.plugin_names()) == ["full", "sentiment"]


def test_load_plugins_env_by_entry_point_name(monkeypatch):
    monkeypatch.setenv("TASKKIT_LOAD_PLUGINS", "sentiment")
    plugins.reset()
    assert list(registry.tasks()) == ["sentiment"]
    assert registry.modes() == {}
    with pytest.raises(TaskkitError, match="unknown mode 'full' \\(known: none installed\\)"):
        registry.get_mode("full")


def test_load_plugins_env_by_distribution_name(monkeypatch):
    monkeypatch.setenv("TASKKIT_LOAD_PLUGINS", "taskkit")
    plugins.reset()
    assert "sentiment" in registry.tasks() and "full" in registry.modes()


def test_load_plugins_env_empty_loads_nothing(monkeypatch, capsys):
    monkeypatch.setenv("TASKKIT_LOAD_PLUGINS", "")
    plugins.reset()
    assert registry.tasks() == {} and registry.modes() == {}
    assert plugins.plugin_names() == []
    assert main(["tasks"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["run", "sentiment"]) == 2
    assert "unknown task 'sentiment' (known: none installed)" in capsys.readouterr().err


def test_reset_reloads_plugins():
    first = plugins.get_plugin_manager()
    assert plugins.get_plugin_manager() is first
    registry.tasks()
    plugins.reset()
    assert plugins.get_plugin_manager() is not first
    assert "sentiment" in registry.tasks()
