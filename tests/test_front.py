"""The nginx front cache (``geoshare serve --front nginx``) in front of the real app over HTTP.

nginx must keep only what the app declares shareable (versioned tiles of public layers, asked without
a key), serve repeats without reaching the app, never serve a kept tile to a request the app would
answer differently (a key, an embed ticket, an unversioned URL, a restricted layer), see a publish at
once (a new version is a new URL) and account for everything it answered itself in the audit log.
Skipped, saying so, where nginx is not installed (``scripts/setup.sh`` installs it).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import httpx
import mapbox_vector_tile
import morecantile
import pytest
from conftest import _wipe
from e2e.conftest import _free_port, _Server
from layer_factory import make_layer
from shapely.geometry import Point
from sqlalchemy import Engine, text
from test_audit import last_id

from geoshare.access.store import create_key
from geoshare.api.routes.tiles import TILE_PATH
from geoshare.front.nginx import FrontConfig, NginxFront, nginx_binary, render, reopen_logs
from geoshare.services.layer_cache import layer_cache
from geoshare.settings import Settings

pytestmark = pytest.mark.skipif(
    nginx_binary() is None, reason="nginx is not installed (apt-get install nginx)"
)

PUB, SECRET, SHOPS = "fr_pub", "fr_secret", "fr_shops"
AUDITED = "fr_audited"  # read only by the audit test: its rows are all that test's
ROTATED = "fr_rotated"  # and this one only by the rotation test
DEPT = "FRD"
CENTRE = (116.41, 39.87)


def tile_path(layer: str, z: int) -> str:
    t = morecantile.tms.get("WebMercatorQuad").tile(*CENTRE, z)
    return f"/collections/{layer}/tiles/WebMercatorQuad/{z}/{t.y}/{t.x}"


def names(body: bytes, layer: str) -> set[str]:
    return {f["properties"]["名称"] for f in mapbox_vector_tile.decode(body)[layer]["features"]}


@pytest.fixture(scope="module")
def world(engine: Engine) -> dict[str, str]:
    _wipe(engine)
    grid = [(CENTRE[0] + (i % 50) * 2e-5, CENTRE[1] + (i // 50) * 2e-5) for i in range(2000)]
    points = [(Point(x, y), {"名称": f"点{i}"}) for i, (x, y) in enumerate(grid)]
    make_layer(engine, PUB, points, [("名称", "string")], department=DEPT, version=3)
    make_layer(engine, AUDITED, points, [("名称", "string")], department=DEPT)
    make_layer(engine, ROTATED, points, [("名称", "string")], department=DEPT)
    make_layer(engine, SECRET, points[:5], [("名称", "string")], department=DEPT, sharing_class="restricted")
    with engine.begin() as conn:
        return {"owner": create_key(conn, DEPT, "consumer").key}


class Front:
    def __init__(self, url: str, app: Any, hit_log: Path, nginx: NginxFront) -> None:
        self.nginx = nginx
        self.url = url
        self.app = app
        self.hit_log = hit_log
        # httpx asks for gzip by default: plain requests here ask for the identity copy
        self.http = httpx.Client(base_url=url, timeout=30, headers={"Accept-Encoding": "identity"})

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.get(path, **kw)


def start_front(tmp: Path, upstream: str, per_minute: int) -> NginxFront:
    front = NginxFront(
        FrontConfig("127.0.0.1", _free_port(), upstream, tmp, workers=1, anonymous_per_minute=per_minute)
    )
    front.start()
    return front


@pytest.fixture(scope="module")
def front(
    world: dict[str, str], settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Front]:
    from geoshare.api.app import create_app

    root = tmp_path_factory.mktemp("front")
    hit_log = root / "logs" / "hits.jsonl"
    app = create_app(
        Settings(database_url=settings.database_url, front_log=str(hit_log), front_gate=str(root / "gate"))
    )
    with _Server(app) as server:
        nginx = start_front(root, f"127.0.0.1:{server.port}", 0)
        try:
            yield Front(f"http://127.0.0.1:{nginx.cfg.listen_port}", app, hit_log, nginx)
        finally:
            nginx.stop()


def versioned(front: Front, layer: str, z: int) -> str:
    """The tile URL a client builds from the layer's tile set document (it carries ``v``)."""
    doc = front.get(f"/collections/{layer}/tiles/WebMercatorQuad").json()
    template = next(link["href"] for link in doc["links"] if link["rel"] == "item")
    t = morecantile.tms.get("WebMercatorQuad").tile(*CENTRE, z)
    url = template.format(tileMatrix=z, tileRow=t.y, tileCol=t.x)
    return url[len(front.url) :]


def test_the_configuration_keeps_only_what_the_app_shares(tmp_path: Path) -> None:
    conf = render(FrontConfig("127.0.0.1", 8000, "127.0.0.1:8001", tmp_path, anonymous_per_minute=1200))
    assert "proxy_no_cache $gs_keyed" in conf and "proxy_cache_bypass $gs_keyed" in conf
    assert "rate=1200r/m" in conf and "limit_req zone=gs_anonymous" in conf
    assert str(tmp_path.resolve()) in conf and "/var/" not in conf  # nothing of the system's
    unlimited = render(FrontConfig("127.0.0.1", 8000, "127.0.0.1:8001", tmp_path, anonymous_per_minute=0))
    assert "limit_req" not in unlimited.replace("limit_req_status", "")


def test_a_taken_port_is_refused_not_shared(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        front = NginxFront(FrontConfig("127.0.0.1", port, "127.0.0.1:1", tmp_path))
        with pytest.raises(RuntimeError, match="is taken"):
            front.start()
    assert front.process is None


def test_versioned_public_tiles_are_served_by_the_front(front: Front) -> None:
    path = versioned(front, PUB, 15)
    assert "v=3" in path
    first = front.get(path)
    assert first.status_code == 200 and first.headers["x-cache"] == "MISS"
    assert "immutable" in first.headers["cache-control"]
    again = front.get(path)
    assert again.headers["x-cache"] == "HIT" and again.content == first.content
    for name in ("etag", "cache-control", "content-type", "vary"):
        assert again.headers[name] == first.headers[name]
    assert len(names(again.content, PUB)) > 100

    # every browser's Accept-Encoding shares one compressed copy
    zipped = front.get(path, headers={"Accept-Encoding": "gzip, deflate, br, zstd"})
    assert zipped.headers["x-cache"] == "MISS" and zipped.headers["content-encoding"] == "gzip"
    other = front.get(path, headers={"Accept-Encoding": "gzip"})
    assert other.headers["x-cache"] == "HIT" and other.content == first.content  # httpx decodes

    # a client's copy is revalidated by nginx itself
    current = front.get(path, headers={"If-None-Match": first.headers["etag"]})
    assert current.status_code == 304 and current.headers["x-cache"] == "HIT"


def test_what_the_front_must_not_keep(front: Front, world: dict[str, str]) -> None:
    plain = tile_path(PUB, 15)  # no version: must revalidate with the app each time
    assert front.get(plain).headers["cache-control"] == "no-cache"
    assert front.get(plain).headers["x-cache"] != "HIT"

    secret = versioned_with_key(front, SECRET, world["owner"])
    owner = {"X-API-Key": world["owner"]}
    for _ in range(2):
        r = front.get(secret, headers=owner)
        assert r.status_code == 200 and r.headers["x-cache"] == "BYPASS"
        assert r.headers["cache-control"].startswith("private")
    anonymous = front.get(secret)  # the owner's tile must never reach anyone else
    assert anonymous.status_code == 404 and anonymous.headers["x-cache"] != "HIT"

    public = versioned(front, PUB, 14)
    front.get(public)
    assert front.get(public).headers["x-cache"] == "HIT"
    keyed = front.get(public, headers=owner)  # a key is checked and audited by the app
    assert keyed.headers["x-cache"] == "BYPASS" and keyed.status_code == 200
    bad_key = front.get(public, headers={"X-API-Key": "gsk_nonsense_0000"})
    assert bad_key.status_code in (401, 403) and bad_key.headers["x-cache"] == "BYPASS"
    embed = front.get(public, headers={"X-GeoShare-Embed": "not-a-ticket"})
    assert embed.headers["x-cache"] == "BYPASS"


def versioned_with_key(front: Front, layer: str, key: str) -> str:
    doc = front.get(f"/collections/{layer}/tiles/WebMercatorQuad", headers={"X-API-Key": key}).json()
    template = next(link["href"] for link in doc["links"] if link["rel"] == "item")
    t = morecantile.tms.get("WebMercatorQuad").tile(*CENTRE, 15)
    return template.format(tileMatrix=15, tileRow=t.y, tileCol=t.x)[len(front.url) :]


def test_a_publish_is_seen_at_once(front: Front, engine: Engine) -> None:
    from layers.model import LayerMetadata
    from layers.publish import publish_frame

    def publish(shops: list[str]) -> None:
        frame = gpd.GeoDataFrame(
            {"名称": shops},
            geometry=[Point(CENTRE[0] - i * 0.001, CENTRE[1]) for i in range(len(shops))],
            crs="EPSG:4326",
        )
        with engine.begin() as conn:
            publish_frame(
                conn, SHOPS, frame, LayerMetadata(title="商店", department=DEPT, sharing_class="public")
            )
        assert layer_cache(front.app.state).sync()

    publish(["甲", "乙"])
    old = versioned(front, SHOPS, 14)
    front.get(old)
    assert front.get(old).headers["x-cache"] == "HIT"
    publish(["甲", "乙", "丙"])
    new = versioned(front, SHOPS, 14)
    assert new != old  # the tile set document hands out the new version's URLs at once
    fresh = front.get(new)
    assert fresh.headers["x-cache"] == "MISS" and names(fresh.content, SHOPS) == {"甲", "乙", "丙"}


def audited(engine: Engine, mark: int, layer: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT method, endpoint, endpoint_kind, status, requests, bytes, items, key_prefix, "
                "host(client_ip) AS ip FROM gs.audit_log WHERE id > :m AND layer_id = :l ORDER BY id"
            ),
            {"m": mark, "l": layer},
        ).mappings()
        return [dict(r) for r in rows]


def test_front_answers_are_audited(front: Front, engine: Engine) -> None:
    mark = last_id(engine)
    path = versioned(front, AUDITED, 13)
    first = front.get(path)
    hits = [front.get(path) for _ in range(5)]
    assert [r.headers["x-cache"] for r in hits] == ["HIT"] * 5
    # a HEAD reaches the app as a HEAD (nginx used to ask it for a GET, audited as one), then is kept
    heads_sent = [front.http.head(path) for _ in range(2)]
    assert [r.headers["x-cache"] for r in heads_sent] == ["MISS", "HIT"]
    assert heads_sent[0].headers["etag"] == first.headers["etag"]

    found = tile_rows(engine, mark, AUDITED, 8)
    gets = [r for r in found if r["method"] == "GET" and r["status"] == 200]
    heads = [r for r in found if r["method"] == "HEAD"]
    assert sum(r["requests"] for r in gets) == 6  # the app's miss and the front's five hits
    assert sum(r["bytes"] for r in gets) == 6 * len(first.content)
    assert sum(r["items"] for r in gets) == 6
    assert sum(r["requests"] for r in heads) == 2 and sum(r["bytes"] for r in heads) == 0
    assert len(found) == len(gets) + len(heads)
    assert {r["endpoint_kind"] for r in found} == {"tiles"} and {r["ip"] for r in found} == {"127.0.0.1"}
    assert all(r["key_prefix"] is None for r in found)


def tile_rows(engine: Engine, mark: int, layer: str, expected: int) -> list[dict[str, Any]]:
    """The layer's tile rows audited after ``mark``, once they stand for ``expected`` requests (or
    15 s have passed) and nothing more has come for 1.5 s."""
    deadline = time.monotonic() + 15
    while True:  # nginx writes its log each second; the app ingests it each second
        rows = [r for r in audited(engine, mark, layer) if r["endpoint"] == TILE_PATH]
        if sum(r["requests"] for r in rows) >= expected or time.monotonic() > deadline:
            time.sleep(1.5)  # and nothing more comes
            return [r for r in audited(engine, mark, layer) if r["endpoint"] == TILE_PATH]
        time.sleep(0.2)


def test_a_rotated_hit_log_loses_nothing(front: Front, engine: Engine, tmp_path: Path) -> None:
    mark = last_id(engine)
    path = versioned(front, ROTATED, 14)
    front.get(path)  # the miss, audited by the app
    assert [front.get(path).headers["x-cache"] for _ in range(2)] == ["HIT", "HIT"]
    front.hit_log.rename(f"{front.hit_log}.1")  # as the follower rotates it (or logrotate)
    reopen_logs(front.nginx.cfg.pid_file)  # nginx's SIGUSR1: it reopens the log under its name
    deadline = time.monotonic() + 5
    while not front.hit_log.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert front.hit_log.exists(), "nginx did not reopen its log"
    assert [front.get(path).headers["x-cache"] for _ in range(3)] == ["HIT"] * 3
    assert sum(r["requests"] for r in tile_rows(engine, mark, ROTATED, 6)) == 6
    assert ROTATED in front.hit_log.read_text()  # the last three went to the new file


def test_the_front_limits_anonymous_tiles_and_audits_its_refusals(
    front: Front, engine: Engine, tmp_path: Path
) -> None:
    nginx = start_front(tmp_path, front.url.removeprefix("http://"), 1)  # 1 a minute, burst 1
    # this front's log is not followed by the app: read it the way the app does
    from geoshare.access.front_log import parse
    from geoshare.api.audit_middleware import runtime
    from geoshare.api.front_audit import key_maker

    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{nginx.cfg.listen_port}") as client:
            statuses = [client.get(tile_path(PUB, 12)).status_code for _ in range(4)]
            refused = client.get(tile_path(PUB, 12))
    finally:
        nginx.stop()  # flushes the log
    assert statuses[:2] == [200, 200] and set(statuses[2:]) == {429}
    assert refused.headers["content-type"] == "application/problem+json" and refused.json()["status"] == 429
    assert refused.headers["retry-after"] == "60"
    logged = [parse(line) for line in nginx.cfg.hit_log.read_text().splitlines()]
    assert [h.status for h in logged if h is not None] == [429, 429, 429]
    # keyed for the audit log as the app keys its own refusals: the route's template and the layer
    key = key_maker(front.app, runtime(front.app))(logged[0])
    assert (key.endpoint, key.layer_id, key.status, key.kind) == (TILE_PATH, PUB, 429, "read")


RECLASSED = "fr_reclassed"


def test_a_reclassified_or_deleted_layer_is_unreachable_in_the_cache_at_once(
    front: Front, engine: Engine
) -> None:
    """Kept copies answer only while the gate is open for the layer at that version (issue 15.1)."""
    grid = [(Point(CENTRE[0] + i * 2e-5, CENTRE[1]), {"名称": f"点{i}"}) for i in range(50)]
    make_layer(engine, RECLASSED, grid, [("名称", "string")], department=DEPT)
    assert layer_cache(front.app.state).sync()
    vector = versioned(front, RECLASSED, 15)
    png = vector.replace("?", ".png?", 1)
    for path in (vector, png):
        assert front.get(path).status_code == 200
        assert front.get(path).headers["x-cache"] == "HIT", path

    def change(sql: str) -> None:  # as the CLI or another node would: the app hears of it by NOTIFY
        with engine.begin() as conn:
            conn.execute(text(sql), {"l": RECLASSED})
        assert layer_cache(front.app.state).sync()

    change("UPDATE gs.layer SET sharing_class = 'restricted' WHERE id = :l")
    for path in (vector, png):
        refused = front.get(path)
        assert refused.status_code == 404 and refused.headers["x-cache"] != "HIT", path
    change("UPDATE gs.layer SET sharing_class = 'public' WHERE id = :l")
    assert front.get(vector).status_code == 200
    assert front.get(vector).headers["x-cache"] == "HIT"  # the same version, public again
    change("DELETE FROM gs.layer WHERE id = :l")
    for path in (vector, png):
        gone = front.get(path)
        assert gone.status_code == 404 and gone.headers["x-cache"] != "HIT", path


def test_a_forwarded_for_sent_by_a_client_is_not_believed(
    front: Front, engine: Engine, world: dict[str, str]
) -> None:
    """A key bound to 10.0.0.0/8 works only from there, whatever X-Forwarded-For says (issue 15.2)."""
    with engine.begin() as conn:
        bound = create_key(conn, DEPT, "consumer", allowed_ips=["10.0.0.0/8"]).key
    mark = last_id(engine)
    spoofed = {"X-API-Key": bound, "X-Forwarded-For": "10.1.2.3"}
    answer = front.get(f"/collections/{PUB}", headers=spoofed)
    assert answer.status_code == 403
    front.app.state.audit.writer.flush()
    with engine.connect() as conn:
        ips = conn.execute(
            text("SELECT DISTINCT host(client_ip) FROM gs.audit_log WHERE id > :m AND key_prefix = :p"),
            {"m": mark, "p": bound.split("_")[1]},
        ).scalars()
        assert set(ips) == {"127.0.0.1"}  # the audit log names the real peer


def test_a_client_revalidates_unversioned_tiles_through_the_front(front: Front) -> None:
    """MapLibre revalidates ``no-cache`` tiles on every view: the front passes If-None-Match on."""
    plain = tile_path(PUB, 15)
    first = front.get(plain)
    again = front.get(plain, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


def test_what_the_front_refuses_itself_is_a_problem(tmp_path: Path, front: Front) -> None:
    upstream = front.url.removeprefix("http://")
    nginx = NginxFront(FrontConfig("127.0.0.1", _free_port(), upstream, tmp_path, upload_max_bytes=1000))
    nginx.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{nginx.cfg.listen_port}") as client:
            big = client.post("/layers", content=b"x" * 5000, headers={"Content-Type": "text/csv"})
            long = client.get("/collections?" + "q=" * 6000)
    finally:
        nginx.stop()
    assert big.status_code == 413 and big.headers["content-type"] == "application/problem+json"
    assert big.json()["status"] == 413 and "1000 bytes" in big.json()["detail"]
    assert long.status_code == 414 and long.json()["status"] == 414
    logged = nginx.cfg.hit_log.read_text()
    assert '"status":413' in logged and '"status":414' in logged  # for the audit log


def test_a_method_not_allowed_names_the_allowed_ones_through_the_front(front: Front) -> None:
    answer = front.http.delete("/collections")
    assert answer.status_code == 405 and answer.headers["allow"] == "GET"
    assert answer.headers["content-type"] == "application/problem+json"


def test_trusted_proxies_are_read_and_checked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GEOSHARE_TRUSTED_PROXIES", "10.0.0.5, 192.168.0.0/16")
    settings = Settings.from_env()
    assert settings.trusted_proxies == ("10.0.0.5", "192.168.0.0/16")
    conf = render(
        FrontConfig("127.0.0.1", 8000, "127.0.0.1:8001", tmp_path, trusted_proxies=settings.trusted_proxies)
    )
    assert "set_real_ip_from 10.0.0.5;" in conf and "real_ip_recursive on;" in conf
    assert "X-Forwarded-For $remote_addr" in conf and "proxy_add_x_forwarded_for" not in conf
    monkeypatch.setenv("GEOSHARE_TRUSTED_PROXIES", "10.0.0.300")
    with pytest.raises(ValueError, match="GEOSHARE_TRUSTED_PROXIES"):
        Settings.from_env()
