"""The audit log: the middleware records reads (who, route, layer, count, bytes, outcome), the writer
flushes them in one statement with the daily roll-up, the log refuses UPDATE/DELETE/TRUNCATE,
changes are recorded in the caller's transaction, a dead database costs records but never a
request, and full keys appear neither in the log nor in the application logs.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import _wipe
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from layer_factory import make_layer
from shapely.geometry import Point
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError
from starlette.responses import Response

from geoshare.access import audit
from geoshare.access.audit import Access, AuditConfig, AuditWriter
from geoshare.access.identity import Principal
from geoshare.access.store import create_key
from geoshare.api import audit_middleware
from geoshare.settings import Settings

PROVIDER, CONSUMER = "AUDP", "AUDC"
LAYER = "aud_pts"
ITEMS = "/collections/{collection_id}/items"


def audited_app(settings: Settings) -> FastAPI:
    """The real app with the audit middleware and the usage routes (added here until app.py has them),
    plus two probe routes that publish a result count the two supported ways."""
    from geoshare.api.app import create_app

    app = create_app(settings)
    if not any(m.cls is audit_middleware.AuditMiddleware for m in app.user_middleware):
        audit_middleware.install(app)

    @app.get("/_probe/state-count")
    def state_count(request: Request) -> dict[str, int]:
        request.state.audit_count = 7
        return {"n": 7}

    @app.get("/_probe/header-count")
    def header_count() -> Response:
        return Response(b"{}", media_type="application/json", headers={"X-Result-Count": "3"})

    return app


def with_knobs(settings: Settings, monkeypatch: pytest.MonkeyPatch, **knobs: str) -> Settings:
    """``settings`` with audit/limit knobs set: as fields once ``Settings`` has them, else through
    the ``GEOSHARE_*`` environment the knobs fall back to."""
    fields = {f.name: f.type for f in dataclasses.fields(settings)}
    as_fields: dict[str, Any] = {}
    for name, value in knobs.items():
        if name in fields:
            default = getattr(settings, name)
            as_fields[name] = (
                value.lower() not in ("0", "false") if isinstance(default, bool) else type(default)(value)
            )
        else:
            monkeypatch.setenv(f"GEOSHARE_{name.upper()}", value)
    return dataclasses.replace(settings, **as_fields)


def flush(client: TestClient) -> int:
    return client.app.state.audit.writer.flush()  # type: ignore[attr-defined]


def last_id(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT coalesce(max(id), 0) FROM gs.audit_log")).scalar_one()


def rows_after(engine: Engine, mark: int) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [
            dict(r)
            for r in conn.execute(
                text("SELECT * FROM gs.audit_log WHERE id > :m ORDER BY id"), {"m": mark}
            ).mappings()
        ]


@pytest.fixture(scope="module")
def world(engine: Engine) -> dict[str, str]:
    _wipe(engine)
    make_layer(
        engine,
        LAYER,
        [(Point(116.3 + n / 100, 39.9), {"编号": f"A{n}", "名称": f"点{n}"}) for n in range(5)],
        [("编号", "string"), ("名称", "string")],
        key_field="编号",
        department=PROVIDER,
    )
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO gs.department (code, name) VALUES (:c, :c)"), {"c": CONSUMER})
        return {"consumer": create_key(conn, CONSUMER, "consumer").key}


@pytest.fixture(scope="module")
def client(world: dict[str, str], settings: Settings) -> Iterator[TestClient]:
    # the writer flushes only when a test asks: its thread's own flush each second could take rows
    # between a test's requests and its ``flush``
    with pytest.MonkeyPatch.context() as env:
        env.setenv("GEOSHARE_AUDIT_FLUSH_SECONDS", "3600")
        with TestClient(audited_app(settings)) as c:
            assert c.app.state.audit.writer.config.flush_seconds == 3600  # type: ignore[attr-defined]
            yield c


def test_reads_are_recorded_with_route_layer_principal_and_counts(
    client: TestClient, world: dict[str, str], engine: Engine
) -> None:
    key = world["consumer"]
    flush(client)
    mark = last_id(engine)
    items = client.get(f"/collections/{LAYER}/items?limit=2", headers={"X-API-Key": key})
    anonymous = client.get(f"/collections/{LAYER}/items?limit=3")
    state = client.get("/_probe/state-count", headers={"X-API-Key": key})
    header = client.get("/_probe/header-count")
    missing = client.get("/no/such/thing")
    assert client.get("/healthz").status_code == 200  # not audited
    assert [r.status_code for r in (items, anonymous, state, header, missing)] == [200, 200, 200, 200, 404]
    assert flush(client) >= 5

    rows = rows_after(engine, mark)
    assert len(rows) == 5, [r["endpoint"] for r in rows]
    by_endpoint = [(r["endpoint"], r["department_code"]) for r in rows]
    assert by_endpoint == [
        (ITEMS, CONSUMER),
        (ITEMS, None),
        ("/_probe/state-count", CONSUMER),
        ("/_probe/header-count", None),
        ("/no/such/thing", None),
    ]
    first, anon, by_state, by_header, unmatched = rows
    assert first["layer_id"] == LAYER and first["layer_department"] == PROVIDER
    assert first["key_prefix"] == key.split("_")[1] and first["role"] == "consumer"
    assert first["status"] == 200 and first["kind"] == "read" and first["endpoint_kind"] == "features"
    assert first["bytes"] == int(items.headers["content-length"])
    assert first["duration_ms"] > 0
    assert anon["key_prefix"] is None and anon["role"] is None
    expected_count = items.json()["numberReturned"]
    if first["items"] is not None:  # once the items endpoint publishes its count (lead)
        assert first["items"] == expected_count
    assert by_state["items"] == 7 and by_header["items"] == 3
    assert unmatched["endpoint_kind"] == "unmatched" and unmatched["status"] == 404
    assert all(r["ts"] is not None for r in rows)
    assert [r["ts"] for r in rows] == sorted(r["ts"] for r in rows)


def test_flush_upserts_the_daily_rollup(client: TestClient, world: dict[str, str], engine: Engine) -> None:
    def rollup() -> tuple[int, int, int]:
        with engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT coalesce(sum(calls), 0), coalesce(sum(errors), 0), coalesce(sum(bytes), 0)"
                    " FROM gs.usage_daily WHERE department_code = :c AND layer_id = :l"
                ),
                {"c": CONSUMER, "l": LAYER},
            ).one()
        return int(row[0]), int(row[1]), int(row[2])

    flush(client)
    before = rollup()
    headers = {"X-API-Key": world["consumer"]}
    answers = [client.get(f"/collections/{LAYER}/items?limit=1", headers=headers) for _ in range(4)]
    answers.append(client.get(f"/collections/{LAYER}/items?limit=oops", headers=headers))
    flush(client)
    after = rollup()
    assert after[0] - before[0] == len(answers)
    assert after[1] - before[1] == sum(1 for a in answers if a.status_code >= 400) == 1
    assert after[2] - before[2] == sum(int(a.headers["content-length"]) for a in answers)


def test_audit_log_is_append_only(client: TestClient, engine: Engine) -> None:
    client.get("/collections")
    flush(client)
    for statement in (
        "UPDATE gs.audit_log SET status = 200",
        "DELETE FROM gs.audit_log",
        "DELETE FROM gs.audit_log WHERE false",
        "TRUNCATE gs.audit_log",
    ):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM gs.audit_log")).scalar_one() > 0


def test_record_change_joins_the_callers_transaction(engine: Engine, world: dict[str, str]) -> None:
    who = Principal(department=PROVIDER, role="publisher", key_prefix="abcd1234", user_id=None)
    secret = "gsk_abcd1234_" + "S" * 43
    mark = last_id(engine)
    with engine.begin() as conn:
        audit.record_change(conn, who, "layer.publish", f"layer:{LAYER}", {"note": f"sent {secret}", "n": 5})
    with pytest.raises(RuntimeError), engine.begin() as conn:
        audit.record_change(conn, who, "layer.delete", f"layer:{LAYER}", None)
        raise RuntimeError("the change failed")
    audit.record_change(engine, "cli:tester", "key.revoke", "key:abcd1234")
    rows = rows_after(engine, mark)
    assert [(r["kind"], r["action"], r["target"]) for r in rows] == [
        ("change", "layer.publish", f"layer:{LAYER}"),
        ("change", "key.revoke", "key:abcd1234"),
    ]
    publish, revoke = rows
    assert publish["layer_id"] == LAYER and publish["layer_department"] == PROVIDER
    assert publish["department_code"] == PROVIDER and publish["key_prefix"] == "abcd1234"
    assert publish["detail"]["n"] == 5
    assert secret not in str(publish["detail"]) and "gsk_abcd1234_…" in publish["detail"]["note"]
    assert revoke["actor"] == "cli:tester" and revoke["layer_id"] is None


def _record(n: int) -> Access:
    return Access(
        0.0 + n, "read", "GET", "/x", "other", None, None, None, None, "127.0.0.1", 200, 1.0, 1, None
    )


def test_writer_keeps_then_drops_records_while_the_database_is_down(caplog: pytest.LogCaptureFixture) -> None:
    dead = create_engine("postgresql+psycopg://nobody:nothing@127.0.0.1:1/none", pool_pre_ping=False)
    writer = AuditWriter(dead, AuditConfig(batch=10, buffer_max=25))
    with caplog.at_level(logging.WARNING, logger="geoshare.audit"):
        for n in range(20):
            writer.submit(_record(n))
        assert writer.flush() == 0
        assert writer.pending == 20 and writer.dropped == 0  # kept for the next attempt, in order
        for n in range(20, 40):
            writer.submit(_record(n))
    assert writer.pending == 25 and writer.dropped == 15
    assert "audit flush of 10 records failed" in caplog.text
    dead.dispose()


def test_writer_flushes_in_batches_on_its_own(engine: Engine) -> None:
    mark = last_id(engine)
    writer = AuditWriter(engine, AuditConfig(batch=50, flush_seconds=0.05))
    writer.start()
    try:
        for n in range(120):
            writer.submit(_record(n)._replace(ts=1_700_000_000.0 + n, endpoint="/_writer_test"))
        deadline = time.monotonic() + 5
        while writer.written < 120 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        writer.close()
    rows = [r for r in rows_after(engine, mark) if r["endpoint"] == "/_writer_test"]
    assert len(rows) == 120 == writer.written
    assert [r["ts"].timestamp() for r in rows] == [1_700_000_000.0 + n for n in range(120)]


def test_full_keys_never_reach_the_audit_log_or_the_logs(
    client: TestClient, world: dict[str, str], engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    valid = world["consumer"]
    wrong = "gsk_zzzz9999_" + "W" * 43
    malformed = "not-a-key-at-all-but-secret"
    mark = last_id(engine)
    with caplog.at_level(logging.DEBUG):
        client.get(f"/collections/{LAYER}/items", headers={"X-API-Key": valid})
        client.get(f"/collections/{LAYER}/items?key={valid}")
        assert client.get(f"/collections/{LAYER}/items", headers={"X-API-Key": wrong}).status_code == 401
        assert client.get(f"/collections/{LAYER}/items?key={malformed}").status_code == 401
        flush(client)
    with engine.connect() as conn:
        dump = conn.execute(
            text("SELECT string_agg(row_to_json(a)::text, E'\\n') FROM gs.audit_log a WHERE id > :m"),
            {"m": mark},
        ).scalar_one()
    assert dump.count('"status":') == 4
    # the server's logs (the test's own HTTP client logs the URLs it requests; that is not the server)
    server_log = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("httpx"))
    assert "refused API key gsk_zzzz9999_…" in server_log
    for secret in (valid, valid.split("_", 2)[2], wrong, wrong.split("_", 2)[2], malformed):
        assert secret not in dump
        assert secret not in server_log
    assert '"key_prefix":"zzzz9999"' in dump  # the prefix tried is kept: it is public


def test_auditing_can_be_switched_off(
    world: dict[str, str], settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with TestClient(audited_app(with_knobs(settings, monkeypatch, audit_enabled="false"))) as off:
        mark = last_id(engine)
        assert off.get(f"/collections/{LAYER}/items").status_code == 200
        assert flush(off) == 0
    assert rows_after(engine, mark) == []


@pytest.mark.parametrize(
    ("method", "template", "kind"),
    [
        ("GET", ITEMS, "features"),
        ("GET", "/collections/{collection_id}/items/{feature_id}", "features"),
        ("GET", "/collections/{collection_id}/tiles/{z}/{x}/{y}", "tiles"),
        ("GET", "/layers/{layer_id}/export", "export"),
        ("POST", "/layers", "publish"),
        ("DELETE", "/layers/{layer_id}", "publish"),
        ("GET", "/layers/{layer_id}/versions", "catalog"),
        ("GET", "/collections", "catalog"),
        ("POST", "/geocode/batch", "geocode"),
        ("GET", "/compat/amap/v3/geocode/geo", "geocode"),
        ("GET", "/admin-areas/{code}", "divisions"),
        ("POST", "/agreements", "access"),
        ("GET", "/usage", "usage"),
        ("GET", None, "unmatched"),
    ],
)
def test_endpoint_kinds(method: str, template: str | None, kind: str) -> None:
    assert audit_middleware.endpoint_kind(method, template) == kind


def test_a_record_postgresql_refuses_is_escaped_not_a_wedge(engine: Engine) -> None:
    """One NUL in a recorded path used to fail every later flush (the batch was requeued forever)."""
    mark = last_id(engine)
    writer = AuditWriter(engine, AuditConfig(batch=10))
    writer.submit(_record(1)._replace(endpoint="/_nul\x00test"))
    writer.submit(_record(2)._replace(endpoint="/_nul_neighbour"))
    assert writer.flush() == 2 and writer.pending == 0
    endpoints = [r["endpoint"] for r in rows_after(engine, mark)]
    assert endpoints == ["/_nul\\x00test", "/_nul_neighbour"]


@pytest.mark.parametrize("fmt", ["geojson", "csv", "gpkg"])
def test_an_export_records_the_features_it_sent(client: TestClient, engine: Engine, fmt: str) -> None:
    """Exports logged no feature count (issue 15.14): streamed or written, the audit row has it."""
    flush(client)
    mark = last_id(engine)
    answer = client.get(f"/layers/{LAYER}/export", params={"format": fmt, "bbox": "116.295,39.8,116.325,40"})
    assert answer.status_code == 200
    flush(client)
    rows = [r for r in rows_after(engine, mark) if r["endpoint"] == "/layers/{layer_id}/export"]
    assert [r["items"] for r in rows] == [3]  # the points at 116.30, 116.31 and 116.32
