"""Rate limits and quotas: a department's per-minute limit per key (429 + Retry-After), its daily
quota shared across workers through the usage roll-up, the anonymous per-IP limit, and the lockout
of a client IP that sends random keys. Every app here is fresh, so each test starts with empty
buckets; the limits themselves live on ``gs.department``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import _wipe
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from test_audit import audited_app, flush, last_id, rows_after, with_knobs

from geoshare.access import audit, keys, ratelimit
from geoshare.access.audit import Access
from geoshare.access.ratelimit import Bucket, LimitConfig, Limiter
from geoshare.access.store import create_key
from geoshare.settings import Settings

LIMITED, QUOTA, BUSY, FREE = "RL_MIN", "RL_DAY", "RL_BUSY", "RL_FREE"
PER_MINUTE, DAILY = 3, 3
URL = "/collections"  # asks who is calling, touches no layer


@pytest.fixture(scope="module")
def world(engine: Engine) -> dict[str, Any]:
    _wipe(engine)
    with engine.begin() as conn:
        for code in (LIMITED, QUOTA, BUSY, FREE):
            conn.execute(text("INSERT INTO gs.department (code, name) VALUES (:c, :c)"), {"c": code})
        ratelimit.set_limits(conn, LIMITED, per_minute=PER_MINUTE)
        ratelimit.set_limits(conn, QUOTA, daily_quota=DAILY)
        ratelimit.set_limits(conn, BUSY, daily_quota=DAILY)
        return {
            "limited": [create_key(conn, LIMITED).key for _ in range(2)],
            "quota": create_key(conn, QUOTA).key,
            "busy": create_key(conn, BUSY).key,
            "free": [create_key(conn, FREE).key for _ in range(2)],
        }


@pytest.fixture
def client(world: dict[str, Any], settings: Settings) -> Iterator[TestClient]:
    with TestClient(audited_app(settings)) as c:
        yield c


def statuses(client: TestClient, n: int, key: str | None = None) -> list[int]:
    headers = {"X-API-Key": key} if key else {}
    return [client.get(URL, headers=headers).status_code for _ in range(n)]


def assert_429(response: Any, max_retry: int) -> None:
    assert response.status_code == 429
    assert response.headers["content-type"].startswith("application/problem+json")
    assert 1 <= int(response.headers["Retry-After"]) <= max_retry
    assert response.json()["status"] == 429


def test_leaky_bucket_drains_at_the_per_minute_rate() -> None:
    bucket = Bucket(now=0.0)
    assert [bucket.take(0.0, 3) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0, 3) == pytest.approx(20.0)  # one slot drains every 60/3 s
    assert bucket.take(19.0, 3) == pytest.approx(1.0)
    assert bucket.take(20.0, 3) == 0.0
    assert bucket.take(20.0, 6) == 0.0  # a raised limit applies at once, without a reset


def test_department_per_minute_limit_gives_429_with_retry_after(
    client: TestClient, world: dict[str, Any], engine: Engine
) -> None:
    key, sibling = world["limited"]
    mark = last_id(engine)
    # the first call proves the key (and names its department); the bucket then holds PER_MINUTE
    assert statuses(client, PER_MINUTE + 1, key) == [200] * (PER_MINUTE + 1)
    refused = client.get(URL, headers={"X-API-Key": key})
    assert_429(refused, 60 // PER_MINUTE)
    assert f"{PER_MINUTE} requests per minute" in refused.json()["detail"]
    assert statuses(client, 1, sibling) == [200]  # per key: another key of the department is not spent
    assert statuses(client, 1, world["free"][0]) == [200]
    flush(client)
    rows = rows_after(engine, mark)
    limited = [r for r in rows if r["status"] == 429]
    assert len(limited) == 1
    assert limited[0]["department_code"] == LIMITED and limited[0]["endpoint"] == URL
    assert limited[0]["key_prefix"] == keys.parse_prefix(key)
    with engine.connect() as conn:
        assert (
            conn.execute(
                text("SELECT sum(limited) FROM gs.usage_daily WHERE department_code = :d"), {"d": LIMITED}
            ).scalar_one()
            >= 1
        )


def test_limits_set_from_the_cli_apply_after_a_refresh(
    client: TestClient, world: dict[str, Any], database_url: str
) -> None:
    import typer
    from typer.testing import CliRunner

    from geoshare.cli import quota
    from geoshare.db.engine import get_engine
    from geoshare.settings import get_settings

    get_settings.cache_clear()
    get_engine.cache_clear()
    cli = typer.Typer()
    cli.command("limits")(quota.limits)
    cli.command("other")(lambda: None)  # two commands, so "limits" stays a sub-command
    run = CliRunner().invoke
    try:
        key = world["free"][1]
        assert statuses(client, 3, key) == [200] * 3
        done = run(cli, ["limits", FREE, "--per-minute", "1"])
        assert done.exit_code == 0, done.output
        assert f"{FREE}" in done.output and "rate 1/min per key" in done.output
        client.app.state.audit.refresh_limits()  # type: ignore[attr-defined]  (workers: within seconds)
        # the three calls already made stay in the bucket and drain at the new rate: 1 a minute
        assert_429(client.get(URL, headers={"X-API-Key": key}), 3 * 60)
        shown = run(cli, ["limits", FREE])
        assert shown.exit_code == 0 and "rate 1/min per key" in shown.output
        back = run(cli, ["limits", FREE, "--default-per-minute"])
        assert back.exit_code == 0 and "rate default" in back.output
        client.app.state.audit.refresh_limits()  # type: ignore[attr-defined]
        assert statuses(client, 1, key) == [200]
        assert run(cli, ["limits", "NO_SUCH", "--daily", "5"]).exit_code == 2
        assert run(cli, ["limits", FREE, "--daily", "0"]).exit_code != 0
    finally:
        get_settings.cache_clear()
        get_engine.cache_clear()


def test_daily_quota_counts_this_workers_calls(client: TestClient, world: dict[str, Any]) -> None:
    got = statuses(client, DAILY + 2, world["quota"])
    assert got == [200] * DAILY + [429, 429]
    refused = client.get(URL, headers={"X-API-Key": world["quota"]})
    assert_429(refused, 24 * 3600)
    assert "daily quota" in refused.json()["detail"]
    flush(client)  # what this worker did is now what every worker reads
    client.app.state.audit.refresh_limits()  # type: ignore[attr-defined]
    assert_429(client.get(URL, headers={"X-API-Key": world["quota"]}), 24 * 3600)


def test_daily_quota_counts_other_workers_calls_through_the_rollup(
    client: TestClient, world: dict[str, Any], engine: Engine
) -> None:
    # another worker served BUSY's quota already today: its flushed records are all this worker sees
    other_worker = [
        Access(
            time.time(),
            "read",
            "GET",
            URL,
            "catalog",
            None,
            BUSY,
            "someone1",
            "consumer",
            None,
            200,
            1.0,
            9,
            0,
        )
        for _ in range(DAILY)
    ]
    with engine.begin() as conn:
        audit.write_batch(conn, other_worker, client.app.state.audit.config.timezone)  # type: ignore[attr-defined]
    client.app.state.audit.refresh_limits()  # type: ignore[attr-defined]
    # the first call is admitted as an unknown key (this worker cannot know its department yet)
    first, second = statuses(client, 2, world["busy"])
    assert first == 200
    assert second == 429


def test_random_keys_from_one_address_are_locked_out(client: TestClient, world: dict[str, Any]) -> None:
    proven = world["free"][0]
    assert statuses(client, 1, proven) == [200]
    limit = LimitConfig().auth_failures_per_minute
    guesses = [keys.generate().key for _ in range(limit + 5)]
    answers = [client.get(URL, headers={"X-API-Key": g}) for g in guesses]
    assert [a.status_code for a in answers] == [401] * limit + [429] * 5
    assert_429(answers[-1], LimitConfig().auth_cooldown_seconds)
    assert answers[-1].json()["field"] == "X-API-Key"
    malformed = client.get(f"{URL}?key=gsk_short")
    assert malformed.status_code == 429  # malformed keys are refused the same way
    assert statuses(client, 1, proven) == [200]  # a key proven before the attack still works
    assert statuses(client, 1) == [200]  # and so do anonymous reads
    assert statuses(client, 1, world["limited"][1]) == [429]  # a key not yet seen here waits


def test_failed_authentications_from_one_key_count_too(client: TestClient) -> None:
    limit = LimitConfig().auth_failures_per_minute
    assert statuses(client, limit, "gsk_aaaaaaaa_" + "x" * 40) == [401] * limit
    assert statuses(client, 1, "gsk_bbbbbbbb_" + "y" * 40) == [429]


@pytest.mark.parametrize("name", ["%6Bey", "k%65y", "%6B%65%79"])
def test_an_encoded_key_parameter_is_locked_out_like_the_plain_one(
    client: TestClient, engine: Engine, name: str
) -> None:
    """``?%6Bey=`` is ``?key=`` once decoded: the lockout and the audit see the key the route checks."""
    limit = LimitConfig().auth_failures_per_minute
    mark = last_id(engine)
    guesses = [keys.generate().key for _ in range(limit + 3)]
    answers = [client.get(f"{URL}?{name}={g}").status_code for g in guesses]
    assert answers == [401] * limit + [429] * 3
    flush(client)
    refused = [r for r in rows_after(engine, mark) if r["status"] == 401]
    assert [r["key_prefix"] for r in refused] == [keys.parse_prefix(g) for g in guesses[:limit]]


def test_two_different_keys_are_refused_whatever_their_spelling(client: TestClient) -> None:
    one, other = keys.generate().key, keys.generate().key
    for query in (f"key={one}&key={other}", f"key={one}&%6Bey={other}"):
        answer = client.get(f"{URL}?{query}")
        assert answer.status_code == 400 and answer.json()["field"] == "key"
    assert client.get(URL, params={"key": one}, headers={"X-API-Key": other}).status_code == 400


def test_anonymous_limit_is_per_address(
    world: dict[str, Any], settings: Settings, monkeypatch: pytest.MonkeyPatch, engine: Engine
) -> None:
    with TestClient(
        audited_app(with_knobs(settings, monkeypatch, rate_limit_anonymous_per_minute="5"))
    ) as client:
        assert statuses(client, 5) == [200] * 5
        assert_429(client.get(URL), 12)
        assert statuses(client, 2, world["free"][1]) == [200, 200]  # keys have their own buckets
        # a refusal before routing is still audited under its route's template and layer
        flush(client)
        mark = last_id(engine)
        assert_429(client.get("/collections/rl_any/items"), 12)
        flush(client)
        refused = [r for r in rows_after(engine, mark) if r["status"] == 429]
        assert [(r["endpoint"], r["layer_id"]) for r in refused] == [
            ("/collections/{collection_id}/items", "rl_any")
        ]


def test_limiter_forgets_idle_callers() -> None:
    limiter = Limiter(LimitConfig(anonymous_per_minute=60))
    assert limiter.admit("10.0.0.1", None, False, now=0.0) is None
    limiter.prune(now=0.5)
    assert "10.0.0.1" in limiter._ips
    limiter.prune(now=2.0)  # one request drains in a second at 60 per minute
    assert "10.0.0.1" not in limiter._ips
