"""``taskkit serve``: model folders behind an HTTP API (FastAPI + uvicorn), micro-batched.

Needs the ``serve`` extra (``pip install taskkit[serve]``); nothing here is imported by the CLI
until the command runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI


def create_app(*args: Any, **kwargs: Any) -> FastAPI:
    """See :func:`taskkit.serve.app.create_app`."""
    from taskkit.serve.app import create_app as make

    return make(*args, **kwargs)
