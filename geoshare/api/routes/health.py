"""Liveness and readiness for process supervisors and load balancers."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy import text

from geoshare.api.problems import Problem
from geoshare.db.migrate import current_revision, head_revision

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> dict[str, str | None]:
    try:
        with request.app.state.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            current = current_revision(conn)
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        raise Problem(503, f"database unreachable: {type(exc).__name__}") from exc
    head = head_revision()
    if current != head:
        raise Problem(503, f"database schema at {current}, code expects {head}: run `geoshare db upgrade`")
    return {"status": "ready", "schema": current}
