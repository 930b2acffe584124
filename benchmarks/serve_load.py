"""Load test of ``taskkit serve``: SST-2 test texts, 32 concurrent clients, one text per request.

Three servers on loopback, one after the other, each a process of its own: (a) ``taskkit serve``
with micro-batching (its defaults), (b) the same with ``--max-batch 1``, (c) a plain FastAPI app
wrapping ``transformers.pipeline("text-classification")`` on the same weights (the body and the
mean-pooling head of the taskkit model in a ``BertForSequenceClassification`` whose forward
mean-pools, so it predicts what the taskkit model does), a sync endpoint as people write by hand.
The client is a raw keep-alive HTTP/1.1 asyncio client in this process (cheap enough not to be
the bottleneck). Reported per server: failed requests, throughput, p50 / p99 latency, and the
server's resident memory after warm-up and after the run. Bounded: it stops after ``--requests``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from _common import DATASETS, ROOT, read_jsonl, write_section
from pydantic import BaseModel

CLIENTS = 32


class Body(BaseModel):
    inputs: list[str]


# --- (c): the hand-written server ----------------------------------------------------------
def pipeline_app(model_dir: str):
    import torch
    from fastapi import FastAPI
    from safetensors.torch import load_file
    from transformers import (
        AutoTokenizer,
        BertConfig,
        BertForSequenceClassification,
        pipeline,
    )
    from transformers.modeling_outputs import SequenceClassifierOutput

    meta = json.loads((Path(model_dir) / "taskkit.json").read_text())

    class MeanPooled(BertForSequenceClassification):
        """BERT + the taskkit head: mean of the token states -> linear."""

        def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, **kwargs):
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                               token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return SequenceClassifierOutput(logits=self.classifier(pooled))

    config = BertConfig.from_pretrained(model_dir)
    config.num_labels = len(meta["labels"])
    config.id2label = dict(enumerate(meta["labels"]))
    config.label2id = {n: i for i, n in enumerate(meta["labels"])}
    model = MeanPooled(config)
    weights = load_file(str(Path(model_dir) / "model.safetensors"))
    state = {k.replace("body.", "bert.", 1): v for k, v in weights.items() if k.startswith("body.")}
    state["classifier.weight"], state["classifier.bias"] = weights["head.out.weight"], weights["head.out.bias"]
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all("position_ids" in k for k in missing), (missing, unexpected)
    model.eval()
    pipe = pipeline("text-classification", model=model, tokenizer=AutoTokenizer.from_pretrained(model_dir))
    app = FastAPI()

    @app.post("/predict")
    def predict(body: Body) -> dict:
        with torch.inference_mode():
            return {"outputs": pipe(body.inputs)}

    return app


def serve_pipeline(model_dir: str, port: int) -> None:
    import uvicorn

    uvicorn.run(pipeline_app(model_dir), host="127.0.0.1", port=port, log_level="warning", access_log=False)


# --- the client ----------------------------------------------------------------------------
async def request(reader, writer, path: str, body: bytes) -> tuple[int, bytes]:
    writer.write(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = next(int(h.split(":", 1)[1]) for h in lines[1:] if h.lower().startswith("content-length:"))
    return status, await reader.readexactly(length)


async def load(port: int, path: str, texts: list[str], total: int, check) -> dict:
    latencies: list[float] = []
    failed = 0
    counter = iter(range(total))

    async def client() -> None:
        nonlocal failed
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for i in counter:
            body = json.dumps({"inputs": [texts[i % len(texts)]]}).encode()
            started = time.perf_counter()
            try:
                status, data = await request(reader, writer, path, body)
                ok = status == 200 and check(json.loads(data))
            except (OSError, asyncio.IncompleteReadError, ValueError):
                ok = False
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            latencies.append(time.perf_counter() - started)
            failed += not ok
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    seconds = time.perf_counter() - started
    latencies.sort()
    return {"requests": total, "failed": failed, "seconds": seconds, "throughput": total / seconds,
            "p50_ms": 1000 * latencies[len(latencies) // 2], "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)]}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_until_up(port: int, path: str, text: str, process: subprocess.Popen, timeout: float = 300) -> None:
    async def probe() -> bool:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return False
        try:
            status, _ = await request(reader, writer, path, json.dumps({"inputs": [text]}).encode())
            return status == 200
        except (OSError, asyncio.IncompleteReadError):
            return False
        finally:
            writer.close()

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        if asyncio.run(probe()):
            return
        time.sleep(0.5)
    raise SystemExit("server did not come up")


def run_server(name: str, command: list[str], port: int, path: str, texts: list[str], args, check) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}  # default threads
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_up(port, path, texts[0], process)
        asyncio.run(load(port, path, texts, args.warmup, check))  # warm-up: allocator, batch shapes
        warm = rss_mb(process.pid)
        result = asyncio.run(load(port, path, texts, args.requests, check))
        result.update(name=name, rss_warm_mb=warm, rss_after_mb=rss_mb(process.pid))
        print(json.dumps(result), flush=True)
        return result
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="/tmp/sst2-serve", help="a taskkit run/model folder of an SST-2 full-mode model")
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--note", default="", help="what else ran on the machine")
    parser.add_argument("--dry", action="store_true", help="print, do not write RESULTS.md")
    parser.add_argument("--onnx", type=Path, default=None,
                        help="also serve this `taskkit export --quantize int8` folder of the same model (row d)")
    parser.add_argument("--pipeline-server", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pipeline_server:
        return serve_pipeline(args.pipeline_server, args.port)
    model = Path(args.model)
    model_dir = model / "model" if (model / "model" / "taskkit.json").is_file() else model
    texts = [r["text"] for r in read_jsonl(DATASETS / "sentiment" / "sst2" / "test.jsonl.gz")]
    taskkit = [sys.executable, "-c", "import sys; from taskkit.cli import main; sys.exit(main())"]
    name = model.resolve().name
    ours = f"/v1/models/{name}/predict"
    ok_taskkit = lambda out: len(out["outputs"]) == 1 and "predicted" in out["outputs"][0]
    ok_pipeline = lambda out: len(out["outputs"]) == 1 and "label" in out["outputs"][0]
    runs = [
        ("(a) taskkit serve (micro-batching: --max-batch 64 --max-wait-ms 5)",
         [*taskkit, "serve", str(model), "--port", str(args.port)], ours, ok_taskkit),
        ("(b) taskkit serve --max-batch 1", [*taskkit, "serve", str(model), "--port", str(args.port + 1), "--max-batch", "1"],
         ours, ok_taskkit),
        ('(c) FastAPI + transformers.pipeline("text-classification")',
         [sys.executable, str(Path(__file__).resolve()), "--pipeline-server", str(model_dir), "--port", str(args.port + 2)],
         "/predict", ok_pipeline),
    ]
    if args.onnx is not None:
        onnx_name = args.onnx.resolve().name
        runs.append((f"(d) taskkit serve of its int8 ONNX export (`taskkit export --quantize int8`, "
                     f"onnxruntime, same micro-batching)", [*taskkit, "serve", str(args.onnx), "--port", str(args.port + 3)],
                     f"/v1/models/{onnx_name}/predict", ok_taskkit))
    results = []
    for i, (label, command, path, check) in enumerate(runs):
        results.append(run_server(label, command, args.port + i, path, texts, args, check))
    a, b, c = results[:3]
    rows = "\n".join(f"| {r['name']} | {r['requests']} | {r['failed']} | {r['throughput']:.1f} | {r['p50_ms']:.1f} | "
                     f"{r['p99_ms']:.1f} | {r['rss_warm_mb']:.0f} | {r['rss_after_mb']:.0f} "
                     f"({r['rss_after_mb'] - r['rss_warm_mb']:+.0f}) |" for r in results)
    meta = json.loads((model_dir / "taskkit.json").read_text())
    metrics_file = model_dir / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    body = f"""Model: `{model}` ({meta['task']}, mode {meta['mode']}, base {metrics.get('model', '?')}, test accuracy
{metrics.get('accuracy', '?')} on {metrics.get('examples', '?')} test texts). {args.note}

{CLIENTS} concurrent keep-alive clients on loopback, one SST-2 test text per request ({len(texts)} texts, cycled),
{args.requests} requests per server after {args.warmup} warm-up requests; torch at its default threads
(OMP_NUM_THREADS unset). RSS: the server process after warm-up, after the run (change).

| server | requests | failed | requests/s | p50 ms | p99 ms | RSS warm MB | RSS after MB |
|---|---|---|---|---|---|---|---|
{rows}

Micro-batching: {a['throughput'] / b['throughput']:.1f}x `--max-batch 1` (target >= 3x),
{a['throughput'] / c['throughput']:.1f}x the pipeline server (target >= 3x).
""" + ("" if len(results) < 4 else f"""The int8 export served the same way: {results[3]['throughput'] / c['throughput']:.1f}x the pipeline server.
""")
    if args.dry:
        print(body)
    else:
        write_section("Serving load test (taskkit serve)", body)


if __name__ == "__main__":
    main()
