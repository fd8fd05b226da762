"""Offline packages (PMTiles, MBTiles) and base map seeding into the shared tile store."""

from __future__ import annotations

import gzip
import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import geopandas as gpd
import mapbox_vector_tile
import pytest
from fastapi.testclient import TestClient
from pmtiles.reader import MemorySource, Reader, all_tiles
from shapely.geometry import LineString, Point, box
from sqlalchemy import Engine, text

from geoshare.access.identity import Principal, department_principal
from geoshare.services import offline
from geoshare.settings import Settings
from layers.errors import InvalidInput
from layers.model import LayerMetadata
from layers.publish import publish_frame
from layers.tiles.matrixsets import get_tms

CONFIG = """
[[layers]]
name = "boundary"
source = "pk_districts"
role = "boundary"
properties = ["名称"]
[[layers]]
name = "roads"
source = "pk_roads"
minzoom = 12
role = "road"
label = "名称"
"""
LON, LAT = 116.40, 39.91
BBOX = (LON - 0.01, LAT - 0.01, LON + 0.01, LAT + 0.01)


def _publish(
    engine: Engine, layer_id: str, rows: list[tuple[Any, dict[str, Any]]], cls: str, dept: str
) -> None:
    frame = gpd.GeoDataFrame([r for _, r in rows], geometry=[g for g, _ in rows], crs=4326)
    meta = LayerMetadata(title=layer_id, department=dept, sharing_class=cls)  # type: ignore[arg-type]
    with engine.begin() as conn:
        publish_frame(conn, layer_id, frame, meta, actor="test", source_name="test")


@pytest.fixture
def world(db: Engine, settings: Settings, tmp_path: Path) -> Settings:
    with db.begin() as conn:
        conn.execute(
            text("INSERT INTO gs.department (code, name) VALUES ('IT', 'IT'), ('YJ', '应急'), ('SC', '市场')")
        )
    _publish(
        db,
        "pk_districts",
        [(box(LON - 0.1, LAT - 0.1, LON + 0.1, LAT + 0.1), {"名称": "东城区"})],
        "public",
        "IT",
    )
    _publish(
        db,
        "pk_roads",
        [(LineString([(LON - 0.02, LAT), (LON + 0.02, LAT)]), {"名称": "长安街"})],
        "public",
        "IT",
    )
    sites = [
        (Point(LON + 0.001 * i, LAT + 0.001), {"编号": f"H{i}", "名称": f"危化{i}", "法人证件": f"ID{i}"})
        for i in range(3)
    ]
    _publish(db, "pk_hazards", sites, "restricted", "YJ")
    config = tmp_path / "basemap.toml"
    config.write_text(CONFIG, "utf-8")
    return replace(settings, basemap_config=str(config), tile_store_dir=str(tmp_path / "store"))


def _mbtiles(path: Path) -> dict[tuple[int, int, int], dict[str, Any]]:
    db = sqlite3.connect(path)
    try:
        rows = db.execute("SELECT zoom_level, tile_column, tile_row, tile_data FROM tiles").fetchall()
        meta = dict(db.execute("SELECT name, value FROM metadata").fetchall())
    finally:
        db.close()
    assert meta["format"] == "pbf" and meta["minzoom"] == "10"
    return {(z, x, (1 << z) - 1 - y): mapbox_vector_tile.decode(gzip.decompress(d)) for z, x, y, d in rows}


def _pmtiles(path: Path) -> dict[tuple[int, int, int], dict[str, Any]]:
    source = MemorySource(path.read_bytes())
    header = Reader(source).header()
    assert header["min_zoom"] == 10 and header["max_zoom"] == 14
    return {zxy: mapbox_vector_tile.decode(gzip.decompress(d)) for zxy, d in all_tiles(source)}


@pytest.mark.parametrize("suffix", [".pmtiles", ".mbtiles"])
def test_a_package_holds_the_base_map_and_the_readers_layers(
    world: Settings, db: Engine, tmp_path: Path, suffix: str
) -> None:
    out = tmp_path / f"area{suffix}"
    seen: list[int] = []
    count = offline.build_package(
        db, world, Principal.anonymous(), BBOX, (10, 14), [], out, lambda i, n: seen.append(i)
    )
    tiles = (_pmtiles if suffix == ".pmtiles" else _mbtiles)(out)
    assert len(tiles) == count > 0 and seen[-1] == len(offline.tiles_in(BBOX, (10, 14)))
    assert all("roads" not in t for (z, _, _), t in tiles.items() if z < 12)  # zoom-dependent content
    z14 = [t for (z, _, _), t in tiles.items() if z == 14]
    assert any("roads" in t for t in z14) and all("boundary" in t for t in z14)
    # the restricted layer is not for the anonymous reader
    with pytest.raises(Exception, match="pk_hazards"):
        offline.build_package(db, world, Principal.anonymous(), BBOX, (10, 11), ["pk_hazards"], out)


def test_a_department_package_follows_its_agreement(world: Settings, db: Engine, tmp_path: Path) -> None:
    with db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO gs.agreement (consumer_code, provider_code, purpose, starts_on, ends_on, status)"
                " VALUES ('SC', 'YJ', '巡查', current_date, current_date + 10, 'approved')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO gs.agreement_layer"
                " SELECT max(id), 'pk_hazards', ARRAY['编号', '名称'] FROM gs.agreement"
            )
        )
        who = department_principal(conn, "SC")
    out = tmp_path / "sc.pmtiles"
    offline.build_package(db, world, who, BBOX, (10, 14), ["pk_hazards"], out)
    hazards = [
        f["properties"] for t in _pmtiles(out).values() for f in t.get("pk_hazards", {}).get("features", [])
    ]
    assert hazards and all(set(p) == {"编号", "名称"} for p in hazards)  # 法人证件 was not agreed


def test_seeded_tiles_are_served_from_the_store(world: Settings, db: Engine) -> None:
    from geoshare.api.app import create_app

    rendered, present = offline.seed(db, world, BBOX, (12, 13))
    assert rendered == len(offline.tiles_in(BBOX, (12, 13))) and present == 0
    assert offline.seed(db, world, BBOX, (12, 13)) == (0, rendered)  # a second run finds them all
    t = get_tms("WebMercatorQuad").tile(LON, LAT, 13)
    stored = list(Path(world.tile_store_dir or "").glob(f"basemap/WebMercatorQuad/13/{t.x}/{t.y}/*.mvt"))
    assert len(stored) == 1
    stored[0].write_bytes(b"seeded")  # a marker: only the store can answer with it
    with TestClient(create_app(world)) as client:
        r = client.get(f"/basemap/tiles/WebMercatorQuad/13/{t.y}/{t.x}")
        assert r.status_code == 200 and r.content == b"seeded"
        assert r.headers["etag"].strip('"') == stored[0].stem


@pytest.mark.parametrize(
    ("bbox", "zooms", "field"),
    [
        ("1,2,3", "10-12", "bbox"),
        ("116,39,115,40", "10-12", "bbox"),
        ("116,39,117,40", "12-10", "zooms"),
        ("116,39,117,40", "x", "zooms"),
    ],
)
def test_bad_areas_and_zooms(bbox: str, zooms: str, field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        offline.tiles_in(offline.parse_bbox(bbox), offline.parse_zooms(zooms))
    assert err.value.field == field


def test_cli_package(
    world: Settings, db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    from typer.testing import CliRunner

    from geoshare.cli.main import app
    from geoshare.db.engine import get_engine
    from geoshare.settings import get_settings

    monkeypatch.setenv("GEOSHARE_BASEMAP_CONFIG", world.basemap_config or "")
    get_settings.cache_clear()
    get_engine.cache_clear()
    out = tmp_path / "cli.mbtiles"
    try:
        r = CliRunner().invoke(
            app, ["package", "-o", str(out), "--bbox", ",".join(map(str, BBOX)), "--zooms", "10-12"]
        )
        assert r.exit_code == 0, r.output
        assert f"wrote {out}" in r.output and len(_mbtiles(out)) > 0
        bad = CliRunner().invoke(app, ["package", "-o", str(tmp_path / "x.zip"), "--bbox", "1,2,3,4"])
        assert bad.exit_code != 0 and "pmtiles" in bad.output
    finally:
        get_settings.cache_clear()
        get_engine().dispose()
        get_engine.cache_clear()
