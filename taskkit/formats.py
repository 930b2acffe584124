"""Predictor formats: how a model folder is read back, apart from the mode that trained it.

``taskkit.json`` names its folder's format as ``NAME.vN`` (``torch.v1``, ``adapter.v1``,
``ensemble.v1``, ``zero-shot.v1``, ``embedding-head.v1``...). Loading a folder needs its task and
its format, never the mode that trained it (the mode's name stays in ``taskkit.json`` as
information). The core registers its formats here through the same ``register_formats`` hook as
plugins do::

    @taskkit.hookimpl
    def register_formats(register):
        register("tfidf.v1", TfidfPredictor.load)   # loader(path, task, metadata) -> Predictor

Folders written by taskkit 0.1.0 (``"format": 1`` and a ``mode``) are converted on read
(:func:`upgrade`): the built-in modes map to the formats their predictors wrote; any other mode's
folder is loaded by that mode's :meth:`~taskkit.contracts.Mode.load`, as 0.1.0 did.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskkit.errors import TaskkitError
from taskkit.hookspecs import hookimpl

if TYPE_CHECKING:
    from taskkit.contracts import Predictor, Task

#: ``loader(path, task, metadata) -> Predictor``: rebuilds the predictor saved in a model folder
Loader = Callable[[Path, "Task", dict[str, Any]], "Predictor"]

TORCH, ADAPTER, ENSEMBLE, ZERO_SHOT, EMBEDDING_HEAD = (
    "torch.v1", "adapter.v1", "ensemble.v1", "zero-shot.v1", "embedding-head.v1")
#: who registers the core's formats, in messages
CORE = "taskkit"
_NAME = re.compile(r"^([a-z0-9][a-z0-9_-]*(?:\.[a-z0-9_-]+)*)\.v([1-9][0-9]*)$")

class FormatError(TaskkitError):
    """A plugin registered a format taskkit refuses (a bad name, a name taken by another plugin)."""


def parse(name: str) -> tuple[str, int] | None:
    """``"torch.v1"`` -> ``("torch", 1)``; ``None`` for a name not of the form ``NAME.vN``."""
    match = _NAME.match(name)
    return (match.group(1), int(match.group(2))) if match else None


# --- the core's own formats (registered like a plugin's) --------------------------------------
def _torch(path: Path, task: Task, metadata: dict[str, Any]) -> Predictor:
    from taskkit.kernel.predictor import TorchPredictor

    return TorchPredictor.load(path, task, metadata)


def _adapter(path: Path, task: Task, metadata: dict[str, Any]) -> Predictor:
    from taskkit.kernel.predictor import AdapterPredictor

    return AdapterPredictor.load(path, task, metadata)


def _embedding_head(path: Path, task: Task, metadata: dict[str, Any]) -> Predictor:
    from taskkit.kernel.predictor import EmbeddingHeadPredictor

    return EmbeddingHeadPredictor.load(path, task, metadata)


def _ensemble(path: Path, task: Task, metadata: dict[str, Any]) -> Predictor:
    from taskkit.ensemble import EnsemblePredictor

    return EnsemblePredictor.load(path, task, metadata)


def _zero_shot(path: Path, task: Task, metadata: dict[str, Any]) -> Predictor:
    from taskkit.zero_shot_predictor import ZeroShotPredictor

    return ZeroShotPredictor.load(path, task, metadata)


def _onnx(path: Path, task: Task, metadata: dict[str, Any]) -> Predictor:
    from taskkit.export.onnx_predictor import (
        OnnxPredictor,  # onnxruntime + tokenizers, never torch
    )

    return OnnxPredictor.load(path, task, metadata)


def _zero_shot_onnx(path: Path, task: Task, metadata: dict[str, Any]) -> Predictor:
    from taskkit.export.zero_shot_onnx import OnnxZeroShotPredictor  # onnxruntime + tokenizers, never torch

    return OnnxZeroShotPredictor.load(path, task, metadata)


@hookimpl
def register_formats(register: Callable[[str, Loader], None]) -> None:
    register(TORCH, _torch)
    register(ADAPTER, _adapter)
    register(EMBEDDING_HEAD, _embedding_head)
    register(ENSEMBLE, _ensemble)
    register(ZERO_SHOT, _zero_shot)
    register("onnx.v1", _onnx)  # taskkit export --format onnx
    register("zero-shot-onnx.v1", _zero_shot_onnx)  # taskkit export of a zero-shot model


# --- the table --------------------------------------------------------------------------------
def formats() -> dict[str, tuple[Loader, str]]:
    """format name -> (loader, plugin name); the core's first, then the plugins'."""
    from taskkit.plugins import HOST

    return HOST.table("format", _collect)


def _collect() -> dict[str, tuple[Loader, str]]:
    from taskkit.plugins import call_each

    found: dict[str, tuple[Loader, str]] = {}
    current = [CORE]

    def register(name: str, loader: Loader) -> None:
        plugin = current[0]
        if not isinstance(name, str) or parse(name) is None:
            raise FormatError(f"plugin {plugin!r} registered format {name!r}: a format is named NAME.vN "
                              "(lower case, e.g. 'tfidf.v1')")
        if not callable(loader):
            raise FormatError(f"plugin {plugin!r} registered format {name!r} without a loader function")
        if name in found:
            raise FormatError(f"format {name!r} is registered by two plugins: {found[name][1]!r} and {plugin!r}")
        found[name] = (loader, plugin)

    def start(plugin: str) -> None:
        current[0] = plugin

    def forget(plugin: str) -> None:  # a plugin whose hook failed registers nothing
        for name in [n for n, (_, owner) in found.items() if owner == plugin]:
            del found[name]

    register_formats(register)
    call_each("register_formats", {"register": register}, before=start, on_fault=forget, reraise=(FormatError,))
    return found


def register_format(name: str, loader: Loader, plugin: str = CORE) -> None:
    """Add a format to the table in-process (tests, notebooks); plugins use the hook instead."""
    table = formats()
    if name in table:
        raise FormatError(f"format {name!r} is registered by two plugins: {table[name][1]!r} and {plugin!r}")
    if parse(name) is None:
        raise FormatError(f"format {name!r} is not named NAME.vN")
    table[name] = (loader, plugin)


# --- reading a folder's format ----------------------------------------------------------------
def upgrade(metadata: dict[str, Any]) -> str | None:
    """The format of a folder's metadata: its ``format`` string, or for a taskkit 0.1.0 folder
    (``"format": 1``) the format its mode wrote; ``None``: a 0.1.0 folder of a mode whose format
    taskkit does not know (loaded by that mode)."""
    given = metadata.get("format")
    if isinstance(given, str):
        return given
    mode, settings = metadata.get("mode"), metadata.get("settings") or {}
    if mode == "full":
        return TORCH
    if mode == "peft":
        return TORCH if settings.get("merged") else ADAPTER
    if mode == "few-shot":
        if "ensemble" in metadata:
            return ENSEMBLE
        return TORCH if settings.get("head") == "torch" else EMBEDDING_HEAD
    if mode == "zero-shot":
        return ZERO_SHOT
    return None


def loader_for(name: str, where: str | Path = "") -> Loader:
    """The loader of format ``name``; an unknown one is one line saying which plugin may be missing,
    a newer version of a known one says so."""
    table = formats()
    if name in table:
        return table[name][0]
    prefix = f"{where}: " if where else ""
    parsed = parse(name)
    if parsed is not None:
        kind, version = parsed
        versions = sorted(p[1] for p in map(parse, table) if p is not None and p[0] == kind)
        if versions and version > versions[-1]:
            newest = f"{kind}.v{versions[-1]}"
            raise TaskkitError(f"{prefix}model format {name!r} is newer than this install reads ({newest}, from "
                               f"plugin {table[newest][1]!r}); upgrade taskkit or that plugin")
    known = ", ".join(sorted(table)) or "none"
    raise TaskkitError(f"{prefix}unknown model format {name!r}: the plugin that provides it may not be installed "
                       f"or may have failed to load (known formats: {known})")


def load(path: str | Path, task: Task, metadata: dict[str, Any]) -> Predictor:
    """Rebuild the predictor saved in model folder ``path`` (``metadata``: its ``taskkit.json``)."""
    from taskkit.artifacts import METADATA

    path = Path(path)
    name = upgrade(metadata)
    if name is None:  # a 0.1.0 folder of a plugin mode: that mode loads it
        from taskkit import registry

        table = registry.modes()
        mode = metadata.get("mode")
        if mode not in table:
            known = ", ".join(sorted(table)) or "none installed"
            raise TaskkitError(f"{path / METADATA}: unknown mode {mode!r}: this folder names no format, and the "
                               f"plugin of the mode that wrote it is not installed (known: {known})")
        return table[mode][0].load(path, task, metadata)
    return loader_for(name, path / METADATA)(path, task, metadata)
