"""What taskkit may replace: its own model folders and run folders, never anything a user put there.

A model folder is taskkit's when its ``taskkit.json`` lists (``"files"``) every file in it; a folder
saved before that list existed is taskkit's when it holds only names taskkit's savers write. A
path may be replaced when nothing is there, an empty folder is there, or a model folder all of
whose files are taskkit's. A run folder (``--out``) may hold ``model/``, ``metrics.json``,
``predictions.jsonl``, the run's PNG pictures and ``checkpoints/``; anything else in it is the user's, refused unless
``overwrite`` (then left untouched beside taskkit's entries). Every refusal is one
:class:`TaskkitError` line naming the path and what is in the way, raised before any work.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from taskkit.errors import TaskkitError

METADATA = "taskkit.json"
#: the run's pictures (:mod:`taskkit.plots`), kept in model/ and linked from the run folder like the metrics
PLOT_FILES = ("confusion_matrix.png", "reliability.png", "training_curve.png", "per_label_f1.png")
RUN_FILES = ("metrics.json", "predictions.jsonl", *PLOT_FILES)
RUN_ENTRIES = ("model", *RUN_FILES, "checkpoints")
# what taskkit's savers wrote before taskkit.json listed its files
LEGACY_FILES = {
    "config.json", "model.safetensors", "head.safetensors", "delta.safetensors", "self_train.safetensors",
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "vocab.txt",
    "vocab.json", "merges.txt", "spiece.model", "sentencepiece.bpe.model", "tokenizer.model",
    "chat_template.jinja", "chat_template.json", "generation_config.json", "training.json",
}
LEGACY_ADAPTER_FILES = {"adapter_config.json", "adapter_model.safetensors", "README.md"}
_LEFTOVER = re.compile(r"^\.(model|metrics\.json|predictions\.jsonl|[a-z_1]+\.png)\.(tmp|old)(-.*)?$")
_CHECKPOINT = re.compile(r"^\.?step-")


def _some(names: list[str], limit: int = 4) -> str:
    names = sorted(names)
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _read_json(path: Path, limit: int = 50_000_000) -> Any:
    try:
        if path.stat().st_size > limit:
            return None
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _legacy(rel: str) -> bool:
    parts = rel.split("/")
    if len(parts) >= 3 and parts[0] == "members" and parts[1].isdigit():  # an ensemble's member folders
        rest = "/".join(parts[2:])
        return rest == METADATA or _legacy(rest)
    if len(parts) == 2 and parts[0] == "adapter":
        return parts[1] in LEGACY_ADAPTER_FILES
    return len(parts) == 1 and parts[0] in LEGACY_FILES


def foreign_files(folder: Path) -> list[str] | None:
    """The files in a model folder that taskkit did not write; None if it is no taskkit model folder."""
    from taskkit.atomic import files_under

    meta_file = folder / METADATA
    if meta_file.is_symlink() or not meta_file.is_file():
        return None
    meta = _read_json(meta_file)
    if not isinstance(meta, dict) or "task" not in meta:
        return None
    present = [f for f in files_under(folder) if f != METADATA]
    listed = meta.get("files")
    if isinstance(listed, list):
        allowed = {f for f in listed if isinstance(f, str)}
        return [f for f in present if f not in allowed]
    return [f for f in present if not _legacy(f)]


def is_taskkit_folder(folder: Path) -> bool:
    """A whole taskkit model folder holding only taskkit's files (safe to delete)."""
    return not folder.is_symlink() and folder.is_dir() and foreign_files(folder) == []


def model_folder_problem(path: Path) -> str | None:
    """Why taskkit may not replace ``path`` with a model folder; None if it may."""
    if not os.path.lexists(path):
        return None
    if path.is_symlink() and not path.exists():
        return "is a broken link"
    if not path.is_dir():
        return "is a file, not a taskkit model folder"
    try:
        names = os.listdir(path)
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if not names:
        return None
    foreign = foreign_files(path)
    if foreign is None:
        return f"is not a taskkit model folder (no {METADATA}; it holds {_some(names)})"
    if foreign:
        return f"holds files taskkit did not write ({_some(foreign)})"
    return None


def check_model_path(path: str | Path) -> None:
    """Refuse (one line) to write a model folder over anything but nothing, an empty folder or
    a taskkit model folder all of whose files are taskkit's."""
    path = Path(path)
    problem = model_folder_problem(path)
    if problem:
        raise TaskkitError(f"{path}: {problem}; refusing to replace it (taskkit only replaces its own model folders)")


def _run_file_ours(out: Path, name: str, path: Path | None = None) -> bool:
    """Whether ``path`` (default ``out/name``) is the run's ``metrics.json`` / ``predictions.jsonl``
    as taskkit writes it: a link into model/, a copy of the file in model/, or (written before
    the files lived in model/) a file of the shape taskkit writes."""
    path = path if path is not None else out / name
    if path.is_symlink():
        return os.readlink(path) == f"model/{name}"
    if not path.is_file():
        return False
    inside = out / "model" / name
    try:
        if inside.is_file() and inside.stat().st_size == path.stat().st_size and \
                inside.read_bytes() == path.read_bytes():
            return True  # a copy of the run (cp -rL) made the links files
    except OSError:
        return False
    if name in PLOT_FILES:  # pictures were never written outside model/
        return False
    if name == "metrics.json":  # written before metrics lived inside model/
        metrics = _read_json(path)
        return isinstance(metrics, dict) and {"task", "mode", "evaluated_on", "config"} <= metrics.keys()
    try:
        with path.open(encoding="utf-8") as handle:
            first = handle.readline()
    except (OSError, UnicodeDecodeError):
        return False
    if not first:
        return _run_file_ours(out, "metrics.json")
    try:
        record = json.loads(first)
    except ValueError:
        return False
    return isinstance(record, dict) and "predicted" in record


def leftover_ours(out: Path, name: str) -> bool:
    match = _LEFTOVER.match(name)
    if not match:
        return False
    path = out / name
    if match.group(1) == "model":
        from taskkit.atomic import MARKER

        return path.is_dir() and not path.is_symlink() and (
            (path / MARKER).is_file() or not os.listdir(path) or is_taskkit_folder(path))
    return match.group(1) in RUN_FILES and _run_file_ours(out, match.group(1), path)


def _checkpoints_ours(path: Path) -> bool:
    if path.is_symlink() or not path.is_dir():
        return False
    return all(_CHECKPOINT.match(name) for name in os.listdir(path))


def check_writable(out: Path) -> None:
    """Refuse (one line) an output path taskkit could not write, before any work is done."""
    existing = out
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise TaskkitError(f"{out}: cannot be created: {existing} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise TaskkitError(f"{out}: cannot write there ({exc.strerror or exc})") from None


def check_run_folder(out: str | Path, overwrite: bool = False) -> None:
    """Refuse (one line) an ``--out`` taskkit may not write a run into; see the module's docstring."""
    out = Path(out)
    if not os.path.lexists(out):
        check_writable(out)
        return
    if not out.is_dir():
        raise TaskkitError(f"{out}: is a file, not a run folder; refusing to write a run there")
    try:
        names = os.listdir(out)
    except OSError as exc:
        raise TaskkitError(f"{out}: cannot be read ({exc.strerror})") from None
    blocked, foreign = [], []
    for name in names:
        if name == "model":
            problem = model_folder_problem(out / name)
            if problem:
                blocked.append(f"{out / name} {problem}")
        elif name in RUN_FILES:
            if not _run_file_ours(out, name):
                blocked.append(f"{out / name} is not one taskkit wrote")
        elif name == "checkpoints":
            if not _checkpoints_ours(out / name):
                blocked.append(f"{out / name} is not taskkit's checkpoints folder")
        elif not leftover_ours(out, name):
            foreign.append(name)
    if blocked:
        raise TaskkitError(f"{blocked[0]}; refusing to replace it: move it away or pick another --out")
    if foreign and not overwrite:
        raise TaskkitError(f"{out}: holds entries taskkit did not write ({_some(foreign)}); refusing to write a "
                           f"run there: pick a new or empty --out, or pass --overwrite to write taskkit's "
                           f"entries beside them (they are left untouched)")
    check_writable(out)
