"""Raster tiles drawn with Mapnik: decoded images, labels, access rules, caching, both grids."""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import geopandas as gpd
import mapbox_vector_tile
import numpy as np
import pytest
import shapely
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image
from shapely.geometry import LineString, Point, box
from sqlalchemy import Engine, text

from geoshare.settings import Settings
from layers.model import LayerMetadata
from layers.publish import publish_frame
from layers.registry import get_layer
from layers.render.features import Source, TileBox
from layers.render.fonts import CJK_PREFERRED, label_faces
from layers.render.tiles import render_layer_tile
from layers.tiles.matrixsets import get_tms

LON, LAT = 116.3946, 39.9139  # the middle of a level-15 Web Mercator tile
FAR_LON, FAR_LAT = 100.0, 30.0  # no data there
DOT = (116.4127, 39.8911)  # a lone point
BASEMAP = """
title = "测试底图"
attribution = "测试"
[[layers]]
name = "districts"
source = "r_districts"
minzoom = 0
role = "boundary"
{district_label}
[[layers]]
name = "roads"
source = "r_roads"
minzoom = 9
role = "road"
label = "名称"
label_minzoom = 13
class_field = "等级"
class_minzoom = {{ "主干路" = 9, "胡同" = 14 }}
[[layers]]
name = "sites"
source = "r_sites"
minzoom = 12
role = "poi"
{site_label}
"""


def publish(engine: Engine, layer_id: str, rows: list[tuple[Any, dict[str, Any]]], **meta: Any) -> None:
    frame = gpd.GeoDataFrame([r for _, r in rows], geometry=[g for g, _ in rows], crs=4326)
    values: dict[str, Any] = {"title": layer_id, "department": "IT", "sharing_class": "public"} | meta
    with engine.begin() as conn:
        publish_frame(conn, layer_id, frame, LayerMetadata(**values), actor="test", source_name="test")


def districts(name: str = "东城区") -> list[tuple[Any, dict[str, Any]]]:
    return [(box(LON - 0.1, LAT - 0.1, LON + 0.1, LAT + 0.1), {"名称": name})]


def _included(app: FastAPI, router: Any) -> bool:
    """Whether app.py already includes ``router`` (FastAPI >= 0.165 keeps included routers whole)."""
    if any(getattr(r, "original_router", None) is router for r in app.router.routes):
        return True
    paths = {getattr(r, "path", None) for r in app.router.routes}
    return any(getattr(r, "path", None) in paths for r in router.routes)


def add_raster_routes(app: FastAPI) -> FastAPI:
    """Put the raster and WMTS routers ahead of the vector tile routes, as app.py must (until it
    registers them), and the imagery router if app.py lacks it."""
    from geoshare.api.routes import imagery, raster, wmts

    if not _included(app, raster.router):
        before = list(app.router.routes)
        app.include_router(raster.router)
        app.include_router(wmts.router)
        added = app.router.routes[len(before) :]
        app.router.routes[:] = added + before
    if not _included(app, imagery.router):
        app.include_router(imagery.router)
    return app


def make_client(settings: Settings, config: Path | None = None) -> TestClient:
    from geoshare.api.app import create_app

    changed = replace(settings, basemap_config=str(config)) if config else settings
    return TestClient(add_raster_routes(create_app(changed)))


@pytest.fixture
def city(db: Engine) -> Engine:
    """Base layers (a district, two roads, sites with a restricted name) and two thematic layers."""
    with db.begin() as conn:
        conn.execute(
            text("INSERT INTO gs.department (code, name) VALUES ('IT', '政务数据局'), ('SEC', '安全')")
        )
    publish(db, "r_districts", districts(), kind="base")
    roads = [
        (LineString([(LON - 0.05, LAT), (LON + 0.05, LAT)]), {"名称": "长安街", "等级": "主干路"}),
        (LineString([(LON, LAT - 0.01), (LON, LAT + 0.01)]), {"名称": "南锣鼓巷", "等级": "胡同"}),
    ]
    publish(db, "r_roads", roads, kind="base")
    sites = [(Point(LON + 0.003, LAT - 0.003), {"名称": "机要站", "编号": "S1"})]
    publish(db, "r_sites", sites, kind="base", restricted_fields=["名称"])
    parks = [
        (box(LON - 0.004, LAT - 0.004, LON + 0.004, LAT + 0.004), {"类型": "公园"}),
        (LineString([(LON - 0.01, LAT + 0.002), (LON + 0.01, LAT + 0.002)]), {"类型": "绿道"}),
        (Point(LON + 0.006, LAT + 0.003), {"类型": "入口"}),
    ]
    publish(db, "r_parks", parks)
    publish(db, "r_secret", [(Point(LON, LAT), {"名称": "机要"})], sharing_class="restricted")
    publish(db, "r_dot", [(Point(*DOT), {"名称": "点"})])
    return db


def write_config(path: Path, district_label: bool = True, site_label: bool = True) -> Path:
    path.write_text(
        BASEMAP.format(
            district_label='label = "名称"\nlabel_minzoom = 8' if district_label else "",
            site_label='label = "名称"' if site_label else "",
        ),
        "utf-8",
    )
    return path


@pytest.fixture
def client(city: Engine, settings: Settings, tmp_path: Path) -> Iterator[TestClient]:
    with make_client(settings, write_config(tmp_path / "basemap.toml")) as c:
        yield c


def tile_path(
    prefix: str, lon: float, lat: float, z: int, tms: str = "WebMercatorQuad", fmt: str = "png"
) -> str:
    t = get_tms(tms).tile(lon, lat, z)
    return f"{prefix}/tiles/{tms}/{t.z}/{t.y}/{t.x}.{fmt}"


def rgba(r: Any, fmt: str = "png") -> np.ndarray:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == f"image/{fmt}"
    image = Image.open(io.BytesIO(r.content))
    assert image.format == fmt.upper() and image.size == (256, 256)
    return np.asarray(image.convert("RGBA")).astype(int)


def changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pixels that differ noticeably (lossy WebP wobbles by a few levels)."""
    return np.abs(a - b).max(axis=2) > 24


# -- a layer ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["png", "webp"])
@pytest.mark.parametrize("tms", ["WebMercatorQuad", "CGCS2000Quad"])
def test_layer_tile_is_drawn_where_data_is_and_transparent_elsewhere(
    client: TestClient, fmt: str, tms: str
) -> None:
    pixels = rgba(client.get(tile_path("/collections/r_parks", LON, LAT, 15, tms, fmt)), fmt)
    opaque = pixels[..., 3] > 0
    assert 0.02 < opaque.mean() < 0.9  # the park, the path, the entrance; the rest see-through
    assert (pixels[opaque][:, 2] > pixels[opaque][:, 0]).mean() > 0.9  # the default blue
    empty = rgba(client.get(tile_path("/collections/r_parks", FAR_LON, FAR_LAT, 15, tms, fmt)), fmt)
    assert (empty[..., 3] == 0).all()


def test_filter_and_vector_suffix(client: TestClient) -> None:
    path = tile_path("/collections/r_parks", LON, LAT, 15)
    everything = rgba(client.get(path))[..., 3] > 0
    only_park = rgba(client.get(path, params={"filter": "类型 = '公园'"}))[..., 3] > 0
    assert 0 < only_park.sum() < everything.sum() and not (only_park & ~everything).any()
    assert (rgba(client.get(path, params={"filter": "类型 = '无'"}))[..., 3] == 0).all()
    bad = client.get(path, params={"filter": "无此字段 = 1"})
    assert bad.status_code == 400 and bad.json()["field"] == "filter"

    mvt = client.get(path.removesuffix(".png") + ".mvt")
    plain = client.get(path.removesuffix(".png"))
    assert mvt.status_code == 200 and mvt.content == plain.content
    kinds = {f["properties"]["类型"] for f in mapbox_vector_tile.decode(mvt.content)["r_parks"]["features"]}
    assert {"公园", "绿道"} <= kinds


def test_unreadable_layer_is_not_found_and_owner_sees_it(
    client: TestClient, key_headers: Callable[..., dict[str, str]]
) -> None:
    path = tile_path("/collections/r_secret", LON, LAT, 14)
    unknown = client.get(path.replace("r_secret", "r_nope"))
    hidden = client.get(path)
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.json()["detail"] == unknown.json()["detail"].replace("r_nope", "r_secret")
    assert client.get(path, headers=key_headers("SEC", "consumer")).status_code == 404
    owner = rgba(client.get(path, headers=key_headers("IT", "consumer")))
    assert (owner[..., 3] > 0).any()


def pixel(tms: str, z: int, lon: float, lat: float) -> tuple[float, float]:
    """Where (lon, lat) falls in its tile, as (row, column) pixels."""
    matrix_set = get_tms(tms)
    t = matrix_set.tile(lon, lat, z)
    b = matrix_set.xy_bounds(t)
    x, y = matrix_set.xy(lon, lat)
    return (b.top - y) / (b.top - b.bottom) * 256, (x - b.left) / (b.right - b.left) * 256


def test_area_limit_keeps_rows_outside_out(city: Engine) -> None:
    entrance = (LON + 0.006, LAT + 0.003)
    t = get_tms("WebMercatorQuad").tile(*entrance, 14)
    tile = TileBox("WebMercatorQuad", 14, t.x, t.y)
    around = shapely.to_wkb(
        box(entrance[0] - 0.0005, entrance[1] - 0.0005, entrance[0] + 0.0005, entrance[1] + 0.0005)
    )
    with city.connect() as conn:
        layer = get_layer(conn, "r_parks")
        whole = render_layer_tile(conn, Source(layer), tile, "png", 100)
        limited = render_layer_tile(conn, Source(layer, area=around), tile, "png", 100)
    whole_drawn = np.asarray(Image.open(io.BytesIO(whole)).convert("RGBA"))[..., 3] > 0
    drawn = np.asarray(Image.open(io.BytesIO(limited)).convert("RGBA"))[..., 3] > 0
    assert 0 < drawn.sum() < whole_drawn.sum() / 4
    rows, cols = np.nonzero(drawn)
    row, col = pixel("WebMercatorQuad", 14, *entrance)
    assert np.hypot(rows - row, cols - col).max() < 8  # only the entrance's dot


def test_caching_etag_and_versions(client: TestClient, city: Engine) -> None:
    path = tile_path("/collections/r_parks", LON, LAT, 15)
    first = client.get(path)
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "no-cache" and "X-API-Key" in first.headers["vary"]
    assert client.get(path, headers={"If-None-Match": etag}).status_code == 304
    webp = client.get(path.replace(".png", ".webp")).headers["etag"]
    vector = client.get(path.removesuffix(".png")).headers["etag"]
    assert len({etag, webp, vector}) == 3
    assert "immutable" in client.get(path, params={"v": "1"}).headers["cache-control"]
    assert "immutable" not in client.get(path, params={"v": "2"}).headers["cache-control"]

    publish(city, "r_parks", [(box(LON - 0.001, LAT - 0.001, LON + 0.001, LAT + 0.001), {"类型": "小"})])
    client.app.state.layer_cache.sync()  # type: ignore[attr-defined]
    second = client.get(path, headers={"If-None-Match": etag})
    assert second.status_code == 200 and second.headers["etag"] != etag
    assert (rgba(second)[..., 3] > 0).sum() < (rgba(first)[..., 3] > 0).sum()
    assert "immutable" in client.get(path, params={"v": "2"}).headers["cache-control"]


def test_bad_requests_are_problems(client: TestClient) -> None:
    path = tile_path("/collections/r_parks", LON, LAT, 15)
    cases = {
        path.replace(".png", ".gif"): (400, "format"),
        path.replace("/WebMercatorQuad/", "/Nope/"): (404, "tileMatrixSetId"),
        "/collections/r_parks/tiles/WebMercatorQuad/3/99/0.png": (404, "tileRow"),
        "/collections/r_parks/tiles/WebMercatorQuad/3/x/0.png": (400, "tileRow"),
        f"{path}?zz=1": (400, "zz"),
        f"{path}?v=latest": (400, "v"),
        "/basemap/tiles/WebMercatorQuad/12/0/0.png?variant=neon": (400, "variant"),
        "/basemap/tiles/CGCS2000Quad/0/0/0.png": (404, "tileMatrix"),
    }
    for url, (status, field) in cases.items():
        r = client.get(url)
        assert r.status_code == status, (url, r.text)
        assert r.headers["content-type"] == "application/problem+json" and r.json()["field"] == field


# -- the base map -----------------------------------------------------------------------------------


def test_a_cjk_font_is_found() -> None:
    faces = label_faces()
    assert faces and (faces[0] in CJK_PREFERRED or "CJK" in faces[0]), (
        f"no CJK font found ({faces}); install fonts-noto-cjk or fonts-wqy-microhei"
    )


@pytest.mark.parametrize("variant", ["light", "dark"])
def test_basemap_draws_parts_on_the_palette_background(client: TestClient, variant: str) -> None:
    from layers.basemap.style import PALETTES

    background = tuple(int(PALETTES[variant]["background"][i : i + 2], 16) for i in (1, 3, 5))
    empty = rgba(client.get(tile_path("/basemap", FAR_LON, FAR_LAT, 12), params={"variant": variant}))
    assert (empty[..., 3] == 255).all()
    assert (np.abs(empty[..., :3] - background).max(axis=2) <= 3).all()  # nothing but background
    drawn = rgba(client.get(tile_path("/basemap", LON, LAT, 14), params={"variant": variant}))
    assert (np.abs(drawn[..., :3] - background).max(axis=2) > 24).mean() > 0.01
    webp = rgba(
        client.get(tile_path("/basemap", LON, LAT, 14, fmt="webp"), params={"variant": variant}), "webp"
    )
    assert changed(webp, drawn).mean() < 0.05  # the same picture


def test_chinese_labels_are_drawn(
    client: TestClient, city: Engine, settings: Settings, tmp_path: Path
) -> None:
    path = tile_path("/basemap", LON, LAT, 12)  # district label; roads unlabelled below z13
    labelled = rgba(client.get(path))
    with make_client(settings, write_config(tmp_path / "plain.toml", district_label=False)) as plain:
        unlabelled = rgba(plain.get(path))
    text_pixels = changed(labelled, unlabelled)
    assert 0.001 < text_pixels.mean() < 0.1
    rows, cols = np.nonzero(text_pixels)
    row, col = pixel("WebMercatorQuad", 12, LON, LAT)  # the district's point on surface
    assert abs(rows.mean() - row) < 24 and abs(cols.mean() - col) < 48

    publish(city, "r_districts", districts("西城区"), kind="base")  # other glyphs, same geometry
    client.app.state.layer_cache.sync()  # type: ignore[attr-defined]
    renamed = rgba(client.get(path))
    differs = changed(renamed, labelled)
    assert differs.any(), "two different names drew the same pixels: the glyphs are missing boxes"
    d_rows, d_cols = np.nonzero(differs)  # only the label changed
    assert rows.min() - 4 <= d_rows.min() and d_rows.max() <= rows.max() + 4
    assert cols.min() - 4 <= d_cols.min() and d_cols.max() <= cols.max() + 4


def test_hidden_field_is_never_a_label(
    client: TestClient, settings: Settings, tmp_path: Path, key_headers: Callable[..., dict[str, str]]
) -> None:
    path = tile_path("/basemap", LON + 0.003, LAT - 0.003, 16)
    anonymous = rgba(client.get(path))
    owner = rgba(client.get(path, headers=key_headers("IT", "consumer")))
    with make_client(settings, write_config(tmp_path / "nosite.toml", site_label=False)) as plain:
        without_label = rgba(plain.get(path))
    assert changed(owner, anonymous).any()  # the owner sees the site's name
    assert not changed(anonymous, without_label).any()  # the anonymous reader: the dot, no name


def test_basemap_caching(client: TestClient) -> None:
    path = tile_path("/basemap", LON, LAT, 14)
    first = client.get(path)
    etag = first.headers["etag"]
    assert client.get(path, headers={"If-None-Match": etag}).status_code == 304
    dark = client.get(path, params={"variant": "dark"}).headers["etag"]
    vector = client.get(path.removesuffix(".png")).headers["etag"]
    assert len({etag, dark, vector}) == 3
    assert (
        client.get(path.removesuffix(".png") + ".pbf").content
        == client.get(path.removesuffix(".png")).content
    )
    versions = ".".join(["1", "1", "1"])
    assert "immutable" in client.get(path, params={"v": versions}).headers["cache-control"]


# -- both grids -----------------------------------------------------------------------------------


def _dot_lonlat(
    pixels: np.ndarray, bounds: tuple[float, float, float, float], mercator: bool
) -> tuple[float, float]:
    """The centre of the drawn pixels, as lon/lat."""
    rows, cols = np.nonzero(pixels[..., 3] > 0)
    minx, miny, maxx, maxy = bounds
    x = minx + (cols.mean() + 0.5) / 256 * (maxx - minx)
    y = maxy - (rows.mean() + 0.5) / 256 * (maxy - miny)
    if not mercator:
        return x, y
    r = 6378137.0
    return math.degrees(x / r), math.degrees(math.atan(math.sinh(y / r)))


@pytest.mark.parametrize(
    ("tms", "z"),
    [("WebMercatorQuad", 16), ("TianDiTuWebMercator", 16), ("CGCS2000Quad", 16), ("WorldCRS84Quad", 15)],
)
def test_grids_put_the_same_point_on_the_same_ground(client: TestClient, tms: str, z: int) -> None:
    lon, lat = DOT
    matrix_set = get_tms(tms)
    t = matrix_set.tile(lon, lat, z)
    pixels = rgba(client.get(f"/collections/r_dot/tiles/{tms}/{t.z}/{t.y}/{t.x}.png"))
    b = matrix_set.xy_bounds(t)
    got = _dot_lonlat(pixels, (b.left, b.bottom, b.right, b.top), "Mercator" in tms)
    pixel_degrees = (b.right - b.left) / 256 if "Mercator" not in tms else 360 / 2**z / 256
    assert abs(got[0] - lon) < 1.5 * pixel_degrees and abs(got[1] - lat) < 1.5 * pixel_degrees
