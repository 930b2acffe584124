"""The ``topic`` task: what a text (a news story, a post) is about."""

from __future__ import annotations

from collections.abc import Callable

import taskkit
from taskkit.classification import ClassificationTask


class Topic(ClassificationTask):
    name = "topic"
    description = "the subject of a text: news-style topics (world, sports, business, science...)"
    # AG News' four topics; other data's labels fall back to their names
    label_descriptions = {
        "World": "world news: politics, elections, war, diplomacy, international affairs",
        "Sports": "sports news: games, teams, players, matches, championships",
        "Business": "business news: companies, markets, stocks, economy, earnings",
        "Sci/Tech": "science and technology news: computers, internet, software, space, research",
    }
    hypothesis_template = "This text is about {}."


@taskkit.hookimpl
def register_tasks(register: Callable[[taskkit.Task], None]) -> None:
    register(Topic())
