"""From ``--data`` to train / dev / test examples.

``--data`` is a folder holding ``train``, ``dev`` (or ``validation``) and ``test`` files, one
file (all training data), or ``hf:NAME[:CONFIG]`` for the datasets library (online users).
A missing dev split is carved from train, stratified and seeded. With ``--shots N`` a sequence
task's train is N per class and there is no dev set unless ``--dev-shots M`` samples one.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskkit.contracts import Example, ModeOptions, Splits
from taskkit.data.readers import FORMATS
from taskkit.data.sampling import classes_of, sample_per_class
from taskkit.errors import TaskkitError
from taskkit.options import read as read_options

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
    """(kept, held out): ``fraction`` of the examples held out, class shares preserved.

    Every class of a held-out example also occurs in what is kept: a class with a single
    example stays in training (carved into dev, it would be a class training never saw), and
    so does a held-out example whose class (or entity type) the random fallback left nowhere
    else. Without any class that has two examples, no dev split can be carved: an error.
    """
    from sklearn.model_selection import train_test_split

    if not 0 < fraction < 1:
        raise TaskkitError(f"dev_fraction must be between 0 and 1 (exclusive), got {fraction}")
    if len(examples) < 4:
        raise TaskkitError(f"too few training examples ({len(examples)}) to carve a dev split; give a dev file")
    keys = [_stratify_key(e) for e in examples]
    counts = Counter(keys)
    single = [i for i, key in enumerate(keys) if key is not None and counts[key] == 1]
    pool = [i for i, key in enumerate(keys) if key is None or counts[key] > 1]
    if len(pool) < 2:
        raise TaskkitError(f"cannot carve a dev split: every class of the {len(examples)} training examples has a "
                           "single example, and a class needs two (one to train on, one to check); give a dev file")
    n_held = min(max(1, round(len(examples) * fraction)), len(pool) - 1)
    pool_counts = Counter(keys[i] for i in pool)
    # examples without one label (a token task's sentences) are split at random
    stratify = [keys[i] for i in pool] if None not in pool_counts and min(pool_counts.values()) >= 2 \
        and len(pool_counts) <= n_held <= len(pool) - len(pool_counts) else None
    kept, held = train_test_split(pool, test_size=n_held, random_state=seed, stratify=stratify)
    kept = list(kept) + single
    known = {c for i in kept for c in classes_of(examples[i])}
    dev = []
    for i in held:
        classes = classes_of(examples[i])
        if all(c in known for c in classes):
            dev.append(i)
        else:  # its class would be missing from training: keep it there
            kept.append(i)
            known.update(classes)
    if not dev:
        raise TaskkitError("cannot carve a dev split: no class has an example to spare for it; give a dev file")
    return [examples[i] for i in kept], [examples[i] for i in dev]


def _hf_splits(spec: str, task: Task, config: RunConfig) -> dict[str, list[Example]]:
    name, _, subset = spec[3:].partition(":")
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets ships with taskkit's dependencies
        raise TaskkitError("hf: data needs the 'datasets' package (pip install datasets)") from None
    try:
        loaded = datasets.load_dataset(name, subset or None)
    except Exception as exc:  # noqa: BLE001 - the hub raises many types; the user needs one line
        raise TaskkitError(f"{spec}: cannot load from the Hugging Face hub ({type(exc).__name__}: {exc})") from None
    out: dict[str, list[Example]] = {}
    for split_name, rows in loaded.items():
        for role, names in SPLIT_NAMES.items():
            if split_name in names:
                records = [dict(row, _where=f"{spec}/{split_name}:{i}") for i, row in enumerate(rows)]
                out[role] = task.from_records(records, config)
    return out


def _dev_shots(full: list[Example], used: list[int], dev: list[Example], shots: int, seed: int) -> list[Example]:
    """``--dev-shots M``: M per class from the dev split, else from the train examples not sampled."""
    if dev:
        return sample_per_class(dev, shots, seed, allow_fewer=True)[0]
    taken = set(used)
    rest = [e for i, e in enumerate(full) if i not in taken]
    return sample_per_class(rest, shots, seed, allow_fewer=True)[0] if rest else []


def load_splits(task: Task, data: str | Path, config: RunConfig) -> Splits:
    """Read ``data`` with ``task``'s reader into splits."""
    spec = str(data)
    shots = config.shots
    if shots is not None and (isinstance(shots, bool) or not isinstance(shots, int) or shots < 1):
        raise TaskkitError(f"--shots must be a whole number of examples per class, at least 1, got {shots!r}")
    allow = read_options(config, ModeOptions).allow_fewer
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
    if config.dev_shots is not None and shots is None:
        raise TaskkitError("--dev-shots samples a dev set for a --shots run; give --shots N as well")
    if shots is not None and train:
        # few-shot is honest only if dev is as small as train: never carve it from the full data
        if task.level == "token":  # K mentions of every entity type (Few-NERD's greedy sampler)
            from taskkit.data.kshot import sample_mentions

            full = train
            train, indices = sample_mentions(full, shots, config.seed, allow, where=f"{spec} (train)")
            if config.dev_shots:  # as for sequence tasks: a dev set only when asked for, K-shot sampled too
                taken = set(indices)
                rest = dev or [e for i, e in enumerate(full) if i not in taken]
                dev = sample_mentions(rest, config.dev_shots, config.seed, allow_fewer=True, where=f"{spec} (dev)")[0]
            else:
                dev = []
        else:  # N per class in all, as the few-shot references see: no dev set unless --dev-shots M
            full = train
            train, indices = sample_per_class(full, shots, config.seed, allow)
            dev = _dev_shots(full, indices, dev, config.dev_shots, config.seed) if config.dev_shots else []
    elif train and not dev and config.dev_fraction > 0:
        train, dev = stratified_split(train, config.dev_fraction, config.seed)
        carved = True
    return Splits(train=train, dev=dev, test=test, source=spec, dev_carved=carved, train_indices=indices)
