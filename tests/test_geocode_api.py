"""``GET /geocode`` and ``POST /geocode/batch`` through the whole app, on the small demo city."""

from __future__ import annotations

import time

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from geocode.addressdb.load import stamp_version
from geoshare.services import geocoding
from layers.crs import wgs84_to_gcj02

CONTRACT = {
    "formatted_address", "province", "city", "district", "township", "community", "road", "number",
    "compound", "building", "unit", "room", "adcode", "towncode", "address_code", "level", "score",
    "location", "crs",
}  # fmt: skip


@pytest.fixture(scope="module")
def known(address_db: Engine) -> tuple[str, str, float, float]:
    with address_db.connect() as conn:
        return conn.execute(
            text(
                "SELECT full_address, address_code, ST_X(geom), ST_Y(geom) FROM addr.address "
                "WHERE level = 'building' ORDER BY address_code LIMIT 1"
            )
        ).one()


def test_contract_fields(api: TestClient, known: tuple[str, str, float, float]) -> None:
    full, code, lon, lat = known
    r = api.get("/geocode", params={"address": full + "2单元301室", "limit": 3})
    assert r.status_code == 200
    body = r.json()
    assert body["query"] == full + "2单元301室" and body["status"] == "ok"
    best = body["candidates"][0]
    assert set(best) >= CONTRACT
    assert best["address_code"] == code and best["level"] == "楼栋" and best["level_code"] == "building"
    assert (best["unit"], best["room"]) == ("2单元", "301")
    assert best["location"] == {"lon": pytest.approx(lon, abs=1e-6), "lat": pytest.approx(lat, abs=1e-6)}
    assert best["crs"] == "EPSG:4326" and 0.8 <= best["score"] <= 1
    assert body["parsed"]["building"] and body["parsed"]["unit"] == "2单元"


def test_gcj02_output(api: TestClient, known: tuple[str, str, float, float]) -> None:
    full, _, lon, lat = known
    body = api.get("/geocode", params={"address": full, "crs": "GCJ-02"}).json()
    loc = body["candidates"][0]["location"]
    expected = wgs84_to_gcj02(np.array([[lon, lat]]))[0]
    assert body["candidates"][0]["crs"] == "GCJ-02"
    assert loc["lon"] == pytest.approx(expected[0], abs=1e-6) and loc["lat"] == pytest.approx(
        expected[1], abs=1e-6
    )
    assert abs(loc["lon"] - lon) > 1e-4  # really shifted


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "address"),
        ({"address": "   "}, "address"),
        ({"address": "a" * 10_000}, "address"),  # 10 KB
        ({"address": "东城区", "limit": "0"}, "limit"),
        ({"address": "东城区", "limit": "abc"}, "limit"),
        ({"address": "东城区", "crs": "EPSG:9999"}, "crs"),
    ],
)
def test_bad_parameters(api: TestClient, params: dict[str, str], field: str) -> None:
    r = api.get("/geocode", params=params)
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["field"] == field


@pytest.mark.parametrize(
    "junk", ["😀🏠", "hello street 12", "ميدان التحرير", "SELECT * FROM x"]
)
def test_junk_is_an_empty_or_unconfident_answer(api: TestClient, junk: str) -> None:
    r = api.get("/geocode", params={"address": junk})
    assert r.status_code == 200
    body = r.json()
    assert body["status"] in ("empty", "not_found", "partial")
    assert all(c["score"] < 0.8 for c in body["candidates"])


def test_control_characters_in_an_address_are_refused_naming_it(api: TestClient) -> None:
    for bad in ("\x00\x1b[31m", "北京市" * 1150):  # control characters; 10 KB
        r = api.get("/geocode", params={"address": bad})
        assert r.status_code == 400 and r.json()["field"] == "address"


def test_batch(api: TestClient, known: tuple[str, str, float, float]) -> None:
    full, code, _, _ = known
    r = api.post("/geocode/batch", json={"addresses": [full, "琉璃星光大道8号", "", full], "crs": "BD-09"})
    assert r.status_code == 200
    body = r.json()
    assert body["count"] == 4 and body["crs"] == "BD-09"
    nowhere = body["results"][1]["status"]
    assert body["matched"] == 2 and body["by_status"] == {"ok": 2, "empty": 1, nowhere: 1}
    results = body["results"]
    assert [x["query"] for x in results] == [full, "琉璃星光大道8号", "", full]
    assert results[0]["candidates"][0]["address_code"] == code and results[0] == results[3]
    assert results[2]["status"] == "empty" and results[2]["candidates"] == []
    assert len(results[0]["candidates"]) == 1  # batch answers the best candidate unless asked


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"addresses": ["x"] * 1001}, "addresses"),
        ({"addresses": "not a list"}, "addresses"),
        ({"addresses": ["ok", 5]}, "addresses[1]"),
        ({"addresses": ["ok"], "limit": 99}, "limit"),
    ],
)
def test_batch_rejects(api: TestClient, payload: dict, field: str) -> None:
    r = api.post("/geocode/batch", json=payload)
    assert r.status_code == 400 and r.json()["field"] == field


def test_batch_needs_json(api: TestClient) -> None:
    r = api.post("/geocode/batch", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["field"] == "body"


def test_index_follows_address_database_changes(
    api: TestClient, address_db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    holder = geocoding.holder(api.app.state)
    before = holder.get().version
    monkeypatch.setattr(geocoding, "CHECK_SECONDS", 0.0)
    with address_db.begin() as conn:
        stamp_version(conn, {"addresses": -1})
    deadline = time.monotonic() + 20
    while holder.get().version == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert holder.get().version != before
    assert api.get("/geocode", params={"address": "北京市朝阳区"}).json()["status"] == "ok"


def test_context_of_another_city_is_not_confident(
    api: TestClient, known: tuple[str, str, float, float]
) -> None:
    full, _, _, _ = known
    local = full.removeprefix("北京市")
    here = api.get("/geocode", params={"address": local, "city": "北京"}).json()
    elsewhere = api.get("/geocode", params={"address": local, "city": "上海"}).json()
    assert here["status"] == "ok"
    assert elsewhere["status"] != "ok" and all(c["score"] < 0.8 for c in elsewhere["candidates"])
    written = api.get("/geocode", params={"address": "上海市" + local}).json()
    assert all(c["score"] < 0.8 for c in written["candidates"])
