"""Identities: departments, users, API keys — lifecycle, bindings, admin permissions, CLI, and that
anonymous reads are untouched by this slice."""

from __future__ import annotations

import getpass
import hashlib
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import typer
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, event, text
from typer.testing import CliRunner
from waiting import status_within

from geoshare.access import keys, store
from geoshare.access.identity import Forbidden, Principal, Unauthenticated, authenticate
from geoshare.api.auth import RedactKeys, redact_text
from geoshare.settings import Settings

IT, SCJ, EDU = "zwsjj", "scjgj", "edu"


def _app(settings: Settings) -> FastAPI:
    """The whole app, with the admin router included if ``create_app`` does not register it yet."""
    from geoshare.api.app import create_app

    return create_app(settings)


@pytest.fixture
def app(db: Engine, settings: Settings) -> FastAPI:
    return _app(settings)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


@pytest.fixture
def seeded(db: Engine) -> dict[str, str]:
    """Three departments and a key per role; returns the full keys by name."""
    with db.begin() as conn:
        store.create_department(conn, IT, "北京市政务服务和数据管理局", "it@city.example")
        store.create_department(conn, SCJ, "北京市市场监督管理局")
        store.create_department(conn, EDU, "Education Bureau")
        return {
            "root": store.create_key(conn, IT, "platform_admin", label="root").key,
            "scj_admin": store.create_key(conn, SCJ, "department_admin").key,
            "scj_consumer": store.create_key(conn, SCJ, "consumer").key,
            "edu_consumer": store.create_key(conn, EDU, "consumer").key,
        }


def h(key: str, **more: str) -> dict[str, str]:
    return {"X-API-Key": key, **more}


def _detail(r) -> str:  # type: ignore[no-untyped-def]
    assert r.headers["content-type"].startswith("application/problem+json"), r.text
    return r.json()["detail"]


# -- key lifecycle ----------------------------------------------------------------------------------


def test_key_lifecycle_create_use_revoke(client: TestClient, seeded: dict[str, str]) -> None:
    r = client.post("/admin/keys", headers=h(seeded["root"]), json={"department": SCJ, "label": "执法App"})
    assert r.status_code == 201, r.text
    assert r.headers["cache-control"] == "no-store"
    created = r.json()
    key, prefix = created["key"], created["prefix"]
    assert keys.parse_prefix(key) == prefix and created["status"] == "active"

    me = client.get("/whoami", headers=h(key)).json()
    assert me == {
        "anonymous": False,
        "department": SCJ,
        "role": "consumer",
        "key_prefix": prefix,
        "user_id": None,
        "grants": {},
    }
    assert client.get("/whoami", params={"key": key}).json()["key_prefix"] == prefix  # tile/embed style
    assert client.get("/whoami").json()["anonymous"] is True

    revoked = client.post(f"/admin/keys/{prefix}/revoke", headers=h(seeded["root"]))
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    after = client.get("/whoami", headers=h(key))  # the very next request
    assert after.status_code == 401
    assert "revoked" in _detail(after) and after.json()["field"] == "X-API-Key"
    assert client.get("/whoami", params={"key": key}).json()["field"] == "key"
    again = client.delete(f"/admin/keys/gsk_{prefix}", headers=h(seeded["root"]))  # idempotent
    assert again.status_code == 200 and again.json()["revoked_at"] == revoked.json()["revoked_at"]


def test_expired_key_stops_at_once(client: TestClient, db: Engine, seeded: dict[str, str]) -> None:
    with db.begin() as conn:
        created = store.create_key(conn, SCJ, expires="1h")
    now = datetime.now(UTC)
    with db.connect() as conn:
        assert authenticate(conn, created.key, now=now).department == SCJ
        with pytest.raises(Unauthenticated, match="expired on"):
            authenticate(conn, created.key, now=now + timedelta(hours=2))
    assert client.get("/whoami", headers=h(created.key)).status_code == 200
    with db.begin() as conn:
        conn.execute(
            text("UPDATE gs.api_key SET expires_at = now() - interval '1 second' WHERE prefix = :p"),
            {"p": created.info.prefix},
        )
    assert client.app.state.layer_cache.sync()  # type: ignore[attr-defined] # the change was announced
    r = client.get("/whoami", headers=h(created.key))
    assert r.status_code == 401 and "expired on" in _detail(r)
    listed = {
        k["prefix"]: k["status"] for k in client.get("/admin/keys", headers=h(seeded["root"])).json()["keys"]
    }
    assert listed[created.info.prefix] == "expired"


@pytest.mark.parametrize("bad", ["nonsense", "gsk_short_x", "gsk_ABCDEFGH_" + "a" * 40, ""])
def test_malformed_key_401(client: TestClient, seeded: dict[str, str], bad: str) -> None:
    r = client.get("/whoami", headers=h(bad))
    assert r.status_code == 401 and "malformed" in _detail(r)


def test_unknown_and_wrong_secret_look_the_same(client: TestClient, seeded: dict[str, str]) -> None:
    random_key = keys.generate().key
    unknown = client.get("/whoami", headers=h(random_key))
    real_prefix = keys.parse_prefix(seeded["scj_consumer"])
    forged = f"gsk_{real_prefix}_{keys.generate().key.split('_', 2)[2]}"
    wrong = client.get("/whoami", headers=h(forged))
    assert unknown.status_code == wrong.status_code == 401
    assert _detail(unknown) == _detail(wrong) == "the API key is not recognised"


def test_two_different_keys_refused(client: TestClient, seeded: dict[str, str]) -> None:
    r = client.get("/whoami", headers=h(seeded["root"]), params={"key": seeded["scj_admin"]})
    assert r.status_code == 400 and r.json()["field"] == "key"


# -- browser keys -----------------------------------------------------------------------------------


def test_referrer_binding(client: TestClient, db: Engine, seeded: dict[str, str]) -> None:
    with db.begin() as conn:
        key = store.create_key(
            conn, SCJ, allowed_referrers=["https://map.example.gov.cn/", "https://*.city.example"]
        ).key
    ok = {
        "Origin": "https://map.example.gov.cn",
        "Referer": "https://map.example.gov.cn/app/index.html?x=1",
    }
    for name, value in ok.items():
        assert client.get("/whoami", headers=h(key, **{name: value})).status_code == 200, name
    assert client.get("/whoami", headers=h(key, Origin="https://a.city.example")).status_code == 200
    for origin in ("https://evil.example", "http://map.example.gov.cn", "https://city.example"):
        r = client.get("/whoami", headers=h(key, Origin=origin))
        assert r.status_code == 403, origin
        assert "allowed referrers" in _detail(r) and r.json()["field"] == "Referer"
    missing = client.get("/whoami", headers=h(key))
    assert missing.status_code == 403 and "no Origin or Referer" in _detail(missing)


def test_ip_binding(app: FastAPI, client: TestClient, db: Engine, seeded: dict[str, str]) -> None:
    with db.begin() as conn:
        key = store.create_key(conn, SCJ, allowed_ips=["10.1.0.0/16", "2001:db8::/32"]).key
    inside = TestClient(app, client=("10.1.2.3", 40000))
    outside = TestClient(app, client=("10.2.0.1", 40000))
    assert inside.get("/whoami", headers=h(key)).status_code == 200
    r = outside.get("/whoami", headers=h(key))
    assert r.status_code == 403 and "allowed IP ranges" in _detail(r)
    with db.connect() as conn:
        assert authenticate(conn, key, client_ip="::ffff:10.1.9.9").department == SCJ
        assert authenticate(conn, key, client_ip="2001:db8::1").department == SCJ
        with pytest.raises(Forbidden):
            authenticate(conn, key, client_ip="testclient")


# -- one round trip, last_used_at throttled -----------------------------------------------------------


def test_one_statement_per_request_and_last_used_throttled(db: Engine, seeded: dict[str, str]) -> None:
    statements: list[str] = []

    def count(conn: Connection, cursor, statement, *_) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    key, prefix = seeded["scj_consumer"], keys.parse_prefix(seeded["scj_consumer"])
    now = datetime.now(UTC)
    event.listen(db, "before_cursor_execute", count)
    try:
        with db.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            authenticate(conn, key, now=now)  # first use: lookup + last_used_at
            first = len(statements)
            for seconds in (1, 20, 59):
                authenticate(conn, key, now=now + timedelta(seconds=seconds))
            steady = len(statements) - first
            authenticate(conn, key, now=now + timedelta(seconds=61))
            later = len(statements) - first - steady
            used = conn.execute(text("SELECT last_used_at FROM gs.api_key WHERE prefix = :p"), {"p": prefix})
            last_used = used.scalar_one()
    finally:
        event.remove(db, "before_cursor_execute", count)
    assert first == 2 and steady == 3 and later == 2
    assert last_used == now + timedelta(seconds=61)


# -- secrets ---------------------------------------------------------------------------------------------


def test_key_never_stored_or_listed_in_clear(client: TestClient, db: Engine, seeded: dict[str, str]) -> None:
    r = client.post("/admin/keys", headers=h(seeded["root"]), json={"department": EDU})
    key, prefix = r.json()["key"], r.json()["prefix"]
    secret = key.split("_", 2)[2]
    with db.connect() as conn:
        row = conn.execute(
            text("SELECT row_to_json(k)::text, digest FROM gs.api_key k WHERE prefix = :p"), {"p": prefix}
        ).one()
        everything = conn.execute(
            text("SELECT string_agg(row_to_json(k)::text, '') FROM gs.api_key k")
        ).scalar()
    assert secret not in row[0] and secret not in everything
    assert row[1] == hashlib.sha256(key.encode()).hexdigest()
    listing = client.get("/admin/keys", headers=h(seeded["root"])).text
    assert prefix in listing and secret not in listing and row[1] not in listing and "digest" not in listing


def test_keys_redacted_in_logs(
    client: TestClient, seeded: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    key = seeded["scj_consumer"]
    secret = key.split("_", 2)[2]
    line = f'127.0.0.1:5000 - "GET /collections/x/items?limit=5&key={key} HTTP/1.1" 200'
    assert secret not in redact_text(line) and keys.redact(key) in redact_text(line)
    assert "typo-secret" not in redact_text("GET /tiles/1/2/3?key=typo-secret&f=mvt")
    record = logging.LogRecord("uvicorn.access", 20, __file__, 1, '%s - "%s %s"', ("peer", "GET", line), None)
    RedactKeys().filter(record)
    assert secret not in record.getMessage()

    with caplog.at_level(logging.INFO, logger="geoshare.auth"):
        client.get("/whoami", headers=h(key[:-1] + ("A" if key[-1] != "A" else "B")))
    assert "refused API key" in caplog.text and secret[:-1] not in caplog.text


# -- admin API permissions ----------------------------------------------------------------------------------

ADMIN_CALLS = [
    ("post", "/admin/departments", {"code": "x1", "name": "X"}),
    ("get", "/admin/departments", None),
    ("post", "/admin/users", {"department": SCJ, "name": "张三"}),
    ("get", "/admin/users", None),
    ("post", "/admin/keys", {"department": SCJ}),
    ("get", "/admin/keys", None),
    ("post", "/admin/keys/abcdefgh/revoke", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_CALLS)
def test_admin_needs_a_key_and_a_role(
    client: TestClient, seeded: dict[str, str], method: str, path: str, body: dict | None
) -> None:
    anonymous = client.request(method, path, json=body)
    assert anonymous.status_code == 401 and "API key is required" in _detail(anonymous)
    consumer = client.request(method, path, json=body, headers=h(seeded["scj_consumer"]))
    assert consumer.status_code == 403, consumer.text


def test_department_admin_only_for_own_department(client: TestClient, seeded: dict[str, str]) -> None:
    admin_h, root_h = h(seeded["scj_admin"]), h(seeded["root"])
    own = client.post("/admin/keys", headers=admin_h, json={"role": "publisher"})  # defaults to own dept
    assert own.status_code == 201 and own.json()["department"] == SCJ
    other = client.post("/admin/keys", headers=admin_h, json={"department": EDU})
    assert other.status_code == 403 and other.json()["field"] == "department"
    escalate = client.post("/admin/keys", headers=admin_h, json={"role": "platform_admin"})
    assert escalate.status_code == 403 and escalate.json()["field"] == "role"

    mine = client.get("/admin/keys", headers=admin_h).json()["keys"]
    assert mine and {k["department"] for k in mine} == {SCJ}
    assert client.get("/admin/keys", headers=admin_h, params={"department": EDU}).status_code == 403
    for path in ("/admin/departments", "/admin/users"):
        assert client.get(path, headers=admin_h).status_code == 403

    edu_prefix = keys.parse_prefix(seeded["edu_consumer"])
    hidden = client.post(f"/admin/keys/{edu_prefix}/revoke", headers=admin_h)
    assert hidden.status_code == 404  # another department's key: not revealed
    assert client.get("/whoami", headers=h(seeded["edu_consumer"])).status_code == 200
    own_prefix = own.json()["prefix"]
    assert client.post(f"/admin/keys/{own_prefix}/revoke", headers=admin_h).status_code == 200
    assert client.get("/whoami", headers=h(own.json()["key"])).status_code == 401

    everything = client.get("/admin/keys", headers=root_h).json()["keys"]
    assert {k["department"] for k in everything} == {IT, SCJ, EDU}
    assert client.post(f"/admin/keys/{edu_prefix}/revoke", headers=root_h).status_code == 200


def test_platform_admin_manages_departments_and_users(client: TestClient, seeded: dict[str, str]) -> None:
    root = h(seeded["root"])
    r = client.post("/admin/departments", headers=root, json={"code": "yjglj", "name": "北京市应急管理局"})
    assert r.status_code == 201 and r.json()["code"] == "yjglj"
    codes = [d["code"] for d in client.get("/admin/departments", headers=root).json()["departments"]]
    assert codes == sorted([IT, SCJ, EDU, "yjglj"])
    dup = client.post("/admin/departments", headers=root, json={"code": "yjglj", "name": "again"})
    assert dup.status_code == 409 and dup.json()["field"] == "code"
    bad = client.post("/admin/departments", headers=root, json={"code": "has space", "name": "X"})
    assert bad.status_code == 422 and bad.json()["field"] == "code"

    user = client.post(
        "/admin/users", headers=root, json={"department": "yjglj", "name": "李四", "role": "publisher"}
    )
    assert user.status_code == 201 and user.json()["role"] == "publisher"
    assert (
        client.post("/admin/users", headers=root, json={"department": "yjglj", "name": "李四"}).status_code
        == 409
    )
    users = client.get("/admin/users", headers=root, params={"department": "yjglj"}).json()["users"]
    assert [u["name"] for u in users] == ["李四"]
    assert client.get("/admin/users", headers=root, params={"department": EDU}).json()["users"] == []

    for path, body in [
        ("/admin/users", {"department": "nope", "name": "王五"}),
        ("/admin/keys", {"department": "nope"}),
    ]:
        unknown = client.post(path, headers=root, json=body)
        assert unknown.status_code == 422 and unknown.json()["field"] == "department", unknown.text
    unknown_list = client.get("/admin/keys", headers=root, params={"department": "nope"})
    assert unknown_list.status_code == 422 and unknown_list.json()["field"] == "department"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"department": SCJ, "expires": "2001-01-01"}, "expires"),
        ({"department": SCJ, "expires": "soon"}, "expires"),
        ({"department": SCJ, "allowed_referrers": ["https://a.example/app"]}, "allowed_referrers"),
        ({"department": SCJ, "allowed_referrers": ["a.example"]}, "allowed_referrers"),
        ({"department": SCJ, "allowed_ips": ["10.0.0.1/8"]}, "allowed_ips"),
        ({"department": SCJ, "allowed_ips": ["intranet"]}, "allowed_ips"),
        ({"department": SCJ, "role": "root"}, "role"),
        ({"department": SCJ, "colour": "red"}, "colour"),
        ({"department": SCJ, "allowed_ips": "10.0.0.0/8"}, "allowed_ips"),
    ],
)
def test_key_input_refused_naming_the_field(
    client: TestClient, seeded: dict[str, str], body: dict, field: str
) -> None:
    r = client.post("/admin/keys", headers=h(seeded["root"]), json=body)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field


def test_user_bound_keys(client: TestClient, db: Engine, seeded: dict[str, str]) -> None:
    root = h(seeded["root"])
    uid = client.post("/admin/users", headers=root, json={"department": SCJ, "name": "赵六"}).json()["id"]
    too_high = client.post(
        "/admin/keys", headers=root, json={"department": SCJ, "user_id": uid, "role": "publisher"}
    )
    assert too_high.status_code == 422 and too_high.json()["field"] == "role"
    elsewhere = client.post("/admin/keys", headers=root, json={"department": EDU, "user_id": uid})
    assert elsewhere.status_code == 422 and elsewhere.json()["field"] == "user_id"
    key = client.post("/admin/keys", headers=root, json={"department": SCJ, "user_id": uid}).json()["key"]
    assert client.get("/whoami", headers=h(key)).json()["user_id"] == uid
    with db.begin() as conn:
        conn.execute(text("UPDATE gs.app_user SET disabled_at = now() WHERE id = :id"), {"id": uid})
    assert client.app.state.layer_cache.sync()  # type: ignore[attr-defined]
    r = client.get("/whoami", headers=h(key))
    assert r.status_code == 401 and "disabled" in _detail(r)
    refused = client.post("/admin/keys", headers=root, json={"department": SCJ, "user_id": uid})
    assert refused.status_code == 422 and refused.json()["field"] == "user_id"


def test_principal_helpers() -> None:
    anon = Principal.anonymous()
    admin_ = Principal(department=SCJ, role="department_admin", key_prefix="abcdefgh")
    publisher = Principal(department=SCJ, role="publisher", key_prefix="bcdefghi")
    root = Principal(department=IT, role="platform_admin", key_prefix="cdefghij")
    assert anon.is_anonymous and not anon.has_role("consumer") and not anon.can_publish_for(SCJ)
    assert publisher.can_publish_for(SCJ) and not publisher.can_publish_for(EDU)
    assert not publisher.can_administer(SCJ) and admin_.can_administer(SCJ) and not admin_.can_administer(EDU)
    assert admin_.can_grant("department_admin") and not admin_.can_grant("platform_admin")
    assert root.can_administer(EDU) and root.can_publish_for(EDU) and root.can_grant("platform_admin")


# -- CLI ---------------------------------------------------------------------------------------------------


@pytest.fixture
def cli(db: Engine, database_url: str) -> Iterator[typer.Typer]:
    from geoshare.cli.access import department_app, key_app
    from geoshare.db.engine import get_engine
    from geoshare.settings import get_settings

    get_settings.cache_clear()  # the test database's URL is in the environment now
    get_engine.cache_clear()
    assert get_engine().url.database == db.url.database  # never the real database
    app = typer.Typer()
    app.add_typer(department_app, name="department")
    app.add_typer(key_app, name="key")
    yield app
    get_engine().dispose()


def test_cli_end_to_end(cli: typer.Typer, client: TestClient) -> None:
    run = CliRunner().invoke
    made = run(cli, ["department", "create", IT, "--name", "北京市政务服务和数据管理局", "--contact", "it@x"])
    assert made.exit_code == 0, made.output
    assert run(cli, ["department", "create", SCJ, "--name", "北京市市场监督管理局"]).exit_code == 0
    dup = run(cli, ["department", "create", SCJ, "--name", "again"])
    assert dup.exit_code == 2 and "already exists" in dup.output and "Traceback" not in dup.output
    listed = run(cli, ["department", "list"]).stdout
    assert IT in listed and "北京市市场监督管理局" in listed

    boot = run(cli, ["key", "create", "--department", IT, "--role", "platform_admin", "--label", "bootstrap"])
    assert boot.exit_code == 0, boot.output
    root_key = boot.stdout.strip()
    assert keys.parse_prefix(root_key) and "cannot be shown again" in boot.stderr
    assert client.get("/admin/departments", headers=h(root_key)).status_code == 200  # the key works at once

    browser = run(
        cli, ["key", "create", "--department", SCJ, "--expires", "90d", "--referrer", "https://map.example.gov.cn",
              "--ip", "10.0.0.0/8"],
    )  # fmt: skip
    assert browser.exit_code == 0, browser.output
    prefix = keys.parse_prefix(browser.stdout.strip())
    shown = run(cli, ["key", "list", "--department", SCJ]).stdout
    assert f"gsk_{prefix}_…" in shown and "https://map.example.gov.cn" in shown and "10.0.0.0/8" in shown
    assert browser.stdout.strip().split("_", 2)[2] not in shown

    unknown = run(cli, ["key", "create", "--department", "nope"])
    assert unknown.exit_code == 2 and "unknown department" in unknown.output
    past = run(cli, ["key", "create", "--department", SCJ, "--expires", "2001-01-01"])
    assert past.exit_code == 2 and "expires" in past.output

    revoked = run(cli, ["key", "revoke", root_key])  # a pasted whole key is cut to its prefix
    assert revoked.exit_code == 0 and root_key.split("_", 2)[2] not in revoked.output
    # the CLI is another client of the database: the app hears of it by NOTIFY, in milliseconds
    assert status_within(client, "/admin/departments", h(root_key), 401) == 401
    assert run(cli, ["key", "revoke", "zzzzzzzz"]).exit_code == 2

    # every change made here is in the audit log, with the OS user who made it (issue 15.14)
    from geoshare.db.engine import get_engine

    with get_engine().connect() as conn:
        changes = conn.execute(
            text(
                "SELECT action, target, actor FROM gs.audit_log "
                "WHERE kind = 'change' AND actor LIKE 'cli:%'"
            )
        ).all()
    actor = f"cli:{getpass.getuser()}"
    root = keys.parse_prefix(root_key)
    for change in (
        ("department.create", f"department:{IT}"), ("department.create", f"department:{SCJ}"),
        ("key.create", f"key:{root}"), ("key.create", f"key:{prefix}"), ("key.revoke", f"key:{root}"),
    ):  # fmt: skip
        assert (*change, actor) in changes, change
    assert not any(action == "key.create" and target == "key:None" for action, target, _ in changes)


# -- anonymous reads unchanged ----------------------------------------------------------------------------


def test_keys_change_nothing_where_nothing_is_hidden(
    address_db: Engine, client: TestClient, seeded: dict[str, str]
) -> None:
    """Geocoding stays open to all, and a key changes nothing where there is nothing to hide."""
    anonymous = client.get("/collections")
    assert anonymous.status_code == 200 and anonymous.json()["collections"] == []
    keyed = client.get("/collections", headers=h(seeded["scj_consumer"]))
    assert keyed.status_code == 200 and keyed.content == anonymous.content

    geo = client.get("/geocode", params={"address": "北京市朝阳区"})
    assert geo.status_code == 200, geo.text
    best = geo.json()["candidates"][0]
    assert best["district"] == "朝阳区" and best["level_code"] == "district"
    assert (
        client.get("/geocode", params={"address": "北京市朝阳区"}, headers=h("junk")).content == geo.content
    )


# -- migration ----------------------------------------------------------------------------------------------


def test_migration_downgrade_drops_and_upgrade_restores(database_url: str, engine: Engine) -> None:
    from alembic import command

    from geoshare.db.migrate import alembic_config

    def tables() -> set[str]:
        with engine.connect() as conn:
            found = conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'gs'")).scalars()
            return set(found) & {"app_user", "api_key"}

    assert tables() == {"app_user", "api_key"}
    engine.dispose()  # no pooled connection holds a lock on the tables
    command.downgrade(alembic_config(database_url), "0003")
    try:
        assert tables() == set()
    finally:
        command.upgrade(alembic_config(database_url), "head")
    assert tables() == {"app_user", "api_key"}


def test_department_names_are_public_contacts_are_not(client: TestClient, seeded: dict[str, str]) -> None:
    r = client.get("/departments")
    assert r.status_code == 200 and "max-age" in r.headers["cache-control"]
    listed = {d["code"]: d for d in r.json()["departments"]}
    assert listed[SCJ]["name"] == "北京市市场监督管理局"
    assert listed[IT]["name"] == "北京市政务服务和数据管理局"
    assert all(set(d) == {"code", "name"} for d in listed.values())  # no contact, no keys
    assert "it@city.example" not in r.text
