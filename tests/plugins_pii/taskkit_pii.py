"""A third-party token task: ``pii`` finds personal data (emails, phone numbers, names) in text.

Written against taskkit's public API only: :class:`taskkit.token_classification.TokenClassificationTask`
reads CoNLL / JSONL, windows long sentences and returns entities with character offsets; this
task names itself and its entity types, and adds a ``redacted`` copy of each text to its predictions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import taskkit
from taskkit.contracts import Example, LabelSpace
from taskkit.token_classification import TokenClassificationTask


class PII(TokenClassificationTask):
    name = "pii"
    description = "personal data in text: e-mail addresses, phone numbers, person names (a tag per word)"
    label_descriptions: ClassVar[dict[str, str]] = {
        "EMAIL": "an e-mail address", "PHONE": "a telephone number", "PERSON": "the name of a person"}

    def prediction_record(self, example: Example, predicted: Any, probabilities: Any, labels: LabelSpace) -> dict[str, Any]:
        record = super().prediction_record(example, predicted, probabilities, labels)
        text = record["text"]
        for entity in sorted(record["entities"], key=lambda e: e["start"], reverse=True):
            text = text[: entity["start"]] + f"[{entity['type']}]" + text[entity["end"]:]
        record["redacted"] = text
        return record


@taskkit.hookimpl
def register_tasks(register: Callable[[taskkit.Task], None]) -> None:
    register(PII())
