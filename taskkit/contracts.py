"""The plugin contract: Task, Mode, Predictor and the run configuration.

A *task* knows its data and its outputs: how examples are read and encoded, the head that turns
the encoder's hidden states into scores, the loss, how scores become predictions, and the
metrics. A *mode* knows how to learn: it turns a task and its data into a :class:`Predictor`.
Modes never compute metrics and tasks never run training loops; both meet in the shared kernel
(:mod:`taskkit.kernel`).

Nothing here imports torch: the CLI and plugin discovery must stay instant.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Literal, Sequence

if TYPE_CHECKING:
    import numpy as np
    import torch
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


@dataclass
class RunConfig:
    """Everything a run may be told, shared by the CLI and the Python API.

    Modes read the fields they understand and ignore the rest; mode-specific options without a
    field of their own go in ``options``.
    """

    model: str = "minilm"  # packaged short name, local folder or hub id
    init_from: str | None = None  # a saved taskkit model to continue training (labels kept, new ones added)
    epochs: int = 5
    lr: float = 5e-5
    batch_size: int = 32
    eval_batch_size: int = 128
    max_length: int = 128  # in sub-word tokens, including special tokens
    truncate: bool = False  # cut texts longer than max_length instead of windowing them
    seed: int = 42
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1  # share of optimiser steps spent warming the learning rate up
    grad_accum: int = 1  # optimiser step every N batches
    max_grad_norm: float = 1.0
    dropout: float = 0.1  # on the head's input
    patience: int = 2  # epochs without dev improvement before stopping; 0 disables
    metric: str | None = None  # dev metric for early stopping; None: the task's primary metric
    precision: str = "auto"  # auto | fp32 | bf16 (auto: bf16 where the hardware has it)
    freeze: str = "none"  # none | head (head only) | embeddings (all but input embeddings) | top:N (top N layers + head)
    shots: int | None = None  # sample N training examples per class (seeded); None: all
    dev_fraction: float = 0.1  # carved from train, stratified, when the data has no dev split
    text_column: str = "text"
    label_column: str = "label"
    progress: bool = True
    # zero-shot: "a,b,c", a JSON/YAML file, a list, or a dict label -> description
    labels: Any = None
    template: str | None = None  # zero-shot hypothesis with {} for the label; None: the task's
    backend: str | None = None  # zero-shot: nli | embedding | both; None: the mode's default
    multi_label: bool = False  # zero-shot: score each label on its own
    options: dict[str, Any] = field(default_factory=dict)
    # checkpoints during training (modes with ``resumable``): every N optimiser steps, or "Ne" every N epochs
    checkpoint_every: int | str | None = None
    checkpoint_dir: str | None = None  # set by api.run to OUT/checkpoints
    resume: bool = False  # continue from the newest checkpoint in checkpoint_dir

    def replace(self, **changes: Any) -> "RunConfig":
        return dataclasses.replace(self, **changes)

    def validate(self) -> "RunConfig":
        """Refuse out-of-range settings with one line naming the option (:mod:`taskkit.settings`)."""
        from taskkit.settings import validate

        validate(self)
        return self


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
        tokenizer: "PreTrainedTokenizerBase",
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
    def head(self, hidden_size: int, labels: LabelSpace, dropout: float) -> "torch.nn.Module":
        """The module that maps ``(hidden_states, batch)`` to logits."""

    @abstractmethod
    def loss(self, labels: LabelSpace) -> Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]:
        """``loss(logits, gold) -> scalar``."""

    @abstractmethod
    def probabilities(self, logits: "np.ndarray", labels: LabelSpace) -> "np.ndarray":
        """Scores in [0, 1] from logits (softmax, sigmoid, per token...)."""

    @abstractmethod
    def decode(self, probabilities: "np.ndarray", labels: LabelSpace, threshold: float | None = None) -> list[Any]:
        """Predictions from probabilities: a label, a list of labels, a list of entities..."""

    @abstractmethod
    def gold(self, examples: Sequence[Example], labels: LabelSpace) -> list[Any]:
        """The gold predictions of examples, in the form :meth:`decode` returns."""

    @abstractmethod
    def metrics(self, gold: Sequence[Any], predicted: Sequence[Any], labels: LabelSpace) -> dict[str, Any]:
        """Evaluation figures; must contain :attr:`primary_metric`."""

    # --- optional hooks of structured tasks (token / pair level); defaults keep sequence tasks as they are ---
    #: True when predictions are one array per input (token tasks: a row per word), not one matrix.
    ragged: ClassVar[bool] = False

    def special_tokens(self, examples: Sequence[Example]) -> list[str]:
        """Tokens to add to the tokenizer before training (entity markers); the body's embeddings grow."""
        return []

    def collect_logits(self, features: Sequence[Features], logits: list["np.ndarray"], count: int,
                       labels: LabelSpace) -> list["np.ndarray"] | None:
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
    training: dict[str, Any] | None = None
    #: The decision threshold ``decode`` gets unless a caller passes one: tuned on dev for
    #: multi-label models, a task option (intent's ``oos_threshold``); saved with the model.
    threshold: float | None = None

    @abstractmethod
    def predict_proba(self, inputs: Sequence[Any]) -> "np.ndarray":
        """Probabilities, one row per input, columns in ``labels.names`` order."""

    def predict(self, inputs: Sequence[Any], threshold: float | None = None) -> list[Any]:
        """Predictions in the task's form (a label for classification)."""
        cut = threshold if threshold is not None else self.threshold
        return self.task.decode(self.predict_proba(inputs), self.labels, cut)

    @abstractmethod
    def save(self, path: str | Path) -> Path:
        """Write a model folder atomically (see :mod:`taskkit.artifacts`); return its path."""


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
    #: :class:`RunConfig` fields this mode sets differently unless the user gives them.
    defaults: ClassVar[dict[str, Any]] = {}
    #: True for modes whose training writes checkpoints and continues from them
    #: (``--checkpoint-every``, ``--resume``: the kernel's loop through ``fit_task_model``).
    resumable: ClassVar[bool] = False
    @abstractmethod
    def supports(self, task: Task) -> bool:
        """Whether this mode can learn ``task`` (by level, by label kind...)."""

    @abstractmethod
    def fit(self, task: Task, splits: Splits, config: RunConfig) -> Predictor:
        """Learn from ``splits.train`` (early-stopping on ``splits.dev``); return a predictor."""

    @abstractmethod
    def load(self, path: Path, task: Task, metadata: dict[str, Any]) -> Predictor:
        """Rebuild the predictor saved in a model folder written by this mode (no network)."""
