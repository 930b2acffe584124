"""The ``peft`` mode: train a small adapter (LoRA by default, or IA3) and the task head.

The model folder holds the adapter and head and names its base model; ``--option merge=true``
saves the adapter folded into the base weights instead, and ``taskkit merge`` does it later.
Options: ``method=lora|ia3``, ``r`` (8), ``alpha`` (16), ``lora_dropout`` (0: each nonzero rate keeps a
dropped-out copy of every targeted layer's input for the backward pass), ``target_modules=a,b``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import typer

import taskkit
from taskkit.contracts import Mode, Predictor, RunConfig, Splits, Task


class PeftMode(Mode):
    name = "peft"
    description = "parameter-efficient fine-tuning: a LoRA or IA3 adapter plus the task head"
    # adapters learn from few parameters and need a larger step than full fine-tuning
    defaults = {"lr": 5e-4}
    resumable = True  # --checkpoint-every / --resume: trains on the kernel's loop

    def supports(self, task: Task) -> bool:
        return task.level in ("sequence", "token", "pair")

    def fit(self, task: Task, splits: Splits, config: RunConfig) -> Predictor:
        from taskkit.kernel.adapters import add_adapter, as_adapter_predictor
        from taskkit.kernel.fit import fit_task_model

        predictor, _ = fit_task_model(task, splits, config, self.name,
                                      prepare=lambda model: add_adapter(model, config.options))
        adapted = as_adapter_predictor(predictor)
        adapted.settings["peft"] = {k: v for k, v in config.options.items() if k != "merge"}
        training = adapted.training or {}
        typer.echo(f"trainable parameters: {training.get('trainable_parameters', 0):,} of "
                   f"{training.get('total_parameters', 0):,} ({100 * training.get('trainable_share', 0):.2f}%)",
                   err=True)
        if config.options.get("merge"):
            merged = adapted.merged()
            merged.training = adapted.training
            return merged
        return adapted

    def load(self, path: Path, task: Task, metadata: dict[str, Any]) -> Predictor:
        from taskkit.kernel.adapters import AdapterPredictor

        return AdapterPredictor.load(path, task, metadata)


@taskkit.hookimpl
def register_modes(register: Callable[[Mode], None]) -> None:
    register(PeftMode())


@taskkit.hookimpl
def register_commands(cli: typer.Typer) -> None:
    @cli.command()
    def merge(model_dir: Path = typer.Argument(..., help="A peft model folder (or run folder)."),
              out: Path = typer.Argument(..., help="Where to write the merged, deployable model.")) -> None:
        """Fold a peft adapter into its base model's weights (same predictions, no peft at inference).

        OUT must be new, an empty folder or a taskkit model folder (replaced); anything else is refused.
        """
        from taskkit.api import load
        from taskkit.errors import TaskkitError
        from taskkit.kernel.adapters import AdapterPredictor
        from taskkit.ownership import check_model_path, check_writable

        check_model_path(out)  # before any work: never replace what is not taskkit's
        check_writable(out.parent if out.name else out)
        predictor = load(model_dir)
        if not isinstance(predictor, AdapterPredictor) or predictor.settings.get("merged"):
            raise TaskkitError(f"{model_dir}: not an unmerged peft model")
        typer.echo(f"merged model written to {predictor.merged().save(out)}")
