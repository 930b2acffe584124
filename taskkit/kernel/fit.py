"""Fitting a task model: encoder + task head, trained by the shared loop, early-stopped on dev."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from taskkit.evaluation import evaluate
from taskkit.kernel.model import TaskModel, trainable_parameters
from taskkit.kernel.predictor import TorchPredictor
from taskkit.kernel.train import TrainResult, seed_everything, train
from taskkit.models import load_body, load_tokenizer, resolve

if TYPE_CHECKING:
    from taskkit.contracts import RunConfig, Splits, Task


def fit_task_model(
    task: "Task", splits: "Splits", config: "RunConfig", mode: str,
    prepare: Callable[[TaskModel], None] = lambda model: None,
) -> tuple[TorchPredictor, TrainResult]:
    """Build body + head from ``config.model``, let the mode ``prepare`` it (freeze, adapters), train."""
    ref = resolve(config.model)
    labels = task.label_space(splits.train)
    for name in ("dev", "test"):
        check = getattr(task, "check_known", None)
        if check is not None:
            check(getattr(splits, name), labels, name)
    tokenizer = load_tokenizer(ref)
    seed_everything(config.seed)  # the head's initial weights are part of a reproducible run
    body = load_body(ref)
    model = TaskModel(body, task.head(body.config.hidden_size, labels, config.dropout))
    prepare(model)
    settings: dict[str, Any] = {
        "base_model": config.model, "max_length": config.max_length, "eval_batch_size": config.eval_batch_size,
        "precision": config.precision, "dropout": config.dropout,
    }
    predictor = TorchPredictor(model, tokenizer, task, labels, mode, settings)
    features = task.encode(splits.train, tokenizer, labels, config.max_length)
    metric = config.metric or ("micro_f1" if labels.multi_label else task.primary_metric)

    def on_dev(_: Any) -> dict[str, Any]:
        return evaluate(predictor, splits.dev)[0]

    result = train(model, features, task.loss(labels), config, tokenizer.pad_token_id,
                   evaluate=on_dev if splits.dev else None, metric=metric)
    trainable, total = trainable_parameters(model)
    predictor.training = {
        "epochs_run": len(result.history), "best_epoch": result.best_epoch, "stopped_early": result.stopped_early,
        "train_seconds": round(result.train_seconds, 2), "train_examples": len(features),
        "examples_per_second": round(result.examples_per_second, 2), "watched_metric": metric,
        "trainable_parameters": trainable, "total_parameters": total, "history": result.history,
    }
    return predictor, result
