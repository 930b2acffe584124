"""Shared bits of the benchmark scripts: data paths, reading splits, writing RESULTS.md sections."""

from __future__ import annotations

import gzip
import json
import os
import platform
import re
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# TASKKIT_DATASETS points elsewhere when the checkout travels without ../shared (the GPU machine).
DATASETS = Path(os.environ.get("TASKKIT_DATASETS", ROOT.parent / "shared" / "datasets"))
RESULTS = ROOT / "benchmarks" / "RESULTS.md"


def read_jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def command_line() -> str:
    return "python " + " ".join(shlex.quote(a) for a in [str(Path(sys.argv[0]).resolve().relative_to(ROOT)), *sys.argv[1:]])


def machine() -> str:
    text = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        text += f", GPU {torch.cuda.get_device_name(0)}"
    return text


def write_section(name: str, body: str) -> None:
    """Replace (or append) the section ``name`` of RESULTS.md, stamped with command and date."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    block = (f"<!-- {name} -->\n## {name}\n\nCommand: `{command_line()}`  \nRun: {stamp} on {machine()}\n\n"
             f"{body.strip()}\n<!-- /{name} -->\n")
    import fcntl

    with open(RESULTS.with_suffix(".lock"), "w") as lock:  # benchmarks running side by side
        fcntl.flock(lock, fcntl.LOCK_EX)
        text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n\nEvery figure here was written by the script named in its command line.\n\n"
        pattern = re.compile(rf"<!-- {re.escape(name)} -->.*?<!-- /{re.escape(name)} -->\n", re.S)
        text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + block
        RESULTS.write_text(text, encoding="utf-8")
    print(block)


def precision_context(precision: str):
    """``torch.autocast`` in bf16 (CPU), or nothing for fp32: a reference run at taskkit's precision."""
    import contextlib

    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
