"""Dense-tile pyramids: which tiles are pre-rendered, that a request reads them only when they are
exactly its tile, and that a new version never sees the old version's tiles."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import geopandas as gpd
import mapbox_vector_tile
import morecantile
import numpy as np
import pytest
from fastapi.testclient import TestClient
from shapely.geometry import Point
from sqlalchemy import Engine, select, text

from geoshare.settings import Settings
from layers.model import LayerMetadata

MVT = "application/vnd.mapbox-vector-tile"
CLUSTER = (116.40, 39.90)
MIN_FEATURES = 300


def _frame(n: int, seed: int, spread: float = 0.004) -> gpd.GeoDataFrame:
    """``n`` points: most in a tight cluster (dense tiles down to z14 or so), the rest scattered."""
    rng = np.random.default_rng(seed)
    dense = int(n * 0.8)
    lon = np.concatenate([rng.normal(CLUSTER[0], spread, dense), rng.uniform(116.0, 116.8, n - dense)])
    lat = np.concatenate([rng.normal(CLUSTER[1], spread, dense), rng.uniform(39.6, 40.2, n - dense)])
    return gpd.GeoDataFrame(
        {
            "编号": np.arange(1, n + 1),
            "名称": [f"企业{i}" for i in range(1, n + 1)],
            "法人证件": [f"ID{seed}-{i}" for i in range(1, n + 1)],
        },
        geometry=[Point(x, y) for x, y in zip(lon, lat, strict=True)],
        crs="EPSG:4326",
    )


def _settings(settings: Settings, **kw: object) -> Settings:
    from dataclasses import replace

    return replace(
        settings,
        tile_cache_bytes=0,
        tile_pyramid_min_features=MIN_FEATURES,
        tile_pyramid_tms=("WebMercatorQuad", "CGCS2000Quad"),
        **kw,  # type: ignore[arg-type]
    )


def _publish(engine: Engine, frame: gpd.GeoDataFrame, settings: Settings) -> int:
    from geoshare.services import publishing
    from geoshare.services.departments import ensure_department
    from layers.publish import publish_frame

    with engine.begin() as conn:
        ensure_department(conn, "SCJ", "市场监管局")
        result = publish_frame(
            conn,
            "firms",
            frame,
            LayerMetadata(
                title="企业",
                department="SCJ",
                sharing_class="public",
                key_field="编号",
                restricted_fields=["法人证件"],
            ),
        )
    publishing.prune(engine, settings, "firms")
    return result.version


def _pyramid_doc(engine: Engine) -> dict | None:
    with engine.connect() as conn:
        return conn.execute(text("SELECT tile_pyramid FROM gs.layer WHERE id = 'firms'")).scalar()


def _tables(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        sql = text("SELECT tablename FROM pg_tables WHERE schemaname = 'layerdata'")
        return set(conn.execute(sql).scalars())


@pytest.fixture
def built(db: Engine, settings: Settings) -> tuple[Settings, gpd.GeoDataFrame]:
    from geoshare.services import tile_pyramids

    s = _settings(settings)
    frame = _frame(2_000, seed=1)
    _publish(db, frame, s)
    assert tile_pyramids.build(db, s, "firms") is not None
    return s, frame


@pytest.fixture
def tc(built: tuple[Settings, gpd.GeoDataFrame]) -> Iterator[TestClient]:
    from geoshare.api.app import create_app

    with TestClient(create_app(built[0])) as c:
        yield c


def _tile_of(tms_id: str, lon: float, lat: float, z: int) -> tuple[int, int]:
    from layers.tiles.matrixsets import get_tms

    t = get_tms(tms_id).tile(lon, lat, z)
    return t.y, t.x


def test_dense_tiles_are_those_holding_enough_points(
    db: Engine, built: tuple[Settings, gpd.GeoDataFrame]
) -> None:
    from layers.registry import get_layer
    from layers.tiles.pyramid_build import dense_tiles

    _, frame = built
    mercator = morecantile.tms.get("WebMercatorQuad")
    with db.connect() as conn:
        layer = get_layer(conn, "firms")
        found = dense_tiles(conn, layer, "WebMercatorQuad", 16, MIN_FEATURES)
    for z in (8, 12, 14, 16):
        counts: dict[tuple[int, int], int] = {}
        for p in frame.geometry:
            t = mercator.tile(p.x, p.y, z)
            counts[(t.x, t.y)] = counts.get((t.x, t.y), 0) + 1
        expected = {k for k, n in counts.items() if n >= MIN_FEATURES}
        assert {(c, r) for zz, c, r, _ in found if zz == z} == expected
    assert all(n >= MIN_FEATURES for *_, n in found)


def test_pyramid_registered_without_restricted_fields(
    db: Engine, built: tuple[Settings, gpd.GeoDataFrame]
) -> None:
    doc = _pyramid_doc(db)
    assert doc is not None and doc["version"] == 1 and doc["tiles"] > 0
    assert doc["attributes"] == ["编号", "名称"]  # what anonymous readers see of a public layer
    assert set(doc["tms_ids"]) == {"WebMercatorQuad", "CGCS2000Quad"}
    assert doc["table"] in _tables(db)


@pytest.mark.parametrize("tms_id", ["WebMercatorQuad", "CGCS2000Quad"])
def test_stored_tile_is_the_cut_tile(db: Engine, tc: TestClient, tms_id: str) -> None:
    """Bytes served from the pyramid equal the tile cut from the data for the same reader."""
    from layers.registry import get_layer, redact
    from layers.tiles.mvt import TileRequest, mvt_expression

    z = 13
    row, col = _tile_of(tms_id, *CLUSTER, z)
    with db.connect() as conn:
        layer = get_layer(conn, "firms")
        stored = conn.execute(
            text(
                f'SELECT mvt FROM layerdata."{layer.tile_pyramid.table}" '
                "WHERE tms = :t AND z = :z AND x = :x AND y = :y"
            ),
            {"t": tms_id, "z": z, "x": col, "y": row},
        ).scalar()
        hidden = frozenset({"法人证件"})
        cut = conn.execute(
            select(mvt_expression(redact(layer, hidden), TileRequest(tms_id, z, col, row), hidden))
        ).scalar()
    assert stored is not None
    # the same features, geometries and properties (row order is the scan's, as for any cut tile)
    assert _features(bytes(stored)) == _features(bytes(cut))
    r = tc.get(f"/collections/firms/tiles/{tms_id}/{z}/{row}/{col}")
    assert r.status_code == 200 and r.content == bytes(stored)
    features = mapbox_vector_tile.decode(r.content)["firms"]["features"]
    assert len(features) >= MIN_FEATURES
    assert all("法人证件" not in f["properties"] for f in features)


def _features(tile: bytes) -> list[tuple[int, str, str]]:
    decoded = mapbox_vector_tile.decode(tile)["firms"]["features"]
    return sorted((f["id"], str(f["geometry"]), json.dumps(f["properties"], sort_keys=True)) for f in decoded)


def _tamper(db: Engine, tms_id: str, z: int, row: int, col: int) -> bytes:
    """Overwrite one stored tile with a marker: a response carrying it came from the pyramid."""
    marker = b"\x1a\x00stored-tile-marker"
    with db.begin() as conn:
        table = conn.execute(text("SELECT tile_pyramid->>'table' FROM gs.layer WHERE id = 'firms'")).scalar()
        updated = conn.execute(
            text(f'UPDATE layerdata."{table}" SET mvt = :m WHERE tms = :t AND z = :z AND x = :x AND y = :y'),
            {"m": marker, "t": tms_id, "z": z, "x": col, "y": row},
        ).rowcount
    assert updated == 1
    return marker


def test_only_requests_cut_like_the_pyramid_read_it(db: Engine, tc: TestClient, key_headers) -> None:  # noqa: ANN001
    z = 12
    row, col = _tile_of("WebMercatorQuad", *CLUSTER, z)
    marker = _tamper(db, "WebMercatorQuad", z, row, col)
    url = f"/collections/firms/tiles/WebMercatorQuad/{z}/{row}/{col}"
    assert tc.get(url).content == marker  # anonymous: the pyramid's reader
    assert tc.get(url, params={"properties": "编号,名称"}).content == marker  # the same attributes, spelt out
    # different tiles: another attribute order, a subset, a filter, the owner (sees the restricted field)
    for params, headers in (
        ({"properties": "名称,编号"}, {}),
        ({"properties": "名称"}, {}),
        ({"filter": "编号 > 0"}, {}),
        ({}, key_headers("SCJ", "consumer")),
    ):
        r = tc.get(url, params=params, headers=headers)
        assert r.status_code == 200 and r.content != marker, (params, headers)
        assert mapbox_vector_tile.decode(r.content)["firms"]["features"]
    owner = mapbox_vector_tile.decode(tc.get(url, headers=key_headers("SCJ", "consumer")).content)
    assert "法人证件" in owner["firms"]["features"][0]["properties"]
    # a light tile is cut on request as before
    far_row, far_col = _tile_of("WebMercatorQuad", 116.75, 39.65, 14)
    light = tc.get(f"/collections/firms/tiles/WebMercatorQuad/14/{far_row}/{far_col}")
    assert light.status_code == 200


def test_new_version_drops_the_old_pyramid(
    db: Engine, built: tuple[Settings, gpd.GeoDataFrame], tc: TestClient
) -> None:
    s, _ = built
    old_table = _pyramid_doc(db)["table"]
    z = 12
    row, col = _tile_of("WebMercatorQuad", *CLUSTER, z)
    _tamper(db, "WebMercatorQuad", z, row, col)
    _publish(db, _frame(2_000, seed=2), s)
    assert _pyramid_doc(db) is None
    assert old_table not in _tables(db)  # pruned with the publish: only the current version's is read
    r = tc.get(f"/collections/firms/tiles/WebMercatorQuad/{z}/{row}/{col}")
    names = {f["properties"]["名称"] for f in mapbox_vector_tile.decode(r.content)["firms"]["features"]}
    assert names and all(n.startswith("企业") for n in names)  # cut from version 2, not the marker


def test_http_publish_renders_in_the_background(db: Engine, settings: Settings, key_headers) -> None:  # noqa: ANN001
    from geoshare.api.app import create_app

    s = _settings(settings)
    headers = key_headers("SCJ")
    frame = _frame(1_500, seed=3)
    body = frame.to_json().encode()
    with TestClient(create_app(s)) as c:
        meta = {"id": "firms", "title": "企业", "department": "SCJ", "class": "public"}
        r = c.post(
            "/layers",
            files={"file": ("firms.geojson", body)},
            data={"metadata": json.dumps(meta)},
            headers=headers,
        )
        assert r.status_code == 201, r.text
        assert r.json()["dense_tiles"] == "rendering"
        deadline = time.time() + 30
        while _pyramid_doc(db) is None and time.time() < deadline:
            time.sleep(0.2)
    doc = _pyramid_doc(db)
    assert doc is not None and doc["version"] == 1 and doc["tiles"] > 0


def test_small_layers_get_no_pyramid(db: Engine, settings: Settings) -> None:
    from geoshare.services import tile_pyramids

    s = _settings(settings)
    _publish(db, _frame(MIN_FEATURES - 1, seed=4), s)
    assert tile_pyramids.build(db, s, "firms") is None
    assert _pyramid_doc(db) is None
    assert not any(t.endswith("_tiles") for t in _tables(db))
