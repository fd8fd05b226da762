"""The base map over HTTP: parts by zoom and class, access rules per part, versions in ETags."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import mapbox_vector_tile
import pytest
from fastapi.testclient import TestClient
from shapely.geometry import LineString, Point, box
from sqlalchemy import Engine, text

from geoshare.settings import Settings
from layers.model import LayerMetadata
from layers.publish import publish_frame
from layers.tiles.matrixsets import get_tms

CONFIG = """
title = "测试底图"
attribution = "测试"
[[layers]]
name = "boundary"
source = "bm_districts"
minzoom = 0
properties = ["名称"]
role = "boundary"
label = "名称"
[[layers]]
name = "roads"
source = "bm_roads"
minzoom = 9
role = "road"
label = "名称"
class_field = "等级"
class_minzoom = { "主干路" = 9, "胡同" = 14 }
[[layers]]
name = "secret_sites"
source = "bm_secret"
minzoom = 9
role = "poi"
properties = ["名称"]
"""
LON, LAT = 116.40, 39.91


def _publish(
    engine: Engine, layer_id: str, rows: list[tuple[Any, dict[str, Any]]], cls: str, kind: str
) -> None:
    frame = gpd.GeoDataFrame([r for _, r in rows], geometry=[g for g, _ in rows], crs=4326)
    meta = LayerMetadata(title=layer_id, department="IT", sharing_class=cls, kind=kind)  # type: ignore[arg-type]
    with engine.begin() as conn:
        publish_frame(conn, layer_id, frame, meta, actor="test", source_name="test")


def _roads(name_suffix: str = "") -> list[tuple[Any, dict[str, Any]]]:
    return [
        (
            LineString([(LON - 0.01, LAT), (LON + 0.01, LAT)]),
            {"名称": f"长安街{name_suffix}", "等级": "主干路"},
        ),
        (LineString([(LON, LAT - 0.002), (LON, LAT + 0.002)]), {"名称": "南锣鼓巷", "等级": "胡同"}),
    ]


@pytest.fixture
def bm(db: Engine, settings: Settings, tmp_path: Path) -> Iterator[TestClient]:
    from dataclasses import replace

    from geoshare.api.app import create_app

    with db.begin() as conn:
        conn.execute(
            text("INSERT INTO gs.department (code, name) VALUES ('IT', '政务数据局'), ('SEC', '安全')")
        )
    _publish(
        db,
        "bm_districts",
        [(box(LON - 0.1, LAT - 0.1, LON + 0.1, LAT + 0.1), {"名称": "东城区", "代码": "110101"})],
        "public",
        "base",
    )
    _publish(db, "bm_roads", _roads(), "public", "base")
    _publish(db, "bm_secret", [(Point(LON, LAT), {"名称": "机要站", "编号": "S1"})], "restricted", "thematic")
    path = tmp_path / "basemap.toml"
    path.write_text(CONFIG, "utf-8")
    with TestClient(create_app(replace(settings, basemap_config=str(path)))) as client:
        yield client


def _tile(client: TestClient, z: int, tms: str = "WebMercatorQuad", **kw: Any) -> Any:
    t = get_tms(tms).tile(LON, LAT, z)
    return client.get(f"/basemap/tiles/{tms}/{t.z}/{t.y}/{t.x}", **kw)


def _decode(r: Any) -> dict[str, list[dict[str, Any]]]:
    assert r.status_code == 200, r.text
    return {
        k: [f["properties"] for f in v["features"]] for k, v in mapbox_vector_tile.decode(r.content).items()
    }


def test_parts_by_zoom_and_class(bm: TestClient) -> None:
    assert set(_decode(_tile(bm, 8))) == {"boundary"}  # roads start at z9
    z9 = _decode(_tile(bm, 9))
    assert [p["名称"] for p in z9["roads"]] == ["长安街"]  # alleys only from z14
    assert z9["boundary"] == [{"名称": "东城区"}]  # configured properties only (代码 is not)
    z14 = _decode(_tile(bm, 14))
    assert sorted(p["名称"] for p in z14["roads"]) == ["南锣鼓巷", "长安街"]
    assert set(z14["roads"][0]) == {"名称", "等级"}  # label and class field ride along
    cgcs = _decode(_tile(bm, 14, "CGCS2000Quad"))
    assert sorted(p["名称"] for p in cgcs["roads"]) == ["南锣鼓巷", "长安街"]


def test_a_part_the_reader_may_not_see_is_left_out(bm: TestClient, key_headers: Any) -> None:
    assert "secret_sites" not in _decode(_tile(bm, 12))
    owner = _decode(_tile(bm, 12, headers=key_headers("IT", "consumer")))
    assert owner["secret_sites"] == [{"名称": "机要站"}]
    other = _decode(_tile(bm, 12, headers=key_headers("SEC", "consumer")))
    assert "secret_sites" not in other
    assert [
        v["id"] for v in bm.get("/basemap/tiles/WebMercatorQuad/tilejson.json").json()["vector_layers"]
    ] == [
        "boundary",
        "roads",
    ]


def test_a_new_version_changes_etag_and_content(bm: TestClient, db: Engine) -> None:
    first = _tile(bm, 12)
    etag = first.headers["etag"]
    assert _tile(bm, 12, headers={"If-None-Match": etag}).status_code == 304
    _publish(db, "bm_roads", _roads("（新）"), "public", "base")
    bm.app.state.layer_cache.sync()  # type: ignore[attr-defined]
    second = _tile(bm, 12, headers={"If-None-Match": etag})
    assert second.status_code == 200 and second.headers["etag"] != etag
    assert [p["名称"] for p in _decode(second)["roads"]] == ["长安街（新）"]
    url = bm.get("/basemap/tiles/WebMercatorQuad/tilejson.json").json()["tiles"][0]
    versioned = bm.get(url.replace("{z}/{y}/{x}", "12/0/0").replace("http://testserver", ""))
    assert "immutable" in versioned.headers["cache-control"]


def test_styles_and_errors(bm: TestClient) -> None:
    for variant in ("light", "dark"):
        style = bm.get("/basemap/style.json", params={"variant": variant}).json()
        assert style["version"] == 8 and style["sources"]["basemap"]["url"].endswith("tilejson.json")
        assert {"boundary", "roads", "secret_sites"} <= {x.get("source-layer") for x in style["layers"]}
    keyed = bm.get("/basemap/style.json", params={"key": "gsk_abcdefgh_x"}).json()
    assert "key=gsk_abcdefgh_x" in keyed["sources"]["basemap"]["url"]
    bad = bm.get("/basemap/style.json", params={"variant": "neon"})
    assert bad.status_code == 400 and bad.json()["field"] == "variant"
    assert bm.get("/basemap/tiles/WebMercatorQuad/3/99/0").status_code == 404
    assert bm.get("/basemap/tiles/Nope/3/0/0").json()["field"] == "tileMatrixSetId"
    assert bm.get("/basemap/tiles/WebMercatorQuad/3/0/0", params={"zz": 1}).json()["field"] == "zz"
