"""``--option engine=setfit``: the setfit library's own Trainer, its model saved in taskkit's format
(an embedding head on the trained body, format ``embedding-head.v1``). The reference the few-shot
mode's own engine is measured against."""

from __future__ import annotations

import tempfile
from typing import TYPE_CHECKING

from taskkit.errors import TaskkitError

if TYPE_CHECKING:
    from taskkit.contracts import LabelSpace, Predictor, RunConfig, Splits, Task


def fit_with_setfit(task: Task, splits: Splits, config: RunConfig, labels: LabelSpace) -> tuple[Predictor, dict]:
    """The setfit library's own Trainer at its defaults, scratch output in a temporary folder."""
    import numpy as np
    import torch
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    from taskkit.kernel.heads import EmbeddingHead
    from taskkit.kernel.model import TaskModel
    from taskkit.kernel.predictor import EmbeddingHeadPredictor
    from taskkit.models import load_tokenizer, resolve
    from taskkit_plugins.few_shot.mode import settings_of

    if labels.multi_label:
        raise TaskkitError("few-shot: engine=setfit supports single-label data only here; use engine=taskkit")
    ref = resolve(config.model)
    model = SetFitModel.from_pretrained(ref)
    y = [labels.index(e["label"]) for e in splits.train]
    data = Dataset.from_dict({"text": [e["text"] for e in splits.train], "label": y})
    with tempfile.TemporaryDirectory(prefix="taskkit-setfit-") as scratch:
        args = TrainingArguments(output_dir=scratch, seed=config.seed, max_length=config.max_length,
                                 show_progress_bar=False, report_to="none", save_strategy="no")
        Trainer(model=model, args=args, train_dataset=data).train()
    clf = model.model_head
    coef = np.zeros((len(labels), model.model_body.get_sentence_embedding_dimension()), dtype=np.float32)
    bias = np.zeros(len(labels), dtype=np.float32)
    if len(labels) == 2:
        coef[1], bias[1] = clf.coef_[0], clf.intercept_[0]
    else:
        coef[clf.classes_], bias[clf.classes_] = clf.coef_, clf.intercept_
    body = model.model_body[0].auto_model
    head = EmbeddingHead(body.config.hidden_size, len(labels))
    with torch.no_grad():
        head.out.weight.copy_(torch.from_numpy(coef))
        head.out.bias.copy_(torch.from_numpy(bias))
    predictor = EmbeddingHeadPredictor(TaskModel(body, head), load_tokenizer(ref), task, labels, "few-shot",
                                       settings_of(config, "logistic"))
    return predictor, {"setfit": {"defaults": True}}
