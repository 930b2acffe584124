"""An example third-party taskkit plugin: the ``spam`` task (is a message spam or ham?)."""

from __future__ import annotations

from typing import Callable

import taskkit
from taskkit.classification import ClassificationTask


class Spam(ClassificationTask):
    name = "spam"
    description = "is a message unsolicited advertising (spam) or a normal message (ham)"
    label_descriptions = {
        "spam": "unsolicited advertising, scams, prize notifications",
        "ham": "an ordinary personal or work message",
    }
    hypothesis_template = "This message is {}."


@taskkit.hookimpl
def register_tasks(register: Callable[[taskkit.Task], None]) -> None:
    register(Spam())
