"""Token classification: a tag per word, scored at entity level by seqeval - what a token task needs.

Data: CoNLL (``token<TAB>tag``, blank line between sentences; IOB1, IOB2 or BIOES, normalised to
IOB2; ``--option scheme=iob2`` makes a stray ``I-`` an error instead of a repair), JSONL with
``tokens`` and ``tags``, or JSONL with raw ``text`` and ``entities`` as character spans.
Sentences longer than ``max_length`` sub-words are read in overlapping windows cut between words,
each word predicted from the window where it sits most centrally. Prediction on raw text returns
``{text, type, start, end, score}`` with character offsets.

A built-in or third-party token task subclasses :class:`TokenClassificationTask` (NER does).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from taskkit.contracts import Example, Features, LabelSpace, Level, RunConfig, Task, TaskOptions
from taskkit.data import conll
from taskkit.data.readers import file_format, read_records
from taskkit.data.values import check_text, has_text, require_text
from taskkit.errors import TaskkitError
from taskkit.options import read as read_options

if TYPE_CHECKING:
    import numpy as np
    import torch
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerBase

CONLL_SUFFIXES = (".conll", ".txt", ".bio", ".iob", ".bioes", ".tsv")


class TokenClassificationOptions(TaskOptions):
    scheme: Literal["auto", "iob1", "iob2", "bioes"] = Field(
        "auto", description="tag scheme of the data (auto: BIO, with IOB1 tags repaired)")


class TokenClassificationTask(Task):
    """A tag per word, BIO-encoded spans of ``types``: subclass it and name the task.

    A subclass sets ``name``, ``description`` and usually ``label_descriptions`` (entity type ->
    a few words, used by zero-shot and few-shot); it may override :meth:`read` or
    :meth:`from_records` to read another format into ``{"tokens", "tags"}`` or
    ``{"text", "entities"}`` rows. Everything else - CoNLL / JSONL reading, the tag scheme, sub-word
    windows over long sentences, per-word logits, BIO decoding, entity offsets, seqeval metrics -
    is here.
    """

    Options: ClassVar[type[TaskOptions]] = TokenClassificationOptions
    level: ClassVar[Level] = "token"
    primary_metric = "micro_f1"
    ragged = True
    hypothesis_template = "{} is an entity of this type."

    # --- reading -------------------------------------------------------------------------
    def read(self, path: Path, config: RunConfig) -> list[Example]:
        suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
        if suffixes and suffixes[-1] in CONLL_SUFFIXES:
            return self._read_conll(path, config)
        file_format(path)  # one clear line for an unknown file type
        return self.from_records(read_records(path), config)

    def _read_conll(self, path: Path, config: RunConfig) -> list[Example]:
        from taskkit.data.readers import _open_text

        sentences = conll.read_conll(path, _open_text(path).read())
        if not sentences:
            raise TaskkitError(f"{path}: no sentences in file")
        scheme = _scheme(config)
        if scheme == "auto":
            scheme = conll.detect_scheme([tags for _, tags, _ in sentences])
        examples = []
        for tokens, tags, wheres in sentences:
            iob2 = conll.to_iob2(tags, scheme, wheres)
            text, offsets = conll.join_words(tokens)
            if not has_text(text):
                raise TaskkitError(f"{wheres[0]}: sentence of invisible tokens (whitespace, zero-width or control characters)")
            examples.append({"text": text, "tokens": tokens, "tags": iob2, "_offsets": offsets, "_where": wheres[0]})
        return examples

    def from_records(self, records: list[dict[str, Any]], config: RunConfig) -> list[Example]:
        scheme = _scheme(config)
        return [self._from_row(row, scheme) for row in records]

    def _from_row(self, row: dict[str, Any], scheme: str) -> Example:
        where = row.get("_where", "input")
        if "tokens" in row:
            tokens, tags = row["tokens"], row.get("tags", row.get("ner_tags"))
            if not isinstance(tokens, list) or not all(isinstance(t, str) and t.strip() for t in tokens):
                raise TaskkitError(f"{where}: 'tokens' must be a list of non-empty strings")
            if not tokens:
                raise TaskkitError(f"{where}: empty sentence (no tokens)")
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise TaskkitError(f"{where}: 'tags' must be a list of tag strings, one per token")
            if len(tags) != len(tokens):
                raise TaskkitError(f"{where}: {len(tokens)} tokens but {len(tags)} tags")
            use = conll.detect_scheme([tags]) if scheme == "auto" else scheme
            text, offsets = conll.join_words(tokens)
            if not has_text(text):
                raise TaskkitError(f"{where}: empty sentence (only invisible tokens)")
            return {"text": text, "tokens": list(tokens), "tags": conll.to_iob2(tags, use, [where] * len(tags)),
                    "_offsets": offsets, "_where": where}
        raw = row.get("text")
        if not isinstance(raw, str):
            raise TaskkitError(f"{where}: expected 'tokens' and 'tags', or 'text' and 'entities'")
        text = raw
        if not has_text(text):
            raise TaskkitError(f"{where}: empty sentence (no visible text)")
        check_text(text, where, "text")
        spans = row.get("entities", row.get("spans", []))
        words, offsets, tags = conll.tags_from_spans(text, spans, where)
        return {"text": text, "tokens": words, "tags": tags, "_offsets": offsets, "_where": where}

    def as_example(self, item: Any) -> Example:
        if isinstance(item, dict) and "_offsets" in item and "tokens" in item:
            return item  # already an example (evaluation)
        if isinstance(item, dict) and isinstance(item.get("tokens"), list):
            return self._from_row({**item, "tags": item.get("tags") or ["O"] * len(item["tokens"])}, "iob1")
        if isinstance(item, dict) and "_where" in item:  # a row of a predict file
            text = require_text(item, "text")
        else:
            raw = item.get("text") if isinstance(item, dict) else item
            if not isinstance(raw, str):
                raise TaskkitError(f"cannot tag {type(item).__name__}: expected a string, {{'text': ...}} or {{'tokens': [...]}}")
            if not has_text(raw):
                raise TaskkitError("empty text given to predict")
            text = check_text(raw, "input")
        words, offsets = conll.split_words(text)
        return {"text": text, "tokens": words, "_offsets": offsets}

    # --- labels --------------------------------------------------------------------------
    def label_space(self, examples: Sequence[Example]) -> LabelSpace:
        types = sorted({t[2:] for e in examples for t in e.get("tags", []) if t != "O"})
        if not types:
            raise TaskkitError("training data has no entities: at least one tagged entity is needed")
        # B- and I- of every type, so a type seen only in one-word entities can still be continued
        return LabelSpace(("O", *(f"{p}-{t}" for t in types for p in "BI")))

    def check_known(self, examples: Sequence[Example], labels: LabelSpace, split: str) -> None:
        known = set(labels.names)
        for e in examples:
            unknown = next((t for t in e.get("tags", []) if t not in known), None)
            if unknown is not None:
                raise TaskkitError(f"{e.get('_where', split)}: entity type {unknown[2:]!r} in {split} never occurs in training data")

    def gold(self, examples: Sequence[Example], labels: LabelSpace) -> list[Any]:
        return [list(e["tags"]) for e in examples]

    # --- model ---------------------------------------------------------------------------
    def encode(self, examples: Sequence[Example], tokenizer: PreTrainedTokenizerBase, labels: LabelSpace,
               max_length: int, truncate: bool = False) -> list[Features]:
        """Sub-words of each sentence's words; the first sub-word of a word carries its tag.

        A sentence longer than ``max_length`` becomes overlapping windows cut at word boundaries
        (``truncate`` is ignored: a tagger must tag every word). ``_words`` maps a position to the
        word it predicts, in the one window where that word sits most centrally.
        """
        prefix, suffix = _special_ids(tokenizer)
        _check_budget(max_length, prefix, suffix)
        if not examples:
            return []
        encoded = tokenizer([list(e["tokens"]) for e in examples], is_split_into_words=True, add_special_tokens=False,
                            verbose=False)  # long sentences are windowed below: no length warning
        words = [(encoded["input_ids"][n], encoded.word_ids(n)) for n in range(len(examples))]
        return window_features(examples, words, prefix, suffix, max_length, labels)

    def encode_fast(self, examples: Sequence[Example], tokenizer: Tokenizer, labels: LabelSpace,
                    max_length: int, truncate: bool = False) -> list[Features]:
        """:meth:`encode` with the ``tokenizers`` library alone (an exported model's runtime)."""
        probe = tokenizer.encode(["x"], is_pretokenized=True)
        inner = [i for i, w in enumerate(probe.word_ids) if w is not None]
        prefix, suffix = probe.ids[: inner[0]], probe.ids[inner[-1] + 1:]
        _check_budget(max_length, prefix, suffix)
        if not examples:
            return []
        encoded = tokenizer.encode_batch([list(e["tokens"]) for e in examples], is_pretokenized=True,
                                         add_special_tokens=False)
        return window_features(examples, [(e.ids, e.word_ids) for e in encoded], prefix, suffix, max_length, labels)

    def collect_logits(self, features: Sequence[Features], logits: list[np.ndarray], count: int,
                       labels: LabelSpace) -> list[np.ndarray]:
        import numpy as np

        rows: list[np.ndarray | None] = [None] * count
        for f, window in zip(features, logits):
            n = f["_example"]
            row = rows[n]
            if row is None:
                # a word with no sub-word at all (a lone control character) is predicted O
                row = rows[n] = np.zeros((f["_count"], window.shape[-1]), dtype=np.float32)
                row[:, labels.index("O")] = 10.0
            for position, word in enumerate(f["_words"]):
                if word >= 0:
                    row[word] = window[position]
        return [r if r is not None else np.zeros((0, len(labels)), dtype=np.float32) for r in rows]

    def head(self, hidden_size: int, labels: LabelSpace, dropout: float) -> torch.nn.Module:
        from taskkit.kernel.heads import TokenHead

        return TokenHead(hidden_size, len(labels), dropout)

    def loss(self, labels: LabelSpace) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        from taskkit.kernel.heads import token_loss

        return token_loss

    def probabilities(self, logits: Any, labels: LabelSpace) -> Any:
        import numpy as np
        from scipy.special import softmax

        return [softmax(np.asarray(row, dtype=np.float32), axis=-1) for row in logits]

    def decode(self, probabilities: Any, labels: LabelSpace, threshold: float | None = None) -> list[Any]:
        out = []
        for row in probabilities:
            tags = [labels.names[int(j)] for j in row.argmax(-1)] if len(row) else []
            out.append(conll.to_iob2(tags, "iob1", [""] * len(tags)))  # a stray I- starts an entity
        return out

    # --- evaluation ----------------------------------------------------------------------
    def metrics(self, gold: Sequence[Any], predicted: Sequence[Any], labels: LabelSpace) -> dict[str, Any]:
        from seqeval.metrics import classification_report

        report = classification_report(list(gold), list(predicted), output_dict=True, zero_division=0)
        types = sorted({t[2:] for t in labels.names if t != "O"})
        micro = report.get("micro avg", {"precision": 0.0, "recall": 0.0, "f1-score": 0.0})
        per_type = {t: {k: float(v) for k, v in report.get(t, {"precision": 0, "recall": 0, "f1-score": 0,
                                                               "support": 0}).items()} for t in types}
        words = sum(len(g) for g in gold)
        return {
            "micro_f1": float(micro["f1-score"]), "micro_precision": float(micro["precision"]),
            "micro_recall": float(micro["recall"]),
            "macro_f1": sum(v["f1-score"] for v in per_type.values()) / max(1, len(per_type)),
            "token_accuracy": sum(a == b for g, p in zip(gold, predicted) for a, b in zip(g, p)) / max(1, words),
            "per_type": per_type,
        }

    def prediction_record(self, example: Example, predicted: Any, probabilities: Any, labels: LabelSpace) -> dict[str, Any]:
        text, offsets = example["text"], example["_offsets"]
        entities = []
        for kind, first, last in conll.entities_from_tags(predicted):
            start, end = offsets[first][0], offsets[last][1]
            score = float(sum(probabilities[i].max() for i in range(first, last + 1)) / (last - first + 1))
            entities.append({"text": text[start:end], "type": kind, "start": start, "end": end, "score": round(score, 4)})
        record: dict[str, Any] = {"text": text, "entities": entities}
        if "tags" in example:  # evaluation: the words and the predicted tags beside the gold ones
            record["tokens"] = example["tokens"]
            record["predicted_tags"] = predicted
        return record


def _scheme(config: RunConfig) -> str:
    return read_options(config, TokenClassificationOptions).scheme


def _check_budget(max_length: int, prefix: list[int], suffix: list[int]) -> None:
    if max_length - len(prefix) - len(suffix) < 8:
        raise TaskkitError(f"--max-length {max_length} is too short for token windows")


def window_features(examples: Sequence[Example], words: Sequence[tuple[list[int], Sequence[int | None]]],
                    prefix: list[int], suffix: list[int], max_length: int, labels: LabelSpace) -> list[Features]:
    """The features of :meth:`TokenClassificationTask.encode` from each sentence's sub-word ids and
    the word of each sub-word (``words``, tokenized without special tokens), whichever library
    tokenized them; ``prefix`` / ``suffix``: the ids around one text ([CLS], [SEP])."""
    budget = max_length - len(prefix) - len(suffix)
    index = {name: i for i, name in enumerate(labels.names)}
    features: list[Features] = []
    for n, e in enumerate(examples):
        ids, word_of = list(words[n][0]), list(words[n][1])
        first = {w: p for p in range(len(ids) - 1, -1, -1) if (w := word_of[p]) is not None}
        windows = _windows(word_of, budget)
        owner = {w: max(range(len(windows)), key=lambda k: min(p - windows[k][0], windows[k][1] - 1 - p)
                        if windows[k][0] <= p < windows[k][1] else -1)
                 for w, p in first.items()}
        tags = e.get("tags")
        for k, (start, end) in enumerate(windows):
            heads = [w if (w := word_of[p]) is not None and first.get(w) == p else None for p in range(start, end)]
            f: Features = {
                "input_ids": prefix + ids[start:end] + suffix,
                "attention_mask": [1] * (len(prefix) + end - start + len(suffix)),
                "_example": n, "_count": len(e["tokens"]),
                "_words": [-1] * len(prefix) + [w if w is not None and owner[w] == k else -1 for w in heads]
                          + [-1] * len(suffix),
            }
            if tags is not None and all(t in index for t in tags):
                f["labels"] = [-100] * len(prefix) + [index[tags[w]] if w is not None else -100 for w in heads] \
                              + [-100] * len(suffix)
            features.append(f)
    return features


def _special_ids(tokenizer: PreTrainedTokenizerBase) -> tuple[list[int], list[int]]:
    """The ids the tokenizer puts before and after one text ([CLS] and [SEP] for BERT)."""
    probe = tokenizer(["x"], is_split_into_words=True)
    ids, words = probe["input_ids"], probe.word_ids()
    inner = [i for i, w in enumerate(words) if w is not None]
    return ids[: inner[0]], ids[inner[-1] + 1:]


def _windows(word_of: Sequence[int | None], budget: int) -> list[tuple[int, int]]:
    """Sub-word ranges of at most ``budget``, cut between words, overlapping by about a quarter."""
    n = len(word_of)
    if n <= budget:
        return [(0, n)]
    overlap = budget // 4
    windows, start = [], 0
    while True:
        end = min(start + budget, n)
        if end < n:
            cut = end
            while cut > start and word_of[cut] is not None and word_of[cut] == word_of[cut - 1]:
                cut -= 1
            end = cut if cut > start else end  # a single word longer than a window is cut inside
        windows.append((start, end))
        if end >= n:
            return windows
        nxt = max(end - overlap, start + 1)
        while nxt < end and word_of[nxt] is not None and word_of[nxt] == word_of[nxt - 1]:
            nxt += 1
        start = nxt
