"""Tile size budgets: dense tiles thinned by density within the budget, the same bytes on every
cut and in the pyramid, filters, areas and hidden fields applied before thinning, and the
full-detail zoom the TileJSON states."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator

import asyncpg
import geopandas as gpd
import mapbox_vector_tile
import numpy as np
import pytest
import shapely
from fastapi.testclient import TestClient
from shapely.geometry import Point, box
from sqlalchemy import Engine, text

from geoshare.settings import Settings
from layers.model import LayerInfo, LayerMetadata
from layers.registry import TRUSTED, get_layer, redact
from layers.tiles.budget import TileBudget, gzip_size, is_thinned
from layers.tiles.matrixsets import get_tms
from layers.tiles.mvt import TileRequest, fetch_plain_tile, fetch_tile

CORE = (116.40, 39.90)
CORE_BOX = box(CORE[0] - 0.01, CORE[1] - 0.01, CORE[0] + 0.01, CORE[1] + 0.01)
BUDGET = TileBudget(gzip_bytes=40_000, raw_bytes=120_000)
HIDDEN = frozenset({"证件号"})
N = 6_000


def _frame() -> gpd.GeoDataFrame:
    """Two thirds of the points in a dense core, the rest spread over a ~60 km square."""
    rng = np.random.default_rng(7)
    core = N * 2 // 3
    lon = np.concatenate([rng.normal(CORE[0], 0.003, core), rng.uniform(116.1, 116.7, N - core)])
    lat = np.concatenate([rng.normal(CORE[1], 0.003, core), rng.uniform(39.6, 40.2, N - core)])
    return gpd.GeoDataFrame(
        {
            "编号": np.arange(1, N + 1),
            "名称": [f"企业{i}号有限公司" for i in range(1, N + 1)],
            "类别": [("餐饮", "零售", "制造")[i % 3] for i in range(N)],
            "证件号": [f"1101{i:014d}" for i in range(N)],
        },
        geometry=[Point(x, y) for x, y in zip(lon, lat, strict=True)],
        crs="EPSG:4326",
    )


@pytest.fixture
def dense(db: Engine) -> Engine:
    from geoshare.services.departments import ensure_department
    from layers.publish import publish_frame

    with db.begin() as conn:
        ensure_department(conn, "SCJ", "市场监管局")
        publish_frame(
            conn,
            "firms",
            _frame(),
            LayerMetadata(
                title="企业",
                department="SCJ",
                sharing_class="public",
                key_field="编号",
                restricted_fields=["证件号"],
            ),
        )
    return db


def _layer(engine: Engine) -> LayerInfo:
    with engine.connect() as conn:
        return get_layer(conn, "firms", TRUSTED)


def _view(engine: Engine) -> LayerInfo:
    """The layer as anonymous readers see it, never read from a pyramid."""
    return dataclasses.replace(redact(_layer(engine), HIDDEN), tile_pyramid=None)


def _request(z: int, **kw: object) -> TileRequest:
    t = get_tms("WebMercatorQuad").tile(*CORE, z)
    return TileRequest("WebMercatorQuad", z, t.x, t.y, **kw)  # type: ignore[arg-type]


def _features(data: bytes) -> list[dict]:
    return mapbox_vector_tile.decode(data)["firms"]["features"] if data else []


def _cut(engine: Engine, tile: TileRequest, budget: TileBudget = BUDGET, **kw: object) -> bytes:
    with engine.connect() as conn:
        return fetch_tile(conn, _view(engine), tile, HIDDEN, budget=budget, **kw)  # type: ignore[arg-type]


def _in_core(f: dict, tile: TileRequest) -> bool:
    """Whether a decoded feature (tile coordinates, y up) lies in the core box."""
    tms = get_tms(tile.tms_id)
    b = tms.xy_bounds(tile.x, tile.y, tile.z)
    x, y = f["geometry"]["coordinates"]
    mx = b.left + (b.right - b.left) * x / 4096
    my = b.bottom + (b.top - b.bottom) * y / 4096
    lon, lat = tms.lnglat(mx, my)
    return CORE_BOX.contains(Point(lon, lat))


def test_a_dense_tile_keeps_its_budget_and_its_core(dense: Engine) -> None:
    tile = _request(10)
    data = _cut(dense, tile)
    features = _features(data)
    assert is_thinned(data)
    assert len(data) <= BUDGET.raw_bytes and gzip_size(data) <= BUDGET.gzip_bytes
    assert gzip_size(data) >= 0.8 * BUDGET.gzip_bytes  # the budget is used, not wasted
    core = [f for f in features if _in_core(f, tile)]
    # the core is still the densest part (it holds 0.1% of the tile's area), and the sparse rest
    # keeps most of its points: the densest cells lose most
    assert len(core) >= len(features) // 4
    west, south, east, north = get_tms(tile.tms_id).bounds(tile.x, tile.y, tile.z)
    outside = _frame().cx[west:east, south:north]
    sparse = int((~outside.within(CORE_BOX)).sum())
    assert len(features) - len(core) >= 0.9 * sparse
    dropped = {f["properties"]["gs_dropped"] for f in features}
    assert len(dropped) == 1 and dropped.pop() > 0
    assert all("证件号" not in f["properties"] for f in features)


def test_thinned_tiles_are_the_same_bytes_every_time_and_on_both_drivers(
    dense: Engine, database_url: str
) -> None:
    tile = _request(11)
    first = _cut(dense, tile)
    assert is_thinned(first) and _cut(dense, tile) == first

    async def plain() -> bytes:
        conn = await asyncpg.connect(database_url.replace("postgresql+psycopg://", "postgresql://"))
        try:
            return await fetch_plain_tile(conn, _view(dense), tile, HIDDEN, budget=BUDGET)
        finally:
            await conn.close()

    assert asyncio.run(plain()) == first


def test_tiles_above_the_full_detail_zoom_are_whole(dense: Engine) -> None:
    whole = _cut(dense, _request(17))
    assert not is_thinned(whole)
    assert "gs_dropped" not in _features(whole)[0]["properties"]


def test_filters_and_areas_apply_before_thinning(dense: Engine) -> None:
    tile = _request(10, filter="类别 = '餐饮'", filter_lang="cql2-text")
    features = _features(_cut(dense, tile))
    assert features and {f["properties"]["类别"] for f in features} == {"餐饮"}
    area = shapely.to_wkb(box(116.1, 39.6, 116.4, 40.2))  # the western half only
    with dense.connect() as conn:
        data = fetch_tile(conn, _view(dense), _request(10), HIDDEN, area_wkb=area, budget=BUDGET)
    t = _request(10)
    tms = get_tms(t.tms_id)
    b = tms.xy_bounds(t.x, t.y, t.z)
    for f in _features(data):
        x, _ = f["geometry"]["coordinates"]
        lon, _lat = tms.lnglat(b.left + (b.right - b.left) * x / 4096, b.bottom)
        assert lon <= 116.4 + 1e-6


def test_the_pyramid_stores_the_tile_a_request_cuts(dense: Engine, settings: Settings) -> None:
    from geoshare.services import tile_pyramids

    s = dataclasses.replace(
        settings,
        tile_cache_bytes=0,
        tile_pyramid_min_features=300,
        tile_budget_gzip_bytes=BUDGET.gzip_bytes,
        tile_budget_raw_bytes=BUDGET.raw_bytes,
    )
    pyramid = tile_pyramids.build(dense, s, "firms")
    assert pyramid is not None
    tile = _request(10)
    with dense.connect() as conn:
        stored = conn.execute(
            text(
                f'SELECT mvt FROM layerdata."{pyramid.table}" '
                "WHERE tms = 'WebMercatorQuad' AND z = :z AND x = :x AND y = :y"
            ),
            {"z": tile.z, "x": tile.x, "y": tile.y},
        ).scalar()
        doc = conn.execute(text("SELECT tile_pyramid FROM gs.layer WHERE id = 'firms'")).scalar()
    assert stored is not None and is_thinned(bytes(stored))
    assert bytes(stored) == _cut(dense, tile)
    assert doc["budget"] == [BUDGET.gzip_bytes, BUDGET.raw_bytes]
    full = doc["full_detail_zoom"]["WebMercatorQuad"]
    assert 11 < full <= 17

    with TestClient(_app(s)) as c:
        r = c.get(f"/collections/firms/tiles/WebMercatorQuad/{tile.z}/{tile.y}/{tile.x}")
        assert r.status_code == 200 and r.content == bytes(stored)
        tj = c.get("/collections/firms/tiles/WebMercatorQuad/tilejson.json").json()
        assert tj["fullDetailZoom"] == full and tj["vector_layers"][0]["fullDetailZoom"] == full

    # a pyramid cut under another budget answers nothing: the tile is cut under the reader's
    with dense.connect() as conn:
        layer = redact(get_layer(conn, "firms", TRUSTED), HIDDEN)
        other = TileBudget(gzip_bytes=20_000, raw_bytes=60_000)
        served = fetch_tile(conn, layer, tile, HIDDEN, budget=other)
    assert served != bytes(stored) and served == _cut(dense, tile, other)


def test_full_detail_zoom_without_a_pyramid(dense: Engine, settings: Settings) -> None:
    s = dataclasses.replace(
        settings, tile_budget_gzip_bytes=BUDGET.gzip_bytes, tile_budget_raw_bytes=BUDGET.raw_bytes
    )
    with TestClient(_app(s)) as c:
        tj = c.get("/collections/firms/tiles/WebMercatorQuad/tilejson.json").json()
        assert 11 < tj["fullDetailZoom"] <= 17
    with TestClient(_app(settings)) as c:  # the default budget: nothing here needs thinning
        assert c.get("/collections/firms/tiles/WebMercatorQuad/tilejson.json").json()["fullDetailZoom"] == 0


def _app(s: Settings) -> Iterator[object]:
    from geoshare.api.app import create_app

    return create_app(s)  # type: ignore[return-value]


def test_polygons_below_a_grid_unit_are_drawn_as_dust(db: Engine) -> None:
    """A district of 10 m buildings at z8 (a grid unit is ~38 m): each is still in the tile, as a
    square of about two units, instead of vanishing in ST_AsMVTGeom."""
    from layer_factory import make_layer

    t = get_tms("WebMercatorQuad").tile(116.4, 39.9, 8)
    west, south, east, north = get_tms("WebMercatorQuad").bounds(t)
    rng = np.random.default_rng(3)
    lon = rng.uniform(west + 0.1 * (east - west), east - 0.1 * (east - west), 200)
    lat = rng.uniform(south + 0.1 * (north - south), north - 0.1 * (north - south), 200)
    rows = [
        (box(x, y, x + 0.0001, y + 0.0001), {"名称": f"楼{i}"})
        for i, (x, y) in enumerate(zip(lon, lat, strict=True))
    ]
    make_layer(db, "houses", rows, [("名称", "string")])
    with db.connect() as conn:
        layer = get_layer(conn, "houses", TRUSTED)
        data = fetch_tile(conn, layer, TileRequest("WebMercatorQuad", 8, t.x, t.y))
    features = mapbox_vector_tile.decode(data)["houses"]["features"]
    assert len(features) == 200 and {f["geometry"]["type"] for f in features} == {"Polygon"}
