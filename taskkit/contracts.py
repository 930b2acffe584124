"""The plugin contract: Task, Mode, Predictor and the run configuration.

A *task* knows its data and its outputs: how examples are read and encoded, the head that turns
the encoder's hidden states into scores, the loss, how scores become predictions, and the
metrics. A *mode* knows how to learn: it turns a task and its data into a :class:`Predictor`.
Modes never compute metrics and tasks never run training loops; both meet in the shared kernel
(:mod:`taskkit.kernel`).

Nothing here imports torch: the CLI and plugin discovery must stay instant.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from taskkit.options import ModeOptions, TaskOptions
from taskkit.run_config import RunConfig, TrainingRecord

__all__ = ["Example", "Features", "LabelSpace", "Level", "Mode", "ModeOptions", "Predictor", "RunConfig",
           "SavedThreshold", "Splits", "Task", "TaskOptions", "TrainingRecord"]

if TYPE_CHECKING:
    import numpy as np
    import torch
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerBase

Level = Literal["sequence", "token", "pair"]

#: One example as plain data: ``{"text": ..., "label": ...}`` for sequence tasks,
#: ``{"text", "text_pair", "label"}`` for pair tasks, ``{"tokens", "tags"}`` for token tasks.
#: Readers add ``"_where"`` ("file:line") so later checks can name the offending line.
Example = dict[str, Any]

#: One encoded example: ``input_ids``, ``attention_mask`` and ``labels`` as lists, plus whatever
#: the task's head needs (marker positions, word ids); the kernel pads them per batch.
Features = dict[str, Any]


@dataclass(frozen=True)
class LabelSpace:
    """The labels of one trained model, in the order of the head's outputs."""

    names: tuple[str, ...]
    multi_label: bool = False

    def index(self, label: str) -> int:
        return self.names.index(label)

    def __len__(self) -> int:
        return len(self.names)


@dataclass
class Splits:
    """The data of one run. ``dev`` may have been carved from ``train``; ``test`` may be empty."""

    train: list[Example]
    dev: list[Example]
    test: list[Example]
    source: str = ""  # where the data came from, for metrics.json
    dev_carved: bool = False  # True when dev was split off train by taskkit
    train_indices: list[int] | None = None  # with --shots: which lines of the train file were used


class Task(ABC):
    """What a task plugin subclasses. Register an instance through ``register_tasks``.

    Built-in sequence tasks derive from :class:`taskkit.classification.ClassificationTask`,
    which implements everything below for text classification; a task then only names itself.
    """

    #: The name users type: ``taskkit run <name>``.
    name: ClassVar[str]
    #: ``sequence`` (one text), ``token`` (a label per word) or ``pair`` (two texts or two spans).
    level: ClassVar[Level]
    #: One line for ``taskkit tasks``.
    description: ClassVar[str] = ""
    #: Default label -> one-line description, the prior knowledge zero- and few-shot modes use.
    label_descriptions: ClassVar[dict[str, str]] = {}
    #: Turns a label description into an NLI hypothesis.
    hypothesis_template: ClassVar[str] = "This text is about {}."
    #: The dev metric early stopping watches unless the user picks another.
    primary_metric: ClassVar[str] = "accuracy"
    #: The task's ``--option`` settings (typed, with defaults and help; see :mod:`taskkit.options`).
    Options: ClassVar[type[TaskOptions]] = TaskOptions

    @abstractmethod
    def read(self, path: Path, config: RunConfig) -> list[Example]:
        """Read one data file into examples; raise :class:`TaskkitError` naming file and line."""

    def from_records(self, records: list[dict[str, Any]], config: RunConfig) -> list[Example]:
        """Turn rows from another source (``hf:`` data) into examples."""
        from taskkit.errors import TaskkitError

        raise TaskkitError(f"task {self.name!r} cannot read records from this source")

    @abstractmethod
    def label_space(self, examples: Sequence[Example]) -> LabelSpace:
        """The labels found in training examples (validated: at least two classes)."""

    @abstractmethod
    def as_example(self, item: Any) -> Example:
        """Turn what a user passes to ``predict`` (a string, a dict) into an example."""

    @abstractmethod
    def encode(
        self,
        examples: Sequence[Example],
        tokenizer: PreTrainedTokenizerBase,
        labels: LabelSpace,
        max_length: int,
        truncate: bool = False,
    ) -> list[Features]:
        """Tokenise examples into features; gold labels become ``labels`` when present.

        An input longer than ``max_length`` becomes several overlapping windows, each feature
        naming its example in ``_example`` (the predictor pools them), unless ``truncate``.
        Keys starting with ``_`` never reach the model.
        """

    @abstractmethod
    def head(self, hidden_size: int, labels: LabelSpace, dropout: float) -> torch.nn.Module:
        """The module that maps ``(hidden_states, batch)`` to logits."""

    @abstractmethod
    def loss(self, labels: LabelSpace) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """``loss(logits, gold) -> scalar``."""

    @abstractmethod
    def probabilities(self, logits: np.ndarray, labels: LabelSpace) -> np.ndarray:
        """Scores in [0, 1] from logits (softmax, sigmoid, per token...)."""

    @abstractmethod
    def decode(self, probabilities: np.ndarray, labels: LabelSpace, threshold: float | None = None) -> list[Any]:
        """Predictions from probabilities: a label, a list of labels, a list of entities..."""

    @abstractmethod
    def gold(self, examples: Sequence[Example], labels: LabelSpace) -> list[Any]:
        """The gold predictions of examples, in the form :meth:`decode` returns."""

    @abstractmethod
    def metrics(self, gold: Sequence[Any], predicted: Sequence[Any], labels: LabelSpace) -> dict[str, Any]:
        """Evaluation figures; must contain :attr:`primary_metric`."""

    # --- capabilities with defaults: the core calls these on every task, never probes for them ---
    #: True when predictions are one array per input (token tasks: a row per word), not one matrix.
    ragged: ClassVar[bool] = False
    #: The single-label prediction below the decision threshold (intent: ``oos``, relation:
    #: ``Other``); ``None``: no label. Zero-shot abstentions and ``--labels`` files may name it.
    abstain_label: ClassVar[str | None] = None
    #: The label meaning "none of the others" (relation: ``Other``): zero-shot gives it the
    #: probability that no other label's hypothesis is entailed; ``None``: the task has none.
    negative_label: ClassVar[str | None] = None
    #: True when the task fills each label's NLI hypothesis per example (:meth:`hypothesis`, a
    #: relation's two entities) instead of one hypothesis per label from ``hypothesis_template``.
    fills_hypotheses_per_example: ClassVar[bool] = False
    #: :class:`RunConfig` fields this task sets differently unless the user gives them, per mode
    #: name (``"*"``: every mode), over the mode's own :attr:`Mode.defaults`: the settings behind
    #: the task's benchmark figures (relation: ``{"full": {"lr": 1e-4, "epochs": 3}}``).
    defaults: ClassVar[dict[str, dict[str, Any]]] = {}
    #: True when :meth:`probabilities` is the softmax (single-label) or sigmoid (multi-label) of
    #: the logits, so that the core may fit a temperature on them (:mod:`taskkit.calibration`).
    calibratable: ClassVar[bool] = False

    def run_defaults(self, mode: Mode) -> dict[str, Any]:
        """The settings a run of this task in ``mode`` gets unless the user gives them: the mode's
        :attr:`Mode.defaults`, then this task's :attr:`defaults` for every mode and for ``mode``."""
        return {**mode.defaults, **self.defaults.get("*", {}), **self.defaults.get(mode.name, {})}

    def check_known(self, examples: Sequence[Example], labels: LabelSpace, split: str) -> None:
        """Refuse (:class:`TaskkitError` naming the line) a label in ``split`` (dev, test) that the
        training labels do not have. Default: accept everything (an open label set)."""

    def fixed_threshold(self, config: RunConfig) -> float | None:
        """A decision threshold the user set through ``--option``; default: none."""
        return None

    def choose_threshold(self, predictor: Predictor, dev: Sequence[Example], labels: LabelSpace,
                         config: RunConfig, probabilities: np.ndarray | None = None) -> float | None:
        """The threshold a trained model keeps (``Predictor.threshold``), chosen after each dev
        evaluation (``probabilities``: the predictor's on ``dev``, when already computed).
        Default: :meth:`fixed_threshold`."""
        return self.fixed_threshold(config)

    def hypothesis(self, label: str, example: Example, template: str | None = None) -> str | None:
        """With :attr:`fills_hypotheses_per_example`: ``label``'s hypothesis for ``example``
        (``template``: the user's or the label file's verbalisation), ``None`` for a label never
        entailed (the negative label). Default: ``None`` (hypotheses come from ``hypothesis_template``)."""
        return None

    def output_layer(self, head: torch.nn.Module) -> torch.nn.Linear | None:
        """The head's last linear layer (a row per label), which modes may initialise (label
        priors, a zero-shot start); ``None`` (default): the head has none to set."""
        return None

    def special_tokens(self, examples: Sequence[Example]) -> list[str]:
        """Tokens to add to the tokenizer before training (entity markers); the body's embeddings grow."""
        return []

    def encode_fast(self, examples: Sequence[Example], tokenizer: Tokenizer, labels: LabelSpace,
                    max_length: int, truncate: bool = False) -> list[Features] | None:
        """The features :meth:`encode` makes, from the ``tokenizers`` library's ``Tokenizer`` (a model
        folder's ``tokenizer.json``, no truncation, no padding) and importing neither torch nor
        transformers: how an exported (ONNX) model encodes a task whose encoding is its own (a token
        task's windows of words, a relation's entity markers). ``None`` (default): the task encodes
        like a plain sequence or pair classifier, which the exported model reproduces by itself."""
        return None

    def collect_logits(self, features: Sequence[Features], logits: list[np.ndarray], count: int,
                       labels: LabelSpace) -> list[np.ndarray] | None:
        """Per-input logits from per-feature logits when the task splits inputs its own way (a token
        task's windows of words); ``None``: the kernel's default (windows averaged)."""
        return None

    def prediction_record(self, example: Example, predicted: Any, probabilities: Any, labels: LabelSpace) -> dict[str, Any]:
        """One line of ``predictions.jsonl`` / ``taskkit predict`` output."""
        record = {k: v for k, v in example.items() if not k.startswith("_")}
        record["predicted"] = predicted
        return record


class Predictor(ABC):
    """A trained (or zero-shot) model of one task: predicts, scores, saves itself.

    ``inputs`` are whatever :meth:`Task.as_example` accepts: plain strings for sequence tasks.
    """

    task: Task
    labels: LabelSpace
    #: What fitting did (epochs, dev history, speed), set by the mode for ``metrics.json``.
    training: TrainingRecord | None = None
    #: The decision threshold ``decode`` gets unless a caller passes one: tuned on dev for
    #: multi-label models, a task option (intent's ``oos_threshold``); saved with the model.
    threshold: float | None = None
    #: The format :meth:`save` writes as ``format`` in ``taskkit.json`` (``NAME.vN``, registered
    #: through the ``register_formats`` hook with a loader, usually :meth:`load`); ``None``: the
    #: predictor names none and its folder is loaded by the mode that wrote it (taskkit 0.1.0's way).
    format: ClassVar[str | None] = None
    #: The mode that made it (kept in ``taskkit.json`` as information; loading never needs it).
    mode: str | None = None
    #: True when the predictor implements :meth:`logits` and applies :attr:`calibration` in
    #: :meth:`predict_proba`: the core then calibrates it on dev after ``fit`` (:mod:`taskkit.calibration`).
    calibratable: ClassVar[bool] = False
    #: The fitted :class:`taskkit.calibration.Calibration` (saved with the model), ``None``: identity.
    calibration: Any = None

    def logits(self, inputs: Sequence[Any]) -> np.ndarray:
        """With :attr:`calibratable`: uncalibrated scores, one row per input, whose softmax (sigmoid,
        multi-label) is :meth:`predict_proba` without calibration."""
        raise NotImplementedError(f"{type(self).__name__} exposes no logits")

    @abstractmethod
    def predict_proba(self, inputs: Sequence[Any]) -> np.ndarray:
        """Probabilities, one row per input, columns in ``labels.names`` order."""

    def predict(self, inputs: Sequence[Any], threshold: float | None = None) -> list[Any]:
        """Predictions in the task's form (a label for classification)."""
        cut = threshold if threshold is not None else self.threshold
        return self.task.decode(self.predict_proba(inputs), self.labels, cut)

    @abstractmethod
    def save(self, path: str | Path) -> Path:
        """Write a model folder atomically (see :mod:`taskkit.artifacts`, with ``"format":
        self.format`` in its metadata); return its path."""

    @classmethod
    def load(cls, path: Path, task: Task, metadata: dict[str, Any]) -> Predictor:
        """Rebuild a predictor of :attr:`format` from a model folder (no network); the loader a
        format is usually registered with."""
        raise NotImplementedError(f"{cls.__name__} does not load model folders")


class SavedThreshold:
    """A predictor's ``threshold`` kept in its ``settings`` dict, so that it is saved in
    ``taskkit.json`` and comes back on load."""

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        return self if obj is None else obj.settings.get("threshold")

    def __set__(self, obj: Any, value: float | None) -> None:
        obj.settings["threshold"] = value


class Mode(ABC):
    """What a learning-mode plugin subclasses. Register an instance through ``register_modes``."""

    #: The name users type: ``--mode <name>``.
    name: ClassVar[str]
    #: One line for ``taskkit modes``.
    description: ClassVar[str] = ""
    #: False for modes that learn without labelled training data (zero-shot).
    needs_training_data: ClassVar[bool] = True
    #: False for modes too costly to train again on folds: without a dev split, the core then
    #: leaves their probabilities uncalibrated instead of cross-validating (:mod:`taskkit.calibration`).
    refit_to_calibrate: ClassVar[bool] = True
    #: :class:`RunConfig` fields this mode sets differently unless the user gives them.
    defaults: ClassVar[dict[str, Any]] = {}
    #: True for modes whose training writes checkpoints and continues from them
    #: (``--checkpoint-every``, ``--resume``: the kernel's loop through ``fit_task_model``).
    resumable: ClassVar[bool] = False
    #: The mode's ``--option`` settings (typed, with defaults and help; see :mod:`taskkit.options`).
    Options: ClassVar[type[ModeOptions]] = ModeOptions
    @abstractmethod
    def supports(self, task: Task) -> bool:
        """Whether this mode can learn ``task`` (by level, by label kind...)."""

    @abstractmethod
    def fit(self, task: Task, splits: Splits, config: RunConfig) -> Predictor:
        """Learn from ``splits.train`` (early-stopping on ``splits.dev``); return a predictor."""

    def load(self, path: Path, task: Task, metadata: dict[str, Any]) -> Predictor:
        """Only for folders whose ``taskkit.json`` names no format string (taskkit 0.1.0's layout,
        or a predictor without :attr:`Predictor.format`): rebuild the predictor this mode saved.
        Folders with a format load through :mod:`taskkit.formats`, without the mode."""
        from taskkit.errors import TaskkitError

        raise TaskkitError(f"{path}: mode {self.name!r} cannot load this folder (it names no format)")
