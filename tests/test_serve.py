"""``taskkit serve``: every route, bad requests, the API key, readiness, micro-batching, zero-shot
labels per request, NER and relation responses, and one real server process (start-up, SIGTERM
drain with requests in flight, a model that fails to load)."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import subprocess_env, taskkit_command, write_jsonl

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

TEXTS = ["a gripping, beautifully shot film", "two hours I will never get back", "fine.", "what a lovely film"]


def make_app(models: dict[str, Path], **kw):
    from taskkit.serve.app import create_app

    return create_app(models, **kw)


def wait_ready(client, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/readyz").status_code == 200:
            return
        time.sleep(0.02)
    raise AssertionError(f"not ready: {client.get('/readyz').json()}")


@pytest.fixture(scope="module")
def sentiment(trained_run) -> Path:
    return trained_run.out


@pytest.fixture()
def client(sentiment):
    from fastapi.testclient import TestClient

    with TestClient(make_app({"sst": sentiment}, max_text_chars=50, max_inputs=4)) as client:
        wait_ready(client)
        yield client


# --- routes --------------------------------------------------------------------------------
def test_predict_answers_what_taskkit_predict_prints(client, sentiment):
    from taskkit import api

    response = client.post("/v1/models/sst/predict", json={"inputs": TEXTS})
    assert response.status_code == 200
    assert response.json() == {"outputs": api.predict(sentiment, TEXTS)}
    record = response.json()["outputs"][0]
    assert record["text"] == TEXTS[0] and record["predicted"] in ("negative", "positive")


def test_models_health_metrics_and_docs(client, sentiment):
    models = client.get("/v1/models").json()["models"]
    assert len(models) == 1
    info = models[0]
    saved = json.loads((sentiment / "model" / "taskkit.json").read_text())
    metrics = json.loads((sentiment / "metrics.json").read_text())
    assert info["name"] == "sst" and info["task"] == "sentiment" and info["mode"] == "full" and info["ready"]
    assert info["labels"] == saved["labels"] and info["format"] == saved["format"]
    assert info["metrics"]["accuracy"] == pytest.approx(metrics["accuracy"])
    assert all(isinstance(v, float) for v in info["metrics"].values()) and "per_class" not in info["metrics"]
    assert client.get("/healthz").json() == {"status": "alive"}
    assert client.get("/readyz").json() == {"ready": True, "models": ["sst"]}
    client.post("/v1/models/sst/predict", json={"inputs": ["nice"]})
    client.post("/v1/models/nope/predict", json={"inputs": ["nice"]})
    text = client.get("/metrics").text
    assert 'taskkit_requests_total{model="sst",route="/v1/models/{name}/predict",status="200"}' in text
    assert 'taskkit_errors_total{model="",route="/v1/models/{name}/predict",status="404"} 1.0' in text
    assert 'taskkit_request_seconds_bucket{le="0.005",model="sst",route="/v1/models/{name}/predict"}' in text
    assert 'taskkit_batch_size_count{model="sst"}' in text and 'taskkit_queue_depth{model="sst"} 0.0' in text
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    assert "inputs" in schema["components"]["schemas"]["PredictRequest"]["properties"]
    assert "outputs" in schema["components"]["schemas"]["PredictResponse"]["properties"]


@pytest.mark.parametrize("body, status, message", [
    (b"{not json", 400, "not valid JSON"),
    ({"texts": ["a"]}, 422, "inputs: Field required"),
    ({"inputs": "just a string"}, 422, "inputs"),
    ({"inputs": [3]}, 422, "inputs.0"),
    ({"inputs": []}, 422, "empty list"),
    ({"inputs": ["x" * 51]}, 413, "inputs[0]: 51 characters, more than the limit of 50"),
    ({"inputs": ["a"] * 5}, 413, "5 inputs, more than the limit of 4"),
    ({"inputs": ["ok", "   "]}, 422, "inputs[1]: empty text"),
    ({"inputs": ["ok"], "labels": ["a", "b"]}, 422, "per-request 'labels' are for zero-shot models"),
])
def test_bad_requests_get_a_4xx_with_one_message(client, body, status, message):
    kwargs = {"content": body, "headers": {"content-type": "application/json"}} if isinstance(body, bytes) else {"json": body}
    response = client.post("/v1/models/sst/predict", **kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert message in error and "\n" not in error


def test_unknown_model_is_404(client):
    response = client.post("/v1/models/nope/predict", json={"inputs": ["a"]})
    assert response.status_code == 404
    assert response.json() == {"error": "unknown model 'nope' (served: sst)"}


def test_api_key_is_needed_everywhere_but_health(sentiment):
    from fastapi.testclient import TestClient

    with TestClient(make_app({"sst": sentiment}, api_key="s3cret")) as client:
        wait_ready(client)
        for method, route in (("post", "/v1/models/sst/predict"), ("get", "/v1/models"), ("get", "/metrics"),
                              ("get", "/docs")):
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
                response = getattr(client, method)(route, headers=headers, **({"json": {"inputs": ["a"]}} if method == "post" else {}))
                assert response.status_code == 401 and "API key" in response.json()["error"]
        good = {"Authorization": "Bearer s3cret"}
        assert client.post("/v1/models/sst/predict", json={"inputs": ["a"]}, headers=good).status_code == 200
        assert client.get("/v1/models", headers=good).status_code == 200
        assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200


def test_ready_only_after_every_model_loaded_and_warmed_up(sentiment, monkeypatch):
    from fastapi.testclient import TestClient

    from taskkit.serve import app as app_module
    from taskkit.serve import batcher

    gate, warmed = threading.Event(), []
    real_load, real_records = app_module.load_model, batcher.records
    monkeypatch.setattr(app_module, "load_model", lambda model: (gate.wait(30), real_load(model)))
    monkeypatch.setattr(batcher, "records", lambda p, e: (warmed.append(len(e)), real_records(p, e))[1])
    with TestClient(make_app({"sst": sentiment})) as client:
        assert client.get("/healthz").status_code == 200
        response = client.get("/readyz")
        assert response.status_code == 503 and response.json() == {"ready": False, "loading": ["sst"]}
        early = client.post("/v1/models/sst/predict", json={"inputs": ["a"]})
        assert early.status_code == 503 and "still loading" in early.json()["error"]
        assert warmed == []
        gate.set()
        wait_ready(client)
        assert warmed == [1]  # the warm-up prediction ran before ready
        assert client.post("/v1/models/sst/predict", json={"inputs": ["a"]}).status_code == 200


# --- micro-batching ------------------------------------------------------------------------
async def _concurrent(app, bodies: list[dict], name: str = "sst") -> list:
    import httpx

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            while (await client.get("/readyz")).status_code != 200:
                await asyncio.sleep(0.02)
            responses = await asyncio.gather(*(client.post(f"/v1/models/{name}/predict", json=b) for b in bodies))
            metrics = (await client.get("/metrics")).text
    return [responses, metrics]


def _metric(text: str, name: str) -> float:
    return float(re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE).group(1))


def test_concurrent_requests_share_batches_and_a_bad_one_poisons_none(sentiment):
    from taskkit import api

    texts = [f"film number {i} was {'great' if i % 2 else 'dull'}" for i in range(16)]
    bodies = [{"inputs": [t]} for t in texts] + [{"inputs": [""]}, {"inputs": texts[:3]}]
    app = make_app({"sst": sentiment}, max_batch=64, max_wait_ms=300)
    responses, metrics = asyncio.run(_concurrent(app, bodies))
    expected = api.predict(sentiment, texts)
    for response, record in zip(responses[:16], expected):
        assert response.status_code == 200
        got = response.json()["outputs"]
        assert len(got) == 1 and got[0]["predicted"] == record["predicted"]
        assert got[0]["probabilities"] == pytest.approx(record["probabilities"], abs=1e-5)
    assert responses[16].status_code == 422 and "inputs[0]: empty text" in responses[16].json()["error"]
    assert [r["text"] for r in responses[17].json()["outputs"]] == texts[:3]
    batches = _metric(metrics, 'taskkit_batch_size_count{model="sst"}')
    assert _metric(metrics, 'taskkit_batch_size_sum{model="sst"}') == 16 + 3  # (the warm-up runs apart)
    assert batches <= 3  # 19 inputs in a few batches, not one each


def test_max_batch_caps_each_batch_and_a_big_request_runs_alone(sentiment):
    app = make_app({"sst": sentiment}, max_batch=4, max_wait_ms=200, max_inputs=10)
    bodies = [{"inputs": [f"text {i}"]} for i in range(8)] + [{"inputs": [f"long {i}" for i in range(10)]}]
    responses, metrics = asyncio.run(_concurrent(app, bodies))
    assert all(r.status_code == 200 for r in responses)
    assert len(responses[-1].json()["outputs"]) == 10
    assert _metric(metrics, 'taskkit_batch_size_bucket{le="4.0",model="sst"}') == 2  # 2 x 4
    assert _metric(metrics, 'taskkit_batch_size_count{model="sst"}') == 3  # and the 10 alone


# --- zero-shot, NER, relation --------------------------------------------------------------
@pytest.fixture(scope="module")
def structured(tiny_model: Path, tiny_encoder: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A zero-shot topic model, a NER model and a relation model, each tiny, in folders of their names."""
    from test_ner import SENTENCES, write_conll
    from test_relation import ROWS

    import taskkit
    from taskkit import api

    root = tmp_path_factory.mktemp("served")
    taskkit.zero_shot({"sports": "sports", "business": None}, task="topic", backend="embedding",
                      model=str(tiny_encoder)).save(root / "topics")
    (root / "ner-data").mkdir()
    write_conll(root / "ner-data" / "train.conll", SENTENCES * 2)
    api.run("ner", "full", root / "ner-data", root / "ner", model=str(tiny_model), epochs=1, lr=1e-3,
            max_length=16, seed=3, progress=False)
    write_jsonl(root / "rel-data" / "train.jsonl", ROWS * 2)
    api.run("relation", "full", root / "rel-data", root / "relations", model=str(tiny_model), epochs=1, lr=1e-3,
            max_length=32, seed=1, progress=False)
    return {name: root / name for name in ("topics", "ner", "relations")}


def test_zero_shot_ner_and_relation_responses(structured):
    from fastapi.testclient import TestClient
    from test_relation import ROWS

    from taskkit import api

    with TestClient(make_app(structured)) as client:
        wait_ready(client)
        url = "/v1/models/{}/predict".format
        saved = client.post(url("topics"), json={"inputs": ["The match ended 2-1."]}).json()["outputs"][0]
        assert set(saved["probabilities"]) == {"sports", "business"}
        mine = client.post(url("topics"), json={"inputs": ["The match ended 2-1.", "Rain all day"],
                                                "labels": ["cats", "weather", "football"]})
        assert mine.status_code == 200
        for record in mine.json()["outputs"]:
            assert set(record["probabilities"]) == {"cats", "weather", "football"}
            assert record["predicted"] in record["probabilities"]
        described = client.post(url("topics"), json={"inputs": ["x y"], "labels": {"a": "about apples", "b": None}})
        assert set(described.json()["outputs"][0]["probabilities"]) == {"a", "b"}
        bad = client.post(url("topics"), json={"inputs": ["x"], "labels": ["only-one"]})
        assert bad.status_code == 422 and "label" in bad.json()["error"]
        # the saved labels are unchanged after requests with their own
        again = client.post(url("topics"), json={"inputs": ["The match ended 2-1."]}).json()["outputs"][0]
        assert again == saved

        text = "John Smith moved to Paris, France."
        ner = client.post(url("ner"), json={"inputs": [text]})
        assert ner.status_code == 200
        assert ner.json()["outputs"] == api.predict(structured["ner"], [text])
        for entity in ner.json()["outputs"][0]["entities"]:
            assert text[entity["start"]:entity["end"]] == entity["text"]

        query = {k: v for k, v in ROWS[0].items() if k != "label"}
        rel = client.post(url("relations"), json={"inputs": [query]})
        assert rel.status_code == 200 and rel.json()["outputs"] == api.predict(structured["relations"], [query])
        wrong = client.post(url("relations"), json={"inputs": [{"text": "abc", "head": {"start": 0, "end": 9},
                                                                "tail": {"start": 0, "end": 1}}]})
        assert wrong.status_code == 422 and wrong.json()["error"].startswith("inputs[0]: ")
        names = [m["name"] for m in client.get("/v1/models").json()["models"]]
        assert names == ["topics", "ner", "relations"]


# --- one real server process ---------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_real_server_starts_drains_on_sigterm_and_refuses_bad_models(sentiment, tmp_path, run_taskkit):
    import httpx

    bad = tmp_path / "broken"
    bad.mkdir()
    (bad / "taskkit.json").write_text("{not json")
    result = run_taskkit("serve", str(sentiment), str(bad), "--port", str(_free_port()), timeout=120)
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: model 'broken' (") and "corrupt metadata" in last
    assert "Traceback" not in result.stderr
    clash = run_taskkit("serve", str(sentiment), str(tmp_path / "x" / sentiment.name), timeout=60)
    assert clash.returncode == 2 and "no such model folder" in clash.stderr
    (tmp_path / "x" / sentiment.name).mkdir(parents=True)
    clash = run_taskkit("serve", str(sentiment), str(tmp_path / "x" / sentiment.name), timeout=60)
    assert clash.returncode == 2 and f"two models would be served as {sentiment.name!r}" in clash.stderr

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen([*taskkit_command(), "serve", str(sentiment), "--port", str(port), "--max-wait-ms",
                                "1500"], env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None and time.monotonic() < deadline, process.stderr.read() if process.poll() else ""
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        name = sentiment.name
        results: list = [None] * 8

        def ask(i: int) -> None:
            results[i] = httpx.post(f"{base}/v1/models/{name}/predict", json={"inputs": [f"text {i}"]}, timeout=30)

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        while _metric(httpx.get(f"{base}/metrics").text, f'taskkit_queue_depth{{model="{name}"}}') < 8:
            time.sleep(0.02)  # all 8 wait for their batch (1.5 s)
        process.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(30)
        assert [r.status_code for r in results] == [200] * 8  # none lost
        assert [r.json()["outputs"][0]["text"] for r in results] == [f"text {i}" for i in range(8)]
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert "ready" in stderr and stderr.strip().splitlines()[-1].startswith("taskkit serve: stopped")
