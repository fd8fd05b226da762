"""A database outage (issue 15.12): every request that needs the database gets a 503 problem with
Retry-After, the audit log records the 503s that were sent (not 500s), and the log says when the
outage started and when it ended, with the count, instead of two tracebacks per request.

The outage is real: a database of its own refuses new connections (``CONNECTION LIMIT 0``, which
binds the non-superuser the app connects as) after its open ones are ended.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator

import pytest
from conftest import ADMIN_URL
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, make_url, text

from geoshare.db import migrate
from geoshare.settings import Settings

NAME = f"geoshare_test_outage_{os.getpid()}"


@pytest.fixture
def outage_url() -> Iterator[str]:
    admin = create_engine(make_url(ADMIN_URL).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{NAME}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{NAME}" TEMPLATE geoshare_template'))
    url = make_url(ADMIN_URL).set(database=NAME).render_as_string(hide_password=False)
    migrate.upgrade(url)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{NAME}" CONNECTION LIMIT -1'))
            conn.execute(text(f'DROP DATABASE IF EXISTS "{NAME}" WITH (FORCE)'))
        admin.dispose()


def set_outage(url: str, down: bool) -> None:
    """Refuse (or allow again) new connections to the database, and end its open ones."""
    eng = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{NAME}" CONNECTION LIMIT {0 if down else -1}'))
        if down:
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"), {"n": NAME}
            )
    eng.dispose()


def test_an_outage_is_answered_audited_and_logged_as_one(
    outage_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from geoshare.api.app import create_app

    app = create_app(Settings(database_url=outage_url))
    with TestClient(app) as client:  # raises any exception the app lets out: none may leave it
        assert client.get("/collections").status_code == 200
        app.state.outages.quiet = 0.3
        app.state.audit.writer.flush()
        caplog.set_level(logging.WARNING, logger="geoshare.api")
        set_outage(outage_url, down=True)
        answers = [client.get("/collections") for _ in range(12)]
        assert {a.status_code for a in answers} == {503}
        assert all(a.headers["retry-after"] and a.json()["status"] == 503 for a in answers)
        set_outage(outage_url, down=False)
        deadline = time.monotonic() + 5
        while app.state.outages.ongoing and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.get("/collections").status_code == 200
        app.state.audit.writer.flush()
    lines = [r.getMessage() for r in caplog.records if r.name == "geoshare.api"]
    assert len([m for m in lines if m.startswith("database unavailable")]) == 1
    assert [m for m in lines if m.startswith("database back")] == [
        next(m for m in lines if m.startswith("database back: 12 requests answered 503"))
    ]
    eng = create_engine(outage_url)
    with eng.connect() as conn:
        statuses = conn.execute(
            text("SELECT status, count(*) FROM gs.audit_log WHERE endpoint = '/collections' GROUP BY 1")
        ).all()
    eng.dispose()
    assert dict(statuses) == {200: 2, 503: 12}
