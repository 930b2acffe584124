"""Model cards: the ``README.md`` every saved model folder gets, in the Hugging Face layout.

YAML front matter (``library_name: taskkit``, ``pipeline_tag``, ``tags``, ``base_model`` when it is
a hub id), then the task, labels, base model, mode, the run that trained it, its data, its test
metrics, and intended use and limits. Nothing of the training machine leaks into it: local paths
(data folders, base models) are reduced to their last component (``sst2``, ``<local>/tiny-bert``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

CARD = "README.md"

PIPELINE_TAGS = {"sequence": "text-classification", "pair": "text-classification", "token": "token-classification"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_METRICS = ("accuracy", "macro_f1", "micro_f1", "weighted_f1", "f1", "precision", "recall",
            "in_scope_accuracy", "oos_recall")


def is_local(value: str) -> bool:
    """A path of this machine (absolute, relative with a separator or dot, or an existing entry)."""
    if value.startswith(("hf:",)):
        return False
    if PurePosixPath(value).is_absolute() or PureWindowsPath(value).is_absolute() or value.startswith(("~", ".")):
        return True
    if _HUB_ID.match(value) and not Path(value).exists():
        return False
    return "/" in value or "\\" in value or Path(value).exists()


def public_name(value: Any, local_prefix: str = "") -> Any:
    """``value`` with a local path reduced to its last component (``local_prefix`` before it)."""
    if not isinstance(value, str) or not value or not is_local(value):
        return value
    name = PureWindowsPath(value).name if "\\" in value else PurePosixPath(value.rstrip("/")).name
    return f"{local_prefix}{name or 'model'}"


def public_settings(settings: dict[str, Any], fmt: Any = None) -> dict[str, Any]:
    """The settings of ``taskkit.json`` with the training machine's paths reduced (data sources and
    continued-from folders; a local base model except where loading needs it: peft adapters)."""
    out = dict(settings)
    needs_base = fmt == "adapter.v1" or (fmt in (None, 1) and not settings.get("merged"))
    for key in ("data", "continued_from", *(() if needs_base else ("base_model",))):
        if key in out:
            out[key] = public_name(out[key], "<local>/" if key == "base_model" else "")
    return out


def _hub_base(base: Any) -> str | None:
    from taskkit.models import PACKAGED

    if not isinstance(base, str) or not base or base in PACKAGED or is_local(base):
        return None
    return base if _HUB_ID.match(base) else None


def _base_line(base: Any) -> str:
    from taskkit.models import PACKAGED

    if not isinstance(base, str) or not base:
        return "not recorded"
    if base in PACKAGED:
        return f"`{base}` (taskkit's packaged sentence-transformers/all-MiniLM-L6-v2)"
    shown = public_name(base, "<local>/")
    return f"`{shown}`" + (" (a local folder of the training machine)" if shown.startswith("<local>/") else "")


def _command(metadata: dict[str, Any], metrics: dict[str, Any]) -> str | None:
    config = metrics.get("config")
    if not isinstance(config, dict):
        return None
    parts = ["taskkit run", str(metadata.get("task")), "--mode", str(metadata.get("mode"))]
    data = metrics.get("data")
    if isinstance(data, str) and data and not data.startswith("demo"):
        parts += ["--data", str(public_name(data, "<local>/"))]
    for key in ("model", "epochs", "lr", "batch_size", "max_length", "seed", "shots"):
        value = config.get(key)
        if value is not None:
            shown = public_name(value, "<local>/") if key == "model" else value
            parts += [f"--{key.replace('_', '-')}", str(shown)]
    return " ".join(parts)


def _metric_lines(metrics: dict[str, Any]) -> list[str]:
    lines = []
    for key in _METRICS:
        value = metrics.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            lines.append(f"| {key} | {value:.4f} |")
    return lines


def render(metadata: dict[str, Any], metrics: dict[str, Any] | None = None) -> str:
    """The card's text for a model folder's metadata and (when the save is a run's) its metrics."""
    from taskkit import registry

    metrics = metrics or {}
    task_name, mode = str(metadata.get("task", "?")), str(metadata.get("mode", "?"))
    settings = metadata.get("settings") or {}
    labels = [str(x) for x in metadata.get("labels", [])]
    try:
        task = registry.tasks().get(task_name, (None, None))[0]
    except Exception:  # noqa: BLE001 -- a faulty plugin never fails a save; the card says less
        task = None
    level = task.level if task is not None else "sequence"
    pipeline = "zero-shot-classification" if mode == "zero-shot" else PIPELINE_TAGS.get(level, "text-classification")
    base = settings.get("base_model")
    front = ["---", "library_name: taskkit", f"pipeline_tag: {pipeline}", "tags:", "- taskkit",
             f"- {json.dumps(task_name)}", f"- {json.dumps(mode)}"]
    hub = _hub_base(base)
    if hub:
        front.append(f"base_model: {hub}")
    front.append("---")
    kind = "multi-label " if metadata.get("multi_label") else ""
    body = [f"# {task_name} model ({mode})", "",
            "## Task", "", (f"`{task_name}`: {(task.description if task is not None else '') or 'a taskkit task'} "
                            f"({level} level, {kind}{len(labels)} labels)."), "",
            "## Labels", "", *[f"- `{label}`" for label in labels], "",
            "## Base model", "", _base_line(base), "",
            "## Mode", "", f"`{mode}`" + (", exported to ONNX" + (" (int8)" if settings.get("quantize") else "")
                                         if metadata.get("format") == "onnx.v1" else "") + ".", ""]
    command = _command(metadata, metrics)
    if command:
        body += ["## Training", "", "Trained with (the equivalent command):", "", "```bash", command, "```", ""]
    data = metrics.get("data") or settings.get("data")
    if data:
        body += ["## Data", "", f"`{public_name(data, '<local>/')}`", ""]
    rows = _metric_lines(metrics)
    if rows:
        split = metrics.get("evaluated_on", "test")
        body += ["## Test metrics", "", f"On the {split} split:", "", "| metric | value |", "|---|---|", *rows, ""]
    body += ["## Intended use", "",
             f"Predicting {task_name} labels for texts like those of its training data, with taskkit:", "",
             "```bash", "taskkit predict MODEL_DIR \"a text\"", "```", "",
             "## Limitations", "",
             "- It predicts only the labels above; a text unlike its training data still gets one of them.",
             "- Scores are those of the data it was evaluated on; check it on your own data before relying on it.",
             "- Biases of the base model and of the training data carry over to its predictions.", ""]
    return "\n".join(front + [""] + body)


def digest(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_card(path: Path) -> None:
    """Refuse to replace a model folder whose card a user edited (the user's words are theirs): its
    ``README.md`` must still be the one whose digest taskkit recorded in ``taskkit.json``."""
    card, meta_file = path / CARD, path / "taskkit.json"
    if not card.is_file() or card.is_symlink() or not meta_file.is_file():
        return  # no card, or no taskkit folder: the ownership checks decide
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if not isinstance(meta, dict) or CARD not in (meta.get("files") or []):
        return  # not taskkit's card: the ownership checks refuse it as a foreign file
    from taskkit.errors import TaskkitError

    if meta.get("card_sha256") != digest(card):
        raise TaskkitError(f"{path}: holds files taskkit did not write (README.md): the model card was edited "
                           "since taskkit wrote it; refusing to replace it (move your edits elsewhere first)")


def write_card(folder: Path, metadata: dict[str, Any], run_files: dict[str, str] | None = None) -> str | None:
    """Write ``folder/README.md`` unless the saver wrote one (metrics come from the run's files);
    returns its digest (kept in ``taskkit.json``, see :func:`check_card`), None if the saver's."""
    target = folder / CARD
    if target.exists():
        return None
    metrics: dict[str, Any] = {}
    if run_files and "metrics.json" in run_files:
        try:
            metrics = json.loads(run_files["metrics.json"])
        except ValueError:
            metrics = {}
    target.write_text(render(metadata, metrics), encoding="utf-8")
    return digest(target)
