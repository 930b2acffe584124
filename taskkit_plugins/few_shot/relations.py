"""Few-shot relation extraction: each directed label's verbalisation is its prior.

A label's verbalisation (``"{head} causes {tail}."``: the task's label description, the user's
``--option descriptions``, else the label's name between the entities) is filled with the
entities of one of the label's shots and becomes a marked example of the label (an *anchor*):
``<h> pressure </h> causes <t> burst </t>.`` Anchors join the training examples, and their pair
representation (the entity-marker states through the head's hidden layer) is blended into the
label's prototype when the output layer starts (:func:`taskkit_plugins.few_shot.tokens.set_prototypes`).
The negative label (``Other``) has no verbalisation: its prototype is its shots' mean.
"""

from __future__ import annotations

import random
import re
from typing import Any

from taskkit.contracts import Example, LabelSpace, RunConfig, Task

PLACEHOLDER = re.compile(r"\{(head|tail)\}")
DIRECTION = re.compile(r"\((e1|e2|head|tail),\s*(e1|e2|head|tail)\)$")


def template_of(task: Task, label: str, descriptions: dict[str, str]) -> str | None:
    """The verbalisation of ``label`` with ``{head}`` and ``{tail}``; ``None`` for the negative label."""
    if label == task.negative_label:
        return None
    given = descriptions.get(label) or task.label_descriptions.get(label)
    if given and "{head}" in given and "{tail}" in given:
        return given
    direction = DIRECTION.search(label)
    name = DIRECTION.sub("", label).replace("_", " ").replace("-", " ").replace("/", " ").strip()
    if direction and direction.group(1) in ("e2", "tail"):
        return f"{{tail}} {name} {{head}}."
    return f"{{head}} {name} {{tail}}."


def fill(template: str, example: Example) -> Example:
    """The template as a marked example: its placeholders replaced by the example's entities."""
    text, spans, at = "", {}, 0
    for match in PLACEHOLDER.finditer(template):
        text += template[at:match.start()]
        role = match.group(1)
        entity = example[role]
        spans[role] = {**{k: v for k, v in entity.items() if k == "type"}, "start": len(text),
                       "end": len(text) + len(entity["text"]), "text": entity["text"]}
        text += entity["text"]
        at = match.end()
    text += template[at:]
    return {"text": text, "head": spans["head"], "tail": spans["tail"], "label": example["label"],
            "_where": f"verbalisation of {example['label']}", "_anchor": True}


def verbalised(task: Task, shots: list[Example], descriptions: dict[str, str], seed: int) -> list[Example]:
    """One anchor per labelled relation: its verbalisation filled with one of its shots' entities."""
    rng = random.Random(seed)
    anchors = []
    for label in sorted({e["label"] for e in shots}):
        template = template_of(task, label, descriptions)
        if template is None or template.count("{head}") != 1 or template.count("{tail}") != 1:
            continue
        mine = [e for e in shots if e["label"] == label]
        anchors.append(fill(template, rng.choice(mine)))
    return anchors


def pair_prototypes(task: Task, model: Any, tokenizer: Any, labels: LabelSpace, train: list[Example],
                    config: RunConfig, descriptions: dict[str, str]) -> None:
    """A :class:`~taskkit.kernel.heads.MarkerPairHead` whose output layer starts as the prototype
    classifier of the pair representations, the anchors' as each label's prior."""
    import numpy as np

    from taskkit.kernel.heads import MarkerPairHead
    from taskkit_plugins.few_shot.probes import PairState
    from taskkit_plugins.few_shot.tokens import represent, set_prototypes

    if not isinstance(model.head, MarkerPairHead):  # a task with a head of its own: left as it starts
        return
    features = task.encode(train, tokenizer, labels, config.max_length)
    z = np.stack(represent(model, features, tokenizer.pad_token_id, config, PairState(model.head)))
    y = np.asarray([labels.index(e["label"]) for e in train])
    anchor = np.asarray([bool(e.get("_anchor")) for e in train])
    mean = z[~anchor].mean(0) if (~anchor).any() else z.mean(0)
    prior: list[np.ndarray | None] = []
    for j in range(len(labels)):
        rows = z[anchor & (y == j)]
        prior.append(rows.mean(0) - mean if len(rows) else None)
    set_prototypes(model.head.out, z[~anchor], y[~anchor], prior, len(labels))
