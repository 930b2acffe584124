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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from taskkit.options import ModeOptions, TaskOptions

__all__ = ["Example", "Features", "LabelSpace", "Level", "Mode", "ModeOptions", "Predictor", "RunConfig",
           "SavedThreshold", "Splits", "Task", "TaskOptions", "TrainingRecord"]

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


def _setting(default: Any, help: str, *, cli: bool | tuple[str, ...] = True,
             factory: Callable[[], Any] | None = None) -> Any:
    """A :class:`RunConfig` field with its command-line help; ``cli``: False for settings the
    command line does not offer, or the option's own names (``--quiet``) instead of ``--field-name``."""
    metadata = {"help": help, "cli": cli}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class RunConfig:
    """Everything a run may be told, shared by the CLI and the Python API.

    Modes read the fields they understand and ignore the rest; mode-specific options without a
    field of their own go in ``options``.
    """

    model: str = _setting("minilm", "Packaged name (minilm), local folder or hub id.")
    init_from: str | None = _setting(None, "Continue training this saved model on the new data (labels kept, new ones "
                                           "added).")
    epochs: int = _setting(5, "Training epochs.")
    lr: float = _setting(5e-5, "Peak learning rate.")
    batch_size: int = _setting(32, "Training batch size.")
    eval_batch_size: int = _setting(128, "Inference batch size.", cli=False)
    max_length: int = _setting(128, "Maximum sub-word tokens per window of text (special tokens included).")
    truncate: bool = _setting(False, "Cut long texts instead of splitting them into windows.")
    seed: int = _setting(42, "Random seed (runs are reproducible).")
    weight_decay: float = _setting(0.01, "AdamW weight decay.")
    warmup_ratio: float = _setting(0.1, "Share of optimiser steps spent warming the learning rate up.")
    grad_accum: int = _setting(1, "Gradient accumulation: an optimiser step every N batches.")
    max_grad_norm: float = _setting(1.0, "Gradient clipping norm.", cli=False)
    dropout: float = _setting(0.1, "Dropout on the head's input.")
    patience: int = _setting(2, "Epochs without dev improvement before stopping; 0 disables.")
    metric: str | None = _setting(None, "Dev metric for early stopping (default: the task's).")
    precision: str = _setting("auto", "auto | fp32 | bf16 (auto: bf16 where the hardware has it).")
    freeze: str = _setting("none", "none | head (head only) | embeddings | top:N (top N layers + head).")
    shots: int | None = _setting(None, "Train on N examples per class, sampled with --seed.")
    dev_fraction: float = _setting(0.1, "Share of train carved as dev (stratified) when the data has none.", cli=False)
    text_column: str = _setting("text", "Column of the texts.")
    label_column: str = _setting("label", "Column of the labels.")
    progress: bool = _setting(True, "No progress bars.", cli=("--quiet", "-q"))  # a flag that sets it False
    # zero-shot: "a,b,c", a JSON/YAML file, a list, or a dict label -> description
    labels: Any = _setting(None, "zero-shot: labels a,b,c or a JSON/YAML file of label -> description.")
    template: str | None = _setting(None, "zero-shot: hypothesis with {} for the label (default: the task's).")
    backend: str | None = _setting(None, "zero-shot: both (default) | nli | embedding.")
    multi_label: bool = _setting(False, "zero-shot: score each label on its own.")
    #: ``--option`` values: a dict as given, then (:func:`taskkit.api.make_config`) the task's and
    #: the mode's validated :class:`~taskkit.options.Options`; read them with :func:`taskkit.options.read`
    options: Any = _setting(None, "Task- or mode-specific KEY=VALUE, repeatable (see `taskkit options TASK`).",
                            cli=("--option",), factory=dict)
    # checkpoints during training (modes with ``resumable``): every N optimiser steps, or "Ne" every N epochs
    checkpoint_every: int | str | None = _setting(
        None, "Write a checkpoint to OUT/checkpoints every N optimiser steps, or every N epochs as Ne (3e).")
    checkpoint_dir: str | None = _setting(None, "Set by taskkit.run to OUT/checkpoints.", cli=False)
    resume: bool = _setting(False, "Continue an interrupted run from OUT's newest checkpoint.")

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)

    def validate(self) -> RunConfig:
        """Refuse out-of-range settings with one line naming the option (:mod:`taskkit.settings`)."""
        from taskkit.settings import validate

        validate(self)
        return self


@dataclass
class TrainingRecord:
    """What fitting did, for ``metrics.json`` and the report; every field is optional, a mode fills
    what it knows. A plugin's own figures go in ``extra``."""

    epochs_run: int | None = None
    best_epoch: int | None = None
    stopped_early: bool | None = None
    train_seconds: float | None = None
    train_examples: int | None = None
    train_features: int | None = None
    examples_per_second: float | None = None
    watched_metric: str | None = None
    history: list[dict[str, Any]] | None = None
    threshold: float | None = None
    trainable_parameters: int | None = None
    total_parameters: int | None = None
    trainable_share: float | None = None
    # few-shot
    head: str | None = None
    engine: str | None = None
    prior: bool | None = None
    prior_mix: float | None = None
    zero_shot: str | None = None
    contrastive: dict[str, Any] | None = None
    head_training: dict[str, Any] | None = None
    setfit: dict[str, Any] | None = None
    # zero-shot
    backend: str | None = None
    nli_model: str | None = None
    encoder: str | None = None
    hypotheses: dict[str, Any] | None = None
    self_training: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingRecord:
        """A record from ``metrics.json``'s ``training`` (or a plugin's dict): keys that are not
        fields go to ``extra``."""
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        extra = {**(data.get("extra") or {}), **{k: v for k, v in data.items() if k not in known and k != "extra"}}
        return cls(**{k: v for k, v in data.items() if k in known}, extra=extra)

    def as_dict(self) -> dict[str, Any]:
        """The record for ``metrics.json``: fields that are set (``extra`` when not empty)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None and not (k == "extra" and not v)}


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
