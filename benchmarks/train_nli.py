"""Train taskkit's own NLI cross-encoder from the packaged MiniLM, and ship it in the package.

Data: the NLI pool's train split (../shared/datasets/nli/pool), plus classification data recast
as NLI (Laurer et al.): each text with its gold label as an entailed hypothesis and a random
other label as a contradicted one. Recast sets are IMDB (sentiment), CLINC150 (intents) and
GoEmotions (emotions, single-label comments) only: never SST-2, AG News or Banking77, on which
the zero-shot mode is evaluated.
Evaluation: MNLI dev-matched (test_mnli_matched), never trained on.

The word embeddings stay frozen, so the shipped file holds only the weights that changed
(transformer layers, position embeddings, head) in fp16, loaded on top of the packaged base.

Stages, so that training can run on another machine than the evaluation:
  --prepare DIR   write the exact training and test pairs to DIR and stop
  --data DIR      train on pairs written by --prepare (else they are made in a temporary folder)
  --no-evaluate   train and ship only; --evaluate-only evaluates the shipped model and writes
                  its RESULTS.md section

On several processes (GPUs, or CPUs over gloo): `torchrun --nproc_per_node N benchmarks/train_nli.py
--data DIR --batch-size B` trains with DDP (B per process); the main process ships and evaluates.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _common import DATASETS, ROOT, command_line, machine, read_jsonl, write_section  # noqa: E402

SHIP = ROOT / "taskkit" / "packaged" / "nli-minilm"
SENTIMENT_TEMPLATES = ["This text is {}.", "The sentiment of this text is {}.", "This review is {}.", "The writer feels {}."]
EMOTION_TEMPLATES = ["This text expresses {}.", "The writer feels {}.", "The emotion in this text is {}."]
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


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def prepare(folder: Path, recast_n: dict[str, int], limit: int = 0) -> dict:
    """Write train.jsonl.gz / test.jsonl.gz to ``folder``; return the recipe (counts)."""
    rng = random.Random(13)
    pool = [{k: r[k] for k in ("premise", "hypothesis", "label")} for r in read_jsonl(DATASETS / "nli/pool/train.jsonl.gz")]
    imdb = read_jsonl(DATASETS / "sentiment/imdb/train.jsonl.gz")
    clinc = [r for r in read_jsonl(DATASETS / "intent/clinc150/train.jsonl.gz") if r["label"] != "oos"]
    emotions = [{"text": r["text"], "label": r["labels"][0]}
                for r in read_jsonl(DATASETS / "emotion/goemotions/train.jsonl.gz")
                if len(r["labels"]) == 1 and r["labels"][0] != "neutral"]
    extra = {
        "imdb": recast(imdb, SENTIMENT_TEMPLATES, {"positive": "positive", "negative": "negative"},
                       recast_n["imdb"], rng),
        "clinc150": recast(clinc, INTENT_TEMPLATES, {l: l.replace("_", " ") for l in {r["label"] for r in clinc}},
                           recast_n["clinc150"], rng),
        "goemotions": recast(emotions, EMOTION_TEMPLATES, {l: l for l in {r["label"] for r in emotions}},
                             recast_n["goemotions"], rng),
    }
    train = pool + [row for rows in extra.values() for row in rows]
    rng.shuffle(train)
    test = [{k: r[k] for k in ("premise", "hypothesis", "label")}
            for r in read_jsonl(DATASETS / "nli/pool/test_mnli_matched.jsonl.gz")]
    if limit:
        train, test = train[:limit], test[:limit]
    folder.mkdir(parents=True, exist_ok=True)
    _write_jsonl(folder / "train.jsonl.gz", train)
    _write_jsonl(folder / "test.jsonl.gz", test)
    recipe = {"pool": len(pool), **{name: len(rows) for name, rows in extra.items()}, "train": len(train),
              "test": len(test)}
    (folder / "recipe.json").write_text(json.dumps(recipe), encoding="utf-8")
    return recipe


def train(data: Path, work: Path, args: argparse.Namespace) -> dict:
    """Train on ``data``, export the delta to ``args.ship``; return what RESULTS.md reports."""
    import taskkit
    from taskkit.kernel.device import default_device, resolve_precision
    from taskkit.packaged import export_delta

    started = time.perf_counter()
    result = taskkit.run("nli", "full", data, out=work / "run", epochs=args.epochs, lr=args.lr,
                         batch_size=args.batch_size, max_length=128, freeze="embeddings", dev_fraction=0.02,
                         warmup_ratio=0.06, patience=1, progress=True)
    seconds = time.perf_counter() - started
    m, t = result.metrics, result.predictor.training
    info = {"recipe": json.loads((data / "recipe.json").read_text(encoding="utf-8")),
            "epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size, "minutes": round(seconds / 60, 1),
            "device": str(default_device()), "precision": resolve_precision("auto"), "machine": machine(),
            "command": command_line(), "training": t.as_dict() if t else None, "accuracy_at_training": m.get("accuracy")}
    from taskkit.distributed import is_main_process, on_main

    # on several processes only the main one saved the run (in its own temporary folder) and ships it
    info["bytes"] = on_main(lambda: export_delta(work / "run" / "model", args.ship, base="minilm", training=info))
    if is_main_process():
        print(json.dumps({k: v for k, v in info.items() if k != "training"}))
    return info


def evaluate_shipped(ship: Path) -> None:
    """Score the shipped model (packaged base + delta) on MNLI dev-matched here and write RESULTS.md."""
    import taskkit
    from taskkit.evaluation import evaluate

    info = json.loads((ship / "training.json").read_text(encoding="utf-8"))
    from taskkit import registry
    from taskkit.contracts import RunConfig

    test = registry.get_task("nli").read(DATASETS / "nli/pool/test_mnli_matched.jsonl.gz", RunConfig())
    started = time.perf_counter()
    scores, _, _ = evaluate(taskkit.load(ship), test)
    seconds = time.perf_counter() - started
    r, t = info["recipe"], info["training"]
    write_section("taskkit's NLI cross-encoder (shipped in taskkit/packaged/nli-minilm)", f"""
Training command: `{info['command']}` on the pairs written by `python benchmarks/train_nli.py --prepare DIR`
(the same pairs a plain `python benchmarks/train_nli.py --epochs 3 --lr 6e-5` makes, trains on and ships), run on {info['machine']} (device {info['device']}, {info['precision']}):
{info['minutes']} min for {t['epochs_run']} epoch(s) (best dev epoch {t['best_epoch']}).
Training data: NLI pool train ({r['pool']} pairs) + recast IMDB ({r['imdb']}), CLINC150 ({r['clinc150']}) and
GoEmotions ({r['goemotions']}) pairs (each text's gold label entailed, one random other label contradicted);
{r['train']} pairs in all, 2% carved as dev. Never SST-2, AG News or Banking77.
Base: packaged all-MiniLM-L6-v2, word embeddings frozen; lr {info['lr']}, batch {info['batch_size']}, max length 128.
The evaluation below is the shipped folder (packaged base + fp16 delta) loaded and scored on this machine.

| MNLI dev-matched accuracy (never trained on) | macro F1 | pairs | eval time here | accuracy at training time | shipped delta |
|---|---|---|---|---|---|
| {scores['accuracy']:.4f} | {scores['macro_f1']:.4f} | {len(test)} | {seconds:.0f} s | {info['accuracy_at_training']:.4f} | {info['bytes'] / 1e6:.1f} MB |

Target: >= 0.72 on MNLI dev-matched; at most 25 MB in the repo.
""")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=6e-5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--recast", default="imdb=6000,clinc150=10000,goemotions=6000",
                        help="texts recast per data set (each gives two pairs)")
    parser.add_argument("--limit", type=int, default=0, help="use only N training pairs (smoke test)")
    parser.add_argument("--prepare", type=Path, help="write the training pairs to this folder and stop")
    parser.add_argument("--data", type=Path, help="train on pairs written by --prepare")
    parser.add_argument("--ship", type=Path, default=SHIP, help="where the delta goes")
    parser.add_argument("--no-evaluate", action="store_true")
    parser.add_argument("--evaluate-only", action="store_true")
    args = parser.parse_args()
    recast_n = {k: int(v) for k, v in (item.split("=") for item in args.recast.split(","))}
    if args.evaluate_only:
        return evaluate_shipped(args.ship)
    if args.prepare:
        print(prepare(args.prepare, recast_n, args.limit))
        return
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or Path(tmp) / "data"
        if not args.data:
            prepare(data, recast_n, args.limit)
        train(data, Path(tmp), args)
    from taskkit.distributed import is_main_process

    if not args.no_evaluate and is_main_process():
        evaluate_shipped(args.ship)


if __name__ == "__main__":
    main()
