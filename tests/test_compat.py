"""Amap- and Tianditu-compatible answers: the pure shaping functions, and the endpoints over HTTP.

The forward-geocoding endpoint tests (``*_forward_*``) go through the lead's
``geoshare.services.geocoding.forward``; everything else only needs the address database.
"""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from geocode.formatting import door_text
from geocode.model import Candidate, GeocodeResult, Level, Status
from geoshare.services import compat_amap as amap
from geoshare.services import compat_tianditu as tianditu
from layers.crs import gcj02_to_wgs84, wgs84_to_gcj02

OUTSIDE_BEIJING = (120.5, 40.5)  # in China, outside the demo city's divisions

REGEO = "/compat/amap/v3/geocode/regeo"
GEO = "/compat/amap/v3/geocode/geo"
TDT = "/compat/tianditu/geocoder"


@pytest.fixture(scope="module")
def doors(address_db: Engine) -> list:
    """Door addresses with no other address point within 15 m."""
    with address_db.connect() as conn:
        return conn.execute(
            text(
                """
                SELECT a.*, ST_X(a.geom) AS lon, ST_Y(a.geom) AS lat
                FROM (SELECT * FROM addr.address WHERE level = 'door' ORDER BY md5(address_code) LIMIT 100) a
                CROSS JOIN LATERAL (
                    SELECT ST_Distance(b.geom::geography, a.geom::geography) AS gap FROM addr.address b
                    WHERE b.address_code <> a.address_code ORDER BY b.geom <-> a.geom LIMIT 1) n
                WHERE n.gap > 15 ORDER BY md5(a.address_code) LIMIT 6
                """
            )
        ).all()


def _gcj(lon: float, lat: float) -> tuple[float, float]:
    x, y = wgs84_to_gcj02(np.array([[lon, lat]]))[0]
    return float(x), float(y)


def _loc(lon: float, lat: float) -> str:
    return f"{lon:.6f},{lat:.6f}"


def _candidate(**over: object) -> Candidate:
    base: dict = dict(
        formatted_address="北京市朝阳区将台街道将台路22号",
        level=Level.door,
        score=1.0,
        lon=116.48,
        lat=39.97,
        province="北京市",
        city="北京市",
        district="朝阳区",
        township="将台街道",
        community="将府社区",
        road="将台路",
        number="22号",
        adcode="110105",
        towncode="110105017",
        community_code="110105017001",
        address_code="1101050170010001002200000",
    )
    base.update(over)
    return Candidate(**base)


# --- pure shaping: Amap ---------------------------------------------------------------------


def test_amap_geo_shape_and_gcj02_location() -> None:
    c = _candidate()
    body = amap.geo_response([GeocodeResult("q", Status.ok, [c])])
    assert (body["status"], body["info"], body["infocode"], body["count"]) == ("1", "OK", "10000", "1")
    g = body["geocodes"][0]
    assert g["formatted_address"] == c.formatted_address and g["country"] == "中国"
    assert (g["province"], g["city"], g["district"], g["adcode"]) == ("北京市", "北京市", "朝阳区", "110105")
    assert g["citycode"] == "010" and g["level"] == "门牌号"
    assert (g["street"], g["number"]) == ("将台路", "22号")
    assert g["township"] == [] and g["neighborhood"] == {"name": [], "type": []}
    assert g["location"] == _loc(*_gcj(c.lon, c.lat)) != _loc(c.lon, c.lat)
    wgs = amap.geo_response([GeocodeResult("q", Status.ok, [c])], crs="EPSG:4326")
    assert wgs["geocodes"][0]["location"] == _loc(c.lon, c.lat)


def test_amap_levels_and_empty_values() -> None:
    expected = {
        Level.door: "门牌号",
        Level.building: "门牌号",
        Level.interpolated: "门牌号",
        Level.road: "道路",
        Level.community: "村庄",
        Level.township: "乡镇",
        Level.district: "区县",
        Level.city: "市",
    }
    for level, word in expected.items():
        g = amap.geo_response([GeocodeResult("q", Status.ok, [_candidate(level=level)])])["geocodes"][0]
        assert g["level"] == word
    g = amap.geo_response([GeocodeResult("q", Status.partial, [_candidate(road=None, number=None)])])
    assert g["geocodes"][0]["street"] == [] and g["geocodes"][0]["number"] == []


def test_amap_geo_not_found_and_batch_alignment() -> None:
    none = amap.geo_response([GeocodeResult("q", Status.not_found)])
    assert none["count"] == "0" and none["geocodes"] == [] and none["status"] == "1"
    a, b = _candidate(), _candidate(lon=116.3, formatted_address="B")
    batch = amap.geo_response(
        [
            GeocodeResult("a", Status.ok, [a]),
            GeocodeResult("x", Status.not_found),
            GeocodeResult("b", Status.ok, [b]),
        ],
        batch=True,
    )
    assert batch["count"] == "2" and len(batch["geocodes"]) == 3
    assert [g["formatted_address"] for g in batch["geocodes"]] == [a.formatted_address, [], "B"]
    assert batch["geocodes"][1]["location"] == []


def test_amap_regeo_shape() -> None:
    c = _candidate(distance_m=12.34, compound="将府家园", building="3号楼")
    north_east = (c.lon + 1e-4, c.lat + 1e-4)
    body = amap.regeo_response(c, north_east)
    assert (body["status"], body["infocode"]) == ("1", "10000")
    rc = body["regeocode"]
    ac = rc["addressComponent"]
    assert rc["formatted_address"] == c.formatted_address
    assert ac["city"] == [] and ac["province"] == "北京市"  # Amap leaves a municipality's city empty
    assert ac["citycode"] == "010" and ac["adcode"] == "110105" and ac["township"] == "将台街道"
    assert ac["towncode"] == "110105017000"
    assert ac["neighborhood"]["name"] == "将府家园" and ac["building"]["name"] == "3号楼"
    sn = ac["streetNumber"]
    assert (sn["street"], sn["number"], sn["distance"]) == ("将台路", "22号", "12.34")
    assert sn["direction"] == "东北" and sn["location"] == _loc(*_gcj(c.lon, c.lat))
    assert "pois" not in rc and "pois" in amap.regeo_response(c, north_east, extensions="all")["regeocode"]
    south = amap.regeo_response(c, (c.lon, c.lat - 1e-4))["regeocode"]["addressComponent"]["streetNumber"]
    assert south["direction"] == "南"


def test_amap_regeo_division_only_and_nothing() -> None:
    division = _candidate(
        level=Level.community,
        road=None,
        number=None,
        address_code=None,
        formatted_address="北京市朝阳区将台街道将府社区",
    )
    ac = amap.regeo_response(division, (division.lon, division.lat))["regeocode"]["addressComponent"]
    assert ac["streetNumber"] == {"street": [], "number": [], "location": [], "direction": [], "distance": []}
    assert ac["district"] == "朝阳区"
    none = amap.regeo_batch_response([None, division], [OUTSIDE_BEIJING, (division.lon, division.lat)])
    assert (
        none["regeocodes"][0]["formatted_address"] == []
        and none["regeocodes"][0]["addressComponent"]["adcode"] == []
    )
    assert none["regeocodes"][1]["formatted_address"] == division.formatted_address
    assert amap.error() == {"status": "0", "info": "INVALID_PARAMS", "infocode": "20000"}


# --- pure shaping: Tianditu -----------------------------------------------------------------


def test_tianditu_geocoder_shape() -> None:
    c = _candidate(score=0.87)
    body = tianditu.geocoder_response(GeocodeResult("将台路22号", Status.ok, [c]))
    assert body["status"] == "0" and body["msg"] == "ok" and body["searchVersion"]
    loc = body["location"]
    assert loc == {"score": 87, "level": "门址", "lon": 116.48, "lat": 39.97, "keyWord": "将台路22号"}
    assert tianditu.geocoder_response(GeocodeResult("x", Status.not_found))["status"] != "0"


def test_tianditu_reverse_shape() -> None:
    c = _candidate(distance_m=7.6)
    query = (c.lon - 1e-4, c.lat)
    body = tianditu.reverse_response(c, query)
    assert body["status"] == "0" and body["result"]["location"] == {"lon": query[0], "lat": query[1]}
    ac = body["result"]["addressComponent"]
    assert ac["nation"] == "中国" and ac["province_code"] == "156110000"
    assert ac["city"] == "" and ac["city_code"] == ""  # municipality, as Tianditu answers for Beijing
    assert (ac["county"], ac["county_code"]) == ("朝阳区", "156110105")
    assert (ac["town"], ac["town_code"]) == ("将台街道", "156110105017")
    assert ac["address"] == "将台路22号" and ac["address_distance"] == 8 and ac["address_position"] == "西"
    assert ac["road"] == "将台路"
    assert tianditu.reverse_response(None, query)["status"] != "0"


# --- HTTP: reverse --------------------------------------------------------------------------


def test_http_amap_regeo_in_gcj02(api: TestClient, doors: list) -> None:
    for row in doors[:4]:
        gx, gy = _gcj(row.lon, row.lat)
        r = api.get(REGEO, params={"location": f"{gx:.6f},{gy:.6f}", "key": "anything"})
        assert r.status_code == 200
        body = r.json()
        assert body["status"] == "1", body
        rc = body["regeocode"]
        ac = rc["addressComponent"]
        assert rc["formatted_address"] == row.full_address
        assert ac["adcode"] == row.district_code and ac["township"] == row.street
        assert ac["towncode"] == row.street_code.ljust(12, "0")
        sn = ac["streetNumber"]
        assert sn["street"] == row.road and sn["number"] == door_text(row.door_number, row.door_suffix)
        assert sn["location"] == _loc(gx, gy)  # the door, in GCJ-02
        assert float(sn["distance"]) < 0.2  # 6-decimal input rounding only


def test_http_amap_regeo_wgs84_and_batch(api: TestClient, doors: list) -> None:
    a, b = doors[0], doors[1]
    body = api.get(REGEO, params={"location": f"{a.lon},{a.lat}", "coordsys": "gps"}).json()
    assert body["regeocode"]["addressComponent"]["streetNumber"]["location"] == _loc(a.lon, a.lat)
    locations = "|".join([f"{b.lon},{b.lat}", "{},{}".format(*OUTSIDE_BEIJING), f"{a.lon},{a.lat}"])
    batch = api.get(REGEO, params={"location": locations, "batch": "true", "crs": "EPSG:4326"}).json()
    assert batch["status"] == "1" and len(batch["regeocodes"]) == 3
    assert [rc["formatted_address"] for rc in batch["regeocodes"]] == [b.full_address, [], a.full_address]


@pytest.mark.parametrize(
    ("params", "infocode"),
    [
        ({}, "20001"),
        ({"location": ""}, "20001"),
        ({"location": "abc"}, "20000"),
        ({"location": "116.4"}, "20000"),
        ({"location": "200,40"}, "20000"),
        ({"location": "39.9,116.4"}, "20000"),
        ({"location": "116.4,39.9", "radius": "5000"}, "20000"),
        ({"location": "116.4,39.9", "radius": "-1"}, "20000"),
        ({"location": "116.4,39.9|116.5,39.9"}, "20000"),  # several without batch=true
        ({"location": "|".join(["116.4,39.9"] * 1001), "batch": "true"}, "20000"),
        ({"location": "116.4,39.9", "extensions": "most"}, "20000"),
        ({"location": "116.4,39.9", "coordsys": "mapbar"}, "20000"),
        ({"location": "116.4,39.9", "output": "XML"}, "20000"),
        ({"location": "nan,nan"}, "20000"),
        ({"location": "😀" * 3000}, "20000"),
    ],
)
def test_http_amap_regeo_errors_keep_amaps_convention(api: TestClient, params: dict, infocode: str) -> None:
    r = api.get(REGEO, params=params)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert (body["status"], body["infocode"]) == ("0", infocode)
    assert body["info"] == ("MISSING_REQUIRED_PARAMS" if infocode == "20001" else "INVALID_PARAMS")


def test_http_tianditu_reverse(api: TestClient, doors: list) -> None:
    row = doors[2]
    post = f"{{'lon':{row.lon!r},'lat':{row.lat!r},'ver':1}}"
    r = api.get(TDT, params={"postStr": post, "type": "geocode", "tk": "anything"})
    body = r.json()
    assert r.status_code == 200 and body["status"] == "0", body
    res = body["result"]
    assert res["formatted_address"] == row.full_address
    assert res["location"] == {"lon": row.lon, "lat": row.lat}  # CGCS2000 ≈ WGS84: no shift
    ac = res["addressComponent"]
    assert ac["county_code"] == "156" + row.district_code and ac["town_code"] == "156" + row.street_code
    assert ac["road"] == row.road and ac["address_distance"] == 0
    double_quoted = f'{{"lon": {row.lon!r}, "lat": "{row.lat!r}"}}'  # JSON, the latitude as a string
    double_quoted = api.get(TDT, params={"postStr": double_quoted}).json()
    assert double_quoted["result"]["formatted_address"] == row.full_address


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"postStr": "lon=116.4"},
        {"postStr": "{'lon':116.4}"},
        {"postStr": "{'lon':'x','lat':39.9}"},
        {"postStr": "{'lon':200,'lat':39.9}"},
        {"postStr": "{'lon':116.4,'lat':39.9}", "type": "search"},
        {"postStr": "[116.4, 39.9]"},
        {"ds": "{'keyWord':''}"},
        {"ds": "not json"},
    ],
)
def test_http_tianditu_errors(api: TestClient, params: dict) -> None:
    r = api.get(TDT, params=params)
    assert r.status_code == 200 and r.json()["status"] not in ("0", None) and r.json()["msg"]


def test_http_tianditu_reverse_outside_divisions(api: TestClient) -> None:
    post = f"{{'lon':{OUTSIDE_BEIJING[0]!r},'lat':{OUTSIDE_BEIJING[1]!r}}}"
    assert api.get(TDT, params={"postStr": post}).json()["status"] == "101"


# --- HTTP: forward (through the lead's geoshare.services.geocoding.forward) -----------------


def test_http_amap_forward_geo(api: TestClient, doors: list) -> None:
    row = doors[3]
    r = api.get(GEO, params={"address": row.full_address, "key": "k"})
    body = r.json()
    assert body["status"] == "1" and body["count"] == "1", body
    g = body["geocodes"][0]
    assert g["formatted_address"] == row.full_address and g["adcode"] == row.district_code
    assert g["level"] == "门牌号" and g["citycode"] == "010"
    lon, lat = (float(v) for v in g["location"].split(","))
    back = gcj02_to_wgs84(np.array([[lon, lat]]))[0]
    assert abs(back[0] - row.lon) < 2e-6 and abs(back[1] - row.lat) < 2e-6


def test_http_amap_forward_batch_and_city_codes(api: TestClient, doors: list) -> None:
    a, b = doors[4], doors[5]
    body = api.get(
        GEO, params={"address": f"{a.full_address}|琉璃星光大道99999号|{b.full_address}", "batch": "true"}
    ).json()
    assert body["status"] == "1" and len(body["geocodes"]) == 3
    assert body["geocodes"][0]["formatted_address"] == a.full_address
    assert body["geocodes"][2]["formatted_address"] == b.full_address
    short = a.full_address.removeprefix(a.province).removeprefix(a.district)
    for city in ("010", "110000", a.district_code, "北京"):
        hit = api.get(GEO, params={"address": short, "city": city}).json()
        assert hit["status"] == "1" and hit["geocodes"][0]["formatted_address"] == a.full_address, (city, hit)


@pytest.mark.parametrize(
    ("params", "infocode"),
    [
        ({}, "20001"),
        ({"address": "x" * 500}, "20000"),
        ({"address": "|".join(["a"] * 1001), "batch": "true"}, "20000"),
        ({"address": "将台路22号", "city": "999999"}, "20000"),
        ({"address": "将台路22号", "batch": "maybe"}, "20000"),
    ],
)
def test_http_amap_geo_errors(api: TestClient, params: dict, infocode: str) -> None:
    body = api.get(GEO, params=params).json()
    assert (body["status"], body["infocode"]) == ("0", infocode)


def test_http_tianditu_forward(api: TestClient, doors: list) -> None:
    row = doors[3]
    ds = f'{{"keyWord":"{row.full_address}"}}'
    body = api.get(TDT, params={"ds": ds, "tk": "k"}).json()
    assert body["status"] == "0", body
    loc = body["location"]
    assert loc["keyWord"] == row.full_address and loc["level"] == "门址" and 0 <= loc["score"] <= 100
    assert abs(loc["lon"] - row.lon) < 2e-6 and abs(loc["lat"] - row.lat) < 2e-6
