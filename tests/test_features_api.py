"""OGC API – Features over HTTP: core, paging, filters, CRS negotiation and error handling."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from layer_factory import make_layer
from shapely.geometry import LineString, Point, Polygon

GEOJSON = "application/geo+json"
N = 25
ATTRIBUTES = [
    ("编号", "string"),
    ("名称", "string"),
    ("地址", "string"),
    ("类型", "string"),
    ("容量", "integer"),
    ("面积", "number"),
    ("开放", "boolean"),
    ("更新时间", "datetime"),
]
T0 = datetime(2024, 1, 1, 8, 0, tzinfo=UTC)


def _shelter(i: int) -> tuple[Point, dict[str, Any]]:
    return Point(116.30 + i * 0.01, 39.90 + (i % 5) * 0.01), {
        "编号": f"BJ-{i:03d}",
        "名称": f"应急避难场所{i}号",
        "地址": f"朝阳区建国路{i}号",
        "类型": "室内" if i % 2 else "室外",
        "容量": None if i % 7 == 0 else i * 100,
        "面积": i * 1.5,
        "开放": i % 3 == 0,
        "更新时间": T0 + timedelta(days=i),
    }


@pytest.fixture
def shelters(db: Any) -> str:
    make_layer(
        db,
        "shelters",
        [_shelter(i) for i in range(1, N + 1)],
        ATTRIBUTES,
        key_field="编号",
        time_field="更新时间",
        title="应急避难场所",
        keywords=["避难", "应急"],
    )
    return "shelters"


def _items(client: Any, layer: str, **params: Any) -> dict[str, Any]:
    r = client.get(f"/collections/{layer}/items", params=params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith(GEOJSON)
    return r.json()


def _problem(client: Any, url: str, field: str, status: int = 400, **params: Any) -> dict[str, Any]:
    r = client.get(url, params=params)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["field"] == field, body
    return body


def _names(doc: dict[str, Any]) -> list[str]:
    return [f["properties"]["名称"] for f in doc["features"]]


def test_landing_and_conformance(client: Any) -> None:
    body = client.get("/").json()
    rels = {link["rel"]: link for link in body["links"]}
    assert {"self", "conformance", "data", "service-desc", "service-doc"} <= set(rels)
    assert rels["data"]["href"].endswith("/collections")
    assert rels["service-desc"]["href"].endswith("/api")
    classes = client.get("/conformance").json()["conformsTo"]
    assert any(c.endswith("ogcapi-features-1/1.0/conf/core") for c in classes)
    assert any(c.endswith("ogcapi-features-2/1.0/conf/crs") for c in classes)
    assert any(c.endswith("cql2/1.0/conf/cql2-json") for c in classes)
    assert client.get("/api").status_code == 200


def test_openapi_operations_have_their_own_ids(client: Any) -> None:
    """Client generators name a method after each operationId: one shared by two is a broken SDK."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # FastAPI warns of a duplicate as it builds the document
        spec = client.get("/api").json()
    ids = [op["operationId"] for ops in spec["paths"].values() for op in ops.values() if "operationId" in op]
    assert len(ids) == len(set(ids)) > 50
    tile = spec["paths"]["/collections/{collectionId}/tiles/{tms_id}/{tile_matrix}/{tile_row}/{tile_col}"]
    assert {"get", "head"} <= set(tile)


def test_the_api_definition_is_openapi_30_with_every_items_parameter(client: Any) -> None:
    """oas30 is the conformance class claimed; GDAL and QGIS page and filter by what it documents."""
    from openapi_spec_validator import validate

    spec = client.get("/api").json()
    assert spec["openapi"] == "3.0.3"
    validate(spec)  # raises on anything 3.0 does not allow (anyOf null, examples lists, …)
    items = spec["paths"]["/collections/{collectionId}/items"]["get"]
    names = {p["name"] for p in items["parameters"]}
    assert names >= {"collectionId", "limit", "bbox", "bbox-crs", "datetime", "filter", "filter-lang",
                     "filter-crs", "crs", "sortby", "properties", "cursor"}  # fmt: skip
    assert list(items["responses"]["200"]["content"]) == ["application/geo+json"]
    assert {"400", "401", "404", "429", "503"} <= set(items["responses"]) and "422" not in items["responses"]
    assert "Retry-After" in items["responses"]["429"]["headers"]
    problem = items["responses"]["400"]["content"]["application/problem+json"]["schema"]
    assert problem == {"$ref": "#/components/schemas/Problem"}
    # a bad parameter is answered as documented: 400, a problem naming it
    bad = client.get("/collections/anything/items", params={"limit": "many"})
    assert bad.status_code in (400, 404) and bad.headers["content-type"] == "application/problem+json"


def test_collections_describe_layer(client: Any, shelters: str) -> None:
    body = client.get("/collections").json()
    [coll] = body["collections"]
    assert coll["id"] == shelters and coll["title"] == "应急避难场所"
    assert coll["itemType"] == "feature"
    assert "urn:geoshare:def:crs:GCJ-02" in coll["crs"]
    assert "http://www.opengis.net/def/crs/EPSG/0/4490" in coll["crs"]
    assert coll["storageCrs"] == "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
    minx, miny, maxx, maxy = coll["extent"]["spatial"]["bbox"][0]
    assert minx == pytest.approx(116.31) and maxx == pytest.approx(116.55)
    assert coll["extent"]["temporal"]["interval"][0][0].startswith("2024-01-02")
    assert coll["geoshare:metadata"]["featureCount"] == N
    assert coll["geoshare:metadata"]["department"] == "TEST"
    one = client.get(f"/collections/{shelters}").json()
    assert one["id"] == shelters
    assert any(link["rel"] == "items" and link["type"] == GEOJSON for link in one["links"])


def test_unknown_collection_and_feature_are_404(client: Any, shelters: str) -> None:
    _problem(client, "/collections/nope", "collectionId", 404)
    _problem(client, "/collections/nope/items", "collectionId", 404)
    _problem(client, f"/collections/{shelters}/items/BJ-999", "featureId", 404)


def test_items_first_page(client: Any, shelters: str) -> None:
    doc = _items(client, shelters)
    assert doc["type"] == "FeatureCollection"
    assert doc["numberReturned"] == 10 and doc["numberMatched"] == N
    assert "timeStamp" in doc
    first = doc["features"][0]
    assert first["id"] == "BJ-001"
    assert first["geometry"] == {"type": "Point", "coordinates": [116.31, 39.91]}
    assert first["properties"]["名称"] == "应急避难场所1号"
    assert first["properties"]["容量"] == 100 and first["properties"]["开放"] is False
    assert first["properties"]["更新时间"].startswith("2024-01-02T08:00:00")
    rels = {link["rel"] for link in doc["links"]}
    assert {"self", "next", "collection"} <= rels


def test_paging_walks_every_feature_once(client: Any, shelters: str) -> None:
    seen: list[str] = []
    url: str | None = f"/collections/{shelters}/items?limit=7&类型=室内"
    pages = 0
    while url:
        r = client.get(url)
        assert r.status_code == 200, r.text
        doc = r.json()
        assert "numberMatched" not in doc  # filtered: no count(*)
        seen += [f["id"] for f in doc["features"]]
        url = next((link["href"] for link in doc["links"] if link["rel"] == "next"), None)
        if url:
            assert "%E7%B1%BB%E5%9E%8B=" in url and "cursor=" in url  # other params carried over
        pages += 1
    odd = [f"BJ-{i:03d}" for i in range(1, N + 1) if i % 2]
    assert seen == odd and pages == 2


@pytest.mark.parametrize(
    ("sortby", "key"),
    [
        ("-容量", lambda p: (p["容量"] is not None, -(p["容量"] or 0))),  # DESC puts NULLs first
        ("+开放,-面积", lambda p: (p["开放"], -p["面积"])),
        ("类型,名称", lambda p: (p["类型"], p["名称"])),
        ("容量", lambda p: (p["容量"] is None, p["容量"] or 0)),  # ASC puts NULLs last
        ("-开放,容量,-名称", lambda p: (not p["开放"], p["容量"] is None, p["容量"] or 0)),
        ("id", lambda p: p["编号"]),
    ],
)
def test_sortby_keyset_paging_matches_full_sort(client: Any, shelters: str, sortby: str, key: Any) -> None:
    props: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 4, "sortby": sortby}
    while True:
        doc = _items(client, shelters, **params)
        props += [f["properties"] for f in doc["features"]]
        nxt = next((link["href"] for link in doc["links"] if link["rel"] == "next"), None)
        if not nxt:
            break
        params["cursor"] = nxt.split("cursor=")[1]
    assert len(props) == N and len({p["编号"] for p in props}) == N
    assert props == sorted(props, key=key)


def test_cursor_from_other_sort_is_refused(client: Any, shelters: str) -> None:
    doc = _items(client, shelters, limit=3, sortby="名称")
    cursor = next(link["href"] for link in doc["links"] if link["rel"] == "next").split("cursor=")[1]
    _problem(client, f"/collections/{shelters}/items", "cursor", cursor=cursor)
    _problem(client, f"/collections/{shelters}/items", "cursor", cursor="garbage!!")


def test_bbox_datetime_properties_and_property_filters(client: Any, shelters: str) -> None:
    doc = _items(client, shelters, bbox="116.305,39.895,116.335,39.935")
    assert [f["id"] for f in doc["features"]] == ["BJ-001", "BJ-002", "BJ-003"]
    doc = _items(client, shelters, datetime="2024-01-03T00:00:00Z/2024-01-05T00:00:00Z")
    assert [f["id"] for f in doc["features"]] == ["BJ-002", "BJ-003"]
    assert [f["id"] for f in _items(client, shelters, datetime="2024-01-04")["features"]] == ["BJ-003"]
    assert len(_items(client, shelters, datetime="../2024-01-03", limit=100)["features"]) == 2
    assert len(_items(client, shelters, datetime="2024-01-20T00:00:00Z/..", limit=100)["features"]) == 7
    doc = _items(client, shelters, properties="名称,容量", limit=1)
    assert doc["features"][0]["properties"] == {"名称": "应急避难场所1号", "容量": 100}
    assert _items(client, shelters, 容量=300)["features"][0]["id"] == "BJ-003"
    assert len(_items(client, shelters, 开放="true", limit=100)["features"]) == 8


def test_limit_is_clamped_and_validated(client: Any, shelters: str) -> None:
    client.app.state.settings = type(client.app.state.settings)(
        database_url=client.app.state.settings.database_url, items_max_limit=5
    )
    assert _items(client, shelters, limit=10**30)["numberReturned"] == 5
    for bad in ("abc", "0", "-3", "1.5"):
        _problem(client, f"/collections/{shelters}/items", "limit", limit=bad)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"bbox": "1,2,3"}, "bbox"),
        ({"bbox": "117,39,116,40"}, "bbox"),
        ({"bbox": "116,39,117,95"}, "bbox"),
        ({"bbox": "a,b,c,d"}, "bbox"),
        ({"bbox": "nan,1,2,3"}, "bbox"),
        ({"bbox-crs": "EPSG:4326"}, "bbox-crs"),
        ({"bbox": "1,2,3,4", "bbox-crs": "EPSG:9999"}, "bbox-crs"),
        ({"datetime": "yesterday"}, "datetime"),
        ({"datetime": "2024-02-01/2024-01-01"}, "datetime"),
        ({"properties": "名称,不存在"}, "properties"),
        ({"sortby": "-不存在"}, "sortby"),
        ({"crs": "EPSG:27700"}, "crs"),
        ({"不存在": "1"}, "不存在"),
        ({"容量": "many"}, "容量"),
        ({"容量": "1; DROP TABLE gs.layer"}, "容量"),
        ({"f": "html"}, "f"),
        ({"filter": "名称 = "}, "filter"),
        ({"filter": "不存在 = 1"}, "filter"),
        ({"filter": "容量 = 'abc'"}, "filter"),
        ({"filter": "x", "filter-lang": "sql"}, "filter-lang"),
    ],
)
def test_bad_parameters_are_400_naming_them(
    client: Any, shelters: str, params: dict[str, str], field: str
) -> None:
    body = _problem(client, f"/collections/{shelters}/items", field, **params)
    assert body["status"] == 400 and body["detail"]


def test_sql_looking_values_are_just_values(client: Any, shelters: str) -> None:
    doc = _items(client, shelters, 名称="x' OR '1'='1")
    assert doc["features"] == []
    doc = _items(client, shelters, filter="名称 = 'x'' OR ''1''=''1'")
    assert doc["features"] == []


def test_datetime_without_time_field_is_400(client: Any, db: Any) -> None:
    make_layer(
        db, "roads", [(LineString([(116.3, 39.9), (116.4, 39.9)]), {"名称": "长安街"})], [("名称", "string")]
    )
    _problem(client, "/collections/roads/items", "datetime", datetime="2024-01-01")
    assert _items(client, "roads")["features"][0]["geometry"]["type"] == "LineString"


def test_cql2_text_and_json_filters(client: Any, shelters: str) -> None:
    doc = _items(client, shelters, filter="容量 >= 2000 AND 类型 = '室内'", limit=100)
    assert [f["id"] for f in doc["features"]] == ["BJ-023", "BJ-025"]
    assert "numberMatched" not in doc
    cql_json = (
        '{"op":"and","args":[{"op":">=","args":[{"property":"容量"},2000]},'
        '{"op":"=","args":[{"property":"类型"},"室内"]}]}'
    )
    doc = _items(client, shelters, filter=cql_json, **{"filter-lang": "cql2-json"}, limit=100)
    assert [f["id"] for f in doc["features"]] == ["BJ-023", "BJ-025"]
    polygon = "POLYGON((116.305 39.895, 116.325 39.895, 116.325 39.925, 116.305 39.925, 116.305 39.895))"
    doc = _items(client, shelters, filter=f"S_INTERSECTS(geometry, {polygon})")
    assert [f["id"] for f in doc["features"]] == ["BJ-001", "BJ-002"]


def test_filter_crs_gcj02_moves_the_window(client: Any, shelters: str) -> None:
    # BJ-001 is at WGS84 116.31,39.91; its GCJ-02 position is ~600 m away
    near_wgs = "POLYGON((116.309 39.909, 116.311 39.909, 116.311 39.911, 116.309 39.911, 116.309 39.909))"
    assert [
        f["id"] for f in _items(client, shelters, filter=f"S_INTERSECTS(geometry,{near_wgs})")["features"]
    ] == ["BJ-001"]
    doc = _items(client, shelters, filter=f"S_INTERSECTS(geometry,{near_wgs})", **{"filter-crs": "GCJ-02"})
    assert doc["features"] == []


def test_output_crs_variants(client: Any, shelters: str) -> None:
    url = f"/collections/{shelters}/items/BJ-001"
    r = client.get(url)
    assert r.headers["content-crs"] == "<http://www.opengis.net/def/crs/OGC/1.3/CRS84>"
    assert r.json()["geometry"]["coordinates"] == [116.31, 39.91]
    r = client.get(url, params={"crs": "http://www.opengis.net/def/crs/EPSG/0/4326"})
    assert r.headers["content-crs"] == "<http://www.opengis.net/def/crs/EPSG/0/4326>"
    assert r.json()["geometry"]["coordinates"] == [39.91, 116.31]
    assert client.get(url, params={"crs": "EPSG:4490"}).json()["geometry"]["coordinates"] == [39.91, 116.31]
    x, y = client.get(url, params={"crs": "EPSG:3857"}).json()["geometry"]["coordinates"]
    assert x == pytest.approx(12947569.97, abs=0.01) and y == pytest.approx(4852872.33, abs=0.01)
    r = client.get(url, params={"crs": "GCJ-02"})
    assert r.headers["content-crs"] == "<urn:geoshare:def:crs:GCJ-02>"
    lon, lat = r.json()["geometry"]["coordinates"]
    assert 0.004 < lon - 116.31 < 0.008 and 0.0005 < lat - 39.91 < 0.002
    doc = _items(client, shelters, crs="urn:geoshare:def:crs:GCJ-02", limit=3)
    assert doc["numberReturned"] == 3 and doc["features"][0]["id"] == "BJ-001"
    assert doc["features"][0]["geometry"]["coordinates"] == [lon, lat]
    _problem(client, url, "crs", crs="EPSG:2385")


def test_bbox_in_lat_lon_and_web_mercator(client: Any, shelters: str) -> None:
    doc = _items(client, shelters, bbox="39.905,116.305,39.915,116.315", **{"bbox-crs": "EPSG:4326"})
    assert [f["id"] for f in doc["features"]] == ["BJ-001"]
    doc = _items(client, shelters, bbox="12947500,4852800,12947600,4852900", **{"bbox-crs": "EPSG:3857"})
    assert [f["id"] for f in doc["features"]] == ["BJ-001"]


def test_queryables(client: Any, shelters: str) -> None:
    r = client.get(f"/collections/{shelters}/queryables")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/schema+json")
    schema = r.json()
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert schema["$id"].endswith(f"/collections/{shelters}/queryables")
    assert schema["type"] == "object"
    props = schema["properties"]
    assert props["geometry"]["format"] == "geometry-point"
    assert props["geometry"]["x-ogc-role"] == "primary-geometry"
    assert props["容量"]["type"] == "integer" and props["面积"]["type"] == "number"
    assert props["更新时间"] == {
        "title": "更新时间",
        "type": "string",
        "format": "date-time",
        "x-ogc-role": "primary-instant",
    }


def test_wide_layer_and_polygons(client: Any, db: Any) -> None:
    attrs = [(f"字段{i}", "integer") for i in range(120)]
    square = Polygon([(116, 39), (116.1, 39), (116.1, 39.1), (116, 39)])
    make_layer(db, "wide", [(square, {f"字段{i}": i for i in range(120)})], attrs)
    props = _items(client, "wide")["features"][0]["properties"]
    assert list(props) == [f"字段{i}" for i in range(120)]
    assert props["字段119"] == 119


def test_tampered_cursor_values_are_400(client: Any, shelters: str) -> None:
    from layers.paging import encode_cursor

    for keys in (["not a time", 3], [12, 3], ["2024-01-02T08:00:00+00:00", "x"]):
        token = encode_cursor(keys, "+更新时间", 1)
        _problem(client, f"/collections/{shelters}/items", "cursor", sortby="更新时间", cursor=token)
    token = encode_cursor(["2024-01-05T08:00:00+00:00", 4], "+更新时间", 1)
    doc = _items(client, shelters, sortby="更新时间", cursor=token, limit=2)
    assert [f["id"] for f in doc["features"]] == ["BJ-005", "BJ-006"]


def test_single_feature_properties_and_links(client: Any, shelters: str) -> None:
    r = client.get(f"/collections/{shelters}/items/BJ-002", params={"properties": "名称"})
    assert r.status_code == 200 and r.headers["content-type"].startswith(GEOJSON)
    feature = r.json()
    assert feature["type"] == "Feature" and feature["id"] == "BJ-002"
    assert feature["properties"] == {"名称": "应急避难场所2号"}
    assert {link["rel"] for link in feature["links"]} == {"self", "collection"}
    _problem(client, f"/collections/{shelters}/items/BJ-002", "bbox", bbox="1,2,3,4")


def test_a_cursor_pins_its_version_across_a_publish(client: Any, db: Any) -> None:
    """Pages 1–2 from v1 and 3–6 from v2 was a silent switch (issue 15.13): a 409 says it changed."""
    import geopandas as gpd
    from sqlalchemy import text

    from layers.model import LayerMetadata
    from layers.publish import publish_frame

    def publish(n: int) -> None:
        frame = gpd.GeoDataFrame(
            {"编号": [f"P{i}" for i in range(n)]},
            geometry=[Point(116.3 + i / 1000, 39.9) for i in range(n)],
            crs="EPSG:4326",
        )
        meta = LayerMetadata(title="分页", department="PG", sharing_class="public")
        with db.begin() as conn:
            conn.execute(text("INSERT INTO gs.department VALUES ('PG', 'PG') ON CONFLICT DO NOTHING"))
            publish_frame(conn, "pinned", frame, meta)
        client.app.state.layer_cache.sync()

    publish(30)
    first = _items(client, "pinned", limit=10)
    follow = next(link["href"] for link in first["links"] if link["rel"] == "next")
    assert client.get(follow).status_code == 200  # the same version: the walk goes on
    publish(40)
    changed = client.get(follow)
    assert changed.status_code == 409 and changed.json()["field"] == "cursor"
    assert "changed" in changed.json()["detail"]
