"""The raw ASGI fast path for cached vector tiles: the same answers as the route, without FastAPI.

Two apps on the same database: the real one (fast path installed, and a probe behind it that records
every request reaching the app) and the same app with the fast path taken out. Every request of a set
(hits, revalidations, keys, odd parameters, unreadable and unknown layers, bad addresses) must get the
same status, body and headers from both; the hits must not reach the app, must need no database, must
be audited and rate limited as before, and a new version must be a miss that shows the new data.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import geopandas as gpd
import mapbox_vector_tile
import morecantile
import numpy as np
import pytest
from conftest import _wipe
from fastapi import FastAPI
from fastapi.testclient import TestClient
from layer_factory import make_layer
from shapely.geometry import Point
from sqlalchemy import Engine, text
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send
from test_audit import flush, last_id, rows_after, with_knobs

from geoshare.access.store import create_key
from geoshare.api.tile_fastpath import TileFastPath
from geoshare.services.layer_cache import layer_cache
from geoshare.settings import Settings

PUB, SECRET, SHOPS = "fp_pub", "fp_secret", "fp_shops"
DEPT, OTHER = "FPD", "FPO"
HIDDEN = "密级"
CENTRE = (116.41, 39.87)
VERSION = 2  # the public layer's current version (so v=1 is an old one)
AUDITED = ("kind", "method", "endpoint", "endpoint_kind", "layer_id", "department_code", "key_prefix")
AUDITED += ("role", "status", "bytes", "items")


def tile_path(layer: str, z: int, lon: float = CENTRE[0], lat: float = CENTRE[1]) -> str:
    t = morecantile.tms.get("WebMercatorQuad").tile(lon, lat, z)
    return f"/collections/{layer}/tiles/WebMercatorQuad/{z}/{t.y}/{t.x}"


class Reached:
    """Innermost probe: the paths of the requests that got past the fast path into the app."""

    def __init__(self, app: ASGIApp, seen: list[str]) -> None:
        self.app = app
        self.seen = seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.seen.append(scope["path"])
        await self.app(scope, receive, send)


def build_app(settings: Settings, fast: bool, seen: list[str] | None = None) -> FastAPI:
    from geoshare.api.app import GeoShareApp, create_app

    app = create_app(settings)
    assert isinstance(app, GeoShareApp) and app.tile_fast_path, "the app factory installs the fast path"
    app.tile_fast_path = fast
    if seen is not None:
        app.user_middleware.append(Middleware(Reached, seen=seen))
    return app


def wait_live(client: TestClient) -> None:
    cache = layer_cache(client.app.state)
    deadline = time.monotonic() + 10
    while not cache.live:
        assert time.monotonic() < deadline, "layer cache listener never connected"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def world(engine: Engine) -> dict[str, str]:
    _wipe(engine)
    rng = np.random.default_rng(17)
    points = [
        (Point(float(x), float(y)), {"名称": f"点{i}", "等级": i % 5, HIDDEN: f"秘{i}"})
        for i, (x, y) in enumerate(
            zip(rng.uniform(116.30, 116.50, 300), rng.uniform(39.80, 39.95, 300), strict=True), start=1
        )
    ]
    attrs = [("名称", "string"), ("等级", "integer"), (HIDDEN, "string")]
    make_layer(engine, PUB, points, attrs, department=DEPT, version=VERSION)
    make_layer(engine, SECRET, points[:5], attrs, department=DEPT, sharing_class="restricted")
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE gs.layer SET restricted_fields = ARRAY[:f] WHERE id = :id"), {"f": HIDDEN, "id": PUB}
        )
        conn.execute(text("INSERT INTO gs.department (code, name) VALUES (:c, :c)"), {"c": OTHER})
        return {
            "other": create_key(conn, OTHER, "consumer").key,
            "owner": create_key(conn, DEPT, "consumer").key,
        }


@pytest.fixture(scope="module")
def seen() -> list[str]:
    return []


def serve(app: FastAPI) -> Iterator[TestClient]:
    """The app under a test client, its audit writer flushing only when a test calls ``flush``
    (the writer thread's own flush each second would split tallies and take rows at random)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("GEOSHARE_AUDIT_FLUSH_SECONDS", "3600")
        with TestClient(app) as c:
            assert c.app.state.audit.writer.config.flush_seconds == 3600  # type: ignore[attr-defined]
            wait_live(c)
            yield c


@pytest.fixture(scope="module")
def fast(world: dict[str, str], settings: Settings, seen: list[str]) -> Iterator[TestClient]:
    yield from serve(build_app(settings, fast=True, seen=seen))


@pytest.fixture(scope="module")
def plain(world: dict[str, str], settings: Settings) -> Iterator[TestClient]:
    yield from serve(build_app(settings, fast=False))


def answer(r: Any) -> tuple[int, bytes, list[tuple[str, str]]]:
    return r.status_code, r.content, r.headers.multi_items()


def send(client: TestClient, method: str, path: str, params: dict[str, str], headers: dict[str, str]) -> Any:
    return client.request(method, path, params=params, headers=headers)


def test_same_answers_with_and_without_the_fast_path(
    fast: TestClient, plain: TestClient, world: dict[str, str], seen: list[str]
) -> None:
    z12, z10 = tile_path(PUB, 12), tile_path(PUB, 10)
    for client in (fast, plain):  # fill both workers' caches (and teach the fast path the route)
        for path, params in ((z12, {}), (z12, {"properties": "名称"}), (z10, {})):
            assert client.get(path, params=params).status_code == 200
            assert client.get(path, params=params).status_code == 200
    etag = plain.get(z12).headers["etag"]
    big = plain.get(z10, headers={"Accept-Encoding": "gzip"})
    assert big.headers.get("content-encoding") == "gzip"  # GZip still sees and compresses hits

    hits: list[tuple[str, str, dict[str, str], dict[str, str]]] = [
        ("GET", z12, {}, {}),
        ("GET", z12, {"v": str(VERSION)}, {}),
        ("GET", z12, {"v": str(VERSION - 1)}, {}),
        ("GET", z12, {"properties": "名称"}, {}),
        ("GET", z12, {"v": str(VERSION), "f": "mvt"}, {"If-None-Match": etag}),
        ("GET", z12, {}, {"If-None-Match": f'"nope", W/{etag}'}),
        ("GET", z12, {}, {"If-None-Match": '"nope"'}),
        ("GET", z10, {}, {"Accept-Encoding": "gzip"}),
        ("GET", z10, {}, {"Accept-Encoding": "identity", "Origin": "https://dept.example"}),
    ]
    passed: list[tuple[str, str, dict[str, str], dict[str, str]]] = [
        ("GET", z12, {}, {"X-API-Key": world["other"]}),
        ("GET", z12, {"key": world["other"]}, {}),
        ("GET", z12, {"key": ""}, {}),
        ("GET", z12, {}, {"X-GeoShare-Embed": "ticket"}),
        ("GET", z12, {"zoom": "3"}, {}),
        ("GET", z12, {"properties": HIDDEN}, {}),
        ("GET", z12, {"v": "latest"}, {}),
        ("GET", z12, {"f": "png"}, {}),
        ("GET", tile_path(SECRET, 12), {}, {}),
        ("GET", tile_path("no_such_layer", 12), {}, {}),
        ("GET", f"/collections/{PUB}/tiles/WebMercatorQuad/25/0/0", {}, {}),
        ("GET", f"/collections/{PUB}/tiles/WebMercatorQuad/x/0/0", {}, {}),
        ("GET", f"/collections/{PUB}/tiles/GoogleQuad/1/0/0", {}, {}),
        ("GET", f"{z12}/", {}, {}),
        ("GET", f"{z12}.mvt", {}, {}),
        ("POST", z12, {}, {}),
    ]
    assert "HEAD" in _fast_path(fast).methods  # the tile route takes HEAD, so the fast path does
    hits += [("HEAD", z12, {}, {}), ("HEAD", z10, {}, {"Accept-Encoding": "gzip"})]

    for method, path, params, headers in hits + passed:
        before = len(seen)
        ours, theirs = send(fast, method, path, params, headers), send(plain, method, path, params, headers)
        assert answer(ours) == answer(theirs), (method, path, params, headers)
        reached = len(seen) > before
        is_hit = (method, path, params, headers) in hits
        assert reached is not is_hit, (method, path, params, headers, ours.status_code)
    assert send(fast, "GET", z12, {}, {"If-None-Match": etag}).status_code == 304
    assert send(fast, "GET", z12, {}, {"X-API-Key": world["owner"]}).status_code == 200


def _fast_path(client: TestClient) -> TileFastPath:
    """The fast path instance in the app's built middleware stack."""
    app: Any = client.app.middleware_stack
    while not isinstance(app, TileFastPath):
        app = app.app
    return app


def test_a_hit_needs_no_database(fast: TestClient, seen: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    path = tile_path(PUB, 13)
    first = fast.get(path)
    assert first.status_code == 200 and fast.get(path).content == first.content

    def no_database(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("no database")

    class NoPool:
        async def get(self) -> Any:
            raise RuntimeError("no database")

    monkeypatch.setattr(fast.app.state.engine, "connect", no_database)
    monkeypatch.setattr(fast.app.state, "async_pool", NoPool(), raising=False)
    before = len(seen)
    again = fast.get(path)
    assert again.status_code == 200 and again.content == first.content
    assert fast.get(path, headers={"If-None-Match": first.headers["etag"]}).status_code == 304
    assert len(seen) == before  # neither reached the app
    with pytest.raises(RuntimeError, match="no database"):  # a miss does need it: the patches bite
        fast.get(tile_path(PUB, 14))  # a plain tile: the asyncio pool
    with pytest.raises(RuntimeError, match="no database"):
        fast.get(tile_path(PUB, 14), params={"filter": "1 = 1"})  # a filtered one: the engine


def test_hits_are_audited_as_before(
    fast: TestClient, plain: TestClient, engine: Engine, seen: list[str]
) -> None:
    path = tile_path(PUB, 11)
    for client in (fast, plain):
        client.get(path)
        client.get(path)
    etag = plain.get(path).headers["etag"]
    records = []
    for client in (fast, plain):
        for each in (fast, plain):  # whatever either buffered before (or failed to write) goes first
            flush(each)
        mark = last_id(engine)
        before = len(seen)
        ok = client.get(path, params={"v": str(VERSION)})
        revalidated = client.get(path, headers={"If-None-Match": etag})
        assert (ok.status_code, revalidated.status_code) == (200, 304)
        if client is fast:
            assert len(seen) == before
        assert flush(client) >= 2
        rows = rows_after(engine, mark)
        assert len(rows) == 2
        records.append([{k: r[k] for k in AUDITED} for r in rows])
    ours, theirs = records
    assert ours == theirs
    hit, not_modified = ours
    assert (
        hit["endpoint"] == "/collections/{collection_id}/tiles/{tms_id}/{tile_matrix}/{tile_row}/{tile_col}"
    )
    assert (hit["endpoint_kind"], hit["layer_id"], hit["status"], hit["items"]) == ("tiles", PUB, 200, 1)
    assert hit["bytes"] == int(ok.headers["content-length"]) and hit["key_prefix"] is None  # as sent
    assert (not_modified["status"], not_modified["bytes"], not_modified["items"]) == (304, 0, None)


@pytest.mark.parametrize("with_fast_path", [True, False])
def test_hits_are_rate_limited_as_before(
    world: dict[str, str], settings: Settings, monkeypatch: pytest.MonkeyPatch, with_fast_path: bool
) -> None:
    seen: list[str] = []
    limited = with_knobs(settings, monkeypatch, rate_limit_anonymous_per_minute="4")
    path = tile_path(PUB, 12, 116.35, 39.82)
    with TestClient(build_app(limited, fast=with_fast_path, seen=seen)) as client:
        wait_live(client)
        statuses = [client.get(path).status_code for _ in range(6)]
        assert statuses == [200, 200, 200, 200, 429, 429]
        assert client.get(path, headers={"X-API-Key": world["other"]}).status_code == 200  # its own bucket
    # refusals never reach the app; with the fast path, only the first (a miss) and the keyed one did
    assert len(seen) == (2 if with_fast_path else 5)


def test_a_new_version_is_a_miss_with_the_new_data(fast: TestClient, engine: Engine, seen: list[str]) -> None:
    from layers.model import LayerMetadata
    from layers.publish import publish_frame

    def publish(names: list[str]) -> None:
        frame = gpd.GeoDataFrame(
            {"名称": names},
            geometry=[Point(CENTRE[0] - i * 0.001, CENTRE[1]) for i in range(len(names))],
            crs="EPSG:4326",
        )
        with engine.begin() as conn:
            publish_frame(
                conn, SHOPS, frame, LayerMetadata(title="商店", department=DEPT, sharing_class="public")
            )
        assert layer_cache(fast.app.state).sync()

    def names(r: Any) -> set[str]:
        layers = mapbox_vector_tile.decode(r.content)
        return {f["properties"]["名称"] for f in layers[SHOPS]["features"]}

    path = tile_path(SHOPS, 14)
    publish(["甲", "乙"])
    fast.get(path)
    before = len(seen)
    old = fast.get(path)
    assert len(seen) == before and names(old) == {"甲", "乙"}

    publish(["甲", "乙", "丙"])
    new = fast.get(path, headers={"If-None-Match": old.headers["etag"]})
    assert len(seen) == before + 1  # a miss: the route read the new version
    assert new.status_code == 200 and names(new) == {"甲", "乙", "丙"}
    assert new.headers["etag"] != old.headers["etag"]
    again = fast.get(path)
    assert len(seen) == before + 1 and again.content == new.content  # and the next one is a hit


def test_a_layer_closed_to_anonymous_is_no_longer_served(
    fast: TestClient, engine: Engine, seen: list[str]
) -> None:
    make_layer(engine, "fp_turn", [(Point(*CENTRE), {"名称": "x"})], [("名称", "string")], department=DEPT)
    assert layer_cache(fast.app.state).sync()
    path = tile_path("fp_turn", 12)
    fast.get(path)
    before = len(seen)
    assert fast.get(path).status_code == 200 and len(seen) == before  # a hit
    with engine.begin() as conn:
        conn.execute(text("UPDATE gs.layer SET sharing_class = 'restricted' WHERE id = 'fp_turn'"))
    assert layer_cache(fast.app.state).sync()
    closed = fast.get(path)
    assert closed.status_code == 404 and closed.json()["field"] == "collectionId"
    assert len(seen) == before + 1  # the route refused it


def test_plans_are_bounded(fast: TestClient, seen: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from geoshare.api import tile_fastpath

    monkeypatch.setattr(tile_fastpath, "MAX_PLANS", 2)
    paths = [tile_path(PUB, z) for z in (9, 10, 11)]
    bodies = {p: fast.get(p).content for p in paths}
    for p in paths * 2:
        before = len(seen)
        assert fast.get(p).content == bodies[p] and len(seen) == before
    assert len(_fast_path(fast).plans) == 2


def test_a_key_this_worker_holds_is_served_as_the_route_serves_it(
    fast: TestClient, plain: TestClient, world: dict[str, str], engine: Engine, seen: list[str]
) -> None:
    """A key whose principal the worker reuses skips FastAPI too, with the owner's view of the layer
    (its restricted field, a private Cache-Control); a revoked key is the route's to refuse at once."""
    from geoshare.access.store import revoke_key

    path = tile_path(PUB, 11)
    owner = {"X-API-Key": world["owner"]}
    for client in (fast, plain):  # authenticate (the principal is reused from now) and fill the caches
        assert client.get(path, headers=owner).status_code == 200
    first_miss = tile_path(PUB, 13)  # not yet read with this key
    before = len(seen)
    ours, theirs = fast.get(first_miss, headers=owner), plain.get(first_miss, headers=owner)
    assert answer(ours) == answer(theirs) and len(seen) == before  # a miss read on the pool, here
    ours, theirs = fast.get(path, headers=owner), plain.get(path, headers=owner)
    assert answer(ours) == answer(theirs) and len(seen) == before  # a hit
    assert ours.headers["cache-control"].startswith("private")
    owned = mapbox_vector_tile.decode(ours.content)[PUB]["features"]
    public = mapbox_vector_tile.decode(fast.get(path).content)[PUB]["features"]
    assert HIDDEN in owned[0]["properties"] and HIDDEN not in public[0]["properties"]

    with engine.begin() as conn:
        revoke_key(conn, world["owner"])
    registry = layer_cache(fast.app.state)
    deadline = time.monotonic() + 10
    while registry.principals:  # the NOTIFY on gs_access drops every reused principal
        assert time.monotonic() < deadline, "the revocation was never announced"
        time.sleep(0.02)
    refused = fast.get(path, headers=owner)
    assert refused.status_code == 401 and len(seen) > before


def test_tile_reads_are_tallied_per_flush_alike_on_both_paths(
    fast: TestClient, plain: TestClient, engine: Engine, seen: list[str]
) -> None:
    """Many reads of one reader, layer and outcome within a flush are one audit row saying how many
    requests and tiles it stands for, with their bytes summed; the daily roll-up counts every call."""
    paths = [tile_path(PUB, z) for z in (12, 13, 14)]
    tallies = []
    for client in (fast, plain):
        for p in paths:  # cached in this worker, so the fast path answers all of them
            client.get(p)
        for each in (fast, plain):
            flush(each)
        mark = last_id(engine)
        with engine.connect() as conn:
            calls_before = conn.execute(
                text("SELECT coalesce(sum(calls), 0) FROM gs.usage_daily WHERE layer_id = :l"), {"l": PUB}
            ).scalar_one()
        before = len(seen)
        sizes = [len(client.get(p, headers={"Accept-Encoding": "identity"}).content) for p in paths * 2]
        if client is fast:
            assert len(seen) == before, "all hits"
        assert flush(client) == 1
        rows = rows_after(engine, mark)
        assert len(rows) == 1
        row = rows[0]
        assert (row["requests"], row["items"], row["bytes"], row["status"]) == (6, 6, sum(sizes), 200)
        with engine.connect() as conn:
            calls_after = conn.execute(
                text("SELECT coalesce(sum(calls), 0) FROM gs.usage_daily WHERE layer_id = :l"), {"l": PUB}
            ).scalar_one()
        assert calls_after - calls_before == 6
        tallies.append({k: row[k] for k in (*AUDITED, "requests")})
    assert tallies[0] == tallies[1]


def test_a_compressed_tile_is_compressed_once_and_kept(fast: TestClient, seen: list[str]) -> None:
    """A client that takes gzip (every browser) gets the tile compressed once per worker, then the
    kept bytes: the same body the compression middleware would send, without compressing again."""
    import gzip

    from geoshare.api.routes.tiles import tile_cache

    path = tile_path(PUB, 10)
    plain_body = fast.get(path, headers={"Accept-Encoding": "identity"}).content
    assert len(plain_body) >= 2048  # large enough for the compression middleware's minimum
    cache = tile_cache(fast.app.state)
    before = len(seen)
    first = fast.get(path, headers={"Accept-Encoding": "gzip"})
    assert first.headers["content-encoding"] == "gzip" and first.content == plain_body
    kept = [cache.get(k) for k in list(cache._entries) if isinstance(k, tuple) and k[0] == "gzip"]
    assert any(b is not None and gzip.decompress(b) == plain_body for b in kept)
    second = fast.get(path, headers={"Accept-Encoding": "gzip, deflate, br"})
    assert (
        second.content == plain_body and second.headers["content-length"] == first.headers["content-length"]
    )
    assert len(seen) == before  # both from the fast path


def test_head_gives_the_tiles_headers_without_its_body(
    fast: TestClient, plain: TestClient, engine: Engine
) -> None:
    """Caches and clients check a tile's ETag with HEAD: the GET's status and headers, no body, and
    no bytes in the audit record, on both paths."""
    path = tile_path(PUB, 12, 116.45, 39.9)
    for client in (fast, plain):
        got = client.get(path, headers={"Accept-Encoding": "identity"})
        flush(client)
        mark = last_id(engine)
        head = client.head(path, headers={"Accept-Encoding": "identity"})
        assert head.status_code == 200 and head.content == b""
        for name in ("etag", "content-length", "content-type", "cache-control", "vary"):
            assert head.headers[name] == got.headers[name], name
        assert flush(client) == 1
        (row,) = rows_after(engine, mark)
        assert (row["method"], row["status"], row["bytes"], row["requests"]) == ("HEAD", 200, 0, 1)


def test_tiles_survive_the_pool_losing_its_connections(fast: TestClient, engine: Engine) -> None:
    """A database restart (here: the tile pool's backends terminated, found by the name the pool
    gives its sessions) costs no tile: the pool notices its connections closed and opens new ones."""
    paths = [tile_path(PUB, 15, 116.30 + i * 0.02, 39.85) for i in range(6)]
    for p in paths[:2]:  # the layer's row cached, then a miss read on the pool: it is open
        assert fast.get(p).status_code == 200
    with engine.connect() as conn:
        killed = conn.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND application_name = 'geoshare-tiles'"
            )
        ).scalar_one()
    assert killed >= 1
    time.sleep(0.2)
    statuses = [fast.get(p).status_code for p in paths[2:]]
    assert statuses == [200, 200, 200, 200]


def test_a_connection_lost_mid_read_is_read_again_through_the_engine(
    fast: TestClient, plain: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pool's connection dying during the read (the database restarting under it): the route
    reads the tile again through the engine, on both paths, and the client never sees it."""
    import asyncpg

    from geoshare.api.routes import tiles as tile_routes

    async def lost(*args: Any, **kwargs: Any) -> bytes:
        raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")

    monkeypatch.setattr(tile_routes, "fetch_from_pool", lost)
    for client in (fast, plain):
        for z in (16, 17):
            r = client.get(tile_path(PUB, z, 116.47, 39.93))
            assert r.status_code == 200 and r.headers["content-type"] == "application/vnd.mapbox-vector-tile"
