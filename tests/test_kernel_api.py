"""The kernel's public API (``taskkit.kernel``): a mode trains a torch model through
``fit_task_model`` with its own loss and targets, and the one training loop takes a mode's own
batches, loss and step budget - on a tiny random BERT and the demo data."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import DEMO
from torch import nn

from taskkit import registry
from taskkit.api import make_config
from taskkit.data.splits import load_splits


def _setup(tiny_model: Path) -> tuple[Any, Any, Any]:
    task, mode = registry.get_pair("sentiment", "full")
    config = make_config(mode.defaults, model=str(tiny_model), epochs=2, lr=1e-3, max_length=32, progress=False,
                         patience=0)
    return task, load_splits(task, DEMO, config), config


def test_import_taskkit_kernel_does_not_load_torch() -> None:
    code = ("import sys, taskkit, taskkit.cli, taskkit.kernel; "
            "assert 'torch' not in sys.modules, 'torch imported'; "
            "from taskkit.kernel import fit_task_model, train, TaskModel, TorchPredictor, predict_logits; "
            "assert callable(train) and callable(fit_task_model); print('ok')")
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_train_is_the_loop_even_after_its_module_is_imported() -> None:
    import taskkit.kernel
    import taskkit.kernel.train
    from taskkit.kernel import train

    assert callable(train) and train.__name__ == "train"
    assert taskkit.kernel.train is train
    assert set(taskkit.kernel.__all__) >= {"fit_task_model", "train", "TaskModel", "TorchPredictor", "predict_logits"}


def test_fit_task_model_trains_with_the_mode_s_own_loss(tiny_model: Path) -> None:
    from taskkit.kernel import TorchPredictor, TrainResult, fit_task_model

    task, splits, config = _setup(tiny_model)
    seen: list[tuple[torch.Size, torch.Size]] = []

    def label_smoothed(logits: torch.Tensor, gold: torch.Tensor) -> torch.Tensor:
        seen.append((logits.shape, gold.shape))
        return nn.functional.cross_entropy(logits, gold, label_smoothing=0.3)

    smooth, result = fit_task_model(task, splits, config, "smooth", loss=label_smoothed)
    plain, _ = fit_task_model(task, splits, config, "full")
    assert isinstance(smooth, TorchPredictor) and isinstance(result, TrainResult)
    assert len(seen) == result.steps_run > 0  # every training step went through the custom loss
    assert all(g[0] == lg[0] and lg[1] == len(smooth.labels) for lg, g in seen)
    texts = [e["text"] for e in splits.test]
    a, b = np.asarray(smooth.predict_proba(texts)), np.asarray(plain.predict_proba(texts))
    assert a.shape == b.shape and not np.allclose(a, b, atol=1e-4)  # same seed: only the loss differs


def test_fit_task_model_targets_turn_gold_into_the_loss_s_targets(tiny_model: Path) -> None:
    from taskkit.kernel import fit_task_model

    task, splits, config = _setup(tiny_model)
    asked: list[str] = []

    def soft(example: dict[str, Any], labels: Any) -> list[float]:
        asked.append(example["text"])
        row = [0.1 / (len(labels) - 1)] * len(labels)
        row[labels.index(example["label"])] = 0.9
        return row

    golds: list[torch.Tensor] = []

    def soft_loss(logits: torch.Tensor, gold: torch.Tensor) -> torch.Tensor:
        golds.append(gold)
        return nn.functional.cross_entropy(logits, gold)  # probabilities as targets

    predictor, _ = fit_task_model(task, splits, config, "soft", loss=soft_loss, targets=soft)
    assert sorted(set(asked)) == sorted({e["text"] for e in splits.train})
    assert golds and all(g.dtype == torch.float32 and g.shape[1] == len(predictor.labels) for g in golds)
    assert all(torch.allclose(g.sum(1), torch.ones(len(g))) for g in golds)
    assert torch.isclose(golds[0].max(), torch.tensor(0.9))


def test_train_with_a_sampler_a_custom_loss_and_a_step_budget(tiny_model: Path) -> None:
    """The seams the few-shot contrastive phase uses: ``batches``, ``loss(output, batch)``, ``steps``,
    an evaluation before the first step and every ``eval_every`` steps, the best step's weights kept."""
    from transformers import AutoModel

    from taskkit.kernel import train

    _, _, config = _setup(tiny_model)
    body = AutoModel.from_pretrained(str(tiny_model))
    features = [{"input_ids": [101, 2000 + i, 102], "attention_mask": [1, 1, 1], "labels": [float(i % 2)]}
                for i in range(12)]

    class Pool(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = body

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_: Any) -> torch.Tensor:
            return self.body(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state[:, 0, 0]

    model = Pool()
    drawn: list[list[int]] = []

    def sampler(rng: random.Random) -> list[list[int]]:
        out = [rng.sample(range(12), 4) for _ in range(7)]
        drawn.extend(out)
        return out

    batches_seen: list[set[str]] = []

    def loss(output: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        batches_seen.append(set(batch))
        return (output - batch["labels"][:, 0] * 5).pow(2).mean()

    evaluations: list[float] = []
    scores = iter([1.0, 0.5, 0.7, 0.8, 0.9])  # best after step 2; two worse checks then stop it

    def evaluate(m: nn.Module) -> dict[str, float]:
        evaluations.append(float(m.body.embeddings.word_embeddings.weight.sum()))
        return {"pair_loss": next(scores)}

    result = train(model, features, None, config.replace(patience=2, lr=1e-2), 0, evaluate=evaluate,
                   metric="pair_loss", lower_is_better=True, loss=loss, batches=sampler, steps=7, eval_every=2)
    assert len(drawn) == 7  # one pass of the sampler's batches
    assert all(keys == {"input_ids", "attention_mask", "labels"} for keys in batches_seen)
    assert [row["step"] for row in result.history] == [0, 2, 4, 6]
    assert result.best_step == 2 and result.steps_run == 6 and result.stopped_early
    assert [row["dev_pair_loss"] for row in result.history] == [1.0, 0.5, 0.7, 0.8]
    # the weights of step 2 are back
    assert float(model.body.embeddings.word_embeddings.weight.sum()) == pytest.approx(evaluations[1], abs=1e-5)
