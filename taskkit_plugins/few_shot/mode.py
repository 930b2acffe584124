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
from taskkit.contracts import LabelSpace, Mode, ModeOptions, Predictor, RunConfig, Splits, Task, TrainingRecord
from taskkit.options import read

if TYPE_CHECKING:
    import numpy as np

    from taskkit_plugins.few_shot.prior import Shares

class FewShotOptions(ModeOptions):
    head: Literal["logistic", "torch"] = Field("logistic", description="logistic: scikit-learn on the embeddings "
                                               "(SetFit's default); torch: the task's head, trained end to end")
    engine: Literal["taskkit", "setfit"] = Field("taskkit", description="setfit: the setfit library's own Trainer")
    steps: int = Field(0, ge=0, description="contrastive steps (0: as many texts as setfit encodes at "
                                            "`iterations`, at most `max_steps`)")
    iterations: int = Field(20, ge=1, description="setfit's num_iterations: pairs per example (x2) the contrastive "
                                                  "phase's length matches")
    max_steps: int = Field(100, ge=1, description="cap on the contrastive steps (bounded wall time on many shots)")
    contrastive_lr: float = Field(2e-5, gt=0, description="learning rate of the contrastive phase (setfit's paper)")
    prior: bool = Field(True, description="use the label names at all (anchors, head share, zero-shot member)")
    prior_weight: float | None = Field(None, ge=0, description="hold the head near the zero-shot classifier with "
                                       "share W / (1 + W) (default: cross-validated)")
    eval_every: int = Field(10, ge=1, description="contrastive steps between dev evaluations (with --dev-shots)")
    descriptions: dict[str, str] = Field({}, description="label -> description, overriding the task's (JSON)")
    zero_shot: Literal["none", "nli", "embedding", "both", "auto"] = Field(
        "auto", description="average with a zero-shot classifier of the same labels (auto: both for single-label "
                            "tasks of at most 10 labels)")
    zero_shot_weight: float | None = Field(None, ge=0, le=1, description="the zero-shot classifier's share in that "
                                           "average (default: cross-validated on the shots, 0 to 1; above 0.5 only where the "
                                           "held-out loss is clearly lower)")
    correction: Literal["auto", "texts", "none"] = Field(
        "auto", description="the zero-shot member's label-bias correction, as the zero-shot mode's: each label's "
                            "score centred over the shots' texts (auto: with at least 20 of them)")
    cv_folds: int = Field(2, ge=0, description="folds of the shots, each trained contrastively, that choose the "
                                               "names' shares when there is a zero-shot member (0: untrained body)")


def contrastive_steps(n_texts: int, batch_size: int, iterations: int, cap: int) -> int:
    """As many text encodings as setfit's contrastive phase at ``num_iterations`` (2 x iterations
    pairs per example, two texts a pair), in batches of ``batch_size``; at most ``cap``."""
    return max(1, min(cap, -(-4 * iterations * n_texts // batch_size)))


def structured(task: Task) -> bool:
    """A token task (NER), or a pair task whose labels are verbalised per example (relation)."""
    return task.level == "token" or (task.level == "pair" and task.fills_hypotheses_per_example)


class FewShotMode(Mode):
    Options = FewShotOptions
    name = "few-shot"
    description = "SetFit-style: contrastive sentence-embedding training, then a head, from few examples"
    # max_length 128: on AG News (codes, 8 shots, dev texts) 81.8 against 81.1 at 64, the longer texts
    # trained and embedded whole; texts under 64 tokens (SST-2, Banking77) are unchanged
    defaults = {"lr": 1e-4, "epochs": 20, "batch_size": 32, "max_length": 128, "patience": 3}
    refit_to_calibrate = False  # three more contrastive trainings would quadruple a run: dev only

    def supports(self, task: Task) -> bool:
        return task.level == "sequence" or structured(task)

    def fit(self, task: Task, splits: Splits, config: RunConfig) -> Predictor:
        if structured(task):  # NER and relation extraction: few_shot/tokens.py
            from taskkit_plugins.few_shot.tokens import fit_structured

            return fit_structured(task, splits, config, read(config, FewShotOptions).descriptions)
        import time

        opts = read(config, FewShotOptions)
        labels = task.label_space(splits.train)
        task.check_known(splits.dev, labels, "dev")
        task.check_known(splits.test, labels, "test")
        started = time.perf_counter()
        backend = opts.zero_shot
        if backend == "auto":  # (the setfit engine is the reference: left as the library makes it)
            small = not labels.multi_label and len(labels) <= 10 and opts.engine == "taskkit" and opts.prior
            backend = "both" if small else "none"
        from taskkit.names_member import zero_member  # the same member as full and peft keep on small data

        zero = zero_member(task, labels, config, backend, opts.descriptions) if backend != "none" else None
        correction = centre_member(zero, splits, opts.correction)
        weight = opts.zero_shot_weight if opts.zero_shot_weight is not None else 0.5
        if opts.engine == "setfit":
            from taskkit_plugins.few_shot.setfit_engine import fit_with_setfit

            predictor, info = fit_with_setfit(task, splits, config, labels)
        else:
            predictor, info = fit_taskkit(task, splits, config, labels, opts, zero)
            weight = info.get("zero_shot_share", weight)
            nli_share = (info.get("shares") or {}).get("member_nli_share")
            if nli_share is not None:  # the two backends' mix inside the member, as the shots chose
                from taskkit.zero_shot_predictor import ZeroShotPredictor

                assert isinstance(zero, ZeroShotPredictor)  # only a two-backend member has that share
                zero.settings["nli_share"] = nli_share
        if zero is not None and weight > 0:
            from taskkit.ensemble import EnsemblePredictor

            predictor = EnsemblePredictor([predictor, zero], [1.0 - weight, weight], "few-shot",
                                          {"threshold": predictor.threshold})
        else:
            backend = "none"
        info["zero_shot_share"] = weight if backend != "none" else 0.0
        if correction is not None:
            info.setdefault("extra", {})["member_correction"] = correction
        predictor.threshold = task.choose_threshold(predictor, splits.dev, labels, config)
        predictor.training = TrainingRecord(**info, head=opts.head, engine=opts.engine, prior=opts.prior,
                                            zero_shot=backend, train_examples=len(splits.train),
                                            threshold=predictor.threshold,
                                            train_seconds=round(time.perf_counter() - started, 2))
        return predictor


def fit_taskkit(task: Task, splits: Splits, config: RunConfig, labels: LabelSpace, opts: FewShotOptions,
                zero: Predictor | None) -> tuple[Predictor, dict[str, Any]]:
    """taskkit's engine: the names' shares cross-validated on the shots, the contrastive phase, the head."""
    import numpy as np

    from taskkit.kernel.train import seed_everything
    from taskkit.models import load_body, load_tokenizer, resolve
    from taskkit_plugins.few_shot.contrastive import contrastive_train, embed, label_prompts, multi_hot

    ref = resolve(config.model)
    tokenizer, body = load_tokenizer(ref), load_body(ref)
    seed_everything(config.seed)
    prompts = label_prompts(task, labels, opts.descriptions) if opts.prior else []
    texts = [e["text"] for e in splits.train]
    targets = multi_hot(splits.train, labels)
    steps = opts.steps or contrastive_steps(len(texts), config.batch_size, opts.iterations, opts.max_steps)
    shares = names_worth(splits, config, labels, body, tokenizer, prompts, opts, zero, steps)
    # names worth nothing are not used at all: no anchors in training, no examples in the head
    anchors = prompts if shares is None or shares.mix > 0 or shares.weight > 0 else []
    dev = None
    if splits.dev:  # only with --dev-shots: early stopping on the dev pair loss
        dev = ([e["text"] for e in splits.dev] + anchors,
               np.concatenate([multi_hot(splits.dev, labels), np.eye(len(labels), dtype=np.float32)[:len(anchors)]]))
    train_targets = np.concatenate([targets, np.eye(len(labels), dtype=np.float32)[:len(anchors)]])
    phase1 = contrastive_train(body, tokenizer, texts + anchors, train_targets, config, steps=steps,
                               lr=opts.contrastive_lr, dev=dev, eval_every=opts.eval_every)
    info: dict[str, Any] = {"contrastive": {
        "steps": steps, "steps_run": phase1.steps_run, "best_step": phase1.best_step, "anchors": len(anchors),
        "stopped_early": phase1.stopped_early, "seconds": round(phase1.train_seconds, 2), "history": phase1.history}}
    mix = shares.mix if shares is not None else (
        opts.prior_weight / (1.0 + opts.prior_weight) if opts.prior_weight is not None and prompts else None)
    info["prior_mix"] = mix
    if shares is not None:
        info["shares"] = shares.as_dict()
        info["zero_shot_share"] = shares.weight
    prior = embed(body, tokenizer, anchors, config.max_length, config.precision) if anchors else None
    if opts.head == "logistic":
        predictor = logistic_head(task, splits, config, labels, body, tokenizer, prior, opts, mix)
    else:
        predictor, info["head_training"] = torch_head(task, splits, config, labels, body, tokenizer, prior, opts)
    return predictor, info


def names_worth(splits: Splits, config: RunConfig, labels: LabelSpace, body: Any, tokenizer: Any,
                prompts: list[str], opts: FewShotOptions, zero: Predictor | None, steps: int) -> Shares | None:
    """The zero-shot shares in the head and in the average, cross-validated on the shots
    (:mod:`taskkit_plugins.few_shot.prior`); None for multi-label data or without names."""
    import numpy as np

    from taskkit_plugins.few_shot.contrastive import embed, multi_hot
    from taskkit_plugins.few_shot.prior import FALLBACK, MIXES, WEIGHTS, Shares, choose_shares, untrained_folds

    if not prompts or labels.multi_label:
        return None
    texts = [e["text"] for e in splits.train]
    y = multi_hot(splits.train, labels).argmax(1)
    mixes = MIXES if opts.prior_weight is None else (opts.prior_weight / (1.0 + opts.prior_weight),)
    if opts.head != "logistic":
        mixes = (0.0,)
    weights = WEIGHTS if opts.zero_shot_weight is None else (opts.zero_shot_weight,)
    p_zero = zero_parts(zero, texts) if zero is not None else None
    x = embed(body, tokenizer, texts, config.max_length, config.precision)
    prior = embed(body, tokenizer, prompts, config.max_length, config.precision)
    folds = untrained_folds(x, y, prior, p_zero, config.seed)
    if not folds:
        return Shares(mixes[0] if len(mixes) == 1 else FALLBACK, weights[0] if len(weights) == 1 else FALLBACK,
                      "fallback: a class with a single example")
    shares = choose_shares(folds, config.seed, mixes, weights, "cross-validation, untrained body")
    if zero is None or opts.cv_folds < 2 or (shares.mix == 0 and shares.weight == 0):
        return shares  # worthless names stay worthless after training; no member: the head share is enough
    anchors_of = np.eye(len(labels), dtype=np.float32)
    start = {k: v.detach().clone() for k, v in body.state_dict().items()}

    def embed_fold(train: np.ndarray, held: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from taskkit_plugins.few_shot.contrastive import contrastive_train

        body.load_state_dict(start)
        part = [texts[i] for i in train]
        targets = np.concatenate([multi_hot([splits.train[i] for i in train], labels), anchors_of])
        contrastive_train(body, tokenizer, part + prompts, targets, config,
                          steps=max(1, round(steps * len(train) / len(texts))), lr=opts.contrastive_lr)
        return (embed(body, tokenizer, part, config.max_length, config.precision),
                embed(body, tokenizer, [texts[i] for i in held], config.max_length, config.precision),
                embed(body, tokenizer, prompts, config.max_length, config.precision))

    from taskkit_plugins.few_shot.prior import trained_folds

    try:
        trained = trained_folds(y, len(labels), p_zero, config.seed, embed_fold, opts.cv_folds)
    finally:
        body.load_state_dict(start)
    if not trained:
        return shares
    return choose_shares(trained, config.seed, mixes, weights,
                         f"cross-validation, {len(trained)} folds each trained contrastively")


def centre_member(zero: Predictor | None, splits: Splits, correction: str) -> dict[str, Any] | None:
    """The zero-shot member's label-bias correction (:func:`taskkit.zero_shot_adapt.adapt`, as the
    zero-shot mode fits it to unlabelled texts), fitted to the shots' texts: they hold every label
    about equally often, which is what centring each label's score over them assumes. Only the
    texts are read. What was fitted, or None without a single-label zero-shot member."""
    from taskkit.zero_shot_adapt import adapt
    from taskkit.zero_shot_predictor import ZeroShotPredictor

    if not isinstance(zero, ZeroShotPredictor) or zero.labels.multi_label:
        return None
    record, _ = adapt(zero, [e["text"] for e in splits.train], correction, weigh=False)
    return record["correction"]


def zero_parts(zero: Predictor, texts: list[str]) -> dict[str, np.ndarray]:
    """The zero-shot member's probabilities of ``texts`` per backend (``nli``, ``embedding``; each
    less its label-bias offsets) when it mixes two, so that the shots can choose their mix; else its
    probabilities as ``zero``."""
    from taskkit.hypothesis_scoring import softmax
    from taskkit.zero_shot_predictor import ZeroShotPredictor

    if isinstance(zero, ZeroShotPredictor) and zero.settings["backend"] == "both" and not zero.labels.multi_label:
        offsets = zero.label_bias()
        return {name: softmax(logits - offsets.get(name, 0.0))
                for name, logits in zero.backend_logits(texts).items()}
    return {"zero": zero.predict_proba(texts)}


def settings_of(config: RunConfig, head: str) -> dict[str, Any]:
    return {"base_model": config.model, "max_length": config.max_length, "eval_batch_size": config.eval_batch_size,
            "precision": config.precision, "dropout": config.dropout, "head": head}


def logistic_head(task: Task, splits: Splits, config: RunConfig, labels: LabelSpace, body: Any, tokenizer: Any,
                  prior: np.ndarray | None, opts: FewShotOptions, mix: float | None = None) -> Predictor:
    """SetFit's default head: logistic regression on normalised embeddings (one per label if multi-label).

    With a share ``mix`` of the label names (cross-validated), each label's description embedding
    joins the training data as an example of its label (weight ``prior_weight``) and the result is
    blended with the zero-shot cosine classifier in logit space; at share 0 the names are left out.
    """
    import numpy as np
    import torch
    from sklearn.linear_model import LogisticRegression

    from taskkit.kernel.heads import EmbeddingHead
    from taskkit.kernel.model import TaskModel
    from taskkit_plugins.few_shot.contrastive import embed, multi_hot
    from taskkit_plugins.few_shot.prior import blend, fit_logistic, head_weights

    x = embed(body, tokenizer, [e["text"] for e in splits.train], config.max_length, config.precision)
    y = multi_hot(splits.train, labels)
    if not labels.multi_label:  # as cross-validated: share 0 leaves the names out entirely
        coef, bias = (head_weights(x, y.argmax(1), prior, mix or 0.0, config.seed, _prior_weight(opts))
                      if prior is not None else fit_logistic(x, y.argmax(1), len(labels), config.seed))
    else:  # one binary regression per label (SetFit's one-vs-rest), descriptions as examples
        weights = np.ones(len(x))
        if prior is not None:
            x, y = np.concatenate([x, prior]), np.concatenate([y, np.eye(len(labels), dtype=np.float32)])
            weights = np.concatenate([weights, np.full(len(prior), _prior_weight(opts))])
        coef = np.zeros((len(labels), x.shape[1]), dtype=np.float32)
        bias = np.zeros(len(labels), dtype=np.float32)
        for j in range(len(labels)):
            clf = LogisticRegression(max_iter=1000, random_state=config.seed).fit(x, y[:, j], sample_weight=weights)
            coef[j], bias[j] = clf.coef_[0], clf.intercept_[0]
        if prior is not None and mix is not None:
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
    from taskkit.kernel.model import TaskModel, pooled_norm
    from taskkit.kernel.predictor import TorchPredictor
    from taskkit.kernel.train import train

    head = task.head(body.config.hidden_size, labels, config.dropout)
    model = TaskModel(body, head)
    out = task.output_layer(head)
    start = None
    if prior is not None and isinstance(out, torch.nn.Linear):
        # the head pools without normalising: scale rows so logits ~ 20 x cosine for a typical text
        sample = [e["text"] for e in splits.train[:64]]
        norm = pooled_norm(body, tokenizer, sample, config.max_length)
        start = torch.from_numpy(prior / np.linalg.norm(prior, axis=1, keepdims=True) * (20.0 / norm)).float()
        with torch.no_grad():
            out.weight.copy_(start)
            out.bias.zero_()
    base = task.loss(labels)
    reg = _prior_weight(opts)

    def loss(logits: torch.Tensor, gold: torch.Tensor) -> torch.Tensor:
        value = base(logits, gold)
        if start is not None and reg and out is not None:
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


@taskkit.hookimpl
def register_modes(register: Callable[[Mode], None]) -> None:
    register(FewShotMode())
