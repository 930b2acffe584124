"""A real third-party plugin distribution, pip-installed, found through its entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import TESTS, pip_install, plugin_env


_pip_install = pip_install


@pytest.fixture(scope="session")
def example_site(tmp_path_factory) -> Path:
    return _pip_install(TESTS / "example_plugin", tmp_path_factory.mktemp("example-plugin"))


@pytest.fixture(scope="session")
def broken_site(tmp_path_factory) -> Path:
    return _pip_install(TESTS / "broken_plugin", tmp_path_factory.mktemp("broken-plugin"))


_env = plugin_env


@pytest.fixture(scope="session")
def spam_data(tmp_path_factory) -> Path:
    spam = ["WIN a FREE cruise now, click the link", "Cheap pills, no prescription needed",
            "You have been selected for a cash prize", "Limited offer: 90% off designer watches",
            "Claim your lottery winnings today", "Earn $5000 a week from home, ask me how",
            "Hot singles in your area want to meet", "Your account is locked, send your password",
            "Congratulations, you won an iPhone", "Buy followers cheap, instant delivery"]
    ham = ["Are we still on for lunch tomorrow?", "The meeting moved to 3pm, room 204",
           "Can you send me the slides from today?", "Happy birthday! Hope you have a great day",
           "I left the keys under the mat", "Dinner is at seven, bring the salad",
           "Thanks for the review comments, fixed them", "Mum called, please ring her back",
           "The train is late, start without me", "Here is the report you asked for"]
    path = tmp_path_factory.mktemp("spam-data") / "messages.csv"
    lines = ["message,kind"] + [f'"{t}",spam' for t in spam] + [f'"{t}",ham' for t in ham]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_installed_distribution_has_the_entry_point(example_site):
    infos = list(example_site.glob("taskkit_example_plugin-*.dist-info"))
    assert len(infos) == 1
    assert "example = taskkit_example_plugin" in (infos[0] / "entry_points.txt").read_text()
    assert (example_site / "taskkit_example_plugin.py").is_file()


def test_third_party_task_is_listed(example_site, run_taskkit):
    proc = run_taskkit("tasks", env=_env(example_site))
    assert proc.returncode == 0, proc.stderr
    row = next(line for line in proc.stdout.splitlines() if line.startswith("spam\t"))
    assert "\tsequence\t" in row and "full" in row and "(example)" in row
    assert any(line.startswith("sentiment\t") for line in proc.stdout.splitlines())
    plugins = run_taskkit("plugins", env=_env(example_site))
    assert "example\ttaskkit_example_plugin" in plugins.stdout.splitlines()


def test_third_party_plugin_is_not_seen_without_its_path(run_taskkit):
    proc = run_taskkit("tasks")
    assert proc.returncode == 0
    assert not any(line.startswith("spam\t") for line in proc.stdout.splitlines())


def test_third_party_task_trains_and_predicts(example_site, spam_data, tiny_model, tmp_path, run_taskkit):
    out = tmp_path / "spam-run"
    env = _env(example_site)
    proc = run_taskkit("run", "spam", "--mode", "full", "--data", spam_data, "--model", tiny_model,
                       "--epochs", "1", "--text-column", "message", "--label-column", "kind",
                       "--out", out, "-q", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    meta = json.loads((out / "model" / "taskkit.json").read_text())
    assert meta["task"] == "spam" and meta["mode"] == "full" and meta["labels"] == ["ham", "spam"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "spam" and metrics["evaluated_on"] == "dev"
    assert metrics["training"]["epochs_run"] == 1

    predicted = run_taskkit("predict", out, "free money, click now", env=env)
    assert predicted.returncode == 0, predicted.stderr
    record = json.loads(predicted.stdout.strip())
    assert record["predicted"] in ("ham", "spam")
    assert set(record["probabilities"]) == {"ham", "spam"}

    # the saved model names its task: without the plugin it cannot be loaded, and says why
    missing = run_taskkit("predict", out, "free money")
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [missing.stderr.strip()]
    assert "unknown task 'spam'" in missing.stderr


def test_broken_distribution_warns_and_the_cli_keeps_working(broken_site, example_site, run_taskkit):
    proc = run_taskkit("tasks", env=_env(broken_site, example_site))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "PluginLoadWarning" in proc.stderr
    assert "'broken'" in proc.stderr and "no-such-dependency" in proc.stderr
    listed = [line.split("\t")[0] for line in proc.stdout.splitlines()]
    assert "sentiment" in listed and "spam" in listed


def test_broken_distribution_left_out_by_env(broken_site, run_taskkit):
    proc = run_taskkit("tasks", env=_env(broken_site, TASKKIT_LOAD_PLUGINS="taskkit"))
    assert proc.returncode == 0
    assert proc.stderr == ""
    assert any(line.startswith("sentiment\t") for line in proc.stdout.splitlines())
