"""The ``zero-shot`` mode: a classifier from label names and descriptions, no labelled data.

``taskkit run topic --mode zero-shot --data DIR --labels labels.yaml`` scores the test split and
saves a model folder; ``taskkit zero-shot "text" --labels a,b`` classifies texts directly.
Backends: ``nli`` (taskkit's shipped cross-encoder or any model whose config names an
entailment label), ``embedding`` (a sentence-transformers bi-encoder) and ``both`` (their
average, the default: it measured best, see benchmarks/RESULTS.md). With unlabelled texts
(the data's train split, gold labels unused; else the texts being scored) single-label runs
self-train a logistic regression on the confident predictions (``--option self_train=false``
turns it off).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable

import typer

import taskkit
from taskkit.contracts import Mode, Predictor, RunConfig, Splits, Task, TrainingRecord
from taskkit.errors import TaskkitError
from taskkit.options import read
from taskkit.zero_shot_predictor import ZeroShotOptions


class ZeroShotMode(Mode):
    Options = ZeroShotOptions
    name = "zero-shot"
    description = "classify from label names/descriptions with an NLI or embedding model (no training data)"
    needs_training_data = False
    # the backend's own default model; no dev split is carved: nothing is tuned on one
    defaults = {"model": "auto", "dev_fraction": 0.0}

    def supports(self, task: Task) -> bool:
        # sequence tasks, and tasks that fill label hypotheses per example (relation extraction)
        from taskkit.zero_shot_predictor import fills_hypotheses

        return task.level == "sequence" or fills_hypotheses(task)

    def fit(self, task: Task, splits: Splits, config: RunConfig) -> Predictor:
        from taskkit.zero_shot_predictor import build

        opts = read(config, ZeroShotOptions)
        predictor = build(task, config)
        names = set(predictor.labels.names)
        for split, examples in (("dev", splits.dev), ("test", splits.test)):
            for e in examples:
                if ("labels" in e) != bool(config.multi_label) and ("labels" in e or "label" in e):
                    raise TaskkitError(f"{e.get('_where', split)}: --multi-label needs a 'labels' list in every row, "
                                       f"this {split} row has one 'label'" if config.multi_label else
                                       f"{e.get('_where', split)}: this {split} row has a 'labels' list: add "
                                       f"--multi-label to score each label on its own")
                for label in e.get("labels") or [e.get("label")]:
                    if label is not None and label not in names and label != task.abstain_label:
                        raise TaskkitError(f"{e.get('_where', split)}: label {label!r} in {split} is not one of the "
                                           f"zero-shot labels ({', '.join(predictor.labels.names)})")
        predictor.training = TrainingRecord(
            backend=predictor.settings["backend"], nli_model=predictor.settings["nli_model"],
            encoder=predictor.settings["encoder"], hypotheses=dict(zip(predictor.labels.names, predictor.hypotheses)))
        if opts.self_train and not config.multi_label and not predictor.per_example:
            pool = [e["text"] for e in (splits.train or splits.dev or splits.test)]
            if len(pool) > opts.self_train_texts:
                pool = random.Random(config.seed).sample(pool, opts.self_train_texts)
            if pool:
                predictor.training.self_training = predictor.self_train(pool, opts.keep, config.seed)
        return predictor


@taskkit.hookimpl
def register_modes(register: Callable[[Mode], None]) -> None:
    register(ZeroShotMode())


@taskkit.hookimpl
def register_commands(cli: typer.Typer) -> None:
    @cli.command("zero-shot")
    def zero_shot(
        texts: list[str] = typer.Argument(..., help="Texts to classify."),
        labels: str = typer.Option(..., help="Labels a,b,c or a JSON/YAML file of label -> description."),
        task: str = typer.Option("topic", help="Sequence task whose hypothesis template is used."),
        backend: str | None = typer.Option(None, help="both (default), nli or embedding."),
        template: str | None = typer.Option(None, help='Hypothesis with {} for the label, e.g. "This text is about {}."'),
        model: str | None = typer.Option(None, help="NLI model (nli) or sentence-transformers model (embedding)."),
        multi_label: bool = typer.Option(False, "--multi-label", help="Score each label on its own."),
        abstain: float | None = typer.Option(None, help="No label when the top probability is below this."),
    ) -> None:
        """Classify TEXTS against labels given on the command line: one JSON line per text."""
        from taskkit import api

        predictor = api.zero_shot(labels, task=task, backend=backend, template=template, model=model,
                                  multi_label=multi_label, threshold=abstain)
        for record in api.predict(predictor, texts):
            typer.echo(json.dumps(record, ensure_ascii=False))
