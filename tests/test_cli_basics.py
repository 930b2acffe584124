"""The command line starts instantly: no heavy imports for listing, help and plugin discovery."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import subprocess_env

HEAVY = ("torch", "transformers", "setfit", "sentence_transformers")

PROBE = """
import json, sys
import taskkit, taskkit.cli, taskkit.api
from taskkit import plugins, registry
tasks, modes = registry.tasks(), registry.modes()
names = plugins.plugin_names()
codes = [taskkit.cli.main(["tasks"]), taskkit.cli.main(["modes"]), taskkit.cli.main(["plugins"]),
         taskkit.cli.main(["--help"])]
print("RESULT " + json.dumps({
    "heavy": [m for m in %r if m in sys.modules],
    "tasks": sorted(tasks), "modes": sorted(modes), "plugins": [n for n, _ in names], "codes": codes,
}))
""" % (HEAVY,)


def _probe(**env: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=subprocess_env(**env),
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    line = next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def test_cli_and_plugin_loading_import_no_heavy_libraries():
    result = _probe()
    assert result["heavy"] == []
    assert "sentiment" in result["tasks"]
    assert "full" in result["modes"]
    assert {"sentiment", "full"} <= set(result["plugins"])
    assert result["codes"] == [0, 0, 0, 0]


def test_importing_taskkit_alone_is_light():
    code = "import sys, taskkit; print([m for m in %r if m in sys.modules])" % (HEAVY,)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_help_exits_zero_and_lists_commands(run_taskkit):
    proc = run_taskkit("--help")
    assert proc.returncode == 0, proc.stderr
    for command in ("run", "predict", "tasks", "modes", "plugins"):
        assert command in proc.stdout
    assert "Traceback" not in proc.stderr


def test_run_help_lists_options(run_taskkit):
    proc = run_taskkit("run", "--help")
    assert proc.returncode == 0, proc.stderr
    for option in ("--mode", "--data", "--model", "--epochs", "--freeze", "--precision", "--text-column"):
        assert option in proc.stdout


def test_tasks_and_modes_listing(run_taskkit):
    tasks = run_taskkit("tasks")
    assert tasks.returncode == 0, tasks.stderr
    row = next(line for line in tasks.stdout.splitlines() if line.startswith("sentiment\t"))
    level, able, origin = row.split("\t")[1:4]
    assert level == "sequence"
    assert "full" in able.removeprefix("modes: ").split(", ")
    assert origin.startswith("(sentiment)")
    modes = run_taskkit("modes")
    assert modes.returncode == 0, modes.stderr
    row = next(line for line in modes.stdout.splitlines() if line.startswith("full\t"))
    able, origin = row.split("\t")[1:3]
    assert "sentiment" in able.removeprefix("tasks: ").split(", ")
    assert origin.startswith("(full)")
    plugins = run_taskkit("plugins")
    assert plugins.returncode == 0
    assert "sentiment\ttaskkit_plugins.sentiment" in plugins.stdout.splitlines()
    assert "full\ttaskkit_plugins.full.mode" in plugins.stdout.splitlines()


def test_usage_errors_are_short_and_exit_2(run_taskkit):
    """Click's own usage errors (unknown command, missing argument, bad number) get no traceback."""
    for args, expected in ((["no-such-command"], "No such command"),
                           (["run"], "Missing argument"),
                           (["run", "sentiment", "--epochs", "many"], "--epochs")):
        proc = run_taskkit(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert expected in proc.stderr


def test_no_arguments_shows_help(run_taskkit):
    proc = run_taskkit()
    assert "Traceback" not in proc.stderr
    assert "Usage" in proc.stdout + proc.stderr
    assert "run" in proc.stdout + proc.stderr
