"""A third-party mode: ``tfidf``, TF-IDF n-grams + logistic regression (scikit-learn, no torch), saved
in the plugin's own format ``tfidf.v1`` (vocabulary, idf, coefficients as JSON, no pickle)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

import taskkit
from taskkit import LabelSpace, Mode, Predictor, RunConfig, Splits, Task
from taskkit.artifacts import write_atomically
from taskkit.contracts import ModeOptions, TrainingRecord
from taskkit.options import read

FORMAT, WEIGHTS = "tfidf.v1", "tfidf.json"


class TfidfOptions(ModeOptions):
    c: float = Field(10.0, gt=0, description="inverse regularisation strength of the logistic regression")
    analyzer: Literal["char_wb", "word"] = Field("char_wb", description="char 2-4-grams in words, or word 1-2-grams")


def _vectorizer(analyzer: str, vocabulary: dict[str, int] | None = None) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer

    grams = (2, 4) if analyzer == "char_wb" else (1, 2)
    return TfidfVectorizer(analyzer=analyzer, ngram_range=grams, sublinear_tf=True, vocabulary=vocabulary)


class TfidfPredictor(Predictor):
    format = FORMAT

    def __init__(self, task: Task, labels: LabelSpace, vectorizer: Any, classifier: Any, mode: str) -> None:
        self.task, self.labels, self.vectorizer, self.classifier, self.mode = task, labels, vectorizer, classifier, mode

    def predict_proba(self, inputs: Sequence[Any]) -> Any:
        import numpy as np

        texts = [self.task.as_example(x)["text"] for x in inputs]
        return self.classifier.predict_proba(self.vectorizer.transform(texts)) if texts else np.zeros((0, len(self.labels)))

    def save(self, path: str | Path) -> Path:
        v, c = self.vectorizer, self.classifier
        state = {"analyzer": v.analyzer, "vocabulary": {t: int(i) for t, i in v.vocabulary_.items()},
                 "idf": v.idf_.tolist(), "coef": c.coef_.tolist(), "intercept": c.intercept_.tolist()}
        meta = {"format": FORMAT, "task": self.task.name, "mode": self.mode, "labels": list(self.labels.names)}

        def write(folder: Path) -> None:
            (folder / WEIGHTS).write_text(json.dumps(state), encoding="utf-8")

        return write_atomically(path, write, meta)

    @classmethod
    def load(cls, path: Path, task: Task, metadata: dict[str, Any]) -> TfidfPredictor:
        import numpy as np
        from sklearn.linear_model import LogisticRegression

        try:
            state = json.loads((path / WEIGHTS).read_text(encoding="utf-8"))
            vectorizer = _vectorizer(state["analyzer"], state["vocabulary"])
            vectorizer.idf_ = np.asarray(state["idf"], dtype=np.float64)
            classifier = LogisticRegression()
            classifier.coef_, classifier.intercept_ = np.asarray(state["coef"]), np.asarray(state["intercept"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise taskkit.TaskkitError(f"{path / WEIGHTS}: not a readable tfidf.v1 model ({exc})") from None
        classifier.classes_ = np.arange(len(metadata["labels"]))
        return cls(task, LabelSpace(tuple(metadata["labels"])), vectorizer, classifier, metadata["mode"])


class TfidfMode(Mode):
    name = "tfidf"
    description = "TF-IDF n-grams + logistic regression (scikit-learn, no torch, seconds on a CPU)"
    Options = TfidfOptions

    def supports(self, task: Task) -> bool:
        return task.level == "sequence"

    def fit(self, task: Task, splits: Splits, config: RunConfig) -> Predictor:
        from sklearn.linear_model import LogisticRegression

        options, labels, started = read(config, TfidfOptions), task.label_space(splits.train), time.perf_counter()
        if labels.multi_label:
            raise taskkit.TaskkitError("mode 'tfidf' learns single-label tasks only (the data has 'labels' lists)")
        task.check_known(splits.dev, labels, "dev")
        task.check_known(splits.test, labels, "test")
        vectorizer = _vectorizer(options.analyzer)
        features = vectorizer.fit_transform([e["text"] for e in splits.train])
        gold = [labels.index(g) for g in task.gold(splits.train, labels)]
        classifier = LogisticRegression(C=options.c, max_iter=1000, random_state=config.seed).fit(features, gold)
        predictor = TfidfPredictor(task, labels, vectorizer, classifier, self.name)
        predictor.training = TrainingRecord(train_seconds=round(time.perf_counter() - started, 3),
                                            train_examples=len(splits.train),
                                            extra={"vocabulary": len(vectorizer.vocabulary_)})
        return predictor


@taskkit.hookimpl
def register_modes(register: Callable[[Mode], None]) -> None:
    register(TfidfMode())


@taskkit.hookimpl
def register_formats(register: Callable[[str, Any], None]) -> None:
    register(FORMAT, TfidfPredictor.load)
