"""Control characters and broken UTF-8 in a request: a 400 naming the parameter, never a 500.

PostgreSQL cannot hold NUL in text, so before one rule refused them at the door a NUL anywhere a
parameter reached SQL (a filter literal, a queryable, a catalog search) was a 500.
"""

from __future__ import annotations

import json
from typing import Any

import morecantile
import pytest
from fastapi.testclient import TestClient
from layer_factory import make_layer
from shapely.geometry import Point
from sqlalchemy import Engine, text
from test_audit import flush

from geoshare.api.input_text import fault, query_fault

PROBLEM = "application/problem+json"
LAYER = "bytes_shelters"


@pytest.fixture
def shelters(db: Engine) -> str:
    make_layer(
        db,
        LAYER,
        [(Point(116.40 + i / 100, 39.90), {"名称": f"避难所{i}", "容量": i}) for i in range(5)],
        [("名称", "string"), ("容量", "integer")],
    )
    return LAYER


def problem(r: Any, field: str) -> dict[str, Any]:
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert body["field"] == field, body
    assert body["status"] == 400 and body["title"] == "Bad Request"
    return body


def tile_path(layer: str, z: int = 14) -> str:
    t = morecantile.tms.get("WebMercatorQuad").tile(116.42, 39.90, z)
    return f"/collections/{layer}/tiles/WebMercatorQuad/{z}/{t.y}/{t.x}"


# -- the rule itself -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "wrong"),
    [
        (b"a=1&b=%E5%90%8D", None),
        (b"filter=%E5%90%8D%E7%A7%B0%3D%27x%27&limit=2", None),
        (b"a=b+c%20d", None),
        (b"a=%00", "U+0000"),
        (b"a=%1f", "U+001F"),
        (b"a=%7F", "U+007F"),
        (b"a=%09", "U+0009"),
        (b"a=x\x01y", "U+0001"),
        (b"a=%FF", "not UTF-8"),
        (b"a=%ED%A0%80", "not UTF-8"),  # a UTF-16 surrogate: no text encodes it
        (b"a=\xff", "not UTF-8"),
    ],
)
def test_what_is_refused(raw: bytes, wrong: str | None) -> None:
    found = fault(raw)
    assert (found is None) if wrong is None else (found is not None and wrong in found)


def test_the_parameter_at_fault_is_named() -> None:
    assert query_fault(b"limit=2&%E5%90%8D%E7%A7%B0=%00x") == (
        "名称",
        "the value of parameter '名称' contains the control character U+0000",
    )
    name, detail = query_fault(b"ok=1&a%00b=1") or ("", "")
    assert name == "a\\x00b" and "name of parameter" in detail  # shown escaped, never raw
    assert query_fault(b"a=1&b=2") is None


# -- over HTTP ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    ["filter=名称='%00'", "filter=名称='a%01b'", "filter=名称='%FF'", "filter=容量>1%0AAND容量<3"],
)
def test_control_characters_in_a_text_filter(client: TestClient, shelters: str, query: str) -> None:
    problem(client.get(f"/collections/{shelters}/items?{query}"), "filter")


@pytest.mark.parametrize("literal", ["a\u0000b", "\ud800", "a\u001fb"])
def test_control_characters_escaped_in_a_json_filter(client: TestClient, shelters: str, literal: str) -> None:
    cql = json.dumps({"op": "=", "args": [{"property": "名称"}, literal]})  # ASCII: \u0000 escaped
    assert "\\u" in cql and cql.isascii()
    r = client.get(f"/collections/{shelters}/items", params={"filter": cql, "filter-lang": "cql2-json"})
    problem(r, "filter")


@pytest.mark.parametrize("value", ["%00", "a%00", "%FF", "%7F"])
def test_queryables_and_other_parameters(client: TestClient, shelters: str, value: str) -> None:
    problem(client.get(f"/collections/{shelters}/items?名称={value}"), "名称")
    problem(client.get(f"/collections/{shelters}/items?limit={value}"), "limit")


def test_clean_unicode_still_works(client: TestClient, shelters: str) -> None:
    r = client.get(f"/collections/{shelters}/items", params={"名称": "避难所3"})
    assert r.status_code == 200 and [f["properties"]["名称"] for f in r.json()["features"]] == ["避难所3"]
    r = client.get(f"/collections/{shelters}/items", params={"filter": "名称 LIKE '避难所%'"})
    assert r.status_code == 200 and r.json()["numberReturned"] == 5


def test_tile_filter_through_the_fast_path(client: TestClient, shelters: str) -> None:
    plain = client.get(tile_path(shelters))
    assert plain.status_code in (200, 204), plain.text  # the fast path learns the tile route
    assert client.get(tile_path(shelters)).status_code == plain.status_code  # and serves it
    body = problem(client.get(f"{tile_path(shelters)}?filter=名称='%00'"), "filter")
    assert "U+0000" in body["detail"]
    cql = json.dumps({"op": "=", "args": [{"property": "名称"}, "\u0000"]})
    r = client.get(tile_path(shelters), params={"filter": cql, "filter-lang": "cql2-json"})
    problem(r, "filter")


def test_tile_filter_revalidated_through_the_fast_path(client: TestClient, shelters: str) -> None:
    assert client.get(tile_path(shelters)).status_code in (200, 204)  # the fast path is on
    r = client.get(f"{tile_path(shelters)}?filter=名称='%00'", headers={"If-None-Match": "*"})
    problem(r, "filter")
    # a filter that does not parse, or names no property of the layer, is not revalidated either
    for bad in ("名称 ==== 1", "没有这个字段 = 1"):
        r = client.get(tile_path(shelters), params={"filter": bad}, headers={"If-None-Match": "*"})
        problem(r, "filter")


def test_catalog_and_geocode(client: TestClient, shelters: str) -> None:
    problem(client.get("/catalog?q=%00"), "q")
    problem(client.get("/catalog?q=%E9%81%BF%FF"), "q")
    assert client.get("/catalog", params={"q": "避难"}).status_code == 200
    problem(client.get("/geocode?address=%00"), "address")
    problem(client.get("/geocode?address=北京市%0D%0A朝阳区"), "address")


def test_geocode_batch_refuses_control_characters(api: TestClient) -> None:
    """A JSON body is past the URL rule: the batch applies it to its strings itself."""
    ok = api.post("/geocode/batch", json={"addresses": ["北京市朝阳区"]})
    assert ok.status_code == 200 and ok.json()["matched"] == 1
    r = api.post("/geocode/batch", json={"addresses": ["北京市朝阳区", "北京市\u0000朝阳区"]})
    assert "U+0000" in problem(r, "addresses[1]")["detail"]
    problem(api.post("/geocode/batch", json={"addresses": ["x"], "city": "北京\n"}), "city")


def test_vendor_shaped_refusals(client: TestClient) -> None:
    wmts = client.get("/wmts?SERVICE=WMTS&REQUEST=GetTile&LAYER=%00")
    assert wmts.status_code == 400 and wmts.headers["content-type"].startswith("application/xml")
    assert b'exceptionCode="InvalidParameterValue"' in wmts.content and b'locator="LAYER"' in wmts.content
    amap = client.get("/compat/amap/v3/geocode/geo?address=%00")
    assert amap.status_code == 200 and amap.json()["status"] == "0"  # Amap's convention: HTTP 200
    assert amap.json()["infocode"] == "20000"
    tianditu = client.get("/compat/tianditu/geocoder?ds=%7B%22keyWord%22%3A%22%00%22%7D")
    assert tianditu.status_code == 200 and tianditu.json()["status"] != "0"
    escaped = client.get("/compat/tianditu/geocoder", params={"ds": '{"keyWord": "\\u0000"}'})
    assert escaped.status_code == 200 and "U+0000" in escaped.json()["msg"]


def test_path_parameters_and_the_audit_log(client: TestClient, shelters: str, db: Engine) -> None:
    body = problem(client.get("/collections/a%00b/items"), "collection_id")
    assert "\x00" not in body["instance"]
    problem(client.get("/collections/a%FFb/items"), "collection_id")
    problem(client.get("/no/such%00thing"), "path")
    problem(client.get(f"{tile_path('x%01y')}"), "collection_id")
    # the refusals are audited, and their paths (controls escaped) do not wedge the writer's batch
    flush(client)
    assert client.app.state.audit.writer.pending == 0  # type: ignore[attr-defined]
    with db.connect() as conn:
        endpoints = set(
            conn.execute(text("SELECT endpoint FROM gs.audit_log WHERE status = 400")).scalars().all()
        )
    assert {"/collections/a\\x00b/items", "/no/such\\x00thing"} <= endpoints
