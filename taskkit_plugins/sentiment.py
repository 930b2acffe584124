"""The ``sentiment`` task: is a text positive or negative (or any polarity labels the data has)."""

from __future__ import annotations

from collections.abc import Callable

import taskkit
from taskkit.classification import ClassificationTask


class Sentiment(ClassificationTask):
    name = "sentiment"
    description = "polarity of a text (positive / negative, or the labels in your data)"
    label_descriptions = {
        "positive": "a positive opinion: praise, enjoyment, approval",
        "negative": "a negative opinion: criticism, disappointment, dislike",
        "neutral": "no clear opinion either way",
    }
    hypothesis_template = "The sentiment of this text is {}."


@taskkit.hookimpl
def register_tasks(register: Callable[[taskkit.Task], None]) -> None:
    register(Sentiment())
