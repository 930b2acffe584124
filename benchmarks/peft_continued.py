"""Issue 5 in one run: LoRA against full fine-tuning on SST-2 (accuracy, trainable share, folder
size, peak training memory); continued training of the SST-2 model on 5,000 IMDB reviews (SST-2
test before and after, IMDB test after); and long-review windows against plain truncation.

Each training runs in its own child process so its peak memory is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# one torch thread: on 2 shared cores a 2-thread torch waits on the other jobs (several times slower)
os.environ.setdefault("OMP_NUM_THREADS", "1")

from _common import DATASETS, read_jsonl, write_section  # noqa: E402


def peak_memory_mb() -> float:
    """Peak resident memory of this process (what training needed), in MB."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


def child(spec: str) -> None:
    """Run one taskkit.run from a JSON spec; print its figures and this process's peak memory."""
    import taskkit

    args = json.loads(spec)
    result = taskkit.run(**args)
    out = {k: result.metrics.get(k) for k in ("accuracy", "macro_f1", "old_test", "fit_seconds", "examples")}
    out["training"] = {k: v for k, v in (result.predictor.training.as_dict() if result.predictor.training else {}).items() if k != "history"}
    out["peak_mb"] = peak_memory_mb()
    print("RESULT " + json.dumps(out, default=str))


def run_child(**kwargs) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", json.dumps(kwargs)], capture_output=True, text=True)
    lines = [l for l in done.stdout.splitlines() if l.startswith("RESULT ")]
    if done.returncode or not lines:
        sys.exit(f"child failed: {kwargs}\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][7:])


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--imdb", type=int, default=5000)
    parser.add_argument("--imdb-epochs", type=int, default=1)
    args = parser.parse_args()
    if args.child:
        return child(args.child)

    sst2 = str(DATASETS / "sentiment" / "sst2")
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        common = dict(task="sentiment", data=sst2, epochs=args.epochs, progress=False, patience=0)
        full = run_child(mode="full", out=str(tmp / "full"), **common)
        lora = run_child(mode="peft", out=str(tmp / "lora"), **common)
        ia3 = run_child(mode="peft", out=str(tmp / "ia3"), options={"method": "ia3"}, **{**common, "lr": 5e-3})
        sizes = {name: folder_mb(tmp / name / "model") for name in ("full", "lora", "ia3")}

        imdb = tmp / "imdb"
        imdb.mkdir()
        for split in ("train", "test"):
            rows = rng.sample(read_jsonl(DATASETS / "sentiment" / "imdb" / f"{split}.jsonl.gz"), args.imdb)
            (imdb / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        cont = run_child(task="sentiment", mode="full", data=str(imdb), out=str(tmp / "cont"),
                         init_from=str(tmp / "full"), epochs=args.imdb_epochs, progress=False)

        import taskkit
        from taskkit.evaluation import evaluate

        test = read_jsonl(imdb / "test.jsonl")
        model = taskkit.load(tmp / "cont")
        windows = evaluate(model, test)[0]["accuracy"]
        model.settings["truncate"] = True
        truncated = evaluate(model, test)[0]["accuracy"]
        n_windows = len(model.task.encode(test, model.tokenizer, model.labels, model.settings["max_length"]))

    def row(name: str, r: dict, size: float) -> str:
        t = r["training"]
        return (f"| {name} | {r['accuracy']:.4f} | {t['trainable_parameters']:,} ({100 * t['trainable_share']:.2f}%) | "
                f"{size:.1f} MB | {r['peak_mb']:.0f} MB | {t['train_seconds']:.0f} s |")

    old = cont.get("old_test") or {}
    write_section("PEFT against full fine-tuning, continued training, long texts", f"""
SST-2 (6,920 train, 1,821 test), packaged MiniLM, {os.environ["OMP_NUM_THREADS"]} torch thread(s), {args.epochs} epochs each, no early stopping; full and LoRA
at their mode defaults (lr 5e-5 and 5e-4), IA3 at lr 5e-3. Peak memory: the training process's maximum resident set.

| mode | SST-2 test accuracy | trainable parameters | model folder | peak memory | training time |
|---|---|---|---|---|---|
{row("full", full, sizes["full"])}
{row("peft, LoRA r=8 (all block linears)", lora, sizes["lora"])}
{row("peft, IA3", ia3, sizes["ia3"])}

LoRA - full: {(lora['accuracy'] - full['accuracy']) * 100:+.2f} points (target: within 1.5 points, at most 2% trainable,
folder at most 5 MB, lower peak memory than full).

Continued training: the full SST-2 model above, continued (`--from`) for {args.imdb_epochs} epoch(s) on {args.imdb:,} IMDB
training reviews (seeded sample; long reviews split into windows of 128 tokens).

| | SST-2 test accuracy | IMDB test accuracy ({args.imdb:,} seeded reviews) |
|---|---|---|
| before continuing | {old.get('before', {}).get('accuracy', float('nan')):.4f} | - |
| after continuing | {old.get('after', {}).get('accuracy', float('nan')):.4f} | {cont['accuracy']:.4f} |

Long texts, same continued model on the same {len(test):,} IMDB test reviews ({n_windows:,} windows of 128 tokens):
windows pooled {windows:.4f} against plain truncation to 128 tokens {truncated:.4f} ({(windows - truncated) * 100:+.2f} points).
""")


if __name__ == "__main__":
    main()
