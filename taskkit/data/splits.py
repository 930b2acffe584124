"""From ``--data`` to train / dev / test examples.

``--data`` is a folder holding ``train``, ``dev`` (or ``validation``) and ``test`` files, one
file (all training data), or ``hf:NAME[:CONFIG]`` for the datasets library (online users).
A missing dev split is carved from train, stratified and seeded.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskkit.contracts import Example, Splits
from taskkit.data.readers import FORMATS
from taskkit.data.sampling import sample_per_class
from taskkit.errors import TaskkitError

if TYPE_CHECKING:
    from taskkit.contracts import RunConfig, Task

SPLIT_NAMES = {"train": ("train",), "dev": ("dev", "validation", "valid", "val"), "test": ("test",)}
EXTENSIONS = tuple(FORMATS) + (".conll", ".txt", ".bio")


def _find_split(folder: Path, names: tuple[str, ...]) -> Path | None:
    """``train.jsonl`` for "train"; failing that a qualified name such as ``test_mnli_matched.jsonl``."""
    files = [p for p in sorted(folder.iterdir()) if p.is_file() and any(ext in p.suffixes for ext in EXTENSIONS)]
    for exact in (True, False):
        for name in names:
            for path in files:
                stem = path.name.split(".")[0]
                if stem == name if exact else stem.startswith(name + "_"):
                    return path
    return None


def _stratify_key(example: Example) -> Any:
    if "label" in example:
        return example["label"]
    labels = example.get("labels")
    return labels[0] if labels else None


def stratified_split(examples: list[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """(kept, held out): ``fraction`` of the examples held out, class shares preserved."""
    from sklearn.model_selection import train_test_split

    if len(examples) < 4:
        raise TaskkitError(f"too few training examples ({len(examples)}) to carve a dev split; give a dev file")
    keys = [_stratify_key(e) for e in examples]
    counts: dict[Any, int] = {}
    for key in keys:
        counts[key] = counts.get(key, 0) + 1
    n_held = max(1, round(len(examples) * fraction))
    # examples without one label (a token task's sentences) are split at random
    stratify = keys if None not in counts and min(counts.values()) >= 2 and n_held >= len(counts) else None
    kept, held = train_test_split(examples, test_size=n_held, random_state=seed, stratify=stratify)
    return list(kept), list(held)


def _hf_splits(spec: str, task: "Task", config: "RunConfig") -> dict[str, list[Example]]:
    name, _, subset = spec[3:].partition(":")
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets ships with taskkit's dependencies
        raise TaskkitError("hf: data needs the 'datasets' package (pip install datasets)") from None
    try:
        loaded = datasets.load_dataset(name, subset or None)
    except Exception as exc:  # the hub raises many types; the user needs one line
        raise TaskkitError(f"{spec}: cannot load from the Hugging Face hub ({type(exc).__name__}: {exc})") from None
    out: dict[str, list[Example]] = {}
    for split_name, rows in loaded.items():
        for role, names in SPLIT_NAMES.items():
            if split_name in names:
                records = [dict(row, _where=f"{spec}/{split_name}:{i}") for i, row in enumerate(rows)]
                out[role] = task.from_records(records, config)
    return out


def load_splits(task: "Task", data: str | Path, config: "RunConfig") -> Splits:
    """Read ``data`` with ``task``'s reader into splits."""
    spec = str(data)
    parts: dict[str, list[Example]] = {}
    if spec.startswith("hf:"):
        parts = _hf_splits(spec, task, config)
    else:
        path = Path(spec)
        if not path.exists():
            raise TaskkitError(f"{path}: no such file or folder")
        if path.is_dir():
            for role, names in SPLIT_NAMES.items():
                found = _find_split(path, names)
                if found is not None:
                    parts[role] = task.read(found, config)
            if "train" not in parts and "test" not in parts:
                raise TaskkitError(f"{path}: no train or test file in folder (expected e.g. train.jsonl, test.csv)")
        else:
            parts["train"] = task.read(path, config)
    train, dev, test = parts.get("train", []), parts.get("dev", []), parts.get("test", [])
    carved, indices = False, None
    if config.shots and train:
        # few-shot is honest only if dev is as small as train: never carve it from the full data
        allow = bool(config.options.get("allow_fewer", False))
        train, indices = sample_per_class(train, config.shots, config.seed, allow)
        if dev:
            dev, _ = sample_per_class(dev, config.shots, config.seed, allow_fewer=True)
    elif train and not dev and config.dev_fraction > 0:
        train, dev = stratified_split(train, config.dev_fraction, config.seed)
        carved = True
    return Splits(train=train, dev=dev, test=test, source=spec, dev_carved=carved, train_indices=indices)
