"""Model cards: every saved model folder gets a README.md in the Hugging Face layout, without the
training machine's paths (nor in taskkit.json), readable by other users."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import yaml
from conftest import DEMO

SECTIONS = ("## Task", "## Labels", "## Base model", "## Mode", "## Training", "## Data", "## Test metrics",
            "## Intended use", "## Limitations")


def _front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def _no_machine_paths(text: str, *paths: Path) -> None:
    for path in paths:
        assert str(path) not in text
    assert str(Path.home()) + "/" not in text and "/tmp/" not in text and str(DEMO.parent) not in text


def test_run_folder_card_has_the_sections_and_no_local_paths(trained_run, tiny_model: Path) -> None:
    model = trained_run.out / "model"
    card = (model / "README.md").read_text(encoding="utf-8")
    front = _front_matter(card)
    assert front["library_name"] == "taskkit" and front["pipeline_tag"] == "text-classification"
    assert "sentiment" in front["tags"] and "full" in front["tags"] and "base_model" not in front  # a local base
    for section in SECTIONS:
        assert f"\n{section}\n" in card, section
    assert "- `negative`" in card and "- `positive`" in card
    assert f"| accuracy | {trained_run.metrics['accuracy']:.4f} |" in card  # the run's test metrics
    assert "taskkit run sentiment --mode full" in card and "--model <local>/" + tiny_model.name in card
    meta_text = (model / "taskkit.json").read_text(encoding="utf-8")
    _no_machine_paths(card, tiny_model, trained_run.out)
    _no_machine_paths(meta_text, tiny_model, trained_run.out)
    meta = json.loads(meta_text)
    assert "README.md" in meta["files"]
    assert meta["settings"]["data"] == DEMO.name and meta["settings"]["base_model"] == f"<local>/{tiny_model.name}"


def test_saved_folder_is_readable_by_others(trained_run) -> None:
    model = trained_run.out / "model"
    for path in [model, *model.iterdir()]:
        if path.is_symlink():
            continue
        mode = os.stat(path).st_mode
        assert mode & stat.S_IROTH, path
        if path.is_dir():
            assert mode & stat.S_IXOTH, path


def test_plain_save_gets_a_card_with_a_hub_base_model(trained_run, tmp_path: Path) -> None:
    predictor = trained_run.predictor
    settings = dict(predictor.settings)
    try:
        predictor.settings["base_model"] = "sentence-transformers/all-MiniLM-L6-v2"
        out = predictor.save(tmp_path / "saved")
    finally:
        predictor.settings.clear()
        predictor.settings.update(settings)
    card = (out / "README.md").read_text(encoding="utf-8")
    assert _front_matter(card)["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert "## Test metrics" not in card and "## Training" not in card  # no run: nothing invented
    assert "## Labels" in card and "## Limitations" in card
    _no_machine_paths(card + (out / "taskkit.json").read_text(encoding="utf-8"), tmp_path)


def test_a_card_the_user_edited_is_not_replaced(trained_run, tmp_path: Path) -> None:
    import pytest

    from taskkit.errors import TaskkitError

    out = trained_run.predictor.save(tmp_path / "saved")
    trained_run.predictor.save(out)  # its own card, untouched: replaced with the folder
    (out / "README.md").write_text((out / "README.md").read_text() + "\nMy own evaluation notes.\n")
    with pytest.raises(TaskkitError, match="model card was edited since taskkit wrote it; refusing to replace it"):
        trained_run.predictor.save(out)
    assert "My own evaluation notes." in (out / "README.md").read_text()
