"""Text classification, single- and multi-label: everything a sequence task needs.

A built-in or third-party sequence task subclasses :class:`ClassificationTask` and only names
itself (and, if it likes, its label descriptions and hypothesis template).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from taskkit.contracts import Example, Features, LabelSpace, Level, RunConfig, Task, TaskOptions
from taskkit.data.readers import read_records
from taskkit.data.values import (
    LabelTypes,
    check_text,
    has_text,
    kind_of,
    label_name,
    require_text,
    show_name,
)
from taskkit.errors import TaskkitError
from taskkit.options import read

if TYPE_CHECKING:
    import numpy as np
    import torch
    from transformers import PreTrainedTokenizerBase


class ClassificationOptions(TaskOptions):
    threshold: float | None = Field(None, ge=0, le=1, description="decision cut kept with the model (multi-label: "
                                    "per label; default: tuned on dev)")
    threshold_metric: str = Field("macro_f1", description="dev metric the multi-label cut is tuned for")


class ClassificationTask(Task):
    """One text in, one label (or a set of labels, multi-label) out."""

    Options: ClassVar[type[TaskOptions]] = ClassificationOptions

    level: ClassVar[Level] = "sequence"
    primary_metric: ClassVar[str] = "accuracy"
    #: mean pooling suits sentence-transformers bodies; cls suits plain BERT checkpoints
    pooling: ClassVar[str] = "mean"
    calibratable: ClassVar[bool] = True  # probabilities: softmax / sigmoid of the logits

    # --- reading -------------------------------------------------------------------------
    def read(self, path: Path, config: RunConfig) -> list[Example]:
        return self.from_records(read_records(path), config)

    def from_records(self, records: list[dict[str, Any]], config: RunConfig) -> list[Example]:
        types = LabelTypes()  # integer and string labels may not mix in one file
        examples = []
        for row in records:
            example = self._example(row, config)
            column = config.label_column if "label" in example else "labels"
            raw = row.get(column)
            for value in raw if isinstance(raw, list) else [raw]:
                types.see(value, example["_where"], column)
            examples.append(example)
        return examples

    def _example(self, row: dict[str, Any], config: RunConfig) -> Example:
        where = row.get("_where", "input")
        text = require_text(row, config.text_column)
        example: Example = {"text": text, "_where": where}
        label = row.get(config.label_column)
        labels = row.get("labels") if config.label_column == "label" else None
        if labels is not None and label is None:
            if isinstance(labels, str):  # CSV: "a;b" or "a,b"
                labels = [x.strip() for x in labels.replace(";", ",").split(",") if x.strip()]
            if not isinstance(labels, list):
                raise TaskkitError(f"{where}: column 'labels' must be a list of label names, got {kind_of(labels)}")
            example["labels"] = [label_name(x, where, "labels") for x in labels]
        else:
            example["label"] = label_name(label, where, config.label_column)
        return example

    def as_example(self, item: Any) -> Example:
        """A predict input: a string, or a dict with ``text`` (a row of a predict file names its
        line in ``_where``); an empty or invisible text is an error."""
        if isinstance(item, str):
            if not has_text(item):
                raise TaskkitError("empty text given to predict")
            return {"text": check_text(item, "input")}
        if isinstance(item, dict):
            return {**item, "text": require_text(item, "text")}
        raise TaskkitError(f"cannot classify {type(item).__name__}: expected a string or {{'text': ...}}")

    # --- labels --------------------------------------------------------------------------
    def label_space(self, examples: Sequence[Example]) -> LabelSpace:
        multi = any("labels" in e for e in examples)
        if multi:
            missing = next((e for e in examples if "labels" not in e), None)
            if missing is not None:
                raise TaskkitError(f"{missing.get('_where', 'data')}: mixes single- and multi-label rows")
            counts = Counter(label for e in examples for label in e["labels"])
        else:
            counts = Counter(e["label"] for e in examples)
        if len(counts) < 2:
            only = next(iter(counts), "none")
            raise TaskkitError(f"training data has a single class ({only!r}): at least two are needed")
        return LabelSpace(tuple(sorted(counts)), multi_label=multi)

    def check_known(self, examples: Sequence[Example], labels: LabelSpace, split: str) -> None:
        """Labels in ``split`` that training never saw are an error naming the first one."""
        known = set(labels.names)
        for e in examples:
            for label in e.get("labels", [e.get("label")]):
                if label is not None and label not in known:
                    raise TaskkitError(f"{e.get('_where', split)}: label {label!r} in {split} never occurs in training data")

    def gold(self, examples: Sequence[Example], labels: LabelSpace) -> list[Any]:
        return [sorted(e["labels"]) if labels.multi_label else e["label"] for e in examples]

    # --- model ---------------------------------------------------------------------------
    def encode(self, examples: Sequence[Example], tokenizer: PreTrainedTokenizerBase, labels: LabelSpace,
               max_length: int, truncate: bool = False) -> list[Features]:
        """One feature per text, or, for a text longer than ``max_length``, one per overlapping
        window (``_example`` says whose): the predictor pools the windows' logits, and in training
        every window carries the text's label. ``truncate`` cuts long texts instead."""
        encoded = self.tokenize(examples, tokenizer, max_length, truncate)
        owners = encoded.pop("overflow_to_sample_mapping", None) or list(range(len(examples)))
        features: list[Features] = []
        for row, i in enumerate(owners):
            e = examples[i]
            f: Features = {k: encoded[k][row] for k in encoded}
            f["_example"] = i
            if labels.multi_label and "labels" in e:
                f["labels"] = [1.0 if name in e["labels"] else 0.0 for name in labels.names]
            elif "label" in e and e["label"] in labels.names:
                f["labels"] = labels.index(e["label"])
            features.append(f)
        return features

    def tokenize(self, examples: Sequence[Example], tokenizer: PreTrainedTokenizerBase, max_length: int,
                 truncate: bool = False) -> Any:
        texts = [e["text"] for e in examples]
        if truncate:
            return tokenizer(texts, truncation=True, max_length=max_length)
        # windows overlap by a quarter so no sentence is seen only cut in half
        return tokenizer(texts, truncation=True, max_length=max_length, stride=max_length // 4,
                         return_overflowing_tokens=True)

    def head(self, hidden_size: int, labels: LabelSpace, dropout: float) -> torch.nn.Module:
        from taskkit.kernel.model import SequenceHead

        return SequenceHead(hidden_size, len(labels), dropout, self.pooling)

    def output_layer(self, head: torch.nn.Module) -> torch.nn.Linear | None:
        from taskkit.kernel.model import SequenceHead

        return head.out if isinstance(head, SequenceHead) else None

    def loss(self, labels: LabelSpace) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        from torch import nn

        return nn.BCEWithLogitsLoss() if labels.multi_label else nn.CrossEntropyLoss()

    def probabilities(self, logits: np.ndarray, labels: LabelSpace) -> np.ndarray:
        from scipy.special import expit, softmax

        return expit(logits) if labels.multi_label else softmax(logits, axis=-1)

    def decode(self, probabilities: np.ndarray, labels: LabelSpace, threshold: float | None = None) -> list[Any]:
        if labels.multi_label:
            cut = 0.5 if threshold is None else threshold
            return [[labels.names[j] for j in range(len(labels)) if row[j] >= cut] for row in probabilities]
        names = [labels.names[int(row.argmax())] for row in probabilities]
        if threshold is None:
            return names
        abstain = self.abstain_label  # below the threshold: no label (relation: Other)
        return [abstain if float(row.max()) < threshold else n for row, n in zip(probabilities, names)]

    # --- decision threshold --------------------------------------------------------------
    def fixed_threshold(self, config: RunConfig) -> float | None:
        """A threshold the user set for this task through ``--option`` (none for plain classification)."""
        return read(config, ClassificationOptions).threshold

    def choose_threshold(self, predictor: Any, dev: Sequence[Example], labels: LabelSpace,
                         config: RunConfig, probabilities: np.ndarray | None = None) -> float | None:
        """The threshold a trained model keeps: multi-label, tuned on dev for ``threshold_metric``
        (default macro-F1, which a single cut tuned for micro-F1 would trade away on rare labels)."""
        fixed = self.fixed_threshold(config)
        if fixed is not None or not labels.multi_label or not dev:
            return fixed
        metric = read(config, ClassificationOptions).threshold_metric
        if probabilities is None:
            probabilities = predictor.predict_proba(dev)
        gold = self.gold(dev, labels)
        best, best_score = 0.5, -1.0
        for cut in [round(0.05 * i, 2) for i in range(1, 20)]:
            score = float(self.metrics(gold, self.decode(probabilities, labels, cut), labels)[metric])
            if score > best_score + 1e-9 or (abs(score - best_score) <= 1e-9 and abs(cut - 0.5) < abs(best - 0.5)):
                best, best_score = cut, score
        return best

    # --- evaluation ----------------------------------------------------------------------
    def metrics(self, gold: Sequence[Any], predicted: Sequence[Any], labels: LabelSpace) -> dict[str, Any]:
        from sklearn.metrics import classification_report, f1_score
        from sklearn.preprocessing import MultiLabelBinarizer

        names = list(labels.names)
        if labels.multi_label:
            binarizer = MultiLabelBinarizer(classes=names)
            y_true, y_pred = binarizer.fit_transform(gold), binarizer.transform(predicted)
            report = classification_report(y_true, y_pred, target_names=names, output_dict=True, zero_division=0)
            return {
                "micro_f1": f1_score(y_true, y_pred, average="micro", zero_division=0),
                "macro_f1": f1_score(y_true, y_pred, average="macro", zero_division=0),
                "accuracy": float((y_true == y_pred).all(axis=1).mean()),  # exact match
                "per_class": {n: report[n] for n in names},
            }
        abstained = sum(p is None for p in predicted)
        predicted = ["" if p is None else p for p in predicted]  # an abstention is wrong, never a class
        report = classification_report(gold, predicted, labels=names, output_dict=True, zero_division=0)
        correct = sum(g == p for g, p in zip(gold, predicted))
        return {
            "accuracy": correct / max(1, len(gold)),
            "macro_f1": report["macro avg"]["f1-score"],
            "weighted_f1": report["weighted avg"]["f1-score"],
            "per_class": {n: report[n] for n in names},
            **({"abstained": abstained} if abstained else {}),
        }

    def prediction_record(self, example: Example, predicted: Any, probabilities: Any, labels: LabelSpace) -> dict[str, Any]:
        record = super().prediction_record(example, predicted, probabilities, labels)
        record["probabilities"] = {n: round(float(p), 6) for n, p in zip(labels.names, probabilities)}
        return record


class PairClassificationTask(ClassificationTask):
    """Two texts in (premise and hypothesis, question and answer), one label out."""

    level: ClassVar[Level] = "pair"
    #: column names tried for the two texts, in order
    first_columns: ClassVar[tuple[str, ...]] = ("premise", "text", "sentence1", "text_a")
    second_columns: ClassVar[tuple[str, ...]] = ("hypothesis", "text_pair", "sentence2", "text_b")

    def _example(self, row: dict[str, Any], config: RunConfig) -> Example:
        first = next((c for c in self.first_columns if c in row), self.first_columns[0])
        second = next((c for c in self.second_columns if c in row), self.second_columns[0])
        example = super()._example({**row, config.text_column: require_text(row, first)}, config)
        example["text_pair"] = require_text(row, second)
        return example

    def as_example(self, item: Any) -> Example:
        if isinstance(item, (list, tuple)) and len(item) == 2 and all(isinstance(x, str) for x in item):
            return {"text": check_text(item[0], "input (first text)"), "text_pair": check_text(item[1], "input (second text)")}
        if isinstance(item, dict):
            first = next((c for c in self.first_columns if c in item), None)
            second = next((c for c in self.second_columns if c in item), None)
            if first is not None and second is not None:
                return {**item, "text": require_text(item, first), "text_pair": require_text(item, second)}
            if "_where" in item:  # a row of a predict file: say which column is missing
                wanted = self.first_columns if first is None else self.second_columns
                present = ", ".join(show_name(k) for k in item if not k.startswith("_")) or "none"
                raise TaskkitError(f"{item['_where']}: missing column {wanted[0]!r} (or {', '.join(wanted[1:])}; "
                                   f"found: {present})")
        raise TaskkitError(f"task {self.name!r} needs pairs: [first, second] or {{'premise': ..., 'hypothesis': ...}}")

    def tokenize(self, examples: Sequence[Example], tokenizer: PreTrainedTokenizerBase, max_length: int,
                 truncate: bool = False) -> Any:
        # pairs (premise + hypothesis) are short; both sides are trimmed, longest first
        return tokenizer([e["text"] for e in examples], [e["text_pair"] for e in examples],
                         truncation="longest_first", max_length=max_length)
