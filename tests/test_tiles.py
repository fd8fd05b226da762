"""Vector tiles over HTTP: tile matrix sets, tileset documents, MVT contents in both grids, access,
caching and errors. Tiles are decoded and checked against positions computed here from the input."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import mapbox_vector_tile
import morecantile
import numpy as np
import pytest
from fastapi.testclient import TestClient
from layer_factory import make_layer
from shapely.geometry import LineString, Point, box
from sqlalchemy import Engine, text

from geoshare.settings import Settings

MVT = "application/vnd.mapbox-vector-tile"
CENTRE = (116.41, 39.87)  # inside the same z12 tile of WebMercatorQuad and of CGCS2000Quad
N = 240


def _app_client(settings: Settings) -> TestClient:
    from geoshare.api.app import create_app

    return TestClient(create_app(settings))


@pytest.fixture
def tc(db: Engine, settings: Settings) -> Iterator[TestClient]:
    with _app_client(settings) as c:
        yield c


def _poi_rows() -> list[tuple[Point, dict[str, Any]]]:
    rng = np.random.default_rng(8)
    lon = rng.uniform(116.30, 116.50, N)
    lat = rng.uniform(39.80, 39.95, N)
    return [
        (Point(float(x), float(y)), {"名称": f"点{i}", "等级": i % 5, "密级": f"秘{i}"})
        for i, (x, y) in enumerate(zip(lon, lat, strict=True), start=1)
    ]


@pytest.fixture
def poi(db: Engine) -> list[tuple[Point, dict[str, Any]]]:
    rows = _poi_rows()
    make_layer(db, "poi", rows, [("名称", "string"), ("等级", "integer"), ("密级", "string")])
    with db.begin() as conn:
        conn.execute(text("UPDATE gs.layer SET restricted_fields = ARRAY['密级'] WHERE id = 'poi'"))
    return rows


def _tms(tms_id: str) -> morecantile.TileMatrixSet:
    from layers.tiles.matrixsets import get_tms

    return get_tms(tms_id)


def _tile_of(tms_id: str, lon: float, lat: float, z: int) -> tuple[int, int]:
    """(row, col) of the tile holding lon/lat, computed from the grid's definition."""
    tms = _tms(tms_id)
    matrix = tms.matrix(z)
    size = matrix.cellSize * matrix.tileWidth
    if tms_id in ("WebMercatorQuad", "TianDiTuWebMercator"):
        x, y = morecantile.tms.get("WebMercatorQuad").xy(lon, lat)
    else:
        x, y = lon, lat
    left, top = -20037508.342789244, 20037508.342789244
    if tms_id not in ("WebMercatorQuad", "TianDiTuWebMercator"):
        left, top = -180.0, 90.0
    return int((top - y) // size), int((x - left) // size)


def _pixel(tms_id: str, z: int, row: int, col: int, lon: float, lat: float) -> tuple[float, float]:
    """Where lon/lat falls in the tile's 4096-unit grid (y down)."""
    tms = _tms(tms_id)
    matrix = tms.matrix(z)
    size = matrix.cellSize * matrix.tileWidth
    if tms_id in ("WebMercatorQuad", "TianDiTuWebMercator"):
        x, y = morecantile.tms.get("WebMercatorQuad").xy(lon, lat)
        left, top = -20037508.342789244 + col * size, 20037508.342789244 - row * size
    else:
        x, y = lon, lat
        left, top = -180.0 + col * size, 90.0 - row * size
    return (x - left) / size * 4096, (top - y) / size * 4096


def _get_tile(client: TestClient, layer: str, tms_id: str, z: int, row: int, col: int, **params: Any) -> Any:
    r = client.get(f"/collections/{layer}/tiles/{tms_id}/{z}/{row}/{col}", params=params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == MVT
    return r


def _decode(content: bytes) -> dict[str, Any]:
    return mapbox_vector_tile.decode(content, default_options={"y_coord_down": True}) if content else {}


def _problem(r: Any, status: int, field: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["field"] == field


# --- tile matrix sets ----------------------------------------------------------------------------


def test_tile_matrix_sets(tc: TestClient) -> None:
    listed = {s["id"]: s for s in tc.get("/tileMatrixSets").json()["tileMatrixSets"]}
    assert {"WebMercatorQuad", "WorldCRS84Quad", "CGCS2000Quad", "TianDiTuWebMercator"} <= set(listed)
    cgcs = tc.get("/tileMatrixSets/CGCS2000Quad").json()
    assert cgcs["crs"].endswith("/EPSG/0/4490")
    first = cgcs["tileMatrices"][0]
    assert (first["id"], first["matrixWidth"], first["matrixHeight"]) == ("1", 2, 1)
    assert first["cellSize"] == pytest.approx(0.703125)
    assert first["pointOfOrigin"] == [90, -180]  # EPSG:4490 is lat, lon
    assert first["scaleDenominator"] == pytest.approx(0.703125 * 6378137 * 2 * np.pi / 360 / 0.00028)
    for m in cgcs["tileMatrices"]:
        z = int(m["id"])
        assert (m["matrixWidth"], m["matrixHeight"]) == (2**z, 2 ** (z - 1))
    assert len(cgcs["tileMatrices"]) >= 18
    w = tc.get("/tileMatrixSets/TianDiTuWebMercator").json()
    assert [m["id"] for m in w["tileMatrices"]] == [str(z) for z in range(1, 19)]
    mercator = tc.get("/tileMatrixSets/WebMercatorQuad").json()
    assert w["tileMatrices"][0]["cellSize"] == mercator["tileMatrices"][1]["cellSize"]
    _problem(tc.get("/tileMatrixSets/GoogleQuad"), 404, "tileMatrixSetId")


# --- tileset documents ---------------------------------------------------------------------------


def test_tilesets_and_tilejson(tc: TestClient, poi: list[Any]) -> None:
    doc = tc.get("/collections/poi/tiles").json()
    ids = [s["links"][0]["href"].rsplit("/", 1)[1] for s in doc["tilesets"]]
    assert "CGCS2000Quad" in ids and "WebMercatorQuad" in ids
    for s in doc["tilesets"]:
        assert s["dataType"] == "vector"
        assert any(link["rel"].endswith("tiling-scheme") for link in s["links"])

    ts = tc.get("/collections/poi/tiles/CGCS2000Quad").json()
    item = next(link for link in ts["links"] if link["rel"] == "item")
    assert item["templated"] is True and item["type"] == MVT
    assert "/tiles/CGCS2000Quad/{tileMatrix}/{tileRow}/{tileCol}?v=1" in item["href"]
    assert ts["layers"][0]["geometryDimension"] == 0
    fields = ts["layers"][0]["propertiesSchema"]["properties"]
    assert set(fields) == {"名称", "等级"}  # the restricted field is not named to the anonymous
    limits = {int(lim["tileMatrix"]): lim for lim in ts["tileMatrixSetLimits"]}
    row, col = _tile_of("CGCS2000Quad", *CENTRE, 12)
    assert limits[12]["minTileRow"] <= row <= limits[12]["maxTileRow"]
    assert limits[12]["minTileCol"] <= col <= limits[12]["maxTileCol"]

    tj = tc.get("/collections/poi/tiles/WebMercatorQuad/tilejson.json").json()
    assert tj == tc.get("/collections/poi/tiles/WebMercatorQuad", params={"f": "tilejson"}).json()
    assert tj["tilejson"] == "3.0.0"
    assert tj["tiles"][0].endswith("/collections/poi/tiles/WebMercatorQuad/{z}/{y}/{x}?v=1")
    layer = tj["vector_layers"][0]
    assert layer["id"] == "poi" and set(layer["fields"]) == {"名称", "等级"}
    west, south, east, north = tj["bounds"]
    lons = [p.x for p, _ in poi]
    lats = [p.y for p, _ in poi]
    assert (west, south, east, north) == pytest.approx((min(lons), min(lats), max(lons), max(lats)))
    chosen = tc.get(
        "/collections/poi/tiles/WebMercatorQuad/tilejson.json", params={"properties": "等级"}
    ).json()
    assert set(chosen["vector_layers"][0]["fields"]) == {"等级"}
    assert "properties=%E7%AD%89%E7%BA%A7" in chosen["tiles"][0]
    _problem(tc.get("/collections/poi/tiles/WebMercatorQuad", params={"f": "png"}), 400, "f")
    _problem(tc.get("/collections/poi/tiles/Nope"), 404, "tileMatrixSetId")


def test_tilejson_carries_a_key_parameter(tc: TestClient, poi: list[Any], key_headers: Any) -> None:
    key = key_headers("TEST", "consumer")["X-API-Key"]
    tj = tc.get("/collections/poi/tiles/WebMercatorQuad/tilejson.json", params={"key": key}).json()
    assert f"key={key}" in tj["tiles"][0]
    assert set(tj["vector_layers"][0]["fields"]) == {"名称", "等级", "密级"}  # the owner sees all
    header_only = tc.get("/collections/poi/tiles/WebMercatorQuad/tilejson.json", headers={"X-API-Key": key})
    assert "key=" not in header_only.json()["tiles"][0]


# --- tile contents -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tms_id", "z"),
    [
        ("WebMercatorQuad", 11),
        ("WebMercatorQuad", 14),
        ("CGCS2000Quad", 11),
        ("CGCS2000Quad", 14),
        ("TianDiTuWebMercator", 12),
        ("WorldCRS84Quad", 12),
    ],
)
def test_points_land_where_they_belong(tc: TestClient, poi: list[Any], tms_id: str, z: int) -> None:
    row, col = _tile_of(tms_id, *CENTRE, z)
    tile = _decode(_get_tile(tc, "poi", tms_id, z, row, col).content)
    expected = {}
    for fid, (p, props) in enumerate(poi, start=1):
        px, py = _pixel(tms_id, z, row, col, p.x, p.y)
        if -64 < px < 4160 and -64 < py < 4160:
            expected[fid] = (px, py, props)
    assert expected, "the test tile should hold points"
    features = tile["poi"]["features"]
    assert tile["poi"]["extent"] == 4096
    assert {f["id"] for f in features} == set(expected)
    for f in features:
        px, py, props = expected[f["id"]]
        x, y = f["geometry"]["coordinates"]
        assert abs(x - px) <= 1 and abs(y - py) <= 1
        assert f["properties"] == {"名称": props["名称"], "等级": props["等级"]}  # 密级 is hidden


def test_same_ground_same_features_in_both_grids(tc: TestClient, db: Engine) -> None:
    rng = np.random.default_rng(3)
    cluster = [
        (Point(CENTRE[0] + dx, CENTRE[1] + dy), {"名称": f"c{i}"})
        for i, (dx, dy) in enumerate(rng.uniform(-0.01, 0.01, size=(30, 2)))
    ]
    make_layer(db, "cluster", cluster, [("名称", "string")])
    ids = {}
    for tms_id in ("WebMercatorQuad", "CGCS2000Quad"):
        row, col = _tile_of(tms_id, *CENTRE, 12)
        for p, _ in cluster:  # the whole cluster is inside this tile of each grid
            px, py = _pixel(tms_id, 12, row, col, p.x, p.y)
            assert 0 < px < 4096 and 0 < py < 4096
        tile = _decode(_get_tile(tc, "cluster", tms_id, 12, row, col).content)
        ids[tms_id] = {f["id"] for f in tile["cluster"]["features"]}
    assert ids["WebMercatorQuad"] == ids["CGCS2000Quad"] == set(range(1, 31))


def test_lines_and_polygons_are_clipped_and_thinned(tc: TestClient, db: Engine) -> None:
    circle = Point(*CENTRE).buffer(0.2, quad_segs=2500)  # 10,000 vertices
    make_layer(
        db,
        "zones",
        [(circle, {"名称": "大圆"}), (box(116.405, 39.865, 116.406, 39.866), {"名称": "小块"})],
        [("名称", "string")],
    )
    make_layer(
        db, "road", [(LineString([(115.0, 39.87), (118.0, 39.87)]), {"名称": "长安街"})], [("名称", "string")]
    )
    for tms_id in ("WebMercatorQuad", "CGCS2000Quad"):
        row, col = _tile_of(tms_id, *CENTRE, 14)
        zones = _decode(_get_tile(tc, "zones", tms_id, 14, row, col).content)["zones"]["features"]
        assert {f["properties"]["名称"] for f in zones} == {"大圆", "小块"}
        big = next(f for f in zones if f["properties"]["名称"] == "大圆")
        ring = np.array(big["geometry"]["coordinates"][0])
        assert ring.min() >= -64 and ring.max() <= 4160  # clipped to the tile and its buffer
        assert len(ring) < 20  # a tile inside the circle: its clip box, not 10,000 vertices
        road = _decode(_get_tile(tc, "road", tms_id, 14, row, col).content)["road"]["features"][0]
        xs = [x for x, _ in road["geometry"]["coordinates"]]
        assert min(xs) == -64 and max(xs) == 4160
        _, py = _pixel(tms_id, 14, row, col, 116.4, 39.87)
        assert all(abs(y - py) <= 1 for _, y in road["geometry"]["coordinates"])
    row, col = _tile_of("WebMercatorQuad", *CENTRE, 6)
    zones = _decode(_get_tile(tc, "zones", "WebMercatorQuad", 6, row, col).content)["zones"]["features"]
    big = next(f for f in zones if f["properties"]["名称"] == "大圆")
    assert 4 <= len(big["geometry"]["coordinates"][0]) < 200  # thinned at a small scale


def test_properties_filter_and_datetime(tc: TestClient, poi: list[Any]) -> None:
    row, col = _tile_of("WebMercatorQuad", *CENTRE, 11)
    every = _decode(_get_tile(tc, "poi", "WebMercatorQuad", 11, row, col).content)["poi"]["features"]
    only = _decode(_get_tile(tc, "poi", "WebMercatorQuad", 11, row, col, properties="等级").content)
    assert all(set(f["properties"]) == {"等级"} for f in only["poi"]["features"])
    bare = _decode(_get_tile(tc, "poi", "WebMercatorQuad", 11, row, col, properties="").content)
    assert all(f["properties"] == {} for f in bare["poi"]["features"])

    filtered = _get_tile(tc, "poi", "WebMercatorQuad", 11, row, col, filter="等级 >= 3").content
    got = {f["id"] for f in _decode(filtered)["poi"]["features"]}
    assert got == {f["id"] for f in every if f["properties"]["等级"] >= 3}
    assert 0 < len(got) < len(every)
    cql_json = '{"op": "=", "args": [{"property": "名称"}, "点7"]}'
    one = _get_tile(
        tc, "poi", "WebMercatorQuad", 11, row, col, filter=cql_json, **{"filter-lang": "cql2-json"}
    )
    assert [f["id"] for f in _decode(one.content).get("poi", {}).get("features", [])] in ([7], [])
    assert (7 in {f["id"] for f in every}) == bool(_decode(one.content))

    url = f"/collections/poi/tiles/WebMercatorQuad/11/{row}/{col}"
    _problem(tc.get(url, params={"properties": "密级"}), 400, "properties")  # hidden = unknown
    _problem(tc.get(url, params={"properties": "名称,nope"}), 400, "properties")
    _problem(tc.get(url, params={"filter": "密级 = 'x'"}), 400, "filter")
    _problem(tc.get(url, params={"filter": "等级 >>> 3"}), 400, "filter")
    _problem(tc.get(url, params={"datetime": "2024-01-01"}), 400, "datetime")  # no time field
    _problem(tc.get(url, params={"bbox": "1,2,3,4"}), 400, "bbox")


def test_empty_tile_is_an_empty_200(tc: TestClient, poi: list[Any]) -> None:
    row, col = _tile_of("WebMercatorQuad", 10.0, 50.0, 12)
    r = _get_tile(tc, "poi", "WebMercatorQuad", 12, row, col)
    assert r.content == b""
    assert r.headers["etag"]


# --- access --------------------------------------------------------------------------------------


def test_unreadable_layer_is_not_found(tc: TestClient, db: Engine, key_headers: Any) -> None:
    make_layer(
        db,
        "secret",
        [(Point(*CENTRE), {"名称": "x"})],
        [("名称", "string")],
        sharing_class="restricted",
        department="OWNER",
    )
    row, col = _tile_of("WebMercatorQuad", *CENTRE, 12)
    for path in (
        f"/collections/secret/tiles/WebMercatorQuad/12/{row}/{col}",
        "/collections/secret/tiles/WebMercatorQuad",
        "/collections/secret/tiles",
        "/collections/secret/tiles/WebMercatorQuad/tilejson.json",
    ):
        _problem(tc.get(path), 404, "collectionId")
        _problem(tc.get(path, headers=key_headers("OTHER", "consumer")), 404, "collectionId")
    owner = tc.get(
        f"/collections/secret/tiles/WebMercatorQuad/12/{row}/{col}",
        params={"v": "1"},
        headers=key_headers("OWNER", "consumer"),
    )
    assert owner.status_code == 200
    assert [f["id"] for f in _decode(owner.content)["secret"]["features"]] == [1]
    assert owner.headers["cache-control"].startswith("private,")


# --- caching -------------------------------------------------------------------------------------


def test_versions_etags_and_cache_headers(tc: TestClient, db: Engine) -> None:
    import geopandas as gpd

    from geoshare.services.layer_cache import layer_cache
    from layers.model import LayerMetadata
    from layers.publish import publish_frame

    with db.begin() as conn:
        conn.execute(text("INSERT INTO gs.department (code, name) VALUES ('TEST', '测试')"))

    def publish(names: list[str]) -> None:
        frame = gpd.GeoDataFrame(
            {"名称": names},
            geometry=[Point(CENTRE[0] - i * 0.001, CENTRE[1]) for i in range(len(names))],
            crs="EPSG:4326",
        )
        with db.begin() as conn:
            publish_frame(
                conn, "shops", frame, LayerMetadata(title="商店", department="TEST", sharing_class="public")
            )
        assert layer_cache(tc.app.state).sync()

    publish(["甲", "乙"])
    row, col = _tile_of("WebMercatorQuad", *CENTRE, 13)
    url = f"/collections/shops/tiles/WebMercatorQuad/13/{row}/{col}"
    first = tc.get(url, params={"v": "1"})
    assert first.status_code == 200
    assert first.headers["cache-control"] == "public, max-age=31536000, immutable"
    etag = first.headers["etag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    assert tc.get(url).headers["cache-control"] == "no-cache"
    assert tc.get(url).headers["etag"] == etag
    again = tc.get(url, params={"v": "1"}, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    other = tc.get(url, params={"properties": ""}).headers["etag"]
    assert other != etag

    publish(["甲", "乙", "丙"])
    stale = tc.get(url, params={"v": "1"}, headers={"If-None-Match": etag})
    assert stale.status_code == 200  # the old validator no longer matches
    assert stale.headers["etag"] != etag
    assert stale.headers["cache-control"] == "no-cache"  # a stale v is served, but not for keeps
    names = {f["properties"]["名称"] for f in _decode(stale.content)["shops"]["features"]}
    assert names == {"甲", "乙", "丙"}
    fresh = tc.get(url, params={"v": "2"})
    assert fresh.headers["cache-control"].endswith("immutable") and fresh.content == stale.content
    tj = tc.get("/collections/shops/tiles/WebMercatorQuad/tilejson.json").json()
    assert tj["tiles"][0].endswith("?v=2")


def test_a_cached_tile_needs_no_database(tc: TestClient, poi: list[Any], db: Engine) -> None:
    from geoshare.api.routes.tiles import tile_cache
    from geoshare.services.layer_cache import layer_cache

    row, col = _tile_of("CGCS2000Quad", *CENTRE, 12)
    url = f"/collections/poi/tiles/CGCS2000Quad/12/{row}/{col}"
    first = tc.get(url)
    layer_cache(tc.app.state).sync()
    tc.get(url)  # the layer row is now in the layer cache as well
    table = tc.app.state.layer_cache.get(None, "poi").table_name
    with db.begin() as conn:  # the data goes away behind the caches' back (no notification)
        conn.execute(text(f'ALTER TABLE layerdata."{table}" RENAME TO gone'))
    try:
        hits = tile_cache(tc.app.state).hits
        again = tc.get(url)
        assert again.status_code == 200 and again.content == first.content
        assert tile_cache(tc.app.state).hits == hits + 1
    finally:
        with db.begin() as conn:
            conn.execute(text(f'ALTER TABLE layerdata.gone RENAME TO "{table}"'))


# --- errors --------------------------------------------------------------------------------------


def test_bad_tile_addresses(tc: TestClient, poi: list[Any]) -> None:
    base = "/collections/poi/tiles"
    _problem(tc.get(f"{base}/GoogleQuad/1/0/0"), 404, "tileMatrixSetId")
    _problem(tc.get(f"{base}/WebMercatorQuad/25/0/0"), 404, "tileMatrix")
    _problem(tc.get(f"{base}/CGCS2000Quad/0/0/0"), 404, "tileMatrix")  # Tianditu's c grid has no level 0
    _problem(tc.get(f"{base}/CGCS2000Quad/1/1/0"), 404, "tileRow")  # level 1 is one row of two tiles
    _problem(tc.get(f"{base}/CGCS2000Quad/1/0/2"), 404, "tileCol")
    _problem(tc.get(f"{base}/WebMercatorQuad/3/8/0"), 404, "tileRow")
    _problem(tc.get(f"{base}/WebMercatorQuad/3/0/8"), 404, "tileCol")
    _problem(tc.get(f"{base}/WebMercatorQuad/x/0/0"), 400, "tileMatrix")
    _problem(tc.get(f"{base}/WebMercatorQuad/3/-1/0"), 400, "tileRow")
    _problem(tc.get(f"{base}/WebMercatorQuad/3/0/1.5"), 400, "tileCol")
    _problem(tc.get(f"{base}/WebMercatorQuad/3/0/0", params={"v": "latest"}), 400, "v")
    _problem(tc.get(f"{base}/WebMercatorQuad/3/0/0", params={"f": "png"}), 400, "f")
    _problem(tc.get(f"{base}/WebMercatorQuad/3/0/0", params={"zoom": "3"}), 400, "zoom")
    _problem(tc.get("/collections/nope/tiles/WebMercatorQuad/3/0/0"), 404, "collectionId")
