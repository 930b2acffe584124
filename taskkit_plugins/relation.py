"""The ``relation`` task: the directed relation between a head and a tail entity marked in a text.

An example is ``{"text", "head": {"start", "end"[, "type"]}, "tail": {...}, "label"}`` (character
offsets, end exclusive). The entities are wrapped in typed marker tokens added to the tokenizer
(``<h:PER> ... </h:PER>``; ``<h> ... </h>`` without types), and the head reads the hidden
states at the two start markers. Metrics: the SemEval-2010 Task 8 official score (macro-F1 over
relation types, direction counted, the negative label excluded), micro-F1 and accuracy.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, cast

import taskkit
from taskkit.classification import ClassificationTask
from taskkit.contracts import Example, Features, LabelSpace, Level, RunConfig, Task
from taskkit.data.values import check_text, has_text, label_name, offset, show
from taskkit.errors import TaskkitError

if TYPE_CHECKING:
    import torch
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerBase

NEGATIVE = "Other"  # the label of "no relation of interest" (SemEval's Other, TACRED's no_relation)
NEGATIVES = ("Other", "no_relation", "NA", "none")
DIRECTION = re.compile(r"\((e1|e2|head|tail),\s*(e1|e2|head|tail)\)$")


def marker(role: str, kind: str | None, closing: bool = False) -> str:
    return f"<{'/' if closing else ''}{role}{':' + kind if kind else ''}>"


def relation_type(label: str) -> str:
    """``Cause-Effect(e2,e1)`` -> ``Cause-Effect``: the relation without its direction."""
    return DIRECTION.sub("", label)


#: SemEval-2010 Task 8 relations as ``(e1, e2)`` sentences; ``(e2, e1)`` swaps the roles. The
#: zero-shot mode scores each filled-in sentence with its NLI model (``Other``: none entailed).
SEMEVAL_VERBALISATIONS = {
    "Cause-Effect": "{e1} causes {e2}.", "Component-Whole": "{e1} is a part of {e2}.",
    "Content-Container": "{e1} is inside {e2}.", "Entity-Destination": "{e1} is moved into {e2}.",
    "Entity-Origin": "{e1} comes from {e2}.", "Instrument-Agency": "{e1} is used by {e2}.",
    "Member-Collection": "{e1} is a member of {e2}.", "Message-Topic": "{e1} is about {e2}.",
    "Product-Producer": "{e1} is made by {e2}.",
}


def semeval_templates() -> dict[str, str]:
    """Directed label -> hypothesis with ``{head}`` and ``{tail}``."""
    out = {}
    for relation, sentence in SEMEVAL_VERBALISATIONS.items():
        out[f"{relation}(e1,e2)"] = sentence.format(e1="{head}", e2="{tail}")
        out[f"{relation}(e2,e1)"] = sentence.format(e1="{tail}", e2="{head}")
    return out


class RelationTask(ClassificationTask):
    name = "relation"
    level: ClassVar[Level] = "pair"
    description = "relation between two marked entities in a text (directed labels), SemEval-2010 Task 8 score"
    primary_metric = "official_macro_f1"
    hypothesis_template = "{}"  # label descriptions are whole hypotheses, filled per example
    label_descriptions = semeval_templates()
    negative_label: ClassVar[str] = NEGATIVE
    abstain_label: ClassVar[str] = NEGATIVE  # zero-shot: Other when no verbalisation clears the threshold
    fills_hypotheses_per_example: ClassVar[bool] = True  # the entities fill each label's verbalisation
    # the settings of the SemEval-2010 figure (benchmarks/RESULTS.md): the marker tokens' new
    # embeddings and the head learn too slowly at full fine-tuning's 5e-5
    defaults: ClassVar[dict[str, dict[str, Any]]] = {"full": {"lr": 1e-4, "epochs": 3},
                                                     "few-shot": {"lr": 3e-4}}  # as few-shot NER's

    def hypothesis(self, label: str, example: Example, template: str | None = None) -> str | None:
        """The NLI hypothesis of ``label`` for one example (``None`` for the negative label)."""
        template = template or self.label_descriptions.get(label)
        if not template:
            return None
        return template.format(head=example["head"]["text"], tail=example["tail"]["text"])

    # --- reading -------------------------------------------------------------------------
    def _example(self, row: dict[str, Any], config: RunConfig) -> Example:
        example = self._spans(row, row.get("_where", "input"))
        example["label"] = label_name(row.get(config.label_column), example["_where"], config.label_column)
        return example

    def _spans(self, row: dict[str, Any], where: str) -> Example:
        text = row.get("text")
        if not isinstance(text, str) or not has_text(text):
            raise TaskkitError(f"{where}: missing or empty 'text'")
        check_text(text, where, "text")
        spans = {}
        for role in ("head", "tail"):
            spans[role] = _span(row.get(role), text, role, where)
        (hs, he), (ts, te) = (spans["head"]["start"], spans["head"]["end"]), (spans["tail"]["start"], spans["tail"]["end"])
        if hs < te and ts < he:
            raise TaskkitError(f"{where}: head [{hs}, {he}) and tail [{ts}, {te}) overlap")
        return {"text": text, "head": spans["head"], "tail": spans["tail"], "_where": where}

    def as_example(self, item: Any) -> Example:
        if isinstance(item, dict):
            return {**item, **self._spans(item, str(item.get("_where", "input")))}
        raise TaskkitError("relation needs {'text': ..., 'head': {'start', 'end'}, 'tail': {'start', 'end'}}")

    def label_space(self, examples: Sequence[Example]) -> LabelSpace:
        labels = super().label_space(examples)
        return LabelSpace(labels.names)

    # --- model ---------------------------------------------------------------------------
    def special_tokens(self, examples: Sequence[Example]) -> list[str]:
        kinds = sorted({e[r]["type"] for e in examples for r in ("head", "tail") if e[r].get("type")})
        plain = [marker(r, None, c) for r in ("h", "t") for c in (False, True)]
        return plain + [marker(r, k, c) for k in kinds for r in ("h", "t") for c in (False, True)]

    def encode(self, examples: Sequence[Example], tokenizer: PreTrainedTokenizerBase, labels: LabelSpace,
               max_length: int, truncate: bool = False) -> list[Features]:
        known = set(tokenizer.get_vocab())
        marked = [_marked(e, known) for e in examples]
        encoded = tokenizer([m[0] for m in marked], add_special_tokens=True, verbose=False)  # long texts are cut below
        starts = [(cast(int, tokenizer.convert_tokens_to_ids(h)), cast(int, tokenizer.convert_tokens_to_ids(t)))
                  for _, (h, t) in marked]
        return marker_features(examples, encoded["input_ids"], starts, max_length, labels)

    def encode_fast(self, examples: Sequence[Example], tokenizer: Tokenizer, labels: LabelSpace,
                    max_length: int, truncate: bool = False) -> list[Features]:
        """:meth:`encode` with the ``tokenizers`` library alone (an exported model's runtime); its
        ``tokenizer.json`` holds the marker tokens added in training."""
        known = set(tokenizer.get_vocab(with_added_tokens=True))
        marked = [_marked(e, known) for e in examples]
        encoded = tokenizer.encode_batch([m[0] for m in marked], add_special_tokens=True)
        starts = [(tokenizer.token_to_id(h), tokenizer.token_to_id(t)) for _, (h, t) in marked]
        return marker_features(examples, [e.ids for e in encoded], starts, max_length, labels)

    def head(self, hidden_size: int, labels: LabelSpace, dropout: float) -> torch.nn.Module:
        from taskkit.kernel.heads import MarkerPairHead

        return MarkerPairHead(hidden_size, len(labels), dropout)

    # --- evaluation ----------------------------------------------------------------------
    def metrics(self, gold: Sequence[Any], predicted: Sequence[Any], labels: LabelSpace) -> dict[str, Any]:
        scores = super().metrics(gold, predicted, labels)
        scores.update(semeval_scores(gold, predicted, labels.names))
        return scores

    def prediction_record(self, example: Example, predicted: Any, probabilities: Any, labels: LabelSpace) -> dict[str, Any]:
        record = super().prediction_record(example, predicted, probabilities, labels)
        record["probabilities"] = dict(sorted(record["probabilities"].items(), key=lambda kv: -kv[1])[:3])
        return record


def semeval_scores(gold: Sequence[str], predicted: Sequence[str], names: Sequence[str]) -> dict[str, Any]:
    """The official SemEval-2010 Task 8 figures, (9+1)-way with direction taken into account.

    Per relation type R: precision = exact (directed) hits / predictions of R in either direction,
    recall = hits / gold R; the official score is the mean F1 over the types, the negative label
    excluded. Micro-F1 pools the same counts.
    """
    negative = next((n for n in NEGATIVES if n in names), None)
    types = sorted({relation_type(n) for n in names} - {negative})
    hits = {t: 0 for t in types}
    proposed = {t: 0 for t in types}
    actual = {t: 0 for t in types}
    for g, p in zip(gold, predicted):
        gt, pt = relation_type(g), relation_type(p)
        if pt in proposed:
            proposed[pt] += 1
        if gt in actual:
            actual[gt] += 1
            hits[gt] += g == p
    per_type = {}
    for t in types:
        precision = hits[t] / proposed[t] if proposed[t] else 0.0
        recall = hits[t] / actual[t] if actual[t] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_type[t] = {"precision": precision, "recall": recall, "f1": f1, "support": actual[t]}
    h, pr, ac = sum(hits.values()), sum(proposed.values()), sum(actual.values())
    micro_p, micro_r = (h / pr if pr else 0.0), (h / ac if ac else 0.0)
    return {
        "official_macro_f1": sum(v["f1"] for v in per_type.values()) / max(1, len(per_type)),
        "micro_f1": 2 * micro_p * micro_r / (micro_p + micro_r) if micro_p + micro_r else 0.0,
        "per_relation": per_type,
    }


def marker_features(examples: Sequence[Example], ids_of: Sequence[list[int]], starts: Sequence[tuple[int | None, int | None]],
                    max_length: int, labels: LabelSpace) -> list[Features]:
    """The features of :meth:`RelationTask.encode` from each marked text's ids (``ids_of``, special
    tokens included) and the ids of its head and tail start markers, whichever library tokenized
    them: a text longer than ``max_length`` keeps a window around both entities."""
    features: list[Features] = []
    for i, e in enumerate(examples):
        ids, (h, t) = list(ids_of[i]), starts[i]
        if h is None or t is None or h not in ids or t not in ids:  # a tokenizer without the markers
            raise TaskkitError(f"{e.get('_where', 'input')}: the tokenizer lacks the entity marker tokens of the relation task")
        head, tail = ids.index(h), ids.index(t)
        if len(ids) > max_length:  # keep a window around both entities rather than cut them off
            lo, hi = min(head, tail), max(head, tail)
            if hi - lo + 2 > max_length - 2:
                raise TaskkitError(f"{e.get('_where', 'input')}: head and tail are {hi - lo} sub-words apart, "
                                   f"more than --max-length {max_length} allows")
            start = max(1, min(lo - (max_length - 2 - (hi - lo)) // 2, len(ids) - 1 - (max_length - 2)))
            ids = ids[:1] + ids[start:start + max_length - 2] + ids[-1:]
            head, tail = head - start + 1, tail - start + 1
        f: Features = {"input_ids": ids, "attention_mask": [1] * len(ids), "head_start": head, "tail_start": tail,
                       "_example": i}
        if e.get("label") in labels.names:
            f["labels"] = labels.index(e["label"])
        features.append(f)
    return features


def _span(value: Any, text: str, role: str, where: str) -> dict[str, Any]:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        value = {"start": value[0], "end": value[1]}
    if not isinstance(value, dict) or "start" not in value or "end" not in value:
        raise TaskkitError(f"{where}: '{role}' must be {{'start': int, 'end': int}} (character offsets)")
    start, end = offset(value["start"], where, f"{role} 'start'"), offset(value["end"], where, f"{role} 'end'")
    if not 0 <= start < end <= len(text):
        raise TaskkitError(f"{where}: {role} span [{start}, {end}) out of range for a text of {len(text)} characters")
    if not has_text(text[start:end]):
        raise TaskkitError(f"{where}: {role} span [{start}, {end}) covers only spaces or invisible characters")
    given = value.get("text")
    if given is not None and given != text[start:end]:
        raise TaskkitError(f"{where}: {role} text {show(given)} differs from text[{start}:{end}] = {show(text[start:end])}")
    span: dict[str, Any] = {"start": start, "end": end, "text": text[start:end]}
    kind = value.get("type")
    if kind is not None and not isinstance(kind, str):
        raise TaskkitError(f"{where}: {role} 'type' must be a string, got {show(kind)}")
    if kind and kind.strip():
        span["type"] = re.sub(r"\s+", "_", kind.strip())
    return span


def _marked(example: Example, known: set[str]) -> tuple[str, tuple[str, str]]:
    """The text with both entities wrapped in markers, and the two start markers used."""
    text = example["text"]
    pieces, starts = [], {}
    for role, span in (("h", example["head"]), ("t", example["tail"])):
        kind = span.get("type")
        if kind and marker(role, kind) not in known:
            kind = None  # a type training never saw: the untyped marker
        starts[role] = marker(role, kind)
        pieces.append((span["start"], span["end"], starts[role], marker(role, kind, closing=True)))
    for start, end, opening, closing in sorted(pieces, reverse=True):  # right to left keeps offsets valid
        text = f"{text[:start]} {opening} {text[start:end]} {closing} {text[end:]}"
    return text, (starts["h"], starts["t"])


@taskkit.hookimpl
def register_tasks(register: Callable[[Task], None]) -> None:
    register(RelationTask())
