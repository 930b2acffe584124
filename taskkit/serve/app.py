"""The FastAPI app of ``taskkit serve``: routes, request checks, API key, readiness, metrics.

Models load in the background once the server is up (``/healthz`` answers at once, ``/readyz``
is 503 until every model has loaded and answered a warm-up prediction). A model that fails to
load calls ``on_failure`` with one line naming it (the CLI stops the server and exits 2).
Every bad request is a 4xx with ``{"error": "<one line>"}``.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Callable, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from taskkit.errors import TaskkitError
from taskkit.serve.batcher import MicroBatcher
from taskkit.serve.metrics import ServerMetrics
from taskkit.serve.served_models import ServedModel, load_model, with_labels

OPEN_ROUTES = ("/healthz", "/readyz")
WARM_UP = {"sequence": "taskkit warm-up", "token": "taskkit warm-up",
           "pair": {"text": "warm up", "text_pair": "warm up",
                    "head": {"start": 0, "end": 4}, "tail": {"start": 5, "end": 7}}}


class PredictRequest(BaseModel):
    inputs: list[str | list[str] | dict[str, Any]] = Field(
        ..., description="Texts; relation: {'text', 'head': {'start', 'end'}, 'tail': {...}}; nli: [premise, hypothesis].")
    labels: list[str] | dict[str, str | None] | None = Field(
        None, description="Zero-shot models only: score these labels (names, or label -> description) instead of the saved ones.")


class PredictResponse(BaseModel):
    outputs: list[dict[str, Any]] = Field(..., description="One record per input, as `taskkit predict` prints them.")


class ModelInfo(BaseModel):
    name: str
    task: str | None = None
    labels: list[str] = []
    multi_label: bool = False
    format: Any | None = None
    mode: str | None = None
    metrics: dict[str, float] = {}
    per_request_labels: bool = False
    ready: bool = False


class ModelList(BaseModel):
    models: list[ModelInfo]


class Measured:
    """A pure ASGI middleware that hands every request to ``handler(scope, receive, send, app)``."""

    def __init__(self, app: Any, handler: Callable[..., Any]) -> None:
        self.app, self.handler = app, handler

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.handler(scope, receive, send, self.app)


class Failure(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def create_app(models: dict[str, Path], *, max_batch: int = 64, max_wait_ms: float = 5.0,
               api_key: str | None = None, max_text_chars: int = 10_000, max_inputs: int = 256,
               on_failure: Callable[[str], None] | None = None,
               on_ready: Callable[[], None] | None = None) -> FastAPI:
    """The app serving ``models`` (name -> folder)."""
    served = {name: ServedModel(name, Path(path)) for name, path in models.items()}
    metrics = ServerMetrics()
    batchers: dict[str, MicroBatcher] = {}

    async def load_all() -> None:
        for model in served.values():
            try:
                await asyncio.to_thread(load_model, model)
                predictor = model.predictor
                assert predictor is not None  # load_model sets it or raises
                probe = predictor.task.as_example(WARM_UP.get(predictor.task.level, WARM_UP["sequence"]))
                await batchers[model.name].run_now(predictor, [probe])
            except Exception as exc:  # noqa: BLE001 - one line, then the server stops
                message = str(exc) if isinstance(exc, TaskkitError) else \
                    f"model {model.name!r} ({model.path}) failed to load: {type(exc).__name__}: {exc}"
                app.state.failure = message.splitlines()[0] if message else message
                if on_failure is not None:
                    on_failure(app.state.failure)
                return
            model.ready = True
        if on_ready is not None:
            on_ready()

    def start_batcher(name: str) -> MicroBatcher:
        batcher = MicroBatcher(name, max_batch, max_wait_ms / 1000,
                               lambda size, queued: metrics.observe_batch(name, size, queued))
        batcher.start()
        metrics.queue_depth.labels(name).set_function(lambda: batcher.queued)
        return batcher

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        for name in served:
            batchers[name] = start_batcher(name)
        loading = asyncio.create_task(load_all())
        try:
            yield
        finally:  # uvicorn has answered every request in flight; the queues are empty or drain here
            if not loading.done():
                loading.cancel()
            for batcher in batchers.values():
                await batcher.stop()

    app = FastAPI(title="taskkit serve", lifespan=lifespan,
                  description="Predictions of taskkit models, micro-batched. Every error is {\"error\": \"...\"}.")
    app.state.failure = None
    app.state.served = served
    app.state.metrics = metrics

    async def measure_and_authorise(scope: Any, receive: Any, send: Any, inner: Any) -> None:
        """The API key check and the request metrics, as plain ASGI (Starlette's ``BaseHTTPMiddleware``
        wraps every request and response in extra tasks and streams: a cost paid per request)."""
        if scope["type"] != "http":
            return await inner(scope, receive, send)
        started, status = time.perf_counter(), [500]

        async def sending(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        if api_key is not None and scope["path"] not in OPEN_ROUTES and not _authorised(Request(scope), api_key):
            response = _error(401, "missing or wrong API key: send 'Authorization: Bearer KEY'")
            response.headers["WWW-Authenticate"] = "Bearer"
            await response(scope, receive, sending)
        else:
            await inner(scope, receive, sending)
        route = scope.get("route")  # set by the router on this same scope
        path = getattr(route, "path", None) or "unmatched"
        name = scope.get("path_params", {}).get("name", "")
        metrics.observe_request(name if name in served else "", path, status[0], time.perf_counter() - started)

    app.add_middleware(Measured, handler=measure_and_authorise)

    @app.exception_handler(Failure)
    async def _failure(request: Request, exc: Failure) -> Response:
        return _error(exc.status, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return _error(400, "request body is not valid JSON")
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        return _error(422, f"{where}: {first.get('msg', 'invalid request')} "
                           "(expected {\"inputs\": [text, ...]} with an optional \"labels\")")

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> Response:
        return _error(500, f"internal error: {type(exc).__name__}: {_first_line(exc)}")

    @app.get("/healthz", summary="The server process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz", summary="200 once every model has loaded and answered a warm-up prediction, 503 before")
    async def readyz() -> Response:
        waiting = [m.name for m in served.values() if not m.ready]
        if app.state.failure:
            return JSONResponse({"ready": False, "error": app.state.failure}, status_code=503)
        if waiting:
            return JSONResponse({"ready": False, "loading": waiting}, status_code=503)
        return JSONResponse({"ready": True, "models": list(served)})

    @app.get("/v1/models", response_model=ModelList, summary="The served models")
    async def list_models() -> ModelList:
        return ModelList(models=[ModelInfo(**{"name": m.name, **m.info, "ready": m.ready}) for m in served.values()])

    @app.get("/metrics", summary="Prometheus metrics")
    async def prometheus() -> Response:
        return Response(metrics.text(), media_type=metrics.content_type)

    @app.post("/v1/models/{name}/predict", response_model=PredictResponse, summary="Predict with one model",
              responses={400: {"description": "not JSON"}, 401: {"description": "API key"},
                         404: {"description": "unknown model"}, 413: {"description": "too many inputs or a text too long"},
                         422: {"description": "wrong shape or an input the task cannot read"},
                         503: {"description": "the model is still loading"}})
    async def predict(name: str, body: PredictRequest) -> PredictResponse:
        model = served.get(name)
        if model is None:
            raise Failure(404, f"unknown model {name!r} (served: {', '.join(served)})")
        if not body.inputs:
            raise Failure(422, "inputs: empty list: give at least one input")
        if len(body.inputs) > max_inputs:
            raise Failure(413, f"inputs: {len(body.inputs)} inputs, more than the limit of {max_inputs} "
                               "(--max-inputs): split the request")
        for i, item in enumerate(body.inputs):
            size = _chars(item)
            if size > max_text_chars:
                raise Failure(413, f"inputs[{i}]: {size} characters, more than the limit of {max_text_chars} (--max-text-chars)")
        if not model.ready or model.predictor is None:
            raise Failure(503, f"model {name!r} is still loading: see /readyz")
        predictor = model.predictor
        try:
            if body.labels is not None:
                predictor = with_labels(predictor, body.labels)
            examples = [_example(predictor, item, i) for i, item in enumerate(body.inputs)]
        except TaskkitError as exc:  # checked before queueing: a bad request never poisons a batch
            raise Failure(422, str(exc)) from None
        try:
            rows = await batchers[name].submit(predictor, examples)
        except TaskkitError as exc:  # the model refused what the task's checks let through
            raise Failure(422, str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - a fault of taskkit or a plugin: 500, one line, server lives on
            raise Failure(500, f"internal error: {type(exc).__name__}: {_first_line(exc)}") from None
        return PredictResponse(outputs=rows)

    return app


def _example(predictor: Any, item: Any, i: int) -> dict[str, Any]:
    try:
        return predictor.task.as_example(item)
    except TaskkitError as exc:
        raise TaskkitError(f"inputs[{i}]: {exc}") from None
    except (TypeError, ValueError, KeyError, AttributeError) as exc:  # a shape the task does not read
        raise TaskkitError(f"inputs[{i}]: cannot read this input ({type(exc).__name__}: {exc})") from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0]


def _chars(item: Any) -> int:
    if isinstance(item, str):
        return len(item)
    if isinstance(item, list):
        return max((len(x) for x in item if isinstance(x, str)), default=0)
    if isinstance(item, dict):
        return max((len(v) for v in item.values() if isinstance(v, str)), default=0)
    return 0


def _authorised(request: Request, key: str) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), key.encode())


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)
