"""Request-scoped dependencies."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import Request
from sqlalchemy import Connection


def get_conn(request: Request) -> Iterator[Connection]:
    """A pooled connection for one request; read-only work needs no explicit transaction."""
    with request.app.state.engine.connect() as conn:
        yield conn


def base_url(request: Request) -> str:
    configured = request.app.state.settings.public_url
    return (configured or str(request.base_url)).rstrip("/")
