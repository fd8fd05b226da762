"""Request-scoped dependencies."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import Request
from sqlalchemy import Connection


def get_conn(request: Request) -> Iterator[Connection]:
    """A pooled connection for one read-only request, in autocommit: each statement is its own
    snapshot, and no BEGIN/ROLLBACK round trips are spent on it (point lookups are ~0.3 ms of SQL)."""
    with request.app.state.engine.connect() as conn:
        yield conn.execution_options(isolation_level="AUTOCOMMIT")


def base_url(request: Request) -> str:
    configured = request.app.state.settings.public_url
    return (configured or str(request.base_url)).rstrip("/")
