"""Zero-shot label sets: labels from ``a,b,c``, a JSON/YAML file, a dict or a list, each with an
optional description, and the hypotheses a template makes of them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskkit.errors import TaskkitError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from taskkit.contracts import Task


def parse_labels(spec: Any) -> dict[str, str | None]:
    """Labels from ``a,b,c``, a JSON/YAML file (label -> description, or a list), a dict or a list."""
    if isinstance(spec, (str, Path)) and (Path(spec).suffix.lower() in (".json", ".yaml", ".yml")):
        spec = _read_label_file(Path(spec))
    elif isinstance(spec, str):
        spec = [part.strip() for part in split_names(spec)]
    if isinstance(spec, dict):
        items = [(str(k).strip(), None if v is None else str(v).strip()) for k, v in spec.items()]
    elif isinstance(spec, (list, tuple)):
        items = [(str(k).strip(), None) for k in spec]
    else:
        raise TaskkitError("zero-shot labels: give names (a,b,c), a JSON/YAML file or a dict of label -> description")
    names = [k for k, _ in items]
    if not names or not all(names):
        raise TaskkitError("zero-shot needs labels: --labels a,b,c or --labels FILE (an empty label name was given)"
                           if names else "zero-shot needs labels: --labels a,b,c or --labels FILE")
    seen = set()
    for name in names:
        if name.lower() in seen:
            raise TaskkitError(f"zero-shot labels: {name!r} is given twice")
        seen.add(name.lower())
    return dict(items)


def split_names(spec: str) -> list[str]:
    """``a,b,c`` split on the commas outside brackets: a relation's ``Cause-Effect(e1,e2)`` is one name."""
    names, current, depth = [], "", 0
    for char in spec:
        if char == "," and depth == 0:
            names.append(current)
            current = ""
            continue
        depth += {"(": 1, "[": 1, ")": -1, "]": -1}.get(char, 0)
        depth = max(depth, 0)
        current += char
    return [*names, current]


def _read_label_file(path: Path) -> Any:
    if not path.is_file():
        raise TaskkitError(f"{path}: no such labels file")
    text = path.read_text(encoding="utf-8")
    import yaml

    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:  # json.JSONDecodeError is a ValueError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TaskkitError(f"{path}: not a valid labels file ({first})") from None


def hypotheses(labels: dict[str, str | None], template: str) -> list[str]:
    check_template(template)
    return [template.format(description or name.replace("_", " ")) for name, description in labels.items()]


def task_hypotheses(task: Task, names: Sequence[str]) -> list[str]:
    """``task``'s template filled with its description of each label, or the label's name."""
    return hypotheses({name: task.label_descriptions.get(name) for name in names}, task.hypothesis_template)


def check_template(template: str) -> None:
    if "{}" not in template:
        raise TaskkitError(f"template {template!r} has no {{}} for the label (e.g. \"This text is about {{}}.\")")
