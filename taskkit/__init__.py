"""taskkit: turn a pretrained transformer into a model for your own NLP task.

The public API: ``run`` (train, evaluate, save), ``load``, ``predict`` and ``zero_shot``; and for plugin
authors ``hookimpl`` with the contract classes ``Task``, ``Mode`` and ``Predictor``.
Importing taskkit never imports torch.
"""

from taskkit.contracts import (
    Example,
    LabelSpace,
    Mode,
    Predictor,
    RunConfig,
    Splits,
    Task,
    TrainingRecord,
)
from taskkit.errors import TaskkitError
from taskkit.hookspecs import hookimpl
from taskkit.options import ModeOptions, Options, TaskOptions

__version__ = "0.1.0"


def __getattr__(name: str):  # the API module pulls in data readers; load it on first use
    if name in ("run", "load", "predict", "zero_shot", "RunResult"):
        from taskkit import api

        return getattr(api, name)
    raise AttributeError(f"module 'taskkit' has no attribute {name!r}")


__all__ = [
    "Example",
    "LabelSpace",
    "Mode",
    "ModeOptions",
    "Options",
    "Predictor",
    "RunConfig",
    "RunResult",
    "Splits",
    "Task",
    "TaskOptions",
    "TaskkitError",
    "TrainingRecord",
    "__version__",
    "hookimpl",
    "load",
    "predict",
    "run",
    "zero_shot",
]
