"""The catalog as OGC API – Records (issue 15.20): OWSLib's ``ogcapi.records`` finds the city's
layers, imagery and services with their keeper, sharing class, update frequency, currency, extent,
CRS and links; ``q``, ``bbox``, ``datetime``, ``type``, ``department`` and ``theme`` search it; a
restricted layer is a record only for who may read it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from conftest import _wipe
from e2e.conftest import _Server
from fastapi.testclient import TestClient
from layer_factory import make_layer
from owslib.ogcapi.records import Records
from shapely.geometry import Point
from sqlalchemy import Engine

from geoshare.access.store import create_key
from geoshare.settings import Settings

ITEMS = "/records/collections/catalog/items"


@pytest.fixture(scope="module")
def world(engine: Engine) -> dict[str, str]:
    _wipe(engine)
    make_layer(engine, "rec_shelters", [(Point(116.40, 39.90), {"名称": "避难场所"})], [("名称", "string")],
               department="yjglj", department_name="应急管理局", title="应急避难场所", theme="应急",
               keywords=["避难"], update_frequency="monthly")  # fmt: skip
    make_layer(engine, "rec_far", [(Point(121.47, 31.23), {"名称": "远处"})], [("名称", "string")],
               department="yjglj", title="上海的点", theme="测试")  # fmt: skip
    make_layer(engine, "rec_secret", [(Point(116.41, 39.91), {"名称": "危险源"})], [("名称", "string")],
               department="yjglj", title="危险源", sharing_class="restricted", theme="应急")  # fmt: skip
    with engine.begin() as conn:
        return {"owner": create_key(conn, "yjglj").key}


@pytest.fixture(scope="module")
def served(world: dict[str, str], settings: Settings) -> Iterator[str]:
    from geoshare.api.app import create_app

    with _Server(create_app(settings)) as server:
        yield server.url


@pytest.fixture(scope="module")
def client(world: dict[str, str], settings: Settings) -> Iterator[TestClient]:
    from geoshare.api.app import create_app

    with TestClient(create_app(settings)) as c:
        yield c


def ids(body: dict[str, Any]) -> set[str]:
    return {f["id"] for f in body["features"]}


def test_owslib_finds_the_catalog_and_its_records(served: str, world: dict[str, str]) -> None:
    api = Records(f"{served}/records")
    assert api.records() == ["catalog"]
    found = api.collection_items("catalog", q="避难")
    assert ids(found) == {"layer.rec_shelters"}
    record = found["features"][0]
    props = record["properties"]
    assert props["type"] == "dataset" and props["title"] == "应急避难场所"
    assert props["contacts"][0]["organization"] == "应急管理局"  # the keeper, by name
    assert props["geoshare:sharingClass"] == "public" and props["geoshare:updateFrequency"] == "monthly"
    assert props["geoshare:asOf"] and "http://www.opengis.net/def/crs/EPSG/0/4490" in props["geoshare:crs"]
    assert record["geometry"]["type"] == "Polygon"  # the extent
    rels = {link["rel"] for link in record["links"]}
    assert {"items", "collection", "alternate"} <= rels and any("tiles" in r for r in rels)
    everything = api.collection_items("catalog", limit=100)
    assert "layer.rec_secret" not in ids(everything)  # restricted: not for anonymous readers
    assert {"service.wmts", "service.geocode", "service.basemap"} <= ids(everything)
    owner = Records(f"{served}/records", headers={"X-API-Key": world["owner"]})
    assert "layer.rec_secret" in ids(owner.collection_items("catalog", limit=100))


def test_records_are_searched_by_bbox_type_department_theme_and_time(client: TestClient) -> None:
    def search(**params: str) -> set[str]:
        r = client.get(ITEMS, params={"limit": "100", **params})
        assert r.status_code == 200 and r.headers["content-type"] == "application/geo+json", r.text
        return ids(r.json())

    beijing = search(bbox="116.0,39.5,117.0,40.5", type="dataset")
    assert "layer.rec_shelters" in beijing and "layer.rec_far" not in beijing
    services = {"service.basemap", "service.wmts", "service.geocode", "service.features"}
    assert search(type="service") == services
    assert search(department="应急管理局", theme="应急") == {"layer.rec_shelters"}
    assert search(department="yjglj", theme="测试") == {"layer.rec_far"}
    assert "layer.rec_shelters" in search(datetime="2000-01-01T00:00:00Z/..")
    assert "layer.rec_shelters" not in search(datetime="../2000-01-01T00:00:00Z")
    one = client.get(f"{ITEMS}/layer.rec_shelters")
    assert one.status_code == 200 and one.json()["properties"]["title"] == "应急避难场所"
    assert client.get(f"{ITEMS}/layer.rec_secret").status_code == 404  # as unknown as a missing one
    page = client.get(ITEMS, params={"limit": "2"}).json()
    assert page["numberReturned"] == 2 and any(link["rel"] == "next" for link in page["links"])
    for bad, field in (({"type": "map"}, "type"), ({"limit": "0"}, "limit"), ({"bbox": "1,2"}, "bbox"),
                       ({"colour": "red"}, "colour")):  # fmt: skip
        r = client.get(ITEMS, params=bad)
        assert r.status_code == 400 and r.json()["field"] == field, bad
    queryables = client.get("/records/collections/catalog/queryables").json()["properties"]
    assert {"q", "type", "department", "theme"} <= set(queryables)
