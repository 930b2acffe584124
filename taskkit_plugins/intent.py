"""The ``intent`` task: what a user's utterance asks for, among dozens to hundreds of intents.

Out of scope: examples labelled ``oos`` (CLINC150's convention) train an out-of-scope class like
any other; ``--option oos_threshold=0.x`` also predicts ``oos`` whenever the most probable intent
scores below the threshold (kept in the model folder). Metrics add in-scope accuracy and
out-of-scope recall, reported separately because one hides the other in plain accuracy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import Field

import taskkit
from taskkit.classification import ClassificationOptions, ClassificationTask
from taskkit.contracts import Example, LabelSpace, RunConfig
from taskkit.options import read

if TYPE_CHECKING:
    import numpy as np

OOS = "oos"


class IntentOptions(ClassificationOptions):
    oos_threshold: float | None = Field(None, ge=0, le=1, description="predict oos when the top intent's "
                                        "probability is below this (kept with the model)")


class Intent(ClassificationTask):
    name = "intent"
    description = "the intent of an utterance (dozens to hundreds of classes), with an out-of-scope class"
    label_descriptions = {OOS: "a request outside what this assistant handles"}
    hypothesis_template = "The user wants {}."
    abstain_label = OOS  # zero-shot abstentions are out of scope
    Options = IntentOptions

    def fixed_threshold(self, config: RunConfig) -> float | None:
        cut = read(config, IntentOptions).oos_threshold
        return super().fixed_threshold(config) if cut is None else cut

    def check_known(self, examples: Sequence[Example], labels: LabelSpace, split: str) -> None:
        # out-of-scope examples may appear in dev/test without any in training (threshold-only oos)
        super().check_known([e for e in examples if e.get("label") != OOS], labels, split)

    def decode(self, probabilities: np.ndarray, labels: LabelSpace, threshold: float | None = None) -> list[Any]:
        predicted = super().decode(probabilities, labels, None if not labels.multi_label else threshold)
        if threshold is None or labels.multi_label:
            return predicted
        return [OOS if float(row.max()) < threshold else p for row, p in zip(probabilities, predicted)]

    def metrics(self, gold: Sequence[Any], predicted: Sequence[Any], labels: LabelSpace) -> dict[str, Any]:
        scores = super().metrics(gold, predicted, labels)
        if labels.multi_label:
            return scores
        in_scope = [(g, p) for g, p in zip(gold, predicted) if g != OOS]
        out_scope = [p for g, p in zip(gold, predicted) if g == OOS]
        said_oos = sum(p == OOS for p in predicted)
        scores["in_scope_accuracy"] = sum(g == p for g, p in in_scope) / max(1, len(in_scope))
        if out_scope:
            scores["oos_recall"] = sum(p == OOS for p in out_scope) / len(out_scope)
            scores["oos_precision"] = sum(p == OOS for p in out_scope) / max(1, said_oos)
        return scores


@taskkit.hookimpl
def register_tasks(register: Callable[[taskkit.Task], None]) -> None:
    register(Intent())
