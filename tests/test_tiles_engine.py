"""The tile engine without HTTP: area limits, several layers in one statement, the tile cache."""

from __future__ import annotations

from typing import Any

import mapbox_vector_tile
import pytest
import shapely
from layer_factory import make_layer
from shapely.geometry import Point, box
from sqlalchemy import Engine, select, text

from layers.crs import resolve_crs
from layers.errors import BadParameter, NotFound
from layers.registry import get_layer
from layers.tiles.cache import TileCache, TileKey
from layers.tiles.matrixsets import get_tms
from layers.tiles.mvt import TileRequest, concatenated, fetch_tile, mvt_expression, mvt_sql

CENTRE = (116.41, 39.87)


def _tile(tms_id: str, z: int, **kw: Any) -> TileRequest:
    t = get_tms(tms_id).tile(*CENTRE, z)
    return TileRequest(tms_id, z, t.x, t.y, **kw)


def _ids(data: bytes, layer: str) -> set[int]:
    decoded = mapbox_vector_tile.decode(data) if data else {}
    return {f["id"] for f in decoded.get(layer, {}).get("features", [])}


@pytest.fixture
def two_layers(db: Engine) -> Engine:
    west = [(Point(CENTRE[0] - 0.002 * i, CENTRE[1]), {"名称": f"西{i}"}) for i in range(1, 6)]
    east = [(Point(CENTRE[0] + 0.0002 * i, CENTRE[1] - 0.001), {"名称": f"东{i}"}) for i in range(1, 4)]
    make_layer(db, "west", west, [("名称", "string")])
    make_layer(db, "east", east, [("名称", "string")])
    return db


def test_area_limits_the_rows(two_layers: Engine) -> None:
    tile = _tile("CGCS2000Quad", 13)
    area = shapely.to_wkb(box(CENTRE[0] - 0.0065, 39.8, CENTRE[0], 39.9))  # holds 西1..西3 only
    with two_layers.connect() as conn:
        layer = get_layer(conn, "west")
        assert _ids(fetch_tile(conn, layer, tile), "west") == {1, 2, 3, 4, 5}
        assert _ids(fetch_tile(conn, layer, tile, area_wkb=area), "west") == {1, 2, 3}


def test_hidden_fields_and_feature_limit(two_layers: Engine) -> None:
    tile = _tile("WebMercatorQuad", 13)
    with two_layers.connect() as conn:
        layer = get_layer(conn, "west")
        hidden = frozenset({"名称"})
        decoded = mapbox_vector_tile.decode(fetch_tile(conn, layer, tile, hidden))
        assert all(f["properties"] == {} for f in decoded["west"]["features"])
        with pytest.raises(BadParameter) as err:
            fetch_tile(conn, layer, _tile("WebMercatorQuad", 13, properties=("名称",)), hidden)
        assert err.value.field == "properties"
        assert len(_ids(fetch_tile(conn, layer, tile, feature_limit=2), "west")) == 2
        with pytest.raises(NotFound) as missing:
            fetch_tile(conn, layer, TileRequest("WebMercatorQuad", 2, 4, 0))
        assert missing.value.field == "tileCol"


def test_several_layers_in_one_statement(two_layers: Engine) -> None:
    tile = _tile("WebMercatorQuad", 14)
    with two_layers.connect() as conn:
        west, east = get_layer(conn, "west"), get_layer(conn, "east")
        both = conn.execute(
            select(concatenated([mvt_expression(west, tile), mvt_expression(east, tile)]))
        ).scalar()
        decoded = mapbox_vector_tile.decode(bytes(both))
        assert set(decoded) == {"west", "east"}
        assert {f["id"] for f in decoded["west"]["features"]} == _ids(fetch_tile(conn, west, tile), "west")
        assert {f["id"] for f in decoded["east"]["features"]} == {1, 2, 3}

        filtered = _tile("WebMercatorQuad", 14, filter="名称 = '东2'")
        sql_w, params_w = mvt_sql(west, tile, prefix="w")
        sql_e, params_e = mvt_sql(east, filtered, prefix="e")
        assert not set(params_w) & set(params_e)
        raw = conn.execute(text(f"SELECT {sql_w} || {sql_e}"), {**params_w, **params_e}).scalar()
        decoded = mapbox_vector_tile.decode(bytes(raw))
        assert {f["id"] for f in decoded["east"]["features"]} == {2}
        assert {f["id"] for f in decoded["west"]["features"]} == _ids(fetch_tile(conn, west, tile), "west")


def test_tile_key_and_lru_budget(two_layers: Engine) -> None:
    with two_layers.connect() as conn:
        layer = get_layer(conn, "west")
    tile = _tile("WebMercatorQuad", 13)
    key = TileKey.of(layer, tile, frozenset(), None)
    assert key == TileKey.of(layer, _tile("WebMercatorQuad", 13), frozenset(), None)
    variants = [
        TileKey.of(layer, _tile("WebMercatorQuad", 13, properties=()), frozenset(), None),
        TileKey.of(layer, _tile("WebMercatorQuad", 13, filter="名称 = 'x'"), frozenset(), None),
        TileKey.of(
            layer,
            _tile(
                "WebMercatorQuad", 13, filter="名称 = 'x'", filter_crs=resolve_crs("EPSG:3857", "filter-crs")
            ),
            frozenset(),
            None,
        ),
        TileKey.of(layer, tile, frozenset({"名称"}), None),
        TileKey.of(layer, tile, frozenset(), b"\x01"),
        TileKey.of(layer, _tile("CGCS2000Quad", 13), frozenset(), None),
    ]
    etags = {key.etag(), *(v.etag() for v in variants)}
    assert len(etags) == len(variants) + 1

    cache = TileCache(budget_bytes=10_000)
    keys = [TileKey.of(layer, TileRequest("WebMercatorQuad", 13, x, 0), frozenset(), None) for x in range(8)]
    for k in keys:
        cache.put(k, b"x" * 1_000)  # 1,200 bytes each with the entry overhead
    assert cache.size <= 10_000 and len(cache) == 8
    cache.get(keys[0])  # recently used: survives the next evictions
    cache.put(keys[0], b"y" * 1_000)
    for x in range(8, 10):
        cache.put(
            TileKey.of(layer, TileRequest("WebMercatorQuad", 13, x, 0), frozenset(), None), b"z" * 1_000
        )
    assert cache.get(keys[0]) == b"y" * 1_000
    assert cache.get(keys[1]) is None and cache.get(keys[2]) is None
    assert cache.size <= 10_000
    cache.put(keys[3], b"big" * 1_000)  # over an eighth of the budget: not kept
    assert cache.get(keys[3]) == b"x" * 1_000


def test_the_asyncpg_statement_cuts_the_same_tiles(two_layers: Engine) -> None:
    """``fetch_plain_tile`` (asyncpg, the tile endpoint's pool) and ``fetch_tile`` (psycopg, the
    engine) send the same statement in two paramstyles: the same features and properties come back
    in every grid, with hidden fields and an agreement's area applied alike."""
    import asyncio
    import re

    import asyncpg
    from sqlalchemy import make_url

    from layers.tiles.mvt import fetch_plain_tile, numbered_statement

    def decoded(data: bytes) -> dict[int, dict[str, Any]]:
        layers = mapbox_vector_tile.decode(data) if data else {}
        return {f["id"]: f["properties"] for f in layers.get("west", {}).get("features", [])}

    area = shapely.to_wkb(box(CENTRE[0] - 0.0065, 39.8, CENTRE[0], 39.9))
    cases = [
        (_tile(tms, z), hidden, wkb)
        for tms in ("WebMercatorQuad", "CGCS2000Quad", "WorldCRS84Quad", "TianDiTuWebMercator")
        for z in (10, 14)
        for hidden, wkb in ((frozenset(), None), (frozenset({"名称"}), None), (frozenset(), area))
    ]
    with two_layers.connect() as conn:
        layer = get_layer(conn, "west")
        expected = [decoded(fetch_tile(conn, layer, t, hidden, wkb)) for t, hidden, wkb in cases]
    dsn = make_url(two_layers.url).set(drivername="postgresql").render_as_string(hide_password=False)

    async def cut() -> list[dict[int, dict[str, Any]]]:
        connection = await asyncpg.connect(dsn)
        try:
            return [decoded(await fetch_plain_tile(connection, layer, t, h, w)) for t, h, w in cases]
        finally:
            await connection.close()

    got = asyncio.run(cut())
    assert got == expected
    assert any(len(e) == 5 for e in expected) and any(len(e) == 3 for e in expected)  # area bites
    sql, args = numbered_statement(layer, cases[0][0])
    assert len(args) == len(set(re.findall(r"\$(\d+)", sql))) > 0  # one argument per placeholder
