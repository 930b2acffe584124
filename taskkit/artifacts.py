"""Model folders: layout, atomic writes, and loading any taskkit model by its metadata.

A model folder holds ``taskkit.json`` (task, mode, labels, settings) beside whatever the mode
writes (safetensors weights, tokenizer, config). It is written to a temporary sibling and
renamed into place, so an interrupted save never leaves a half-written model where a good one
was: the old folder survives until the new one is complete.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from taskkit.errors import TaskkitError

if TYPE_CHECKING:
    from taskkit.contracts import Predictor

METADATA = "taskkit.json"
FORMAT_VERSION = 1


def write_atomically(path: str | Path, write: Callable[[Path], None], metadata: dict[str, Any]) -> Path:
    """Call ``write(tmp)`` on a fresh sibling folder, add ``taskkit.json``, swap it into ``path``."""
    from taskkit import __version__

    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    old = None
    try:
        write(tmp)
        meta = {"format": FORMAT_VERSION, "taskkit_version": __version__, **metadata}
        # metadata last: a folder without it is never taken for a model
        (tmp / METADATA).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
            os.rmdir(old)
            os.replace(path, old)
        os.replace(tmp, path)
    except BaseException:
        if old is not None and not path.exists():  # interrupted between the two renames
            os.replace(old, path)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return path


def read_metadata(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_dir():
        raise TaskkitError(f"{path}: no such model folder")
    meta_file = path / METADATA
    if not meta_file.is_file():
        nested = path / "model" / METADATA
        if nested.is_file():  # a run's output folder: the model lives in model/
            return read_metadata(path / "model")
        raise TaskkitError(f"{path}: not a taskkit model folder (no {METADATA})")
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TaskkitError(f"{meta_file}: corrupt metadata ({exc})") from None
    for key in ("task", "mode", "labels"):
        if key not in meta:
            raise TaskkitError(f"{meta_file}: missing field {key!r}")
    meta["_path"] = str(path)
    return meta


def load(path: str | Path) -> "Predictor":
    """Load any taskkit model folder (or a run's output folder) as a predictor."""
    from taskkit import registry

    meta = read_metadata(path)
    task = registry.get_task(meta["task"])
    mode = registry.get_mode(meta["mode"])
    return mode.load(Path(meta["_path"]), task, meta)
