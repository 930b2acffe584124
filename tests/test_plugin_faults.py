"""Faulty plugins are isolated: a warning naming the plugin, and every other command still works.

Plugins here are tiny distributions written into a temporary site folder (a module and a
dist-info with a ``taskkit`` entry point) and put on ``sys.path``: found through the real entry
points, without pip. One subprocess test checks ``taskkit --help`` in a fresh process.
"""

from __future__ import annotations

import itertools
import os
import warnings
from pathlib import Path

import pytest
from conftest import subprocess_env

from taskkit import plugins, registry
from taskkit.cli import app, main
from taskkit.plugins import PluginLoadWarning

_ids = itertools.count()

HEADER = """
import taskkit
from taskkit.classification import ClassificationTask


class Task(ClassificationTask):
    name = {task!r}
    description = "a task of a test plugin"
"""


def _distribution(site: Path, dist: str, entry: str, body: str, task: str = "") -> str:
    """Write a distribution ``dist`` whose entry point ``entry`` is a fresh module; its name."""
    module = f"taskkit_fault_{next(_ids)}_{os.getpid()}"
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[taskkit]\n{entry} = {module}\n", encoding="utf-8")
    source = HEADER.format(task=task or f"{entry}-task") + body
    (site / f"{module}.py").write_text(source, encoding="utf-8")
    return module


@pytest.fixture
def site(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    plugins.reset()
    return folder


GOOD = """
@taskkit.hookimpl
def register_tasks(register):
    register(Task())
"""


def _tasks_listed(capsys) -> list[str]:
    capsys.readouterr()
    assert main(["tasks"]) == 0
    return [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()]


def _help(capsys) -> str:
    capsys.readouterr()
    assert main(["--help"]) == 0
    return capsys.readouterr().out


def _only(record, plugin: str) -> str:
    messages = [str(w.message) for w in record if issubclass(w.category, PluginLoadWarning)]
    assert messages and all(f"plugin {plugin!r}" in m for m in messages), messages
    return messages[0]


# --- import -------------------------------------------------------------------------------------
@pytest.mark.parametrize("body, shown", [
    ("raise RuntimeError('exploded on import')\n", "RuntimeError: exploded on import"),
    ("import sys\nsys.exit(3)\n", "SystemExit: 3"),
    ("raise SystemExit('bye')\n", "SystemExit: bye"),
    ("import no_such_dependency_anywhere\n", "ModuleNotFoundError"),
])
def test_fault_at_import_is_a_warning(site, capsys, body, shown):
    _distribution(site, "bad-import", "bad-import", body)
    _distribution(site, "good-one", "good-one", GOOD)
    with pytest.warns(PluginLoadWarning) as record:
        listed = _tasks_listed(capsys)
    message = _only(record, "bad-import")
    assert "failed to load" in message and shown in message
    assert "sentiment" in listed and "good-one-task" in listed
    assert "good-one" in [name for name, _ in plugins.plugin_names()]
    assert "bad-import" not in [name for name, _ in plugins.plugin_names()]


def test_keyboard_interrupt_at_import_is_not_swallowed(site):
    _distribution(site, "interrupted", "interrupted", "raise KeyboardInterrupt\n")
    with pytest.raises(KeyboardInterrupt):
        plugins.get_plugin_manager()


# --- register hooks -----------------------------------------------------------------------------
def test_register_tasks_raising(site, capsys):
    _distribution(site, "half-tasks", "half-tasks", """
@taskkit.hookimpl
def register_tasks(register):
    register(Task())
    raise ValueError("second task is broken")
""")
    with pytest.warns(PluginLoadWarning) as record:
        listed = _tasks_listed(capsys)
    message = _only(record, "half-tasks")
    assert "register_tasks hook" in message and "ValueError: second task is broken" in message
    assert "half-tasks-task" not in listed  # what it registered before failing is dropped
    assert "sentiment" in listed and "topic" in listed


def test_register_modes_exiting(site, capsys):
    _distribution(site, "exit-modes", "exit-modes", """
import sys

@taskkit.hookimpl
def register_modes(register):
    sys.exit("no modes today")
""")
    with pytest.warns(PluginLoadWarning) as record:
        assert main(["modes"]) == 0
    assert "SystemExit: no modes today" in _only(record, "exit-modes")
    assert "full\t" in capsys.readouterr().out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginLoadWarning)
        assert "full" in registry.modes()


def test_register_commands_raising(site, capsys):
    _distribution(site, "bad-commands", "bad-commands", """
import typer

@taskkit.hookimpl
def register_commands(cli):
    @cli.command("half-added")
    def half_added() -> None:
        '''A command added just before the hook failed.'''

    raise RuntimeError("command hook broke")
""")
    with pytest.warns(PluginLoadWarning) as record:
        out = _help(capsys)
    message = _only(record, "bad-commands")
    assert "register_commands hook" in message and "RuntimeError: command hook broke" in message
    assert "half-added" not in out
    assert "merge" in out and "predict" in out  # the built-in plugins' commands and taskkit's own
    assert main(["tasks"]) == 0


# --- hooks that do not fit ----------------------------------------------------------------------
def test_misspelled_hook_name(site, capsys):
    _distribution(site, "typo", "typo", """
@taskkit.hookimpl
def register_task(register):
    register(Task())
""")
    _distribution(site, "good-one", "good-one", GOOD)
    with pytest.warns(PluginLoadWarning) as record:
        out = _help(capsys)
    message = _only(record, "typo")
    assert "unknown hook(s) register_task" in message and "register_tasks" in message
    assert "predict" in out
    listed = _tasks_listed(capsys)
    assert "sentiment" in listed and "good-one-task" in listed
    assert "typo" not in [name for name, _ in plugins.plugin_names()]


def test_hook_with_a_wrong_signature(site, capsys):
    _distribution(site, "bad-signature", "bad-signature", """
@taskkit.hookimpl
def register_tasks(register, settings):
    register(Task())
""")
    with pytest.warns(PluginLoadWarning) as record:
        out = _help(capsys)
    message = _only(record, "bad-signature")
    assert "invalid hook" in message and "settings" in message
    assert "run" in out
    assert "sentiment" in _tasks_listed(capsys)


def test_hook_taking_fewer_arguments_is_fine(site, capsys):
    _distribution(site, "no-args", "no-args", """
@taskkit.hookimpl
def register_commands():
    pass

@taskkit.hookimpl
def register_tasks(register):
    register(Task())
""")
    with warnings.catch_warnings():
        warnings.simplefilter("error", PluginLoadWarning)
        assert "no-args-task" in _tasks_listed(capsys)
        _help(capsys)


# --- one name, two distributions ----------------------------------------------------------------
def test_two_distributions_declaring_one_plugin_name(site, capsys):
    _distribution(site, "taskkit-alpha", "shared", GOOD, task="alpha-task")
    _distribution(site, "taskkit-beta", "shared", GOOD, task="beta-task")
    assert main(["tasks"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert "'shared'" in err[0] and "taskkit-alpha" in err[0] and "taskkit-beta" in err[0]


def test_two_distributions_one_name_left_out_by_env(site, capsys, monkeypatch):
    _distribution(site, "taskkit-alpha", "shared", GOOD, task="alpha-task")
    _distribution(site, "taskkit-beta", "shared", GOOD, task="beta-task")
    monkeypatch.setenv("TASKKIT_LOAD_PLUGINS", "taskkit,taskkit-beta")
    plugins.reset()
    listed = _tasks_listed(capsys)
    assert "beta-task" in listed and "alpha-task" not in listed and "sentiment" in listed


# --- commands once per process ------------------------------------------------------------------
def test_plugin_commands_are_added_once(site, capsys):
    module = _distribution(site, "counted", "counted", """
import typer

CALLS = []

@taskkit.hookimpl
def register_commands(cli):
    CALLS.append(1)

    @cli.command("counted-hello")
    def hello() -> None:
        '''Say hello.'''
        typer.echo("hello")
""")
    assert main(["counted-hello"]) == 0
    commands = len(app.registered_commands)
    assert main(["counted-hello"]) == 0
    assert main(["--help"]) == 0
    assert len(app.registered_commands) == commands
    names = [c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands]
    assert names.count("counted-hello") == 1 and names.count("merge") == 1
    import sys

    assert sys.modules[module].CALLS == [1]
    assert capsys.readouterr().out.startswith("hello\nhello\n")


# --- a fresh process ----------------------------------------------------------------------------
def test_help_works_in_a_fresh_process_with_broken_plugins(tmp_path, run_taskkit):
    site = tmp_path / "site"
    site.mkdir()
    _distribution(site, "exits-on-import", "exits-on-import", "import sys\nsys.exit(1)\n")
    _distribution(site, "typo", "typo", "@taskkit.hookimpl\ndef register_task(register):\n    pass\n")
    _distribution(site, "bad-commands", "bad-commands",
                  "@taskkit.hookimpl\ndef register_commands(cli):\n    raise RuntimeError('boom')\n")
    paths = [str(site), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = subprocess_env(PYTHONPATH=os.pathsep.join(paths))
    proc = run_taskkit("--help", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "predict" in proc.stdout and "merge" in proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 3, proc.stderr
    assert all(line.startswith("warning: PluginLoadWarning: plugin '") for line in lines)
    for name in ("exits-on-import", "typo", "bad-commands"):
        assert sum(f"plugin '{name}'" in line for line in lines) == 1
    tasks = run_taskkit("tasks", env=env)
    assert tasks.returncode == 0 and any(line.startswith("sentiment\t") for line in tasks.stdout.splitlines())
