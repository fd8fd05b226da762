"""The worker's layer cache: served without the database while it is current, dropped on change."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from layer_factory import make_layer
from shapely.geometry import Point
from sqlalchemy import Engine, text

from geoshare.services.layer_cache import LayerCache
from layers.errors import NotFound


def _wait_live(cache: LayerCache) -> None:
    deadline = time.monotonic() + 10
    while not cache.live and time.monotonic() < deadline:
        time.sleep(0.02)
    assert cache.live


@pytest.fixture
def cache(db: Engine) -> Any:
    make_layer(db, "stops", [(Point(116.4, 39.9), {"名称": "站"})], [("名称", "string")])
    c = LayerCache(db)
    c.start()
    _wait_live(c)
    yield c
    c.stop()


def test_a_hit_needs_no_database_and_a_change_drops_it(cache: LayerCache, db: Engine) -> None:
    with db.connect() as conn:
        first = cache.get(conn, "stops")
    assert cache.get(None, "stops") is first  # type: ignore[arg-type] # no connection: served from memory
    with db.begin() as conn:
        conn.execute(text("UPDATE gs.layer SET title = '公交站' WHERE id = 'stops'"))
    assert cache.sync()
    with db.connect() as conn:
        assert cache.get(conn, "stops").title == "公交站"
        conn.execute(text("DELETE FROM gs.layer WHERE id = 'stops'"))
        conn.commit()
        assert cache.sync()
        with pytest.raises(NotFound):
            cache.get(conn, "stops")


def test_a_truncate_drops_everything(cache: LayerCache, db: Engine) -> None:
    with db.connect() as conn:
        cache.get(conn, "stops")
    with db.begin() as conn:
        conn.execute(text("TRUNCATE gs.layer CASCADE"))
    assert cache.sync()
    with db.connect() as conn, pytest.raises(NotFound):
        cache.get(conn, "stops")


def test_nothing_is_served_while_not_listening(db: Engine) -> None:
    make_layer(db, "stops", [(Point(116.4, 39.9), {"名称": "站"})], [("名称", "string")])
    idle = LayerCache(db)  # never started: not live
    with db.connect() as conn:
        idle.get(conn, "stops")
    with pytest.raises(AttributeError):
        idle.get(None, "stops")  # type: ignore[arg-type] # went to the database again


def test_reclassification_reaches_the_api_at_once(client: TestClient, db: Engine) -> None:
    make_layer(db, "stops", [(Point(116.4, 39.9), {"名称": "站"})], [("名称", "string")])
    assert client.get("/collections/stops/items").status_code == 200
    with db.begin() as conn:
        conn.execute(text("UPDATE gs.layer SET sharing_class = 'restricted' WHERE id = 'stops'"))
    cache = client.app.state.layer_cache  # type: ignore[attr-defined]
    deadline = time.monotonic() + 2
    while client.get("/collections/stops/items").status_code != 404:  # no sync: the listener alone
        assert time.monotonic() < deadline, "the change did not reach the worker within 2 s"
        time.sleep(0.005)
    assert cache.live
