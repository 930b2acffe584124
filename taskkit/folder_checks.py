"""Model folders checked against their metadata before anything in them is trusted.

Every failure is one :class:`TaskkitError` line naming the folder (or file) and the problem:
``taskkit.json`` fields and format version, paths that would leave the folder, safetensors files
that are corrupt or do not fit the architecture or the labels, a missing tokenizer, and pickled
weights (taskkit loads safetensors only, never a pickle).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskkit.errors import TaskkitError

if TYPE_CHECKING:
    import torch

#: safetensors header keys recording what a weights file was trained for (checked on load)
TASK_KEY, LABELS_KEY = "taskkit.task", "taskkit.labels"
SAFETENSORS = "model.safetensors"
PICKLES = ("pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5", "model.ckpt.index", "flax_model.msgpack")
#: field -> (types, description); ``None`` in types means the field may be absent
_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "format": ((str, int), True), "task": ((str,), True), "mode": ((str,), True), "labels": ((list,), True),
    "multi_label": ((bool,), False), "settings": ((dict,), False), "delta": ((str,), False),
    "descriptions": ((dict,), False), "ensemble": ((dict,), False),
}
_TYPE_NAMES = {int: "an integer", str: "a string", list: "a list", bool: "true or false", dict: "an object"}


def check_metadata(meta: Any, meta_file: Path, supported: int) -> None:
    """``taskkit.json``: a known format version, the required fields with the right types, and
    labels a non-empty list of unique strings."""
    if not isinstance(meta, dict):
        raise TaskkitError(f"{meta_file}: corrupt metadata (expected a JSON object)")
    for key, (types, required) in _FIELDS.items():
        if key not in meta:
            if required:
                raise TaskkitError(f"{meta_file}: missing field {key!r}")
            continue
        value = meta[key]
        if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
            raise TaskkitError(f"{meta_file}: field {key!r} must be {_TYPE_NAMES[types[0]]}, not {value!r:.60}")
    _check_format(meta["format"], meta_file, supported)
    for key in ("task", "mode"):
        if not meta[key].strip():
            raise TaskkitError(f"{meta_file}: field {key!r} is empty")
    labels = meta["labels"]
    if not labels:
        raise TaskkitError(f"{meta_file}: field 'labels' is empty")
    for label in labels:
        if not isinstance(label, str) or not label:
            raise TaskkitError(f"{meta_file}: field 'labels' must hold non-empty strings, not {label!r:.60}")
    seen: set[str] = set()
    for label in labels:
        if label in seen:
            raise TaskkitError(f"{meta_file}: label {label!r} appears twice in field 'labels'")
        seen.add(label)
    weights = meta.get("ensemble", {}).get("weights") if "ensemble" in meta else None
    if "ensemble" in meta and (not isinstance(weights, list) or not weights
                               or not all(isinstance(w, (int, float)) and not isinstance(w, bool) and w >= 0
                                          for w in weights) or not sum(weights) > 0):
        raise TaskkitError(f"{meta_file}: field 'ensemble.weights' must be a non-empty list of non-negative numbers")


def _check_format(value: str | int, meta_file: Path, supported: int) -> None:
    """A format string ``NAME.vN`` (whether it is installed is checked on load), or taskkit 0.1.0's
    int version (1)."""
    from taskkit.formats import parse

    if isinstance(value, str):
        if parse(value) is None:
            raise TaskkitError(f"{meta_file}: field 'format' must name a format as NAME.vN (like 'torch.v1'), "
                               f"not {value!r:.60}")
        return
    if value > supported:
        raise TaskkitError(f"{meta_file}: written by a newer taskkit (format {value}, this taskkit reads "
                           f"up to {supported}); upgrade taskkit to load it")
    if value < 1:
        raise TaskkitError(f"{meta_file}: unknown format {value}")


def inside(folder: Path, name: str, field: str) -> Path:
    """``folder / name``, refused unless it stays inside ``folder`` once resolved (no ``..``, no
    absolute path, no symbolic link leading out)."""
    if not name or os.path.isabs(name) or "\x00" in name:
        raise TaskkitError(f"{folder}: {field} {name!r} must be a relative path inside the model folder")
    root = folder.resolve()
    target = (folder / name).resolve()
    if target != root and root not in target.parents:
        raise TaskkitError(f"{folder}: {field} {name!r} points outside the model folder")
    return folder / name


def check_links(folder: Path) -> None:
    """Refuse a model folder holding a symbolic link that leads outside it."""
    root = folder.resolve()
    for current, dirs, files in os.walk(root):
        for name in dirs + files:
            entry = Path(current) / name
            if entry.is_symlink():
                target = entry.resolve()
                if target != root and root not in target.parents:
                    rel = entry.relative_to(root)
                    raise TaskkitError(f"{folder}: {rel} is a link to {target}, outside the model folder")


def require_safetensors(folder: Path) -> None:
    """A base-model folder must hold safetensors weights: taskkit never loads pickled ones."""
    if (folder / SAFETENSORS).is_file() or (folder / f"{SAFETENSORS}.index.json").is_file():
        return
    pickled = [name for name in PICKLES if (folder / name).exists()]
    if pickled:
        raise TaskkitError(f"{folder}: no {SAFETENSORS} (only {pickled[0]}); taskkit never loads pickled weights")
    raise TaskkitError(f"{folder}: no {SAFETENSORS}")


def weights_metadata(task: str, labels: tuple[str, ...] | list[str]) -> dict[str, str]:
    """The safetensors header metadata a weights file is saved with: what it was trained for."""
    return {"format": "pt", TASK_KEY: task, LABELS_KEY: json.dumps(list(labels), ensure_ascii=False)}


def read_header(file: Path) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """(tensor name -> shape, header metadata) of a safetensors file; one line if it is corrupt."""
    from safetensors import SafetensorError, safe_open

    if not file.is_file():
        raise TaskkitError(f"{file}: no such weights file")
    try:
        with safe_open(str(file), framework="numpy") as handle:  # the header only: no torch needed
            shapes = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}  # noqa: SIM118
            return shapes, dict(handle.metadata() or {})
    except (SafetensorError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TaskkitError(f"{file}: corrupt or truncated safetensors file ({first})") from None


def check_trained_for(file: Path, header: Mapping[str, str], task: str, labels: tuple[str, ...]) -> None:
    """The task and labels a weights file was saved for must be those ``taskkit.json`` names.
    Files saved before taskkit recorded them (no header metadata) pass."""
    saved_task = header.get(TASK_KEY)
    if saved_task is not None and saved_task != task:
        raise TaskkitError(f"{file}: weights trained for task {saved_task!r}, but taskkit.json names task {task!r}")
    raw = header.get(LABELS_KEY)
    if raw is None:
        return
    try:
        saved_labels = tuple(json.loads(raw))
    except (ValueError, TypeError):
        raise TaskkitError(f"{file}: corrupt label list in the safetensors header") from None
    if saved_labels != tuple(labels):
        raise TaskkitError(f"{file}: weights trained for labels {list(saved_labels)!r:.120}, but taskkit.json "
                           f"lists {list(labels)!r:.120}")


def check_shapes(file: Path, shapes: Mapping[str, tuple[int, ...]], expected: Mapping[str, tuple[int, ...]],
                 n_labels: int | None = None, partial: bool = False, head_prefix: str = "head.") -> None:
    """The tensors of ``file`` must be those the architecture expects, with the same shapes.

    ``partial``: the file may hold only some of the expected tensors (a delta over a base model);
    ``head_prefix``: the names of the head's tensors, whose shapes follow the label count.
    """
    unexpected = sorted(set(shapes) - set(expected))
    if unexpected:
        raise TaskkitError(f"{file}: unexpected tensor(s) {_few(unexpected)} for this model's architecture")
    missing = [] if partial else sorted(set(expected) - set(shapes))
    if missing:
        raise TaskkitError(f"{file}: missing tensor(s) {_few(missing)} of this model's architecture")
    for key in [k for k in expected if k in shapes]:  # in the model's own order: weight before bias
        shape = shapes[key]
        if tuple(expected[key]) != tuple(shape):
            hint = f" (taskkit.json lists {n_labels} labels)" if n_labels is not None and key.startswith(head_prefix) else ""
            raise TaskkitError(f"{file}: tensor {key!r} has shape {list(shape)}, the model expects "
                               f"{list(expected[key])}{hint}")


def expected_shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    """name -> shape of what safetensors' ``save_model`` writes for ``module`` (shared tensors once)."""
    from safetensors.torch import _remove_duplicate_names

    state = module.state_dict()
    dropped = {name for names in _remove_duplicate_names(state).values() for name in names}
    return {key: tuple(value.shape) for key, value in state.items() if key not in dropped}


def check_weights(file: Path, module: torch.nn.Module, task: str, labels: tuple[str, ...],
                  partial: bool = False, head_prefix: str = "head.") -> None:
    """All checks of one safetensors file against the module it is to be loaded into."""
    shapes, header = read_header(file)
    check_trained_for(file, header, task, labels)
    if partial:
        state = {k: tuple(v.shape) for k, v in module.state_dict().items()}
        check_shapes(file, shapes, state, len(labels), partial=True, head_prefix=head_prefix)
    else:
        check_shapes(file, shapes, expected_shapes(module), len(labels), head_prefix=head_prefix)


def check_tokenizer(folder: Path, tokenizer: Any, embeddings: int) -> None:
    """The tokenizer's vocabulary must fit the embedding matrix it indexes."""
    if len(tokenizer) > embeddings:
        raise TaskkitError(f"{folder}: the tokenizer has {len(tokenizer)} tokens but the model's embedding matrix "
                           f"only {embeddings} rows")


def require_tokenizer(folder: Path) -> None:
    """A model folder must carry its fast tokenizer (``tokenizer.json``); without it transformers
    would silently build a near-empty vocabulary."""
    if not (folder / "tokenizer.json").is_file():
        raise TaskkitError(f"{folder}: model folder has no tokenizer.json")
    inside(folder, "tokenizer.json", "tokenizer file")


def _few(names: list[str], limit: int = 3) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
