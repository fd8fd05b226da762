"""Place names (地名): the demo's landmarks and hospitals, ``/geocode`` on names, ``/places``,
``/suggest``, the Amap-compatible search, and imports from CSV and OpenStreetMap, on a real PostGIS."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from geocode.places.index import load_places
from geocode.places.osm import read_osm
from geocode.places.search import NameIndex
from layers.crs import wgs84_to_gcj02

HELSINKI = Path(__file__).resolve().parents[2] / "shared" / "data" / "osm" / "Helsinki.osm.pbf"
TIANANMEN = (116.3912, 39.9074)
DAXING_AIRPORT = (116.4105, 39.5098)


@pytest.fixture(scope="module")
def places_db(address_db: Engine) -> Engine:
    from geoshare.demo.places import load_demo_places

    with address_db.begin() as conn:
        load_demo_places(conn)
    return address_db


@pytest.fixture(scope="module")
def papi(places_db: Engine, api: TestClient) -> Iterator[TestClient]:
    yield api


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    dx = (a[0] - b[0]) * math.cos(math.radians(a[1])) * 111_195
    return math.hypot(dx, (a[1] - b[1]) * 111_195)


def _best(api: TestClient, address: str) -> dict:
    body = api.get("/geocode", params={"address": address}).json()
    return {**body["candidates"][0], "status": body["status"], "message": body.get("message")}


# --- /geocode on place names ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "district"),
    [("天安门", "东城区"), ("北京首都国际机场", "朝阳区"), ("首都国际机场", "朝阳区"), ("北京大学", "海淀区"),
     ("故宫", "东城区"), ("北京西站", "丰台区"), ("海淀区北京大学东门", "海淀区")],
)  # fmt: skip
def test_geocode_resolves_place_names(papi: TestClient, query: str, district: str) -> None:
    best = _best(papi, query)
    assert best["status"] == "ok" and best["level_code"] == "poi" and best["level"] == "兴趣点"
    assert best["district"] == district and best["score"] >= 0.8


def test_tiananmen_is_where_it_is(papi: TestClient) -> None:
    best = _best(papi, "天安门")
    assert _metres((best["location"]["lon"], best["location"]["lat"]), TIANANMEN) < 50
    assert best["formatted_address"] == "北京市东城区天安门" and best["adcode"] == "110101"


def test_place_in_another_district_than_written_is_never_confident(papi: TestClient) -> None:
    body = papi.get("/geocode", params={"address": "朝阳区天安门"}).json()
    assert body["status"] != "ok"
    for c in body["candidates"]:
        if c["district"] != "朝阳区":
            assert c["score"] < 0.5


def test_address_then_place_name(papi: TestClient, places_db: Engine) -> None:
    """中关村大街27号中关村大厦: the place, first; confident only if the address written agrees."""
    body = papi.get("/geocode", params={"address": "中关村大街27号中关村大厦", "limit": 5}).json()
    best = body["candidates"][0]
    assert best["level_code"] == "poi" and best["formatted_address"].endswith("中关村大厦")
    assert best["district"] == "海淀区" and body["status"] == "ok"  # its own address is the one written
    with places_db.connect() as conn:
        far = conn.execute(
            text("SELECT full_address FROM addr.address WHERE level = 'door' AND district_code = '110105'")
        ).first()[0]
    body = papi.get("/geocode", params={"address": far + "中关村大厦"}).json()
    assert body["status"] != "ok" and all(c["score"] < 0.8 for c in body["candidates"])


def test_hospital_without_a_point_answers_its_district_unconfidently(
    papi: TestClient, places_db: Engine
) -> None:
    with places_db.connect() as conn:
        name, located, district = conn.execute(
            text(
                "SELECT name, geom IS NOT NULL, district_code FROM addr.place WHERE name = '北京大学国际医院'"
            )
        ).one()
    best = _best(papi, "北京大学国际医院")
    assert district == "110114" and best["adcode"] == "110114"  # 昌平区, as the register says
    if located:
        assert best["level_code"] == "poi"
    else:
        assert best["level_code"] == "district" and best["score"] < 0.5 and "no location" in best["message"]


def test_no_hospital_got_an_invented_point(places_db: Engine) -> None:
    with places_db.connect() as conn:
        rows = conn.execute(
            text("SELECT located_by, geom IS NOT NULL FROM addr.place WHERE category = 'hospital'")
        ).all()
    assert len(rows) == 80
    assert all((by is not None) == has for by, has in rows)
    assert all(by in (None, "door", "building", "road_interpolated", "road") for by, _ in rows)


def test_plain_addresses_are_not_changed_by_places(papi: TestClient, places_db: Engine) -> None:
    with places_db.connect() as conn:
        full, code = conn.execute(
            text(
                "SELECT full_address, address_code FROM addr.address WHERE level = 'door' "
                "ORDER BY address_code LIMIT 1"
            )
        ).one()
    best = _best(papi, full)
    assert best["status"] == "ok" and best["address_code"] == code and best["level_code"] != "poi"


# --- /places ---------------------------------------------------------------------------------


def test_places_search_is_geojson(papi: TestClient) -> None:
    r = papi.get("/places", params={"q": "机场"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/geo+json")
    body = r.json()
    names = [f["properties"]["name"] for f in body["features"]]
    assert {"北京首都国际机场", "北京大兴国际机场"} <= set(names)
    f = body["features"][0]
    assert (
        f["type"] == "Feature"
        and f["geometry"]["type"] == "Point"
        and f["properties"]["category"] == "airport"
    )
    assert body["numberReturned"] == len(body["features"])


def test_places_near_ranks_the_nearer_first(papi: TestClient) -> None:
    near = f"{DAXING_AIRPORT[0]},{DAXING_AIRPORT[1]}"
    names = [
        f["properties"]["name"]
        for f in papi.get("/places", params={"q": "机场", "near": near}).json()["features"]
    ]
    assert names[0] == "北京大兴国际机场"
    names = [
        f["properties"]["name"]
        for f in papi.get("/places", params={"q": "国际机场", "near": "116.6,40.08"}).json()["features"]
    ]
    assert names[0] == "北京首都国际机场"


def test_places_bbox_and_category(papi: TestClient) -> None:
    body = papi.get(
        "/places", params={"bbox": "116.38,39.89,116.41,39.93", "category": "park,landmark", "limit": 50}
    ).json()
    names = {f["properties"]["name"] for f in body["features"]}
    assert {"天安门", "故宫博物院", "景山公园"} <= names
    assert "北京大学" not in names and "北京站" not in names
    assert all(f["properties"]["category"] in ("park", "landmark") for f in body["features"])


def test_places_alias_and_gcj02(papi: TestClient) -> None:
    body = papi.get("/places", params={"q": "鸟巢", "crs": "GCJ-02"}).json()
    f = body["features"][0]
    assert f["properties"]["name"] == "国家体育场"
    with_wgs = papi.get("/places", params={"q": "鸟巢"}).json()["features"][0]["geometry"]["coordinates"]
    expected = wgs84_to_gcj02(np.array([with_wgs]))[0]
    assert f["geometry"]["coordinates"] == pytest.approx(list(expected), abs=1e-6)


@pytest.mark.parametrize(
    ("params", "field"),
    [({}, "q"), ({"q": "天安门", "bbox": "1,2,3"}, "bbox"), ({"q": "x", "bbox": "3,2,1,0"}, "bbox"),
     ({"q": "x", "near": "abc"}, "near"), ({"q": "x", "near": "200,100"}, "near"),
     ({"q": "x", "category": "zoo"}, "category"), ({"q": "x", "limit": "0"}, "limit"),
     ({"q": "天" * 201}, "q"), ({"q": "x", "crs": "EPSG:9999"}, "crs"),
     ({"q": "x", "near": "nan,1"}, "near")],
)  # fmt: skip
def test_places_bad_parameters_are_400s_naming_them(papi: TestClient, params: dict, field: str) -> None:
    r = papi.get("/places", params=params)
    assert r.status_code == 400 and r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["field"] == field


# --- /suggest --------------------------------------------------------------------------------


def test_suggest_prefix_and_kinds(papi: TestClient, places_db: Engine) -> None:
    body = papi.get("/suggest", params={"q": "天安"}).json()
    assert body["suggestions"][0]["name"] == "天安门" and body["suggestions"][0]["kind"] == "place"
    with places_db.connect() as conn:
        road = conn.execute(text("SELECT name FROM addr.road ORDER BY id LIMIT 1")).scalar_one()
        compound = conn.execute(text("SELECT name FROM addr.compound ORDER BY id LIMIT 1")).scalar_one()
    kinds = {s["kind"]: s for s in papi.get("/suggest", params={"q": road}).json()["suggestions"]}
    assert kinds["road"]["name"] == road and kinds["road"]["location"] is not None
    names = [
        (s["kind"], s["name"]) for s in papi.get("/suggest", params={"q": compound}).json()["suggestions"]
    ]
    assert ("compound", compound) in names
    assert any(
        s["kind"] == "division" for s in papi.get("/suggest", params={"q": "朝阳"}).json()["suggestions"]
    )


def test_suggest_addresses_when_a_number_is_typed(papi: TestClient, places_db: Engine) -> None:
    with places_db.connect() as conn:
        full = conn.execute(
            text("SELECT full_address FROM addr.address WHERE level = 'door' ORDER BY address_code LIMIT 1")
        ).scalar_one()
    found = papi.get("/suggest", params={"q": full}).json()["suggestions"]
    assert found[0]["kind"] == "address" and found[0]["name"] == full


def test_suggest_near_reorders(papi: TestClient) -> None:
    far = [
        s["name"]
        for s in papi.get("/suggest", params={"q": "北京", "near": "116.41,39.51", "limit": 20}).json()[
            "suggestions"
        ]
    ]
    assert "北京大兴国际机场" in far[:3]


@pytest.mark.parametrize(
    ("params", "field"),
    [({}, "q"), ({"q": "  "}, "q"), ({"q": "x", "near": "1"}, "near"), ({"q": "x", "limit": "50"}, "limit")],
)  # fmt: skip
def test_suggest_bad_parameters(papi: TestClient, params: dict, field: str) -> None:
    r = papi.get("/suggest", params=params)
    assert r.status_code == 400 and r.json()["field"] == field


@pytest.mark.parametrize("junk", ["%%%", "a" * 200, "🙂🙂", "1", "北京市朝阳区" * 30, "Kamppi ‎x"])
def test_suggest_junk_never_fails(papi: TestClient, junk: str) -> None:
    r = papi.get("/suggest", params={"q": junk})
    assert r.status_code in (200, 400)


# --- Amap-compatible -----------------------------------------------------------------------


def test_amap_inputtips(papi: TestClient) -> None:
    body = papi.get("/compat/amap/v3/assistant/inputtips", params={"keywords": "首都机场"}).json()
    assert body["status"] == "1" and body["infocode"] == "10000" and int(body["count"]) == len(body["tips"])
    tip = body["tips"][0]
    assert tip["name"] == "北京首都国际机场" and tip["typecode"] == "150104" and tip["adcode"] == "110105"
    lon, lat = (float(v) for v in tip["location"].split(","))
    assert (
        abs(lon - 116.5977) > 1e-4
        and _metres((lon, lat), tuple(wgs84_to_gcj02(np.array([[116.5977, 40.0799]]))[0])) < 1
    )
    missing = papi.get("/compat/amap/v3/assistant/inputtips").json()
    assert missing["status"] == "0" and missing["infocode"] == "20001"


def test_amap_place_text(papi: TestClient) -> None:
    body = papi.get("/compat/amap/v3/place/text", params={"keywords": "北京站", "offset": "5"}).json()
    assert body["status"] == "1" and body["pois"][0]["name"] == "北京站"
    poi = body["pois"][0]
    assert poi["adname"] == "东城区" and poi["pname"] == "北京市" and poi["typecode"] == "150200"
    bad = papi.get("/compat/amap/v3/place/text", params={"keywords": "北京站", "offset": "99"}).json()
    assert bad["status"] == "0" and bad["infocode"] == "20000"


# --- imports -------------------------------------------------------------------------------


def test_name_index_prefix_infix_and_fold() -> None:
    index = NameIndex.build([["北京西站", "西客站"], ["北京站"], ["Kamppi Center"]])
    entries, quality = index.match("西站")
    assert set(entries.tolist()) == {0}
    entries, quality = index.match("北京站")
    assert dict(zip(entries.tolist(), quality.tolist(), strict=True))[1] == 1.0
    assert index.match("kamppi")[0].tolist() == [2]
    assert index.match("")[0].size == 0


def test_csv_import_cli_replaces_one_source(tmp_path: Path, places_db: Engine, papi: TestClient) -> None:
    from geoshare.cli.main import app

    f = tmp_path / "offices.csv"
    f.write_text(
        "名称,别名,类别,经度,纬度\n测试区政务服务中心,政务中心|服务中心,government,116.40,39.91\n",
        encoding="utf-8",
    )
    runner = CliRunner()
    r = runner.invoke(app, ["places", "import", str(f), "--source", "test-offices"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["places", "import", str(f), "--source", "test-offices"])  # idempotent
    with places_db.connect() as conn:
        rows = conn.execute(
            text("SELECT name, district_code FROM addr.place WHERE source = 'test-offices'")
        ).all()
        demo = conn.execute(text("SELECT count(*) FROM addr.place WHERE source = 'demo'")).scalar_one()
    assert rows == [("测试区政务服务中心", "110101")] and demo > 100
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the worker notices the new version within a few seconds
        names = [
            f["properties"]["name"] for f in papi.get("/places", params={"q": "政务中心"}).json()["features"]
        ]
        if names:
            break
        time.sleep(0.5)
    assert names == ["测试区政务服务中心"]
    bad = tmp_path / "bad.csv"
    bad.write_text("名称,类别\n某地,castle\n", encoding="utf-8")
    r = runner.invoke(app, ["places", "import", str(bad)])
    assert r.exit_code == 2 and "category" in r.output


@pytest.mark.skipif(not HELSINKI.exists(), reason="the shared OSM extract is not here")
def test_osm_import_of_helsinki(places_db: Engine) -> None:
    from geocode.places.store import replace_places

    records = read_osm(HELSINKI)
    assert len(records) > 1000
    station = next(r for r in records if "Helsingin rautatieasema" in r.aliases)
    assert station.category == "station" and station.code and station.code.startswith("node/")
    with places_db.connect() as conn:
        tx = conn.begin()
        replace_places(conn, "osm-helsinki", records)
        index = load_places(conn)
        tx.rollback()
    hits = index.search("helsingin rautatie", near=(24.94, 60.17), limit=3)
    assert hits and "Helsingin rautatieasema" in index.aliases[hits[0][0]]
    assert index.category[hits[0][0]] == "station" and hits[0][2] is not None and hits[0][2] < 500
    assert any("rautatieasema" in index.name[i].lower() for i, _, _ in index.search("rautatieasema", limit=5))
