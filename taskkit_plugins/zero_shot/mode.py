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
from typing import Any

import typer

import taskkit
from taskkit.contracts import Mode, Predictor, RunConfig, Splits, Task, TrainingRecord
from taskkit.errors import TaskkitError
from taskkit.options import read
from taskkit.zero_shot_adapt import adapt_relation, choose_abstain
from taskkit.zero_shot_predictor import ZeroShotOptions, ZeroShotPredictor


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
        # unlabelled texts: the train split with its labels unused, else the texts being scored
        pool = list(splits.train or splits.dev or splits.test)
        if len(pool) > opts.self_train_texts:
            pool = random.Random(config.seed).sample(pool, opts.self_train_texts)
        if predictor.per_example:
            predictor.training.extra["adaptation"] = adapt_relation(predictor, pool, opts.correction)
        elif not config.multi_label:
            predictor.training.extra["adaptation"] = self.adapt(predictor, [e["text"] for e in pool], opts, config.seed)
        if opts.abstain == "auto" and not config.multi_label:
            predictor.threshold, predictor.training.extra["abstain"] = choose_abstain(predictor, splits.dev)
        return predictor

    @staticmethod
    def adapt(predictor: ZeroShotPredictor, texts: list[str], opts: ZeroShotOptions, seed: int) -> dict[str, Any]:
        """Label-bias correction and backend weights fitted to ``texts``, then self-training (kept
        only if the label-free check finds it no worse); what was chosen, for metrics.json."""
        from taskkit.zero_shot_adapt import MIN_WEIGH_TEXTS, adapt, keep_self_training
        from taskkit.zero_shot_predictor import _logistic_proba

        wants_vectors = texts and (predictor.settings["backend"] != "nli" or opts.self_train)
        vectors = predictor.encoder().encode(texts) if wants_vectors else None
        record, logits = adapt(predictor, texts, opts.correction, opts.weigh, vectors)
        if not (opts.self_train and texts):
            return record
        proba = predictor.mix(logits) if logits else predictor.zero_shot_proba(texts, vectors)
        assert predictor.training is not None
        predictor.training.self_training = predictor.self_train(texts, opts.keep, seed, proba=proba, vectors=vectors)
        if opts.weigh and len(texts) >= MIN_WEIGH_TEXTS and predictor.head is not None and vectors is not None:
            alpha = float(predictor.settings.get("self_train_weight", 0.5))
            trained = alpha * _logistic_proba(vectors, *predictor.head) + (1 - alpha) * proba
            keep, scores = keep_self_training(texts, proba, trained)
            record["self_training"] = {"kept": keep, "kappa": scores}
            if not keep:
                predictor.head = None
        return record


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
