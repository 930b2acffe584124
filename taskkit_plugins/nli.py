"""The ``nli`` pair task: does a premise entail, contradict, or say nothing about a hypothesis?

taskkit trains its own NLI cross-encoder with this task; the zero-shot mode scores label
hypotheses with it.
"""

from __future__ import annotations

from collections.abc import Callable

import taskkit
from taskkit.classification import PairClassificationTask


class NLI(PairClassificationTask):
    name = "nli"
    description = "natural language inference: premise + hypothesis -> entailment / neutral / contradiction"
    label_descriptions = {
        "entailment": "the hypothesis follows from the premise",
        "neutral": "the hypothesis may or may not be true given the premise",
        "contradiction": "the hypothesis cannot be true given the premise",
    }


@taskkit.hookimpl
def register_tasks(register: Callable[[taskkit.Task], None]) -> None:
    register(NLI())
