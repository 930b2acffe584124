"""The ``intent`` task: what a user's utterance asks for, among dozens to hundreds of intents.

Out of scope: examples labelled ``oos`` (CLINC150's convention) train an out-of-scope class like
any other; ``--option oos_threshold=0.x`` also predicts ``oos`` whenever the most probable intent
scores below the threshold (kept in the model folder). ``oos_threshold=auto`` chooses that cut on
the calibrated probabilities of dev (or of the out-of-fold predictions of a cross-validation on
the training examples when there is no dev, :mod:`taskkit.calibration`): the highest cut (so the
most out-of-scope recall) that keeps in-scope accuracy within ``oos_tolerance`` (default 0.02, two
points) of no cut at all. Only the in-scope examples decide it, so it holds where a few-shot dev set
has a handful of out-of-scope examples, or none, and where their share differs from test (a cut
maximising a mean of accuracy and recall over 8 oos examples gave away 17 points of in-scope
accuracy on CLINC150). The trade-off curve goes to ``metrics.json`` (``training.extra.oos_threshold``). Metrics add in-scope accuracy
and out-of-scope recall, reported separately because one hides the other in plain accuracy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

import taskkit
from taskkit.classification import ClassificationOptions, ClassificationTask
from taskkit.contracts import Example, LabelSpace, RunConfig, TrainingRecord
from taskkit.options import read

if TYPE_CHECKING:
    import numpy as np

OOS = "oos"


class IntentOptions(ClassificationOptions):
    oos_threshold: float | Literal["auto"] | None = Field(
        None, description="predict oos when the top intent's probability is below this (kept with the model); "
                          "auto: the highest cut keeping dev in-scope accuracy within oos_tolerance of no cut")
    oos_tolerance: float = Field(0.02, ge=0, le=1, description="with oos_threshold=auto: the in-scope accuracy "
                                 "(a fraction, 0.02 = two points) the cut may give up for out-of-scope recall")

    @field_validator("oos_threshold")
    @classmethod
    def _in_range(cls, value: float | str | None) -> float | str | None:
        if isinstance(value, (int, float)) and not 0 <= value <= 1:
            raise ValueError("expected a number between 0 and 1, or auto")
        return value


class Intent(ClassificationTask):
    name = "intent"
    description = "the intent of an utterance (dozens to hundreds of classes), with an out-of-scope class"
    label_descriptions = {OOS: "a request outside what this assistant handles"}
    hypothesis_template = "The user wants {}."
    abstain_label = OOS  # zero-shot abstentions are out of scope
    Options = IntentOptions

    def fixed_threshold(self, config: RunConfig) -> float | None:
        cut = read(config, IntentOptions).oos_threshold
        return super().fixed_threshold(config) if cut is None or cut == "auto" else cut

    def choose_threshold(self, predictor: Any, dev: Sequence[Example], labels: LabelSpace,
                         config: RunConfig, probabilities: np.ndarray | None = None) -> float | None:
        """``oos_threshold=auto``: the highest cut on the top probability whose in-scope accuracy on
        ``dev`` stays within ``oos_tolerance`` of no cut (its curve kept in the training record)."""
        opts = read(config, IntentOptions)
        if opts.oos_threshold != "auto" or labels.multi_label:
            return super().choose_threshold(predictor, dev, labels, config, probabilities)
        if not any(e.get("label") != OOS for e in dev):
            return None  # no in-scope example to judge a cut by
        if probabilities is None:
            probabilities = predictor.predict_proba(dev)
        curve = oos_curve(probabilities, self.gold(dev, labels), labels)
        floor = curve[0]["in_scope_accuracy"] - opts.oos_tolerance
        best = max((row for row in curve if row["in_scope_accuracy"] >= floor - 1e-9), key=lambda row: row["threshold"])
        if isinstance(predictor.training, TrainingRecord):
            predictor.training.extra["oos_threshold"] = {
                "chosen": best["threshold"], "dev_examples": len(dev), "curve": curve,
                "rule": f"highest cut keeping dev in-scope accuracy within {opts.oos_tolerance} of no cut "
                        f"({curve[0]['in_scope_accuracy']:.4f})"}
        return best["threshold"]

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


def oos_curve(probabilities: np.ndarray, gold: Sequence[Any], labels: LabelSpace, steps: int = 50) -> list[dict[str, float]]:
    """(threshold, in-scope accuracy, oos recall) for cuts 0, 1/steps, ..., 1 - 1/steps: below the
    cut the top intent gives way to ``oos`` (recall 0 where there is no oos example)."""
    import numpy as np

    names = np.array(labels.names, dtype=object)
    top, best = probabilities.max(axis=1), names[probabilities.argmax(axis=1)]
    truth = np.array(list(gold), dtype=object)
    outside = truth == OOS
    rows = []
    for i in range(steps):
        cut = round(i / steps, 4)
        predicted = np.where(top < cut, OOS, best)
        inside = float(np.mean(predicted[~outside] == truth[~outside])) if (~outside).any() else 0.0
        recall = float(np.mean(predicted[outside] == OOS)) if outside.any() else 0.0
        rows.append({"threshold": cut, "in_scope_accuracy": round(inside, 4), "oos_recall": round(recall, 4)})
    return rows


@taskkit.hookimpl
def register_tasks(register: Callable[[taskkit.Task], None]) -> None:
    register(Intent())
