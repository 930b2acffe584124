"""Running the app under uvicorn for ``taskkit serve``: checks, start-up failures, graceful stop."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from taskkit.errors import TaskkitError


def check_settings(port: int, max_batch: int, max_wait_ms: float, max_text_chars: int, max_inputs: int,
                   api_key: str | None) -> None:
    checks = [("--port", port, 0 <= port <= 65535, "between 0 and 65535"),
              ("--max-batch", max_batch, max_batch >= 1, ">= 1"),
              ("--max-wait-ms", max_wait_ms, max_wait_ms >= 0, ">= 0"),
              ("--max-text-chars", max_text_chars, max_text_chars >= 1, ">= 1"),
              ("--max-inputs", max_inputs, max_inputs >= 1, ">= 1")]
    for option, value, ok, wanted in checks:
        if not ok:
            raise TaskkitError(f"{option} must be {wanted}, got {value}")
    if api_key is not None and not api_key.strip():
        raise TaskkitError("--api-key (or TASKKIT_API_KEY) is empty: give a key or leave it unset")


def serve(paths: Sequence[str | Path], host: str = "127.0.0.1", port: int = 8000, *, max_batch: int = 64,
          max_wait_ms: float = 5.0, api_key: str | None = None, max_text_chars: int = 10_000,
          max_inputs: int = 256) -> None:
    """Serve model folders until SIGTERM / SIGINT, which first answers every request in flight."""
    check_settings(port, max_batch, max_wait_ms, max_text_chars, max_inputs, api_key)
    try:
        import fastapi  # noqa: F401
        import prometheus_client  # noqa: F401
        import uvicorn
    except ImportError as exc:
        raise TaskkitError(f"taskkit serve needs the serve extra ({exc.name} is missing): "
                           "pip install 'taskkit[serve]'") from None
    from taskkit.serve.app import create_app
    from taskkit.serve.served_models import model_names

    named = model_names(paths)
    failures: list[str] = []
    holder: dict[str, uvicorn.Server] = {}

    def failed(message: str) -> None:
        failures.append(message)
        holder["server"].should_exit = True

    def ready() -> None:
        print(f"taskkit serve: ready ({', '.join(named)})", file=sys.stderr, flush=True)

    app = create_app(named, max_batch=max_batch, max_wait_ms=max_wait_ms, api_key=api_key,
                     max_text_chars=max_text_chars, max_inputs=max_inputs, on_failure=failed, on_ready=ready)
    server = holder["server"] = uvicorn.Server(uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, timeout_graceful_shutdown=None))
    print(f"taskkit serve: {', '.join(named)} on http://{host}:{port} (loading; GET /readyz says when ready, "
          "API docs at /docs)", file=sys.stderr, flush=True)
    # uvicorn answers the requests in flight on SIGTERM / SIGINT, then raises the signal again into the
    # handler it found: a no-op one here, so that a graceful stop ends with exit code 0
    quiet = {}
    if threading.current_thread() is threading.main_thread():
        quiet = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run()
    except SystemExit:  # uvicorn exits when it cannot listen (it has logged why)
        raise TaskkitError(f"cannot listen on {host}:{port} (address in use or not allowed)") from None
    finally:
        for sig, handler in quiet.items():
            signal.signal(sig, handler)
    if failures:
        raise TaskkitError(failures[0])
    if not server.started:
        raise TaskkitError(f"cannot listen on {host}:{port} (address in use or not allowed)")
    print("taskkit serve: stopped; every request in flight was answered", file=sys.stderr, flush=True)
