"""The ``peft`` mode: train a small adapter (LoRA by default, or IA3) and the task head.

The model folder holds the adapter and head and names its base model; ``--option merge=true``
saves the adapter folded into the base weights instead, and ``taskkit merge`` does it later.
Options: ``method=lora|ia3``, ``r`` (16), ``alpha`` (32), ``lora_dropout`` (0: each nonzero rate keeps a
dropped-out copy of every targeted layer's input for the backward pass), ``target_modules=a,b``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

import typer
from pydantic import Field

import taskkit
from taskkit.contracts import Mode, Predictor, RunConfig, Splits, Task, TrainingRecord
from taskkit.names_member import NamesMemberOptions
from taskkit.options import read


class PeftOptions(NamesMemberOptions):
    method: Literal["lora", "ia3"] = Field("lora", description="adapter kind")
    # rank 16 (alpha 32) was chosen on SST-2 dev over rank 8 at lrs 5e-4 to 2e-3 (benchmarks/RESULTS.md,
    # "PEFT defaults against full fine-tuning defaults")
    r: int = Field(16, ge=1, description="LoRA rank")
    alpha: int = Field(32, ge=1, description="LoRA scaling (alpha / r multiplies the update)")
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="dropout on LoRA's input (each nonzero rate keeps a "
                                "copy of every targeted layer's input for the backward pass)")
    target_modules: str | list[str] | None = Field(None, description="layers to adapt, a,b or a JSON list "
                                                   "(default: every linear layer of the blocks; ia3: by model type)")
    feedforward_modules: list[str] = Field([], description="ia3 with target_modules: which of them are feed-forward")
    merge: bool = Field(False, description="save the adapter folded into the base weights")


class PeftMode(Mode):
    Options = PeftOptions
    name = "peft"
    description = "parameter-efficient fine-tuning: a LoRA or IA3 adapter plus the task head"
    # adapters learn from few parameters and need a larger step than full fine-tuning
    defaults = {"lr": 5e-4}
    resumable = True  # --checkpoint-every / --resume: trains on the kernel's loop

    def supports(self, task: Task) -> bool:
        return task.level in ("sequence", "token", "pair")

    def fit(self, task: Task, splits: Splits, config: RunConfig) -> Predictor:
        from taskkit.kernel.fit import fit_task_model, resized
        from taskkit_plugins.peft.adapters import add_adapter, as_adapter_predictor

        opts = read(config, PeftOptions)
        adapter = opts.model_dump(include=set(PeftOptions.model_fields) - set(NamesMemberOptions.model_fields) - {"merge"})
        sized = config.for_data(len(splits.train))  # small data: enough optimiser steps (--min-steps)
        predictor, _ = fit_task_model(task, splits, sized, self.name,
                                      prepare=lambda model: add_adapter(model, adapter))
        resized(predictor, config, sized)
        adapted = as_adapter_predictor(predictor)
        adapted.settings["peft"] = adapter
        training = adapted.training or TrainingRecord()
        from taskkit.distributed import is_main_process

        if is_main_process():  # once for a run on several processes
            typer.echo(f"trainable parameters: {training.trainable_parameters or 0:,} of "
                       f"{training.total_parameters or 0:,} ({100 * (training.trainable_share or 0):.2f}%)",
                       err=True)
        from taskkit.names_member import with_names_member

        final = adapted.merged() if opts.merge else adapted
        final.training = adapted.training
        return with_names_member(task, splits, config, final, opts, self.name)


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
        from taskkit.ensemble import EnsemblePredictor
        from taskkit.errors import TaskkitError
        from taskkit.kernel.predictor import AdapterPredictor
        from taskkit.ownership import check_model_path, check_writable

        check_model_path(out)  # before any work: never replace what is not taskkit's
        check_writable(out.parent if out.name else out)
        predictor = load(model_dir)
        # small data: the adapter model averaged with the label names' zero-shot member (names_member.py)
        members = predictor.members if isinstance(predictor, EnsemblePredictor) else [predictor]
        adapter = members[0]
        if not isinstance(adapter, AdapterPredictor) or adapter.settings.get("merged"):
            raise TaskkitError(f"{model_dir}: not an unmerged peft model")
        members[0] = adapter.merged()
        typer.echo(f"merged model written to {(predictor if len(members) > 1 else members[0]).save(out)}")
