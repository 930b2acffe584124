"""The ``ner`` task: named entities (PER, ORG, LOC, MISC...), a :class:`TokenClassificationTask`.

Data: CoNLL, JSONL with ``tokens`` and ``tags``, or JSONL with raw ``text`` and ``entities`` as
character spans (see :mod:`taskkit.token_classification`); ``--option scheme=...`` names the tag
scheme. Prediction on raw text returns ``{text, type, start, end, score}`` with character offsets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import taskkit
from taskkit.contracts import Task
from taskkit.token_classification import (
    TokenClassificationOptions,
    TokenClassificationTask,
)

NEROptions = TokenClassificationOptions


class NERTask(TokenClassificationTask):
    name = "ner"
    description = "named entities: a tag per word (CoNLL or JSONL), entity-level F1 from seqeval"
    label_descriptions: ClassVar[dict[str, str]] = {"PER": "a person", "ORG": "an organisation", "LOC": "a location", "MISC": "another named entity",
                                                    # WNUT-17's types (zero-shot and few-shot read these)
                                                    "person": "a person", "location": "a location",
                                                    "corporation": "a company", "product": "a product",
                                                    "creative-work": "a title of a book, film, song or other work",
                                                    "group": "a group, band, team or organisation"}
    # the settings of the WNUT-17 / WikiANN figures (benchmarks/RESULTS.md): a fresh tagging head
    # learns too slowly at full fine-tuning's 5e-5
    defaults: ClassVar[dict[str, dict[str, Any]]] = {"full": {"lr": 1e-4, "epochs": 5},
                                                     "few-shot": {"lr": 3e-4}}  # chosen on WikiANN dev sentences


@taskkit.hookimpl
def register_tasks(register: Callable[[Task], None]) -> None:
    register(NERTask())
