"""Training checkpoints (``--checkpoint-every``) and continuing a killed run (``--resume``).

A checkpoint is a folder ``OUT/checkpoints/step-NNNNNNN/`` holding everything the training loop
needs to go on exactly where it was: the changing tensors of the model (``model.safetensors``),
the best epoch's copy (``best.safetensors``) and any half-accumulated gradients
(``grads.safetensors``), the optimiser, scheduler and random states (``state.pt``, read back
with ``weights_only=True``: never an arbitrary pickle), and ``meta.json`` (the run's settings,
epoch and step, history, early-stopping state, a fingerprint of the training features).

Each is written into a temporary sibling, fsynced, and renamed to a name that does not exist
yet, so a kill at any moment leaves either a complete checkpoint or a leftover temporary folder,
which the next write removes. Only the newest :data:`KEEP` complete checkpoints are kept; a
finished run removes them. Nothing here imports torch at module level: ``api.run`` checks
``--resume`` before any data is read.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskkit.atomic import fsync_file
from taskkit.errors import TaskkitError
from taskkit.settings import checkpoint_interval, option_name

if TYPE_CHECKING:
    import torch

    from taskkit.contracts import Mode, RunConfig

FOLDER = "checkpoints"
NAME = re.compile(r"step-(\d{7,})")
TMP = re.compile(r"\.step-\d{7,}\.tmp-\d+")
META = "meta.json"
#: every file a checkpoint folder may hold (what :meth:`Checkpoints.save` writes)
WRITTEN = frozenset({"model.safetensors", "best.safetensors", "grads.safetensors", "state.pt", META})
FORMAT = 1
KEEP = 2
#: settings that may differ between a killed run and its resumption
FREE = {"progress", "resume", "checkpoint_every", "checkpoint_dir"}


def plain(value: Any) -> Any:
    """A setting as JSON gives it back (tuples as lists, paths as strings), for comparison."""
    return json.loads(json.dumps(value, default=str))


def settings_of(config: RunConfig) -> dict[str, Any]:
    from dataclasses import fields

    return {f.name: plain(getattr(config, f.name)) for f in fields(config) if f.name not in FREE}


def complete(folder: str | Path | None) -> list[Path]:
    """The complete checkpoints in ``folder``, oldest first."""
    if folder is None or not Path(folder).is_dir():
        return []
    numbered = [(int(m.group(1)), p) for p in Path(folder).iterdir()
                if (m := NAME.fullmatch(p.name)) and (p / META).is_file() and _only_ours(p)]
    return [p for _, p in sorted(numbered)]


def latest(folder: str | Path | None) -> Path | None:
    found = complete(folder)
    return found[-1] if found else None


def read_meta(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads((path / META).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TaskkitError(f"{path / META}: unreadable checkpoint ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or not isinstance(meta.get("settings"), dict):
        raise TaskkitError(f"{path / META}: not a checkpoint of this taskkit version")
    return meta


def prepare(config: RunConfig, mode: Mode) -> RunConfig:
    """Before any work: refuse checkpoints with a mode that cannot write them, ``--resume`` without
    a checkpoint or with other settings, and a fresh checkpointed run over an interrupted one's
    checkpoints. Returns the config to train with (a resumed run keeps the checkpoint's interval)."""
    if not (config.checkpoint_every or config.resume):
        return config
    flag = "--resume" if config.resume else "--checkpoint-every"
    if not mode.resumable:
        raise TaskkitError(f"{flag}: mode {mode.name!r} does not write checkpoints (full and peft do)")
    found = latest(config.checkpoint_dir)
    if not config.resume:
        if found is not None:
            raise TaskkitError(f"{found}: an interrupted run's checkpoint is there; add --resume to continue "
                               f"it, or delete {config.checkpoint_dir} to start over")
        return config
    if found is None:
        raise TaskkitError(f"--resume: no checkpoint in {config.checkpoint_dir} (a run writes them with --checkpoint-every)")
    saved = read_meta(found)["settings"]
    for name, value in settings_of(config).items():
        if name in saved and saved[name] != value:
            raise TaskkitError(f"--resume: {option_name(name)} is {value!r} but the checkpoint {found} "
                               f"was written with {saved[name]!r}; resume with the same settings")
    if config.checkpoint_every is None:
        config = config.replace(checkpoint_every=read_meta(found).get("checkpoint_every"))
    return config


def finish(config: RunConfig) -> None:
    """After the final save: the run's checkpoints (and leftovers) are no longer needed."""
    if config.checkpoint_dir is None:
        return
    folder = Path(config.checkpoint_dir)
    for path in complete(folder):
        shutil.rmtree(path, ignore_errors=True)
    _remove_leftovers(folder)
    try:
        folder.rmdir()  # only if nothing else (nothing taskkit did not write) is in it
    except OSError:
        pass


def interrupted_outcome(config: RunConfig, out: str | Path | None) -> str:
    """What a user should know after an interrupted run: what was (not) written, how to go on."""
    if out is None:
        return "nothing was saved"
    found = latest(config.checkpoint_dir)
    if found is None:
        return f"nothing was written to {out}"
    return f"the model in {out} is untouched; to continue from {found}, run the same command with --resume"


def fingerprint(features: Sequence[dict[str, Any]]) -> str:
    """Which training features a checkpoint was made on (same data, tokenizer and max length)."""
    digest = hashlib.sha256()
    for f in features:
        digest.update(json.dumps([f.get("input_ids"), f.get("labels")], default=str).encode())
    return digest.hexdigest()


class Checkpointer:
    """Writes a training loop's checkpoints every N optimiser steps (or N epochs) and reads the newest."""

    def __init__(self, config: RunConfig, features: Sequence[dict[str, Any]]) -> None:
        assert config.checkpoint_dir is not None
        self.folder = Path(config.checkpoint_dir)
        self.config = config
        self.every, self.unit = checkpoint_interval(config.checkpoint_every) or (0, "step")
        self.data = fingerprint(features)

    def due(self, unit: str, count: int) -> bool:
        return bool(self.every) and unit == self.unit and count % self.every == 0

    def save(self, step: int, tensors: dict[str, torch.Tensor], best: dict[str, torch.Tensor] | None,
             grads: dict[str, torch.Tensor], state: dict[str, Any], meta: dict[str, Any]) -> Path | None:
        import torch
        from safetensors.torch import save_file

        name = f"step-{step:07d}"
        final = self.folder / name
        if final.exists():  # an epoch without an optimiser step: the same state is already there
            return None
        self.folder.mkdir(parents=True, exist_ok=True)
        _remove_leftovers(self.folder)
        tmp = self.folder / f".{name}.tmp-{os.getpid()}"
        tmp.mkdir()
        try:
            save_file(_contiguous(tensors), str(tmp / "model.safetensors"))
            if best is not None:
                save_file(_contiguous(best), str(tmp / "best.safetensors"))
            if grads:
                save_file(_contiguous(grads), str(tmp / "grads.safetensors"))
            torch.save(state, tmp / "state.pt")
            record = {"format": FORMAT, "settings": settings_of(self.config), "data": self.data,
                      "checkpoint_every": plain(self.config.checkpoint_every), **meta}
            (tmp / META).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")  # last: marks it complete
            for path in tmp.iterdir():
                fsync_file(path)
            fsync_file(tmp)
            os.rename(tmp, final)  # a new name: atomic
            fsync_file(self.folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        for old in complete(self.folder)[:-KEEP]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def load(self) -> dict[str, Any]:
        """The newest checkpoint: ``meta``, ``tensors``, ``best``, ``grads`` and ``state``."""
        import pickle

        import torch
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        found = latest(self.folder)
        if found is None:
            raise TaskkitError(f"--resume: no checkpoint in {self.folder}")
        meta = read_meta(found)
        if meta.get("data") != self.data:
            raise TaskkitError(f"--resume: the training data (or tokenizer, --max-length) differs from the "
                               f"data the checkpoint {found} was made on")
        try:
            loaded = {
                "meta": meta,
                "tensors": load_file(str(found / "model.safetensors")),
                "best": load_file(str(found / "best.safetensors")) if (found / "best.safetensors").is_file() else None,
                "grads": load_file(str(found / "grads.safetensors")) if (found / "grads.safetensors").is_file() else {},
                "state": torch.load(found / "state.pt", weights_only=True),
            }
        except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError, SafetensorError) as exc:
            # truncated or tampered files: one line, not a traceback
            raise TaskkitError(f"{found}: damaged checkpoint ({type(exc).__name__}: {exc})") from None
        loaded["path"] = found
        return loaded


def _contiguous(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}


def _remove_leftovers(folder: Path) -> None:
    """Temporary folders of checkpoint writes a kill interrupted (only names this module makes)."""
    if folder.is_dir():
        for path in folder.iterdir():
            if TMP.fullmatch(path.name) and _only_ours(path):
                shutil.rmtree(path, ignore_errors=True)


def _only_ours(path: Path) -> bool:
    """A checkpoint folder holds only the files :meth:`Checkpoints.save` writes; one with anything
    else in it is not removed (nor read) as a checkpoint."""
    try:
        return path.is_dir() and not path.is_symlink() and set(os.listdir(path)) <= WRITTEN
    except OSError:
        return False
