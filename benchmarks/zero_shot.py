"""Zero-shot accuracy on SST-2, AG News and Banking77: nli, embedding and both (their
average, the default) backends, with and without self-training.

Labels and one-line descriptions come from benchmarks/zero_shot_labels/*.yaml, written once from
the label names. Self-training classifies unlabelled texts (a seeded sample of each data set's
train split; gold labels never read) and fits a logistic regression on the confident ones; the
result is scored on the whole test split. The NLI model is taskkit's shipped one, which was never
trained on these three data sets.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from _common import DATASETS, ROOT, read_jsonl, write_section  # noqa: E402

SETS = {  # name: (task, data folder)
    "sst2": ("sentiment", "sentiment/sst2"),
    "ag_news": ("topic", "topic/ag_news"),
    "banking77": ("intent", "intent/banking77"),
}
# --adapt also: GoEmotions' single-label rows (one emotion each), with a template of its own
ADAPT_SETS = {**SETS, "goemotions": ("sentiment", "emotion/goemotions")}
TEMPLATES = {"goemotions": "This text expresses {}."}
TARGETS = {"sst2": 0.80, "ag_news": 0.75, "banking77": 0.64}


def score(probabilities, gold: list[str], names: tuple[str, ...]) -> tuple[float, float]:
    from sklearn.metrics import f1_score

    predicted = [names[i] for i in probabilities.argmax(1)]
    accuracy = sum(p == g for p, g in zip(predicted, gold)) / len(gold)
    return accuracy, f1_score(gold, predicted, labels=list(names), average="macro", zero_division=0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--unlabelled", type=int, default=2000, help="train texts sampled for self-training")
    parser.add_argument("--test-limit", type=int, default=0, help="score only the first N test texts (0: all)")
    parser.add_argument("--keep", type=float, default=0.5)
    parser.add_argument("--adapt", action="store_true", help="label-bias correction and backend weighing: the "
                        "defaults before and after, on seeded samples of --test-limit test texts")
    parser.add_argument("--sizes", default="", help="--adapt: per set NAME=TEST/UNLABELLED,... (else --test-limit "
                        "and --unlabelled)")
    args = parser.parse_args()
    if args.adapt:
        return adapt_table(args)

    import numpy as np

    import taskkit
    from taskkit.zero_shot_predictor import _logistic_proba

    rows, lines, times = {}, [], []
    for name in args.sets.split(","):
        task, folder = SETS[name]
        test = read_jsonl(DATASETS / folder / "test.jsonl.gz")
        test = test[: args.test_limit] if args.test_limit else test
        texts, gold = [r["text"] for r in test], [r["label"] for r in test]
        pool = [r["text"] for r in read_jsonl(DATASETS / folder / "train.jsonl.gz")]
        pool = random.Random(42).sample(pool, min(args.unlabelled, len(pool)))
        labels = ROOT / "benchmarks" / "zero_shot_labels" / f"{name}.yaml"
        nli = taskkit.zero_shot(labels, task=task, backend="nli")
        names = nli.labels.names
        started = time.perf_counter()
        nli_test, nli_pool = nli.zero_shot_proba(texts), nli.zero_shot_proba(pool)
        nli_s = time.perf_counter() - started
        emb = taskkit.zero_shot(labels, task=task, backend="embedding")
        started = time.perf_counter()
        vec_test, vec_pool = emb.encoder().encode(texts), emb.encoder().encode(pool)
        emb_test, emb_pool = emb.zero_shot_proba(texts, vec_test), emb.zero_shot_proba(pool, vec_pool)
        emb_s = time.perf_counter() - started
        zero = {"nli": (nli_test, nli_pool), "embedding": (emb_test, emb_pool),
                "both": ((nli_test + emb_test) / 2, (nli_pool + emb_pool) / 2)}
        for backend, (plain, plain_pool) in zero.items():
            clf = taskkit.zero_shot(labels, task=task, backend=backend)
            started = time.perf_counter()
            info = clf.self_train(pool, keep=args.keep, proba=plain_pool, vectors=vec_pool)
            alpha = clf.settings["self_train_weight"]
            trained = alpha * _logistic_proba(vec_test, *clf.head) + (1 - alpha) * plain
            st_s = time.perf_counter() - started
            # the shortcuts above (shared scores) must be what the predictor itself returns
            # (bf16 results move a little with batch make-up, hence the tolerance)
            gap = float(np.abs(clf.predict_proba(texts[:32]) - trained[:32]).max())
            assert gap < 0.05, gap
            rows[(name, backend, False)] = score(plain, gold, names)
            rows[(name, backend, True)] = score(trained, gold, names)
            print(name, backend, rows[(name, backend, False)], rows[(name, backend, True)], info["pseudo_labelled"],
                  f"{st_s:.1f}s", flush=True)
        times.append(f"{name}: nli {len(texts) + len(pool)} texts x {len(names)} labels in {nli_s:.0f} s, "
                     f"embedding {len(texts) + len(pool)} texts in {emb_s:.0f} s")
        lines.append(f"| {name} ({len(texts)} test texts, {len(names)} labels) | " + " | ".join(
            f"{rows[(name, b, st)][0]:.4f} / {rows[(name, b, st)][1]:.4f}" for b in zero
            for st in (False, True)) + f" | {TARGETS[name]:.2f} |")

    title = "Zero-shot accuracy (nli, embedding and both backends, self-training)"
    if args.sets != ",".join(SETS):  # a subset is a section of its own: never overwrite the full table
        title += f", rerun on {args.sets}"
    write_section(title, f"""
Accuracy / macro-F1 on each whole test split. Labels and descriptions: `benchmarks/zero_shot_labels/*.yaml`,
templates: the tasks' own ("The sentiment of this text is {{}}.", "This text is about {{}}.", "The user wants {{}}.").
nli: taskkit's shipped cross-encoder (`taskkit/packaged/nli-minilm`, never trained on these sets); embedding: the
packaged all-MiniLM-L6-v2. Self-training: {args.unlabelled} unlabelled train texts per set (seeded sample, gold labels
unused), the {args.keep:.0%} most confident per predicted label kept, logistic regression on MiniLM embeddings, averaged
with the zero-shot probabilities (weight 0.5). 1 torch thread, auto precision (bf16 here).

| data set | nli | nli + self-training | embedding | embedding + self-training | both | both + self-training (default) | target for the default |
|---|---|---|---|---|---|---|---|
{chr(10).join(lines)}

Scoring time (test + unlabelled texts): {'; '.join(times)}.
The default backend, both, was chosen on 400-text slices of the three train splits before any test run (mean of
nli and embedding against each alone); on these test splits it also has the best mean over the three sets.
""")


def rows_of(name: str, split: str) -> list[tuple[str, str]]:
    rows = read_jsonl(DATASETS / ADAPT_SETS[name][1] / f"{split}.jsonl.gz")
    if name == "goemotions":  # the single-label subset
        return [(r["text"], r["labels"][0]) for r in rows if len(r["labels"]) == 1]
    return [(r["text"], r["label"]) for r in rows]


def adapt_table(args: argparse.Namespace) -> None:
    """Before: both backends averaged at fixed weights, no correction, self-training always (the old
    default). After: the new default, run through the mode's own code on the unlabelled texts."""

    import taskkit
    from taskkit.hypothesis_scoring import softmax
    from taskkit.zero_shot_adapt import offset_from
    from taskkit.zero_shot_predictor import ZeroShotOptions, _logistic_proba
    from taskkit_plugins.zero_shot.mode import ZeroShotMode

    lines, notes = [], []
    sizes = {k: tuple(map(int, v.split("/"))) for k, v in (item.split("=") for item in args.sizes.split(",") if item)}
    for name in args.sets.split(","):
        task = ADAPT_SETS[name][0]
        n_test, n_pool = sizes.get(name, (args.test_limit, args.unlabelled))
        test = rows_of(name, "test")
        test = random.Random(42).sample(test, min(n_test or len(test), len(test)))
        texts, gold = [t for t, _ in test], [g for _, g in test]
        pool = [t for t, _ in random.Random(43).sample(rows_of(name, "train"), n_pool)]
        labels = ROOT / "benchmarks" / "zero_shot_labels" / f"{name}.yaml"
        clf = taskkit.zero_shot(labels, task=task, template=TEMPLATES.get(name))
        names, started = clf.labels.names, time.perf_counter()
        memo: dict[tuple[str, ...], dict] = {}
        raw_logits = clf.backend_logits

        def cached(batch, vectors=None, raw=raw_logits, memo=memo):  # each text scored once for all rows
            key = tuple(batch)
            if key not in memo:
                memo[key] = raw(batch, vectors)
            return memo[key]

        clf.backend_logits = cached
        vec_test, vec_pool = clf.encoder().encode(texts), clf.encoder().encode(pool)
        raw_test, raw_pool = cached(texts, vec_test), cached(pool, vec_pool)
        # before: the old default (no correction, nli share 0.5, self-training always)
        old = {b: softmax(raw_test[b]) for b in raw_test}
        old_pool = (softmax(raw_pool["nli"]) + softmax(raw_pool["embedding"])) / 2
        clf.self_train(pool, keep=args.keep, proba=old_pool, vectors=vec_pool)
        alpha = clf.settings["self_train_weight"]
        old_default = alpha * _logistic_proba(vec_test, *clf.head) + (1 - alpha) * (old["nli"] + old["embedding"]) / 2
        clf.head = None
        # after: the mode's own adaptation on the unlabelled texts, then the predictor's own scores
        opts = ZeroShotOptions(keep=args.keep)
        record = ZeroShotMode.adapt(clf, pool, opts, 42)
        new_default = clf.predict_proba(texts)
        new = {b: softmax(raw_test[b] - offset_from(raw_pool[b])) for b in raw_test}
        seconds = time.perf_counter() - started
        cells = [score(p, gold, names) for p in (old["nli"], old["embedding"], old_default,
                                                 new["nli"], new["embedding"], new_default)]
        kept = record.get("self_training", {}).get("kept", True)
        lines.append(f"| {name} ({len(texts)} test, {len(pool)} unlabelled, {len(names)} labels) | "
                     + " | ".join(f"{a:.4f} / {f:.4f}" for a, f in cells)
                     + f" | {record['weights']['nli_share']:g}, {'yes' if kept else 'no'} |")
        best = max(cells[3][0], cells[4][0])
        notes.append(f"{name}: default after - better corrected backend = {cells[5][0] - best:+.4f} accuracy; "
                     f"kappa by nli share {record['weights'].get('kappa_by_nli_share')} "
                     f"({record['weights'].get('why', 'chosen')}); self-training check {record.get('self_training')}; "
                     f"{seconds:.0f} s")
        print(lines[-1], notes[-1], flush=True)

    title = "Zero-shot label-bias correction and backends weighed on the user's texts (before / after)"
    if args.sets != ",".join(ADAPT_SETS):
        title += f", {args.sets}"
    write_section(title, f"""
Accuracy / macro-F1 on a seeded sample of test texts per set (sizes in the first column; small, for the time a
loaded 2-core machine allowed: read differences under ~3 points as noise) (GoEmotions: its single-label
rows, 28 labels, template "This text expresses {{}}."); unlabelled texts sampled from each train split (labels never read). Before: the old default (`both` = mean of the two backends' probabilities, no correction,
self-training always). After: each label's logit centred over the unlabelled texts (`--option correction=auto`), the
nli share of `both` and whether to keep self-training chosen by the label-free lexical check
(`taskkit/zero_shot_adapt.py`; `--option weigh=true`), run through `ZeroShotMode.adapt` and `predict_proba`.
Nothing here was chosen on a test split: the correction (centring; content-free and EM prior re-estimation were
tried and dropped) and the check were chosen on train/dev slices of SST-2, AG News and GoEmotions (400/400/300 texts)
and the 20 spam messages of tests/test_example_plugin.py. 2 cores shared with other engineers' jobs (load 15-25).
Overlap with the shipped NLI model's training mix (benchmarks/train_nli.py: NLI pool + IMDB, CLINC150 and GoEmotions
recast): SST-2 has a same-task relative (IMDB, sentiment templates), Banking77 one (CLINC150, intent templates), and
GoEmotions is the very data set (its train split, recast with "This text expresses {{}}." among others), so its nli
figures measure transfer, not zero-shot; AG News has none. A leave-one-family-out NLI model (issue 18, item 1) needs
one training per family: not run here (no GPU lent; see the timing in the report).

| data set | nli before | embedding before | default before | nli after | embedding after | default after | nli share, self-training kept |
|---|---|---|---|---|---|---|---|
{chr(10).join(lines)}

{chr(10).join('- ' + n for n in notes)}
""")


if __name__ == "__main__":
    main()
