"""The run configuration (:class:`RunConfig`, one field per setting, with its command-line help)
and what a mode reports of its training (:class:`TrainingRecord`). Re-exported by
:mod:`taskkit.contracts`; nothing here imports torch."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


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
    min_steps: int = _setting(100, "Fewest optimiser steps of a run (full, peft, distill) when neither --epochs nor "
                                   "--batch-size is given: on small data the batches shrink (to 8 at the least), then "
                                   "the epochs grow, until there are this many; 0: off.")
    auto_size: bool = _setting(False, "Set by taskkit.run when neither --epochs nor --batch-size is given: "
                                      "min_steps may then resize them.", cli=False)
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
    dev_shots: int | None = _setting(None, "With --shots: also sample M per class as a dev set (from the dev split, "
                                           "else from the rest of train); default none, N per class in all.")
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

    def for_data(self, examples: int) -> RunConfig:
        """This config for ``examples`` training examples, with at least :attr:`min_steps` optimiser
        steps unless the user sized training (:attr:`auto_size` False): a few hundred examples in
        batches of 32 make too few steps for a new head to learn (the demo's 120: 20 steps in 5
        epochs). The batch shrinks first (to 8 at the least: the same passes over the data, more
        steps), then the epochs grow; enough data is left as it is."""
        if not (self.auto_size and self.min_steps) or examples < 1:
            return self

        def steps(batch: int, epochs: int) -> int:
            return -(-examples // batch) // self.grad_accum * epochs

        batch, epochs = self.batch_size, self.epochs
        if steps(batch, epochs) >= self.min_steps:
            return self
        while batch > min(8, self.batch_size) and steps(batch, epochs) < self.min_steps:
            batch -= 1  # the largest batch that makes enough steps
        while steps(batch, epochs) < self.min_steps:
            epochs += 1
        return self.replace(batch_size=batch, epochs=epochs)

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
    zero_shot_share: float | None = None  # the zero-shot member's weight in the final average
    shares: dict[str, Any] | None = None  # how those shares were chosen (cross-validation on the shots)
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
