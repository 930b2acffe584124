"""`taskkit export` of zero-shot models and few-shot ensembles: top-1 agreement with torch on AG News.

Two models, each as taskkit makes it by default, are exported to ONNX fp32 and int8, and the
exported folders' top-1 labels are compared with the torch folder's on the first ``--texts`` AG
News test texts (default 300):

- the shipped default zero-shot model (``taskkit run topic --mode zero-shot --labels
  World,Sports,Business,Sci/Tech``: backend ``both``, taskkit's NLI cross-encoder and MiniLM,
  label-bias correction, nli/embedding weights and self-training fitted to unlabelled texts: the
  first ``--unlabelled`` AG News train texts, their labels unused);
- the default few-shot model (``taskkit run topic --mode few-shot --shots 8``, seed 0, shots drawn
  from the AG News train split): an ensemble of the trained MiniLM head and a zero-shot member.

Torch is run as loaded (precision ``auto``: bf16 where the CPU has it, the default a user gets)
and in fp32; agreement and accuracy on those texts are reported for each. Run folders are kept in
``--work`` and reused. Nothing is chosen here: every setting is taskkit's default.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _common import DATASETS, read_jsonl, write_section

AG = DATASETS / "topic" / "ag_news"
LABELS = "World,Sports,Business,Sci/Tech"


def write_jsonl(path: Path, rows: list[dict]) -> None:
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def ensure_runs(work: Path, test: list[dict], unlabelled: int, pool: int) -> dict[str, Path]:
    """The two run folders (trained here if missing), on data folders of AG News rows in ``work``."""
    from taskkit import api

    train = read_jsonl(AG / "train.jsonl.gz")
    runs = {"zero-shot": work / "zero-shot", "few-shot": work / "few-shot"}
    if not runs["zero-shot"].exists():
        write_jsonl(work / "zs-data" / "train.jsonl", train[:unlabelled])
        write_jsonl(work / "zs-data" / "test.jsonl", test)
        api.run("topic", "zero-shot", work / "zs-data", runs["zero-shot"], labels=LABELS, progress=False)
    if not runs["few-shot"].exists():
        write_jsonl(work / "fs-data" / "train.jsonl", train[:pool])
        write_jsonl(work / "fs-data" / "test.jsonl", test)
        api.run("topic", "few-shot", work / "fs-data", runs["few-shot"], shots=8, seed=0, progress=False)
    return runs


def in_fp32(predictor) -> None:
    """Run a loaded torch predictor (an ensemble's members too) in fp32."""
    for member in getattr(predictor, "members", [predictor]):
        member.settings["precision"] = "fp32"


def agree(top: dict, key: str, ref: str) -> str:
    """The share of texts whose top-1 label ``key`` and ``ref`` agree on."""
    import numpy as np

    return f"{np.mean(top[key] == top[ref]):.2%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=300, help="first N AG News test texts")
    parser.add_argument("--unlabelled", type=int, default=500, help="AG News train texts the zero-shot run adapts to")
    parser.add_argument("--pool", type=int, default=2000, help="AG News train rows the 8 shots per class are drawn from")
    parser.add_argument("--work", type=Path, default=Path("/tmp/export-zero-shot"))
    args = parser.parse_args()

    import numpy as np

    import taskkit
    from taskkit.export import export_model

    test = read_jsonl(AG / "test.jsonl.gz")[: args.texts]
    texts, gold = [r["text"] for r in test], [r["label"] for r in test]
    load_before = os.getloadavg()
    runs = ensure_runs(args.work, test, args.unlabelled, args.pool)
    lines = [("| model | predictor | top-1 agreement with torch as loaded (bf16) | with torch fp32 | "
              "accuracy | max abs prob diff vs torch fp32 | export s |"), "|---|---|---|---|---|---|---|"]
    for name, run in runs.items():
        torch_model = taskkit.load(run)
        names = list(torch_model.labels.names)
        proba = {"torch (as loaded)": (torch_model.predict_proba(texts), None)}
        fp32 = taskkit.load(run)
        in_fp32(fp32)
        proba["torch fp32"] = (fp32.predict_proba(texts), None)
        for quantize in (None, "int8"):
            started = time.perf_counter()
            folder = export_model(run, args.work / f"{name}-onnx-{quantize or 'fp32'}", quantize=quantize)
            seconds = time.perf_counter() - started
            proba[f"onnx {quantize or 'fp32'}"] = (taskkit.load(folder).predict_proba(texts), seconds)
        top = {k: np.asarray(p).argmax(1) for k, (p, _) in proba.items()}
        for key, (p, seconds) in proba.items():
            accuracy = np.mean([names[i] == g for i, g in zip(top[key], gold)])
            diff = np.abs(p - proba["torch fp32"][0]).max()
            lines.append(f"| {name} | {key} | {agree(top, key, 'torch (as loaded)')} | {agree(top, key, 'torch fp32')} | "
                         f"{accuracy:.4f} | "
                         f"{diff:.1e} | {'' if seconds is None else f'{seconds:.0f}'} |")
    load_after = os.getloadavg()
    body = "\n".join([
        (f"{len(texts)} AG News test texts (the first ones). zero-shot: `taskkit run topic --mode zero-shot --labels "
         f"{LABELS}` on the first {args.unlabelled} AG News train texts as unlabelled texts, their labels unused (defaults: backend both, "
         "shipped nli-minilm + MiniLM, label-bias correction, weighing, self-training). few-shot: `taskkit run topic "
         f"--mode few-shot --shots 8 --seed 0`, shots from the first {args.pool} train rows (default: MiniLM head "
         "averaged with a zero-shot member). Every setting is taskkit's default; nothing was chosen on test."),
        "",
        ("int8: `taskkit export --quantize int8`, the same quantization for every graph (taskkit/export/quantize.py: "
         "graphs fused by onnxruntime's transformer optimizer, dynamic quantization, weights per output channel, "
         "weight MatMuls only; a MatMul whose input has outliers (measured at export) has its few outlier input "
         "channels split off into a small fp32 MatMul, taskkit/export/outliers.py)."),
        "",
        *lines,
        "",
        (f"Machine: 2 cores shared with other engineers' jobs (load average {load_before[0]:.1f} before, "
         f"{load_after[0]:.1f} after); only agreement and accuracy are reported here, no speed."),
    ])
    write_section("Export: zero-shot and few-shot ONNX agreement (AG News)", body)


if __name__ == "__main__":
    main()
