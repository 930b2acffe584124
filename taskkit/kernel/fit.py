"""Fitting a task model: encoder + task head, trained by the shared loop, early-stopped on dev."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from taskkit.contracts import TrainingRecord
from taskkit.evaluation import evaluate
from taskkit.kernel.model import TaskModel, start_at_label_priors, trainable_parameters
from taskkit.kernel.predictor import TorchPredictor
from taskkit.kernel.train import TrainResult, seed_everything, train
from taskkit.models import load_body, load_tokenizer, resolve

if TYPE_CHECKING:
    from collections.abc import Sequence

    from taskkit.contracts import Example, LabelSpace, RunConfig, Splits, Task


def _check_splits(task: Task, splits: Splits, labels: LabelSpace) -> None:
    task.check_known(splits.dev, labels, "dev")  # tasks with a closed label set refuse unseen labels
    task.check_known(splits.test, labels, "test")


def start_from_names(model: TaskModel, task: Task, config: RunConfig, prompts: list[str],
                     examples: Sequence[Example]) -> bool:
    """A ``prepare`` step: the head's output layer starts as the cosine classifier of the labels'
    ``prompts`` (:func:`~taskkit.kernel.model.start_at_label_names`, scaled on ``examples``' texts)."""
    from taskkit.kernel.model import start_at_label_names

    texts = [e["text"] for e in examples[:64]]
    return start_at_label_names(task.output_layer(model.head), model.body, load_tokenizer(resolve(config.model)),
                                prompts, texts, config.max_length)


def fit_task_model(
    task: Task, splits: Splits, config: RunConfig, mode: str,
    prepare: Callable[[TaskModel], None] = lambda model: None,
    loss: Callable[[Any, Any], Any] | None = None,
    targets: Callable[[Example, LabelSpace], Any] | None = None,
    labels: LabelSpace | None = None,
) -> tuple[TorchPredictor, TrainResult]:
    """Build body + head from ``config.model`` (or continue ``config.init_from``), let the mode
    ``prepare`` it (freeze layers, add adapters), and train it on the kernel's loop.

    ``loss(logits, gold)`` replaces the task's own loss (``task.loss(labels)``), e.g. a
    label-smoothed cross-entropy; ``gold`` is the batch's ``labels`` tensor. ``targets(example,
    labels)`` turns a training example's gold into what that loss expects (a soft distribution,
    a weight...): its value becomes the ``labels`` of each feature (window) of the example. The
    predictor, its evaluation on dev and early stopping are the same as for the task's own loss.
    ``labels``: the label space to train (default: the training examples', ``task.label_space``),
    e.g. a teacher's labels, some of which its soft targets may never make the top label.
    Returns the predictor (``mode`` is its recorded mode) and the loop's :class:`TrainResult`.
    """
    labels = labels if labels is not None else task.label_space(splits.train)
    seed_everything(config.seed)  # the head's initial weights are part of a reproducible run
    settings: dict[str, Any] = {
        "base_model": config.model, "max_length": config.max_length, "eval_batch_size": config.eval_batch_size,
        "precision": config.precision, "dropout": config.dropout, "truncate": config.truncate, "data": splits.source,
    }
    if config.init_from:
        from taskkit.kernel.resume import load_for_training

        old, labels = load_for_training(config.init_from, task, mode, labels)
        model, tokenizer = old.model, old.tokenizer
        settings["base_model"] = old.settings.get("base_model", config.model)
        settings["continued_from"] = str(config.init_from)
    else:
        ref = resolve(config.model)
        tokenizer = load_tokenizer(ref)
        body = load_body(ref)
        markers = task.special_tokens(splits.train)  # e.g. a relation task's entity markers
        if markers:  # never split, never lower-cased; the body gets embedding rows for them
            tokenizer.add_tokens(markers, special_tokens=True)
            body.resize_token_embeddings(len(tokenizer))
        model = TaskModel(body, task.head(body.config.hidden_size, labels, config.dropout))
    _check_splits(task, splits, labels)
    prepare(model)
    predictor = TorchPredictor(model, tokenizer, task, labels, mode, settings)
    features = task.encode(splits.train, tokenizer, labels, config.max_length, truncate=config.truncate)
    if targets is not None:
        for i, f in enumerate(features):
            f["labels"] = targets(splits.train[f.get("_example", i)], labels)
    if labels.multi_label and not config.init_from:
        start_at_label_priors(task.output_layer(model.head), features)
    metric = config.metric or ("micro_f1" if labels.multi_label else task.primary_metric)

    choose = task.choose_threshold  # multi-label cut tuned on dev; intent's oos cut (default: none)

    def on_dev(_: Any) -> dict[str, Any]:
        probabilities = predictor.predict_proba(splits.dev)
        # each epoch judged at its own best cut: at 0.5 early epochs predict nothing
        predictor.threshold = choose(predictor, splits.dev, labels, config, probabilities)
        return evaluate(predictor, splits.dev, probabilities=probabilities)[0]

    result = train(model, features, loss or task.loss(labels), config, tokenizer.pad_token_id,
                   evaluate=on_dev if splits.dev else None, metric=metric)
    predictor.threshold = choose(predictor, splits.dev, labels, config)  # on the restored best epoch's weights
    trainable, total = trainable_parameters(model)
    predictor.training = TrainingRecord(
        epochs_run=len(result.history), best_epoch=result.best_epoch, stopped_early=result.stopped_early,
        train_seconds=round(result.train_seconds, 2), train_examples=len(splits.train),
        train_features=len(features), examples_per_second=round(result.examples_per_second, 2),
        watched_metric=metric, trainable_parameters=trainable, total_parameters=total,
        trainable_share=round(trainable / total, 6), history=result.history, threshold=predictor.threshold,
    )
    return predictor, result


def resized(predictor: TorchPredictor, config: RunConfig, sized: RunConfig) -> TorchPredictor:
    """Record (and say on stderr) the batch size and epochs small data was trained with, when
    :meth:`RunConfig.for_data` changed them."""
    if sized is not config and predictor.training is not None:
        import typer

        predictor.training.extra["small_data"] = {"batch_size": sized.batch_size, "epochs": sized.epochs,
                                                  "min_steps": config.min_steps}
        from taskkit.distributed import is_main_process

        if is_main_process():  # once for a run on several processes
            typer.echo(f"small data: batch size {sized.batch_size}, {sized.epochs} epochs, so that training makes "
                       f"at least {config.min_steps} optimiser steps (--min-steps; --epochs or --batch-size keep "
                       "yours)", err=True)
    return predictor
