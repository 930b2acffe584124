"""Model folders: layout, owned and atomic writes, and loading any taskkit model by its metadata.

A model folder holds ``taskkit.json`` (task, format, the mode that trained it, labels, settings,
and ``files``: every file taskkit wrote there) beside whatever the predictor's format writes
(safetensors weights, tokenizer, config). Loading needs the task and the format
(:mod:`taskkit.formats`), not the mode.
A save replaces only what is taskkit's (:mod:`taskkit.ownership`): nothing, an empty folder, or a
taskkit model folder holding no file taskkit did not write; anything else is refused before any
work. The new folder is written complete beside the old one and swapped in with one atomic step
(:mod:`taskkit.atomic`), so a kill at any instant leaves the old or the new model whole.

A run folder (``taskkit run --out``) keeps its ``metrics.json`` and ``predictions.jsonl`` inside
``model/`` and links them from the run folder, so the one swap of ``model/`` changes all three
together: the metrics never describe another model than the one beside them.
"""

from __future__ import annotations

import contextvars
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskkit.errors import TaskkitError

if TYPE_CHECKING:
    from taskkit.contracts import Predictor, Task

METADATA = "taskkit.json"
#: what ``format`` is when a saver names none: taskkit 0.1.0's layout, loaded by the mode that wrote it
FORMAT_VERSION = 1
# the run files save_run asks the save of OUT/model to write into the model folder
_RUN_FILES: contextvars.ContextVar[tuple[Path, dict[str, str | bytes]] | None] = contextvars.ContextVar(
    "taskkit_run_files", default=None)


def write_atomically(path: str | Path, write: Callable[[Path], object], metadata: dict[str, Any]) -> Path:
    """Call ``write(tmp)`` on a fresh sibling folder, add ``taskkit.json``, swap it into ``path``.

    Refuses (:class:`TaskkitError`, before writing) a ``path`` that holds anything but a taskkit
    model folder of taskkit's own files; cleans up the leftovers of earlier interrupted saves.
    """
    from taskkit import __version__, atomic
    from taskkit.ownership import check_model_path, is_taskkit_folder

    given = Path(path)
    path = given.resolve()
    atomic.recover(path)  # an aside folder of an interrupted fallback save is the model at path
    check_model_path(given if given.name else path)
    from taskkit.model_card import check_card

    check_card(path)  # a model card the user edited is theirs
    _make_parent(path)
    atomic.clean(path, is_taskkit_folder)
    with atomic.staged(path) as tmp:
        write(tmp)
        run = _RUN_FILES.get()
        if run is not None and run[0] == path:
            for name, text in run[1].items():
                (tmp / name).write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
        from taskkit.model_card import public_settings, write_card

        if isinstance(metadata.get("settings"), dict):  # no paths of this machine in taskkit.json
            metadata = {**metadata, "settings": public_settings(metadata["settings"], metadata.get("format"))}
        texts = {k: v for k, v in run[1].items() if isinstance(v, str)} if run is not None and run[0] == path else None
        card = write_card(tmp, metadata, texts)  # README.md
        if card is not None:
            metadata = {**metadata, "card_sha256": card}
        files = [f for f in atomic.files_under(tmp) if f != METADATA]
        meta = {"format": FORMAT_VERSION, "taskkit_version": __version__, **metadata, "files": files}
        # metadata last: a folder without it is never taken for a model
        (tmp / METADATA).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        atomic.replace(tmp, path)
    return path


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise TaskkitError(f"{path}: cannot be created: a file is in the way of {path.parent}") from None
    except NotADirectoryError:
        raise TaskkitError(f"{path}: cannot be created: a file is in the way of {path.parent}") from None
    except PermissionError as exc:
        raise TaskkitError(f"{path}: cannot write there ({exc.strerror})") from None
    from taskkit.ownership import check_writable

    check_writable(path.parent)  # where the new folder is made and renamed


def save_run(out: str | Path, save: Callable[[Path], Any], files: dict[str, str | bytes]) -> None:
    """Write a run folder: ``save(out / "model")`` (a predictor's save) with ``files``
    (``metrics.json``, ``predictions.jsonl``, the PNG pictures) inside the model folder, linked from ``out``;
    a picture an earlier run linked and this one has not is unlinked.

    The links are made first (dangling until the model is in), so that the model's one atomic
    swap changes metrics, predictions and model at once. Where links cannot be made (Windows
    without the privilege), or a saver ignores the request, the files are copied next to the
    model after it is saved instead.
    """
    from taskkit import atomic
    from taskkit.ownership import RUN_FILES, check_run_folder, leftover_ours

    out = Path(out)
    check_run_folder(out, overwrite=True)  # again: the folder may have changed during training
    _make_parent(out / "model")
    for name in os.listdir(out):  # interrupted link / copy writes of earlier runs
        if name.startswith(tuple(f".{f}.tmp" for f in RUN_FILES)) and leftover_ours(out, name):
            os.unlink(out / name)
    linked = [atomic.link(out / name, f"model/{name}") for name in files]  # every one, even after a False
    model = out / "model"
    token = _RUN_FILES.set((model.resolve(), files))
    try:
        save(model)
    finally:
        _RUN_FILES.reset(token)
    for name, text in files.items():
        inside, data = model / name, text if isinstance(text, bytes) else text.encode("utf-8")
        if not all(linked) or not inside.is_file() or inside.read_bytes() != data:
            atomic.write_file(out / name, data)
    for name in RUN_FILES:  # an earlier run's picture this run has not drawn (the swap removed its target)
        stale = out / name
        if name not in files and os.path.islink(stale) and os.readlink(stale) == f"model/{name}":
            os.unlink(stale)


def read_metadata(path: str | Path) -> dict[str, Any]:
    from taskkit.atomic import recover

    path = recover(Path(path))  # a save killed between the fallback's two renames left it aside
    if not path.is_dir():
        raise TaskkitError(f"{path}: no such model folder")
    meta_file = path / METADATA
    if not meta_file.is_file():
        nested = recover(path / "model") / METADATA
        if nested.is_file():  # a run's output folder: the model lives in model/
            return read_metadata(nested.parent)
        raise TaskkitError(f"{path}: not a taskkit model folder (no {METADATA})")
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TaskkitError(f"{meta_file}: corrupt metadata ({exc})") from None
    except OSError as exc:
        raise TaskkitError(f"{meta_file}: cannot read ({exc.strerror or exc})") from None
    from taskkit.folder_checks import check_links, check_metadata, inside

    check_metadata(meta, meta_file, FORMAT_VERSION)  # fields, types, format version, labels
    check_links(path)  # nothing in the folder may lead out of it
    if "delta" in meta:
        inside(path, meta["delta"], "delta")
    meta["_path"] = str(path)
    return meta


def load(path: str | Path, task: Task | None = None) -> Predictor:
    """Load any taskkit model folder (or a run's output folder) as a predictor.

    Needs the folder's task (``task``, else the installed plugin's of the name ``taskkit.json``
    gives) and its format (:mod:`taskkit.formats`); the mode that trained it need not be installed.
    """
    from taskkit import formats, registry

    meta = read_metadata(path)
    where = Path(meta["_path"]) / METADATA
    if task is None:
        table = registry.tasks()
        if meta["task"] not in table:  # the plugin that provides it is not installed (or failed to load)
            known = ", ".join(sorted(table)) or "none installed"
            raise TaskkitError(f"{where}: unknown task {meta['task']!r}: the plugin that provides it is not "
                               f"installed (known: {known})")
        task = table[meta["task"]][0]
    elif task.name != meta["task"]:
        raise TaskkitError(f"{where}: a {meta['task']!r} model, not a {task.name!r} one")
    return formats.load(Path(meta["_path"]), task, meta)
