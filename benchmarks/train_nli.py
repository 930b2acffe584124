"""Train taskkit's own NLI cross-encoder from the packaged MiniLM, and ship it in the package.

Data: the NLI pool's train split (../shared/datasets/nli/pool), plus classification data recast
as NLI (Laurer et al.): each text with its gold label as an entailed hypothesis and a random
other label as a contradicted one. Recast sets are IMDB (sentiment) and CLINC150 (intents) only:
never SST-2, AG News or Banking77, on which the zero-shot mode is evaluated.
Evaluation: MNLI dev-matched (test_mnli_matched), never trained on.

The word embeddings stay frozen, so the shipped file holds only the weights that changed
(transformer layers, position embeddings, head) in fp16, loaded on top of the packaged base.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _common import DATASETS, ROOT, read_jsonl, write_section  # noqa: E402

SHIP = ROOT / "taskkit" / "packaged" / "nli-minilm"
SENTIMENT_TEMPLATES = ["This text is {}.", "The sentiment of this text is {}.", "This review is {}.", "The writer feels {}."]
INTENT_TEMPLATES = ["This text is about {}.", "The user wants {}.", "The intent of this request is {}."]


def _short(text: str, limit: int = 400) -> str:
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0]


def recast(rows: list[dict], templates: list[str], names: dict[str, str], n: int, rng: random.Random) -> list[dict]:
    labels = sorted(names)
    out = []
    for row in rng.sample(rows, min(n, len(rows))):
        template = rng.choice(templates)
        wrong = rng.choice([l for l in labels if l != row["label"]])
        premise = _short(row["text"].replace("<br />", " "))
        out.append({"premise": premise, "hypothesis": template.format(names[row["label"]]), "label": "entailment"})
        out.append({"premise": premise, "hypothesis": template.format(names[wrong]), "label": "contradiction"})
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=6e-5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--recast", type=int, default=4000, help="texts per recast data set")
    parser.add_argument("--limit", type=int, default=0, help="use only N training pairs (smoke test)")
    args = parser.parse_args()

    import taskkit

    rng = random.Random(13)
    pool = [{k: r[k] for k in ("premise", "hypothesis", "label")} for r in read_jsonl(DATASETS / "nli/pool/train.jsonl.gz")]
    imdb = read_jsonl(DATASETS / "sentiment/imdb/train.jsonl.gz")
    clinc = [r for r in read_jsonl(DATASETS / "intent/clinc150/train.jsonl.gz") if r["label"] != "oos"]
    extra = recast(imdb, SENTIMENT_TEMPLATES, {"positive": "positive", "negative": "negative"}, args.recast, rng)
    extra += recast(clinc, INTENT_TEMPLATES, {l: l.replace("_", " ") for l in {r["label"] for r in clinc}},
                    args.recast, rng)
    train = pool + extra
    rng.shuffle(train)
    if args.limit:
        train = train[: args.limit]
    with tempfile.TemporaryDirectory() as tmp:
        with open(Path(tmp) / "train.jsonl", "w", encoding="utf-8") as f:
            for row in train:
                f.write(json.dumps(row) + "\n")
        test = read_jsonl(DATASETS / "nli/pool/test_mnli_matched.jsonl.gz")
        with open(Path(tmp) / "test.jsonl", "w", encoding="utf-8") as f:
            for row in (test[: args.limit] if args.limit else test):
                f.write(json.dumps({k: row[k] for k in ("premise", "hypothesis", "label")}) + "\n")
        started = time.perf_counter()
        result = taskkit.run("nli", "full", tmp, out=Path(tmp) / "run", epochs=args.epochs, lr=args.lr,
                             batch_size=args.batch_size, max_length=128, freeze="embeddings", dev_fraction=0.02,
                             warmup_ratio=0.06, patience=1, progress=True)
        seconds = time.perf_counter() - started
        from taskkit.packaged import export_delta

        size = export_delta(Path(tmp) / "run" / "model", SHIP, base="minilm")
    m, t = result.metrics, result.predictor.training
    write_section("taskkit's NLI cross-encoder (shipped in taskkit/packaged/nli-minilm)", f"""
Training data: NLI pool train ({len(pool)} pairs) + recast IMDB and CLINC150 ({len(extra)} pairs; {args.recast} texts each,
gold label entailed, one random other label contradicted); {len(train)} pairs in all, 2% carved as dev.
Base: packaged all-MiniLM-L6-v2, word embeddings frozen; {args.epochs} epoch(s), lr {args.lr}, batch {args.batch_size}, max length 128.

| MNLI dev-matched accuracy (never trained on) | macro F1 | pairs | epochs run (best) | training time | shipped size |
|---|---|---|---|---|---|
| {m['accuracy']:.4f} | {m['macro_f1']:.4f} | {m['examples']} | {t['epochs_run']} ({t['best_epoch']}) | {seconds / 60:.0f} min | {size / 1e6:.1f} MB |

Target: >= 0.72 on MNLI dev-matched; at most 25 MB in the repo.
""")


if __name__ == "__main__":
    main()
