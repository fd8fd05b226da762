"""Division lookup (``geocode.admin``) and ``/admin-areas`` against the demo city (real PostGIS)."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from geocode import admin
from layers.crs import wgs84_to_gcj02

OUTSIDE = (120.5, 40.5)


@pytest.fixture(scope="module")
def communities(address_db: Engine) -> list:
    """A few communities with a point surely inside each."""
    with address_db.connect() as conn:
        return conn.execute(
            text(
                """
                SELECT code, path_codes, path_names, ST_X(p) AS lon, ST_Y(p) AS lat
                FROM (SELECT *, ST_PointOnSurface(geom) AS p FROM addr.division WHERE level = 5
                      ORDER BY md5(code) LIMIT 8) d
                """
            )
        ).all()


def _expected(row) -> dict:  # noqa: ANN001
    keys = ("province", "city", "district", "street", "community")
    return {k: {"code": c, "name": n} for k, c, n in zip(keys, row.path_codes, row.path_names, strict=True)}


def test_locate_finds_the_community_and_its_parents(address_db: Engine, communities: list) -> None:
    assert len(communities) == 8
    with address_db.connect() as conn:
        for row in communities:
            path = admin.locate(conn, row.lon, row.lat)
            assert path is not None and path.level == 5
            assert path.community_code == row.code
            assert path.as_dict() == _expected(row)
        assert admin.locate(conn, *OUTSIDE) is None


def test_locate_falls_back_to_coarser_divisions(address_db: Engine, communities: list) -> None:
    """Where finer divisions have no boundary, the finest division that has one answers."""
    row = communities[0]
    with address_db.connect() as conn, conn.begin() as tx:
        conn.execute(text("UPDATE addr.division SET geom = NULL WHERE level IN (1, 2, 5)"))
        path = admin.locate(conn, row.lon, row.lat)
        tx.rollback()
    assert path is not None and path.level == 4
    assert path.street_code == row.path_codes[3] and path.community is None
    assert (path.province_code, path.city_code, path.district_code) == tuple(row.path_codes[:3])


def test_children_and_get(address_db: Engine, communities: list) -> None:
    district = communities[0].path_codes[2]
    with address_db.connect() as conn:
        top = admin.children(conn, None)
        streets = admin.children(conn, district)
        expected_top = conn.execute(
            text("SELECT code FROM addr.division WHERE parent_code IS NULL")
        ).scalars()
        expected_streets = conn.execute(
            text("SELECT code, short_name FROM addr.division WHERE parent_code = :p ORDER BY code"),
            {"p": district},
        ).all()
        leaf = admin.children(conn, communities[0].code)
        assert admin.children(conn, "999999") is None
        plain = admin.get(conn, district)
        shaped = admin.get(conn, district, geometry=True)
        npoints = conn.execute(
            text("SELECT ST_NPoints(geom) FROM addr.division WHERE code = :c"), {"c": district}
        ).scalar_one()
        assert admin.get(conn, "999999") is None
    assert top is not None and sorted(d.code for d in top) == sorted(expected_top)
    assert streets is not None and [(d.code, d.name) for d in streets] == [tuple(r) for r in expected_streets]
    assert all(d.level == 4 and d.parent_code == district for d in streets)
    assert leaf == []  # a community exists but has nothing below it
    assert plain is not None and plain.geometry is None and plain.level == 3
    assert shaped is not None and shaped.geometry is not None and shaped.geometry["type"] == "MultiPolygon"
    coords = sum(len(ring) for poly in shaped.geometry["coordinates"] for ring in poly)
    assert coords == npoints


# --- HTTP -----------------------------------------------------------------------------------


def test_http_locate(api: TestClient, communities: list) -> None:
    for row in communities[:4]:
        r = api.get("/admin-areas/locate", params={"lon": row.lon, "lat": row.lat})
        assert r.status_code == 200, r.text
        assert r.json() == _expected(row)


def test_http_locate_in_gcj02(api: TestClient, communities: list) -> None:
    row = communities[1]
    gx, gy = wgs84_to_gcj02(np.array([[row.lon, row.lat]]))[0]
    r = api.get("/admin-areas/locate", params={"lon": gx, "lat": gy, "crs": "gcj02"})
    assert r.status_code == 200 and r.json()["community"]["code"] == row.code


def test_http_locate_outside_is_404(api: TestClient) -> None:
    r = api.get("/admin-areas/locate", params={"lon": OUTSIDE[0], "lat": OUTSIDE[1]})
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"


def test_http_list(api: TestClient, address_db: Engine, communities: list) -> None:
    street = communities[2].path_codes[3]
    body = api.get("/admin-areas", params={"parent": street}).json()
    with address_db.connect() as conn:
        expected = conn.execute(
            text("SELECT code FROM addr.division WHERE parent_code = :p ORDER BY code"), {"p": street}
        ).scalars()
        assert [a["code"] for a in body["areas"]] == list(expected)
    assert body["parent"] == street
    assert {a["level_name"] for a in body["areas"]} == {"community"}
    assert all(a["parent_code"] == street and a["level"] == 5 for a in body["areas"])
    top = api.get("/admin-areas").json()
    assert top["parent"] is None and [a["level"] for a in top["areas"]] == [1] * len(top["areas"])
    r = api.get("/admin-areas", params={"parent": "999999"})
    assert r.status_code == 404 and r.json()["field"] == "parent"


def test_http_get_one(api: TestClient, communities: list) -> None:
    row = communities[3]
    body = api.get(f"/admin-areas/{row.code}").json()
    assert body["code"] == row.code and body["level_name"] == "community" and "geometry" not in body
    assert body["parent_code"] == row.path_codes[3] and body["name"] == row.path_names[-1]
    assert [p["code"] for p in body["path"]] == list(row.path_codes)
    assert [p["level_name"] for p in body["path"]] == ["province", "city", "district", "street", "community"]
    shaped = api.get(f"/admin-areas/{row.code}", params={"geometry": "true"}).json()
    assert shaped["geometry"]["type"] == "MultiPolygon"
    assert api.get("/admin-areas/999999").status_code == 404


@pytest.mark.parametrize("code", ["abc", "1", "1234567890123", "😀", "١٢٣٤", "1" * 10_000, "11 01"])
def test_http_bad_codes_are_400(api: TestClient, code: str) -> None:
    r = api.get(f"/admin-areas/{code}")
    assert r.status_code == 400, r.text
    assert r.json()["field"] == "code"
    r = api.get("/admin-areas", params={"parent": code})
    assert r.status_code == 400 and r.json()["field"] == "parent"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "lon"),
        ({"lon": 116.4}, "lat"),
        ({"lon": "x", "lat": 39.9}, "lon"),
        ({"lon": 116.4, "lat": 99}, "lat"),
    ],
)
def test_http_locate_bad_input(api: TestClient, params: dict, field: str) -> None:
    """Also shows /admin-areas/locate is not captured by /admin-areas/{code}."""
    r = api.get("/admin-areas/locate", params=params)
    assert r.status_code == 400 and r.json()["field"] == field


def test_http_geometry_flag_must_be_boolean(api: TestClient, communities: list) -> None:
    r = api.get(f"/admin-areas/{communities[0].code}", params={"geometry": "maybe"})
    assert r.status_code == 400 and r.json()["field"] == "geometry"
