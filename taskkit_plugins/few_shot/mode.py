"""The ``few-shot`` mode: SetFit-style training from a handful of examples per class.

Two phases, both on taskkit's kernel (bf16 autocast, length-sorted batches, early stopping on dev
where a dev split exists):

1. contrastive: the sentence body learns to embed texts of one class together, with the labels'
   descriptions as anchor examples (:mod:`taskkit_plugins.few_shot.contrastive`);
2. a head: ``--option head=logistic`` fits scikit-learn's logistic regression on the embeddings
   (SetFit's default head), ``--option head=torch`` trains the task's own torch head end to end.

Few examples must never do worse than knowing the label names, so both heads start from (or are
pulled toward) the zero-shot classifier: the cosine between a text and each label's description.

``--option engine=setfit`` runs the setfit library's own Trainer instead (in a temporary folder)
and saves its model in taskkit's format.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

import taskkit
from taskkit.contracts import (
    LabelSpace,
    Mode,
    ModeOptions,
    Predictor,
    RunConfig,
    Splits,
    Task,
    TrainingRecord,
)
from taskkit.options import read

if TYPE_CHECKING:
    import numpy as np

class FewShotOptions(ModeOptions):
    head: Literal["logistic", "torch"] = Field("logistic", description="logistic: scikit-learn on the embeddings "
                                               "(SetFit's default); torch: the task's head, trained end to end")
    engine: Literal["taskkit", "setfit"] = Field("taskkit", description="setfit: the setfit library's own Trainer")
    steps: int = Field(0, ge=0, description="contrastive steps (0: chosen from the data size)")
    contrastive_lr: float = Field(2e-5, gt=0, description="learning rate of the contrastive phase")
    prior: bool = Field(True, description="label descriptions as anchors and as the head's starting point")
    prior_weight: float | None = Field(None, ge=0, description="hold the head near the zero-shot classifier with "
                                       "share W / (1 + W) (default: cross-validated)")
    eval_every: int = Field(10, ge=1, description="contrastive steps between dev evaluations")
    descriptions: dict[str, str] = Field({}, description="label -> description, overriding the task's (JSON)")
    zero_shot: Literal["none", "nli", "embedding", "both", "auto"] = Field(
        "auto", description="average with a zero-shot classifier of the same labels (auto: both for single-label "
                            "tasks of at most 10 labels)")
    zero_shot_weight: float = Field(0.5, ge=0, le=1, description="the zero-shot classifier's share in that average")


def default_steps(n_train: int, n_labels: int, batch_size: int) -> int:
    """Enough steps for every text to be seen ~4 times (at least 20, at most 300): bounded wall time."""
    return max(20, min(300, 4 * -(-n_train // batch_size), 2 * n_labels))


class FewShotMode(Mode):
    Options = FewShotOptions
    name = "few-shot"
    description = "SetFit-style: contrastive sentence-embedding training, then a head, from few examples"
    defaults = {"lr": 1e-4, "epochs": 20, "batch_size": 32, "max_length": 64, "patience": 3}

    def supports(self, task: Task) -> bool:
        return task.level == "sequence"

    def fit(self, task: Task, splits: Splits, config: RunConfig) -> Predictor:
        import time

        import numpy as np

        from taskkit.kernel.train import seed_everything
        from taskkit.models import load_body, load_tokenizer, resolve
        from taskkit_plugins.few_shot.contrastive import (
            contrastive_train,
            embed,
            label_prompts,
            multi_hot,
        )

        opts = read(config, FewShotOptions)
        labels = task.label_space(splits.train)
        task.check_known(splits.dev, labels, "dev")
        task.check_known(splits.test, labels, "test")
        started = time.perf_counter()
        if opts.engine == "setfit":
            from taskkit_plugins.few_shot.setfit_engine import fit_with_setfit

            predictor, info = fit_with_setfit(task, splits, config, labels)
        else:
            ref = resolve(config.model)
            tokenizer, body = load_tokenizer(ref), load_body(ref)
            seed_everything(config.seed)
            prompts = label_prompts(task, labels, opts.descriptions) if opts.prior else []
            texts = [e["text"] for e in splits.train] + prompts
            targets = multi_hot(splits.train, labels)
            if prompts:
                targets = np.concatenate([targets, np.eye(len(labels), dtype=np.float32)])
            steps = opts.steps or default_steps(len(texts), len(labels), config.batch_size)
            mix = prior_mix(task, splits, config, labels, body, tokenizer, prompts, opts)
            dev = ([e["text"] for e in splits.dev] + prompts,
                   np.concatenate([multi_hot(splits.dev, labels), targets[len(splits.train):]])) if splits.dev else None
            phase1 = contrastive_train(body, tokenizer, texts, targets, config, steps=steps,
                                       lr=opts.contrastive_lr, dev=dev, eval_every=opts.eval_every)
            info = {"prior_mix": mix, "contrastive": {
                "steps": steps, "steps_run": phase1.steps_run, "best_step": phase1.best_step,
                "stopped_early": phase1.stopped_early, "seconds": round(phase1.train_seconds, 2),
                "history": phase1.history}}
            prior = embed(body, tokenizer, prompts, config.max_length, config.precision) if prompts else None
            if opts.head == "logistic":
                predictor = logistic_head(task, splits, config, labels, body, tokenizer, prior, opts, mix)
            else:
                predictor, info["head_training"] = torch_head(task, splits, config, labels, body, tokenizer, prior, opts)
        backend = opts.zero_shot
        if backend == "auto":  # (the setfit engine is the reference: left as the library makes it)
            small = not labels.multi_label and len(labels) <= 10 and opts.engine == "taskkit"
            backend = "both" if small else "none"
        if backend != "none":
            predictor = with_zero_shot(predictor, task, labels, config, opts, backend)
        predictor.threshold = task.choose_threshold(predictor, splits.dev, labels, config)
        predictor.training = TrainingRecord(**info, head=opts.head, engine=opts.engine, prior=opts.prior,
                                            zero_shot=backend, train_examples=len(splits.train),
                                            threshold=predictor.threshold,
                                            train_seconds=round(time.perf_counter() - started, 2))
        return predictor


def with_zero_shot(trained: Predictor, task: Task, labels: LabelSpace, config: RunConfig, opts: FewShotOptions,
                   backend: str) -> Predictor:
    """``trained`` averaged with a zero-shot classifier of the same labels and descriptions."""
    from taskkit.ensemble import EnsemblePredictor
    from taskkit.zero_shot_predictor import build

    descriptions = {name: opts.descriptions.get(name) for name in labels.names}
    zero = build(task, config.replace(labels=descriptions, backend=backend, model="auto", template=None,
                                      multi_label=labels.multi_label, max_length=max(128, config.max_length),
                                      options={}))
    weight = opts.zero_shot_weight
    return EnsemblePredictor([trained, zero], [1.0 - weight, weight], "few-shot", {"threshold": trained.threshold})


def prior_mix(task: Task, splits: Splits, config: RunConfig, labels: LabelSpace, body: Any, tokenizer: Any,
              prompts: list[str], opts: FewShotOptions) -> float | None:
    """The zero-shot classifier's share in a single-label logistic head: the user's ``prior_weight``
    w as w / (1 + w), else cross-validated on the still untrained body's embeddings."""
    if not prompts or labels.multi_label:
        return None
    if opts.prior_weight is not None:
        return opts.prior_weight / (1.0 + opts.prior_weight)
    if opts.head != "logistic":
        return None
    from taskkit_plugins.few_shot.contrastive import embed, multi_hot
    from taskkit_plugins.few_shot.prior import choose_mix

    x = embed(body, tokenizer, [e["text"] for e in splits.train], config.max_length, config.precision)
    prior = embed(body, tokenizer, prompts, config.max_length, config.precision)
    return choose_mix(x, multi_hot(splits.train, labels).argmax(1), prior, config.seed)


def settings_of(config: RunConfig, head: str) -> dict[str, Any]:
    return {"base_model": config.model, "max_length": config.max_length, "eval_batch_size": config.eval_batch_size,
            "precision": config.precision, "dropout": config.dropout, "head": head}


def logistic_head(task: Task, splits: Splits, config: RunConfig, labels: LabelSpace, body: Any, tokenizer: Any,
                  prior: np.ndarray | None, opts: FewShotOptions, mix: float | None = None) -> Predictor:
    """SetFit's default head: logistic regression on normalised embeddings (one per label if multi-label).

    With the prior, each label's description embedding joins the training data as an example of its
    label (weight ``prior_weight``), and the result is averaged with the zero-shot cosine classifier
    in logit space, so a handful of noisy examples cannot pull the decision far from the label names.
    """
    import numpy as np
    import torch
    from sklearn.linear_model import LogisticRegression

    from taskkit.kernel.heads import EmbeddingHead
    from taskkit.kernel.model import TaskModel
    from taskkit_plugins.few_shot.contrastive import embed, multi_hot
    from taskkit_plugins.few_shot.prior import blend, fit_logistic

    x = embed(body, tokenizer, [e["text"] for e in splits.train], config.max_length, config.precision)
    y = multi_hot(splits.train, labels)
    weights = np.ones(len(x))
    if prior is not None:
        x, y = np.concatenate([x, prior]), np.concatenate([y, np.eye(len(labels), dtype=np.float32)])
        weights = np.concatenate([weights, np.full(len(prior), _prior_weight(opts))])
    coef = np.zeros((len(labels), x.shape[1]), dtype=np.float32)
    bias = np.zeros(len(labels), dtype=np.float32)
    if labels.multi_label:  # one binary regression per label (SetFit's one-vs-rest)
        for j in range(len(labels)):
            clf = LogisticRegression(max_iter=1000, random_state=config.seed).fit(x, y[:, j], sample_weight=weights)
            coef[j], bias[j] = clf.coef_[0], clf.intercept_[0]
    else:
        coef, bias = fit_logistic(x, y.argmax(1), len(labels), config.seed, weights)
    if prior is not None and mix is not None:  # the zero-shot classifier's share, in logit space
        coef, bias = blend(coef, bias, x[: len(splits.train)], prior, mix)
    head = EmbeddingHead(body.config.hidden_size, len(labels))
    with torch.no_grad():
        head.out.weight.copy_(torch.from_numpy(np.ascontiguousarray(coef, dtype=np.float32)))
        head.out.bias.copy_(torch.from_numpy(np.ascontiguousarray(bias, dtype=np.float32)))
    from taskkit.kernel.predictor import EmbeddingHeadPredictor

    return EmbeddingHeadPredictor(TaskModel(body, head), tokenizer, task, labels, "few-shot",
                                 settings_of(config, "logistic"))


def torch_head(task: Task, splits: Splits, config: RunConfig, labels: LabelSpace, body: Any, tokenizer: Any,
               prior: np.ndarray | None, opts: FewShotOptions) -> tuple[Predictor, dict[str, Any]]:
    """The task's own head, trained end to end with the body by the kernel's loop.

    Its output layer starts as the zero-shot classifier (each row: a label's normalised description
    embedding, scaled), and an L2 penalty holds it near that start.
    """
    import numpy as np
    import torch

    from taskkit.evaluation import evaluate
    from taskkit.kernel.model import TaskModel
    from taskkit.kernel.predictor import TorchPredictor
    from taskkit.kernel.train import train

    head = task.head(body.config.hidden_size, labels, config.dropout)
    model = TaskModel(body, head)
    out = task.output_layer(head)
    start = None
    if prior is not None and isinstance(out, torch.nn.Linear):
        # the head pools without normalising: scale rows so logits ~ 20 x cosine for a typical text
        sample = [e["text"] for e in splits.train[:64]]
        norm = _raw_norm(body, tokenizer, sample, config.max_length)
        start = torch.from_numpy(prior / np.linalg.norm(prior, axis=1, keepdims=True) * (20.0 / norm)).float()
        with torch.no_grad():
            out.weight.copy_(start)
            out.bias.zero_()
    base = task.loss(labels)
    reg = _prior_weight(opts)

    def loss(logits: torch.Tensor, gold: torch.Tensor) -> torch.Tensor:
        value = base(logits, gold)
        if start is not None and reg:
            drift = (out.weight - start.to(out.weight.device)).pow(2).sum() / start.pow(2).sum()
            value = value + reg * drift
        return value

    predictor = TorchPredictor(model, tokenizer, task, labels, "few-shot", settings_of(config, "torch"))
    features = task.encode(splits.train, tokenizer, labels, config.max_length)
    metric = config.metric or ("micro_f1" if labels.multi_label else task.primary_metric)
    on_dev = (lambda _: evaluate(predictor, splits.dev)[0]) if splits.dev else None
    result = train(model, features, loss, config, tokenizer.pad_token_id, evaluate=on_dev, metric=metric)
    return predictor, {"epochs_run": len(result.history), "best_epoch": result.best_epoch,
                       "stopped_early": result.stopped_early, "seconds": round(result.train_seconds, 2),
                       "history": result.history}


def _prior_weight(opts: FewShotOptions) -> float:
    return 1.0 if opts.prior_weight is None else opts.prior_weight


def _raw_norm(body: Any, tokenizer: Any, texts: list[str], max_length: int) -> float:
    """Mean norm of mean-pooled (unnormalised) embeddings of ``texts``."""
    import torch

    from taskkit.kernel.model import mean_pool

    encoded = tokenizer(texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = body(**{k: v.to(body.device) for k, v in encoded.items()}).last_hidden_state
        return float(mean_pool(hidden, encoded["attention_mask"].to(body.device)).norm(dim=-1).mean())


@taskkit.hookimpl
def register_modes(register: Callable[[Mode], None]) -> None:
    register(FewShotMode())
