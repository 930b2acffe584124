"""The ``ner`` task: named entities (PER, ORG, LOC, MISC...), a :class:`TokenClassificationTask`.

Data: CoNLL, JSONL with ``tokens`` and ``tags``, or JSONL with raw ``text`` and ``entities`` as
character spans (see :mod:`taskkit.token_classification`); ``--option scheme=...`` names the tag
scheme. Prediction on raw text returns ``{text, type, start, end, score}`` with character offsets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

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
    label_descriptions: ClassVar[dict[str, str]] = {"PER": "a person", "ORG": "an organisation", "LOC": "a location", "MISC": "another named entity"}


@taskkit.hookimpl
def register_tasks(register: Callable[[Task], None]) -> None:
    register(NERTask())
