"""The zero-shot predictor (format ``zero-shot.v1``): label hypotheses scored by a backend, self-training.

A label set (:mod:`taskkit.label_sets`) maps each label to a description (or ``None``: its name is used). Each label becomes
a hypothesis through the task's template, e.g. "This text is about {}." -> "This text is about
sports news: games, teams...". The ``nli`` backend asks a cross-encoder whether the text entails
each hypothesis; the ``embedding`` backend compares a bi-encoder's embeddings of text and
hypothesis; ``both`` averages the two (they fail on different texts: NLI reads sentiment well,
embeddings separate many fine-grained intents). Self-training (Gera et al., 2022) then classifies unlabelled texts, keeps the
confident ones and fits a logistic regression on their embeddings: no gold label is used.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from taskkit.calibration import SavedCalibration, as_logits, calibrated_probabilities
from taskkit.contracts import (
    LabelSpace,
    ModeOptions,
    Predictor,
    RunConfig,
    SavedThreshold,
    Task,
)
from taskkit.errors import TaskkitError
from taskkit.label_sets import hypotheses, parse_labels
from taskkit.options import read

if TYPE_CHECKING:
    import numpy as np

    from taskkit.hypothesis_scoring import PairScorer, TextEncoder

BACKENDS = ("nli", "embedding", "both")  # both: the average of the two backends' probabilities
DEFAULT_BACKEND = "both"


class ZeroShotOptions(ModeOptions):
    """The zero-shot mode's ``--option`` settings (also what :func:`build` reads)."""

    threshold: float | None = Field(None, ge=0, le=1, description="multi-label: the per-label cut (default 0.5)")
    abstain: float | Literal["auto"] | None = Field(
        None, description="single-label: no label (intent: oos) when the top probability is lower; auto: the "
        "cut chosen on the data's dev split (its labels), none without one")
    correction: Literal["auto", "texts", "content-free", "none"] = Field(
        "auto", description="label-bias correction: each label's score centred over the unlabelled texts (texts), "
        "or against content-free inputs like 'N/A' (content-free); auto: texts when there are at least 20, else none")
    weigh: bool = Field(True, description="with at least 100 unlabelled texts, choose the nli/embedding mix of 'both' "
                        "and whether to keep self-training by a label-free check on those texts")
    self_train: bool = Field(True, description="fit a logistic regression on the confident predictions of "
                             "unlabelled texts")
    self_train_texts: int = Field(2000, ge=1, description="at most this many unlabelled texts (sampled) self-train")
    keep: float = Field(0.5, gt=0, le=1, description="self-training: share of the most confident texts kept")
    self_train_weight: float = Field(0.5, ge=0, le=1, description="self-trained classifier's share in the average")
    encoder: str | None = Field(None, description="sentence-transformers model of the embedding backend and of "
                                "self-training (default: minilm)")
    nli_model: str | None = Field(None, description="NLI cross-encoder (default: taskkit's shipped nli-minilm)")

    @field_validator("abstain")
    @classmethod
    def _cut(cls, value: float | str | None) -> float | str | None:
        if isinstance(value, float) and not 0 <= value <= 1:
            raise ValueError("expected a number between 0 and 1, or auto")
        return value


SELF_TRAIN_FILE = "self_train.safetensors"
TEMPERATURE = 0.05  # cosine -> softmax for the embedding backend: cosines of a good match differ by ~0.1


def fills_hypotheses(task: Task) -> bool:
    """Whether ``task`` fills its label hypotheses per example (relation: the two entities)."""
    return task.fills_hypotheses_per_example


def task_label_set(task: Task, spec: str | Path | Sequence[str] | Mapping[str, str | None]) -> dict[str, str | None]:
    """The labels a zero-shot predictor of ``task`` scores for ``spec`` (what ``--labels`` takes:
    ``a,b,c``, a JSON/YAML file, names, or label -> description): a name without a description
    takes the task's own, where it has one; relation's negative label (Other) is always there."""
    labels = {k: v or task.label_descriptions.get(k) for k, v in parse_labels(spec).items()}
    negative = task.negative_label
    if fills_hypotheses(task) and negative and negative not in labels:
        labels[negative] = None  # relation: Other takes "no verbalisation entailed", given or not
    return labels


class ZeroShotPredictor(Predictor):
    """Scores label hypotheses with a backend; optionally a self-trained classifier on top."""

    format = "zero-shot.v1"

    def __init__(self, task: Task, labels: dict[str, str | None], settings: dict[str, Any]) -> None:
        self.task, self.descriptions = task, dict(labels)
        self.settings = dict(settings)
        multi = bool(self.settings.get("multi_label"))
        if not multi and len(labels) < 2:
            raise TaskkitError("zero-shot: one label in single-label mode; give two or more, or use --multi-label")
        if self.settings["backend"] not in BACKENDS:
            raise TaskkitError(f"unknown zero-shot backend {self.settings['backend']!r} (choose from {', '.join(BACKENDS)})")
        self.labels = LabelSpace(tuple(labels), multi)
        self.hypotheses = hypotheses(labels, self.settings["template"])
        # tasks whose hypotheses depend on the example (relation: the entities fill them in)
        self.per_example = fills_hypotheses(task)
        if self.per_example and (self.settings["backend"] != "nli" or multi):
            raise TaskkitError(f"zero-shot {task.name} needs the nli backend and single-label mode")
        self._scorer: PairScorer | None = None
        self._encoder: TextEncoder | None = None
        self._label_vectors: np.ndarray | None = None
        self.head: tuple[np.ndarray, np.ndarray] | None = None  # self-trained (coef, intercept)

    # abstain below this top probability (single-label); the cut per label (multi-label)
    threshold = SavedThreshold()  # type: ignore[assignment]
    # fitted by the core on a labelled dev split when the data has one (zero-shot uses no labels itself)
    calibration = SavedCalibration()
    calibratable = True

    def with_labels(self, labels: str | Path | Sequence[str] | Mapping[str, str | None]) -> ZeroShotPredictor:
        """A predictor of the same task, backends and settings that scores other ``labels`` (what
        ``--labels`` takes: names, or label -> description). It shares this predictor's loaded
        models (they load here if not yet, once for both) and leaves this predictor unchanged, so
        predictors of several label sets can be used side by side, in several threads. What was
        fitted to the saved labels is left out: the self-trained head and a per-label (vector)
        calibration; a temperature applies to any label set and is kept."""
        settings = {**self.settings, "self_trained": False}
        calibration = self.calibration
        if calibration is not None and calibration.method == "vector":
            del settings["calibration"]
        other = self.relabelled(task_label_set(self.task, labels), settings)
        backend = self.settings["backend"]
        other._scorer = self.scorer() if backend != "embedding" else self._scorer
        other._encoder = self.encoder() if backend != "nli" else self._encoder
        return other

    def relabelled(self, labels: dict[str, str | None], settings: dict[str, Any]) -> ZeroShotPredictor:
        """A predictor of this kind, task and backends for other ``labels`` (what :meth:`with_labels` builds)."""
        return ZeroShotPredictor(self.task, labels, settings)

    # --- backends, loaded on first use (an exported folder's run on onnxruntime) ---------
    def scorer(self) -> PairScorer:
        if self._scorer is None:
            from taskkit import hypothesis_scoring as zs

            s = self.settings
            self._scorer = zs.NLIScorer(s["nli_model"], s.get("precision", "auto"), s.get("eval_batch_size", 128),
                                        s.get("max_length", 256))
        return self._scorer

    def encoder(self) -> TextEncoder:
        """The bi-encoder of the embedding backend and of the self-trained classifier."""
        if self._encoder is None:
            from taskkit.hypothesis_scoring import EmbeddingScorer

            self._encoder = EmbeddingScorer(self.settings["encoder"], self.settings.get("precision", "auto"),
                                            self.settings.get("eval_batch_size", 128))
        return self._encoder

    def texts(self, inputs: Sequence[Any]) -> list[str]:
        return [self.task.as_example(x)["text"] for x in inputs]

    def zero_shot_proba(self, texts: Sequence[str], vectors: np.ndarray | None = None) -> np.ndarray:
        """Single-label: each backend's softmax over its logits less the saved label-bias offsets,
        mixed with the saved nli share (``both``); multi-label: each label on its own."""
        from taskkit.hypothesis_scoring import sigmoid

        backend = self.settings["backend"]
        if not self.labels.multi_label:
            return self.mix(self.backend_logits(texts, vectors))
        nli = self.scorer().probabilities(texts, self.hypotheses, True) if backend != "embedding" else None
        if nli is not None and backend == "nli":
            return nli
        cos = self.cosines(texts, vectors)
        embedding = sigmoid((cos - self.settings.get("cosine_center", 0.3)) / TEMPERATURE)
        return embedding if nli is None else (nli + embedding) / 2

    def mix(self, logits: dict[str, np.ndarray]) -> np.ndarray:
        """Single-label probabilities from :meth:`backend_logits`: each backend's softmax less its
        label-bias offsets, ``both`` mixed at the saved nli share."""
        from taskkit.hypothesis_scoring import softmax

        offsets = self.label_bias()
        proba = {b: softmax(x - offsets[b]) if b in offsets else softmax(x) for b, x in logits.items()}
        if self.settings["backend"] != "both":
            return proba[self.settings["backend"]]
        share = float(self.settings.get("nli_share", 0.5))
        return share * proba["nli"] + (1 - share) * proba["embedding"]

    def cosines(self, texts: Sequence[str], vectors: np.ndarray | None = None) -> np.ndarray:
        if self._label_vectors is None:
            self._label_vectors = self.encoder().encode(self.hypotheses)
        vectors = self.encoder().encode(texts) if vectors is None else vectors
        return vectors @ self._label_vectors.T

    def backend_logits(self, texts: Sequence[str], vectors: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Single-label logits of each backend in use (nli: entailment logits; embedding: cosine /
        TEMPERATURE), before any correction."""
        backend, out = self.settings["backend"], {}
        if backend != "embedding":
            out["nli"] = self.scorer().entailment_logits(texts, self.hypotheses)
        if backend != "nli":
            out["embedding"] = self.cosines(texts, vectors) / TEMPERATURE
        return out

    def label_bias(self) -> dict[str, np.ndarray]:
        """The saved label-bias offsets per backend (none for a folder saved before they existed, or
        when they were fitted to other labels)."""
        import numpy as np

        saved = self.settings.get("label_bias") or {}
        if saved.get("labels") != list(self.labels.names):
            return {}
        return {b: np.asarray(v, dtype=np.float32) for b, v in (saved.get("offsets") or {}).items()}

    def predict_proba(self, inputs: Sequence[Any]) -> np.ndarray:
        return calibrated_probabilities(self, self.uncalibrated_proba(inputs))

    def logits(self, inputs: Sequence[Any]) -> np.ndarray:
        return as_logits(self.uncalibrated_proba(inputs), self.labels.multi_label)

    def uncalibrated_proba(self, inputs: Sequence[Any]) -> np.ndarray:
        import numpy as np

        if self.per_example and len(inputs):
            return self.per_example_proba([self.task.as_example(x) for x in inputs])
        texts = self.texts(inputs)
        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        vectors = self.encoder().encode(texts) if (self.head or self.settings["backend"] != "nli") else None
        proba = self.zero_shot_proba(texts, vectors)
        if self.head is not None:
            assert vectors is not None  # encoded above whenever there is a self-trained head
            alpha = float(self.settings.get("self_train_weight", 0.5))
            proba = alpha * _logistic_proba(vectors, *self.head) + (1 - alpha) * proba
        return proba.astype(np.float32)

    def per_example_proba(self, examples: Sequence[Any]) -> np.ndarray:
        """Each label's hypothesis filled in per example; the task's negative label (relation:
        ``Other``) takes the probability that none is entailed."""
        import numpy as np

        names, negative = self.labels.names, self.task.negative_label
        positive = [j for j, name in enumerate(names) if name != negative]
        hyps = [[self.filled_hypothesis(names[j], e) for j in positive] for e in examples]
        scores = self.scorer().relation_probabilities([e["text"] for e in examples], hyps, self.label_bias().get("nli"))
        out = np.zeros((len(examples), len(names)), dtype=np.float32)
        out[:, positive] = scores[:, :-1]
        if negative in names:
            out[:, names.index(negative)] = scores[:, -1]
        return out / out.sum(axis=1, keepdims=True)

    def relation_hypotheses(self, examples: Sequence[Any]) -> list[list[str]]:
        """Per example, the filled hypothesis of each label but the negative one (in label order)."""
        names, negative = self.labels.names, self.task.negative_label
        return [[self.filled_hypothesis(name, e) for name in names if name != negative] for e in examples]

    def filled_hypothesis(self, label: str, example: Any) -> str:
        hypothesis = self.task.hypothesis(label, example, self.descriptions.get(label))
        if hypothesis is None:
            raise TaskkitError(f"zero-shot {self.task.name}: label {label!r} has no verbalisation to fill in: give it "
                               "one in --labels FILE (label -> description)")
        return hypothesis

    # --- self-training -------------------------------------------------------------------
    def self_train(self, texts: Sequence[str], keep: float = 0.5, seed: int = 42, *,
                   proba: np.ndarray | None = None, vectors: np.ndarray | None = None) -> dict[str, Any]:
        """Fit a logistic regression on the most confident zero-shot predictions over ``texts``.

        Per label, the ``keep`` most confident share of the texts predicted as that label; each
        label's own hypothesis is one more example, so a label nothing was assigned to survives.
        ``proba`` / ``vectors``: the zero-shot probabilities / embeddings of ``texts``, if already computed.
        """
        import numpy as np
        from sklearn.linear_model import LogisticRegression

        if self.labels.multi_label:
            raise TaskkitError("self-training is for single-label zero-shot (drop --multi-label or self_train)")
        vectors = self.encoder().encode(list(texts)) if vectors is None else vectors
        proba = self.zero_shot_proba(texts, vectors) if proba is None else proba
        chosen, targets = [], []
        for j in range(len(self.labels)):
            mine = np.flatnonzero(proba.argmax(1) == j)
            top = mine[np.argsort(-proba[mine, j])][: int(np.ceil(keep * len(mine)))]
            chosen.extend(top.tolist())
            targets.extend([j] * len(top))
        x = np.concatenate([vectors[chosen], self.encoder().encode(self.hypotheses)])
        y = np.concatenate([np.array(targets, dtype=int), np.arange(len(self.labels))])
        clf = LogisticRegression(max_iter=2000, C=float(self.settings.get("self_train_c", 1.0)), random_state=seed)
        clf.fit(x, y)
        coef = np.zeros((len(self.labels), x.shape[1]), dtype=np.float32)
        intercept = np.full(len(self.labels), -1e4, dtype=np.float32)  # a label never seen stays improbable
        if len(clf.classes_) == 2:  # sklearn keeps one logit for two classes: softmax([0, z]) = sigmoid(z)
            coef[clf.classes_[1]], intercept[clf.classes_[1]], intercept[clf.classes_[0]] = clf.coef_[0], clf.intercept_[0], 0.0
        else:
            coef[clf.classes_], intercept[clf.classes_] = clf.coef_, clf.intercept_
        self.head = (coef, intercept)
        return {"unlabelled_texts": len(texts), "pseudo_labelled": len(chosen),
                "per_label": {self.labels.names[j]: int(np.sum(np.array(targets) == j)) for j in range(len(self.labels))}}

    # --- saving --------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        from taskkit.artifacts import write_atomically

        meta = {"format": self.format, "task": self.task.name, "mode": "zero-shot", "labels": list(self.labels.names),
                "multi_label": self.labels.multi_label, "descriptions": self.descriptions,
                "settings": {**self.settings, "self_trained": self.head is not None}}
        return write_atomically(path, self.write_files, meta)

    def write_files(self, folder: Path) -> None:
        """The files of a saved folder besides ``taskkit.json`` (the self-trained head, numpy: no torch)."""
        if self.head is not None:
            import numpy as np
            from safetensors.numpy import save_file

            save_file({"coef": np.ascontiguousarray(self.head[0], dtype=np.float32),
                       "intercept": np.ascontiguousarray(self.head[1], dtype=np.float32)}, str(folder / SELF_TRAIN_FILE))

    @classmethod
    def load(cls, path: Path, task: Task, metadata: dict[str, Any]) -> ZeroShotPredictor:
        from taskkit.folder_checks import inside, read_header

        settings = dict(metadata.get("settings", {}))
        where = path / "taskkit.json"
        for key in ("backend", "template"):
            if not isinstance(settings.get(key), str):
                raise TaskkitError(f"{where}: a zero-shot model needs the setting {key!r} (a string)")
        descriptions = metadata.get("descriptions") or {name: None for name in metadata["labels"]}
        if list(descriptions) != list(metadata["labels"]):
            raise TaskkitError(f"{where}: field 'descriptions' names other labels than field 'labels'")
        predictor = cls(task, descriptions, settings)
        if settings.get("self_trained"):
            from safetensors.numpy import load_file

            file = inside(path, SELF_TRAIN_FILE, "self-trained classifier")
            if not file.is_file():
                raise TaskkitError(f"{path}: zero-shot model folder has no {SELF_TRAIN_FILE}")
            shapes, _ = read_header(file)
            coef, intercept = shapes.get("coef"), shapes.get("intercept")
            n = len(metadata["labels"])
            if coef is None or intercept is None or len(coef) != 2 or coef[0] != n or intercept != (n,):
                raise TaskkitError(f"{file}: expected tensors 'coef' [{n}, dim] and 'intercept' [{n}] for the "
                                   f"{n} labels in taskkit.json, found {dict(shapes)}")
            weights = load_file(str(file))
            predictor.head = (weights["coef"], weights["intercept"])
        return predictor


def _logistic_proba(x: np.ndarray, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    from taskkit.hypothesis_scoring import softmax

    return softmax(x @ coef.T + intercept)


def build(task: Task, config: RunConfig) -> ZeroShotPredictor:
    """A zero-shot predictor from a run's settings (labels, template, backend, model, options)."""
    from taskkit.hypothesis_scoring import DEFAULT_EMBEDDING, DEFAULT_NLI

    if config.labels is None:
        raise TaskkitError("zero-shot needs labels: --labels a,b,c or --labels FILE (JSON/YAML: label -> description)")
    labels = task_label_set(task, config.labels)
    backend = config.backend or ("nli" if fills_hypotheses(task) else DEFAULT_BACKEND)
    opts = read(config, ZeroShotOptions)
    given = config.model if config.model not in (None, "auto") else None  # --model: the backend's main model
    nli_model = (given if backend != "embedding" else None) or opts.nli_model or DEFAULT_NLI
    encoder = (given if backend == "embedding" else None) or opts.encoder or DEFAULT_EMBEDDING
    settings = {"backend": backend, "nli_model": nli_model, "encoder": encoder, "template": config.template or task.hypothesis_template,
                "multi_label": bool(config.multi_label), "precision": config.precision,
                "eval_batch_size": config.eval_batch_size, "max_length": config.max_length,
                "threshold": opts.threshold if config.multi_label else (None if opts.abstain == "auto" else opts.abstain),
                "self_train_weight": opts.self_train_weight}
    return ZeroShotPredictor(task, labels, settings)
