"""The Python API, which the CLI mirrors: run (train + evaluate + save), load, predict."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskkit import calibration, distributed, registry
from taskkit.artifacts import load as load_predictor
from taskkit.artifacts import save_run
from taskkit.contracts import RunConfig, Splits, TrainingRecord
from taskkit.data.splits import load_splits
from taskkit.errors import Interrupted, TaskkitError
from taskkit.evaluation import evaluate
from taskkit.options import Options
from taskkit.ownership import check_run_folder

if TYPE_CHECKING:
    from taskkit.batch_predict import Written
    from taskkit.contracts import Mode, Predictor, Task

DEMO_ROOT = Path(__file__).parent / "demo"


@dataclass
class RunResult:
    predictor: Predictor
    metrics: dict[str, Any]
    out: Path | None = None
    predictions: list[dict[str, Any]] = field(default_factory=list)


def demo_data(task: Task) -> Path:
    folder = DEMO_ROOT / task.name
    if not folder.is_dir():
        raise TaskkitError(f"task {task.name!r} has no demo data: give --data")
    return folder


def make_config(mode_defaults: dict[str, Any], *, task_obj: Task | None = None, mode_obj: Mode | None = None,
                **overrides: Any) -> RunConfig:
    """RunConfig from the mode's defaults, then the caller's values (``None`` = not given). With
    ``task_obj`` and ``mode_obj``, ``options`` become their validated :mod:`taskkit.options`."""
    names = {f.name for f in fields(RunConfig)}
    given = {k: v for k, v in overrides.items() if v is not None}
    # neither size of training given: RunConfig.for_data may resize it for small data (--min-steps)
    values = {**mode_defaults, "auto_size": not ({"epochs", "batch_size"} & set(given)), **given}
    unknown = sorted(set(values) - names)
    if unknown:
        raise TaskkitError(f"unknown run setting(s): {', '.join(unknown)}")
    config = RunConfig(**values).validate()  # ranges of every setting, before any work
    if task_obj is not None and mode_obj is not None:  # --option keys and types, before any work
        from taskkit.options import validate

        config.options = validate(task_obj, mode_obj, config.options)
    return config


def run(task: str, mode: str = "full", data: str | Path | None = None, out: str | Path | None = None,
        *, overwrite: bool = False, **settings: Any) -> RunResult:
    """Train ``task`` with ``mode`` on ``data``, evaluate on its test split (else dev), save to ``out``.

    ``settings`` are :class:`RunConfig` fields (``model``, ``epochs``, ``lr``...). ``out`` must be new,
    empty or a run folder taskkit wrote (checked before any work); ``overwrite=True`` lets it hold
    other entries too, which are left untouched.
    """
    from taskkit.kernel import checkpoint

    task_obj, mode_obj = registry.get_pair(task, mode)
    where = {"checkpoint_dir": str(Path(out) / checkpoint.FOLDER)} if out is not None else {}
    config = make_config(task_obj.run_defaults(mode_obj), task_obj=task_obj, mode_obj=mode_obj,
                         **{**where, **settings})
    if out is not None:  # taskkit writes only where it owns, and says so before training
        check_run_folder(out, overwrite)
    config = checkpoint.prepare(config, mode_obj)  # --checkpoint-every / --resume refused before any work
    splits: Splits = load_splits(task_obj, data if data is not None else demo_data(task_obj), config)
    if not mode_obj.needs_training_data and splits.train and not splits.test and not splits.dev:
        splits = Splits(train=[], dev=[], test=splits.train, source=splits.source)  # one file: score it
    if mode_obj.needs_training_data and not splits.train:
        raise TaskkitError(f"{splits.source}: no training split (mode {mode!r} needs labelled training data)")
    forgetting = _old_test(task_obj, config) if config.init_from else None
    started = time.perf_counter()
    try:
        predictor = mode_obj.fit(task_obj, splits, config)
        fit_seconds = time.perf_counter() - started
        calibrating = calibration.for_run(predictor, mode_obj, splits, config)  # on dev, or cross-validated
    except Interrupted as exc:  # SIGINT / SIGTERM from the CLI: say what was (not) written
        exc.outcome = checkpoint.interrupted_outcome(config, out)
        raise
    eval_name, eval_examples = ("test", splits.test) if splits.test else ("dev", splits.dev)
    metrics: dict[str, Any] = {"task": task, "mode": mode, "data": splits.source, "model": config.model,
                               "evaluated_on": eval_name, "fit_seconds": round(fit_seconds, 2)}
    records: list[dict[str, Any]] = []
    if eval_examples:
        started = time.perf_counter()
        scores, predicted, probabilities = evaluate(predictor, eval_examples,
                                                    probabilities=calibrating.probabilities(eval_examples))
        metrics["eval_seconds"] = round(time.perf_counter() - started, 2)
        metrics.update(scores)
        records = [task_obj.prediction_record(e, p, pr, predictor.labels)
                   for e, p, pr in zip(eval_examples, predicted, probabilities)]
        for record, gold in zip(records, task_obj.gold(eval_examples, predictor.labels)):
            record.pop("label", None), record.pop("labels", None)
            record["gold"] = gold
    metrics["calibration"] = calibrating.finish(eval_name)  # ECE, Brier, NLL before and after
    if splits.train_indices is not None:
        metrics["train_indices"] = splits.train_indices  # repeat a few-shot run exactly
    if forgetting is not None:  # continued training: is the old test split still handled?
        old_examples = forgetting.pop("_examples")
        forgetting["after"] = _headline(evaluate(predictor, old_examples)[0])
        metrics["old_test"] = forgetting
    training = predictor.training
    metrics["training"] = training.as_dict() if isinstance(training, TrainingRecord) else training
    metrics["config"] = {f.name: getattr(config, f.name) for f in fields(RunConfig)}
    if isinstance(config.options, Options):
        metrics["config"]["options"] = config.options.model_dump()
    out_path = Path(out) if out is not None else None

    def write() -> None:
        if out_path is not None:
            from taskkit.plots import for_run as draw

            pictures = draw(predictor, metrics, records, calibrating)  # PNGs, saved and linked as the metrics
            metrics["plots"] = sorted(pictures)
            lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
            save_run(out_path, predictor.save, {"metrics.json": json.dumps(metrics, indent=2, default=str) + "\n",
                                                "predictions.jsonl": lines, **pictures})  # in one atomic step
        checkpoint.finish(config)  # the saved model supersedes the run's checkpoints

    distributed.on_main(write)  # several processes (accelerate launch, torchrun): the main one writes
    return RunResult(predictor, metrics, out_path, records)


def _headline(scores: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in scores.items() if isinstance(v, (int, float))}


def _old_test(task: Task, config: RunConfig) -> dict[str, Any] | None:
    """The continued model's own test split and its scores before continuing, if it can be found."""
    from taskkit.kernel.resume import continuable_metadata

    assert config.init_from is not None  # called for continued runs only
    meta = continuable_metadata(config.init_from, task)
    source = _run_data(meta) or meta.get("settings", {}).get("data")
    if not source or not (source.startswith("hf:") or Path(source).exists()):
        return None
    old_test = load_splits(task, source, config.replace(shots=None)).test
    if not old_test:
        return None
    before = evaluate(load_predictor(config.init_from), old_test)[0]
    return {"data": source, "before": _headline(before), "_examples": old_test}


def _run_data(meta: dict[str, Any]) -> str | None:
    """The data source of the run that saved a model, from its metrics.json (taskkit.json keeps
    only the source's last component, no paths of the training machine)."""
    try:
        data = json.loads((Path(meta["_path"]) / "metrics.json").read_text(encoding="utf-8")).get("data")
    except (KeyError, OSError, ValueError, AttributeError):
        return None
    return data if isinstance(data, str) else None


def load(path: str | Path) -> Predictor:
    """A saved model folder (or a run's output folder) as a :class:`Predictor`."""
    return load_predictor(path)


def predict(model: str | Path | Predictor, inputs: Sequence[Any]) -> list[dict[str, Any]]:
    """Prediction records (label and probabilities) for ``inputs``, as ``taskkit predict`` prints them."""
    predictor = load(model) if isinstance(model, (str, Path)) else model
    examples = [predictor.task.as_example(x) for x in inputs]
    probabilities = predictor.predict_proba(examples)
    predicted = predictor.task.decode(probabilities, predictor.labels, predictor.threshold)
    return [predictor.task.prediction_record(e, p, pr, predictor.labels)
            for e, p, pr in zip(examples, predicted, probabilities)]


def predict_file(model: str | Path | Predictor, input: str | Path, output: str | Path, *, resume: bool = False,
                 overwrite: bool = False, chunk_size: int = 2048, progress: bool = True) -> Written | None:
    """``taskkit predict MODEL --input INPUT --output OUTPUT``: the records of :func:`predict` for
    every row of ``input``, streamed in chunks into the new JSON Lines file ``output`` (memory flat);
    ``resume`` continues an interrupted run's ``output``, ``overwrite`` replaces an existing one.
    Under ``accelerate launch`` the processes share the chunks. Returns the records this run wrote
    and the processes that wrote them (``None`` on a launched process other than the main one)."""
    from taskkit.batch_predict import predict_file as stream

    return stream(model, input, output, resume=resume, overwrite=overwrite, chunk_size=chunk_size, progress=progress)


def zero_shot(labels: Any, task: str = "topic", *, backend: str | None = None, template: str | None = None,
              model: str | None = None, encoder: str | None = None, multi_label: bool = False,
              threshold: float | None = None, unlabelled: Sequence[str] | None = None, **settings: Any) -> Predictor:
    """A zero-shot classifier for ``task`` from ``labels``: a dict label -> description, a list of
    names, ``"a,b,c"`` or a JSON/YAML file. ``model``: the NLI model (backends ``nli`` and
    ``both``) or the bi-encoder (``embedding``); ``encoder``: the bi-encoder of ``both`` and of
    self-training. ``threshold``: abstain below it (single-label) or the per-label cut
    (multi-label). ``unlabelled`` texts, if given, self-train a classifier on top.

    >>> clf = taskkit.zero_shot({"sports": "sports news", "business": "business news"})
    >>> clf.predict(["The match ended 2-1."])
    """
    task_obj, mode_obj = registry.get_pair(task, "zero-shot")
    options: dict[str, Any] = {"self_train": bool(unlabelled), **({"encoder": encoder} if encoder else {})}
    if threshold is not None:
        options["threshold" if multi_label else "abstain"] = threshold
    options.update(settings.pop("options", None) or {})
    config = make_config(task_obj.run_defaults(mode_obj), task_obj=task_obj, mode_obj=mode_obj, labels=labels,
                         backend=backend, template=template, model=model, multi_label=multi_label, options=options,
                         **settings)
    examples = [{"text": t, "_where": f"unlabelled text {i + 1}"} for i, t in enumerate(unlabelled or [])]
    return mode_obj.fit(task_obj, Splits(train=examples, dev=[], test=[], source="api"), config)
