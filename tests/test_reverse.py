"""Reverse geocoding against the small demo city (real PostGIS): engine and ``GET /geocode/reverse``."""

from __future__ import annotations

import math

import eviltransform
import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from geocode.formatting import door_text
from geocode.model import Level
from geocode.reverse import reverse, reverse_many
from geoshare.services import coords
from layers.crs import wgs84_to_bd09, wgs84_to_gcj02
from layers.errors import BadParameter

OUTSIDE = (120.5, 40.5)  # Bohai coast, far outside the demo city's divisions


def _rows(engine: Engine, sql: str, **params: object) -> list:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).all()


def _metres(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    dx = math.radians(lon2 - lon1) * math.cos(math.radians((lat1 + lat2) / 2))
    return 6_371_000 * math.hypot(dx, math.radians(lat2 - lat1))


def _east(lon: float, lat: float, metres: float) -> tuple[float, float]:
    return lon + metres / (111_320.0 * math.cos(math.radians(lat))), lat


# Address points whose nearest other point is over 15 m away, so a 5 m shift cannot change the answer.
ISOLATED = """
    SELECT a.address_code, a.level, a.full_address, a.district_code, a.street_code, a.community_code,
           a.door_number, a.door_suffix, a.building_number, a.compound, a.road,
           ST_X(a.geom) AS lon, ST_Y(a.geom) AS lat
    FROM (SELECT * FROM addr.address WHERE level = :level ORDER BY md5(address_code) LIMIT 200) a
    CROSS JOIN LATERAL (
        SELECT ST_Distance(b.geom::geography, a.geom::geography) AS gap FROM addr.address b
        WHERE b.address_code <> a.address_code ORDER BY b.geom <-> a.geom LIMIT 1
    ) n
    WHERE n.gap > 15
    ORDER BY md5(a.address_code) LIMIT :n
"""


@pytest.fixture(scope="module")
def isolated(address_db: Engine) -> list:
    rows = _rows(address_db, ISOLATED, level="door", n=12) + _rows(
        address_db, ISOLATED, level="building", n=8
    )
    assert len(rows) == 20
    return rows


def test_address_points_reverse_to_themselves(address_db: Engine, isolated: list) -> None:
    with address_db.connect() as conn:
        for row in isolated:
            c = reverse(conn, row.lon, row.lat)
            assert c is not None and c.address_code == row.address_code
            assert c.distance_m is not None and c.distance_m < 0.01 and c.score == 1.0
            assert c.formatted_address == row.full_address
            assert (c.adcode, c.towncode, c.community_code) == (
                row.district_code,
                row.street_code,
                row.community_code,
            )
            assert c.level is (Level.door if row.level == "door" else Level.building)
            assert c.number == door_text(row.door_number, row.door_suffix)
            assert c.road == row.road and c.compound == row.compound
            assert c.building == (f"{row.building_number}号楼" if row.building_number else None)
            assert (c.lon, c.lat) == pytest.approx((row.lon, row.lat), abs=1e-9)


def test_a_point_5_m_away_finds_the_same_address(address_db: Engine, isolated: list) -> None:
    with address_db.connect() as conn:
        for row in isolated:
            c = reverse(conn, *_east(row.lon, row.lat, 5.0))
            assert c is not None and c.address_code == row.address_code
            assert c.distance_m == pytest.approx(5.0, abs=0.1)
            assert 0.5 < c.score < 1.0  # further than the exact radius, scored a little lower


def test_nearest_matches_brute_force_over_the_spheroid(address_db: Engine) -> None:
    """KNN in degrees then exact re-ranking must agree with a full scan by geography distance,
    including where the nearest point in degrees is not the nearest in metres.
    """
    rng = np.random.default_rng(7)
    seeds = _rows(
        address_db, "SELECT ST_X(geom), ST_Y(geom) FROM addr.address ORDER BY md5(address_code) LIMIT 300"
    )
    points = [(lon + rng.uniform(-6e-4, 6e-4), lat + rng.uniform(-6e-4, 6e-4)) for lon, lat in seeds]
    truth = _rows(
        address_db,
        """
        SELECT m.distance_m, d.address_code <> m.address_code AS degrees_disagree
        FROM unnest(CAST(:xs AS float8[]), CAST(:ys AS float8[])) WITH ORDINALITY AS q(x, y, i)
        CROSS JOIN LATERAL (SELECT ST_SetSRID(ST_MakePoint(q.x, q.y), 4326) AS g) p
        CROSS JOIN LATERAL (SELECT address_code FROM addr.address ORDER BY geom <-> p.g LIMIT 1) d
        CROSS JOIN LATERAL (
            SELECT address_code, ST_Distance(geom::geography, p.g::geography) AS distance_m
            FROM addr.address WHERE geom && ST_Expand(p.g, 0.01)  -- ~1 km; the seed is within 100 m
            ORDER BY 2 LIMIT 1) m
        ORDER BY q.i
        """,
        xs=[p[0] for p in points],
        ys=[p[1] for p in points],
    )
    assert any(t.degrees_disagree for t in truth), "the sample should include degree/metre disagreements"
    with address_db.connect() as conn:
        answers = reverse_many(conn, points, radius_m=500.0)
    for t, c in zip(truth, answers, strict=True):
        assert c is not None and c.distance_m == pytest.approx(t.distance_m, abs=0.01)


def test_batch_keeps_input_order_and_mixes_outcomes(address_db: Engine, isolated: list) -> None:
    a, b = isolated[0], isolated[1]
    with address_db.connect() as conn:
        out = reverse_many(conn, [(b.lon, b.lat), OUTSIDE, (a.lon, a.lat)])
        assert reverse_many(conn, []) == []
    assert out[0] is not None and out[0].address_code == b.address_code
    assert out[1] is None
    assert out[2] is not None and out[2].address_code == a.address_code


def test_no_address_within_radius_gives_the_division_path(address_db: Engine) -> None:
    rows = _rows(
        address_db,
        """
        SELECT d.code, d.path_codes, d.path_names, ST_X(p.g) AS lon, ST_Y(p.g) AS lat
        FROM (SELECT * FROM addr.division WHERE level = 5 ORDER BY md5(code) LIMIT 100) d
        CROSS JOIN LATERAL (SELECT ST_PointOnSurface(d.geom) AS g) p
        WHERE (SELECT ST_Distance(a.geom::geography, p.g::geography) FROM addr.address a
               ORDER BY a.geom <-> p.g LIMIT 1) > 60  -- KNN in degrees: 60 m keeps a margin
        ORDER BY md5(d.code) LIMIT 5
        """,
    )
    assert rows
    with address_db.connect() as conn:
        for row in rows:
            c = reverse(conn, row.lon, row.lat, radius_m=30.0)
            assert c is not None and c.level is Level.community
            assert c.address_code is None and c.distance_m is None and c.number is None
            assert (c.lon, c.lat) == (row.lon, row.lat)
            assert c.community_code == row.code and c.community == row.path_names[-1]
            assert [c.adcode, c.towncode] == row.path_codes[2:4]
            assert c.formatted_address.endswith(row.path_names[-1]) and c.formatted_address.startswith(
                row.path_names[0]
            )
            assert c.score < 1.0


def test_outside_every_division_is_none(address_db: Engine) -> None:
    covered = _rows(
        address_db,
        "SELECT count(*) FROM addr.division "
        "WHERE ST_Intersects(geom, ST_SetSRID(ST_MakePoint(:x, :y), 4326))",
        x=OUTSIDE[0],
        y=OUTSIDE[1],
    )[0][0]
    assert covered == 0
    with address_db.connect() as conn:
        assert reverse(conn, *OUTSIDE, radius_m=5000.0) is None


def test_door_wins_a_tie_with_a_building(address_db: Engine, isolated: list) -> None:
    door = next(r for r in isolated if r.level == "door")
    with address_db.connect() as conn, conn.begin() as tx:
        # a building address at exactly the door's spot, sorting first by code: the door must still win
        conn.execute(
            text(
                """
                INSERT INTO addr.address
                SELECT '0' || substr(address_code, 2), 'building', province_code, province, city_code, city,
                       district_code, district, street_code, street, community_code, community, road_id,
                       road, door_number, door_suffix, side, road_position, compound_id, '测试小区',
                       building_id, 9, units, floors, rooms_per_floor, full_address || '9号楼', geom
                FROM addr.address WHERE address_code = :code
                """
            ),
            {"code": door.address_code},
        )
        c = reverse(conn, door.lon, door.lat)
        tx.rollback()
    assert c is not None and c.address_code == door.address_code and c.level is Level.door


# --- HTTP -----------------------------------------------------------------------------------


def test_http_reverse_answers_the_address(api: TestClient, isolated: list) -> None:
    row = isolated[0]
    r = api.get("/geocode/reverse", params={"lon": row.lon, "lat": row.lat})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ok"
    assert body["query"] == {"lon": row.lon, "lat": row.lat, "crs": "EPSG:4326"}
    res = body["result"]
    assert res["address_code"] == row.address_code and res["formatted_address"] == row.full_address
    assert res["adcode"] == row.district_code and res["community_code"] == row.community_code
    assert res["level_code"] == row.level and res["crs"] == "EPSG:4326"
    assert res["location"] == {
        "lon": pytest.approx(row.lon, abs=1e-7),
        "lat": pytest.approx(row.lat, abs=1e-7),
    }
    assert res["distance_m"] < 0.01 and "lon" not in res


@pytest.mark.parametrize(
    ("crs", "shift", "tolerance"),
    [
        ("GCJ-02", wgs84_to_gcj02, 0.01),
        ("urn:geoshare:def:crs:GCJ-02", wgs84_to_gcj02, 0.01),
        ("bd09", wgs84_to_bd09, 0.5),  # the usual BD-09 inverse is good to decimetres, not centimetres
    ],
)
def test_http_reverse_in_shifted_crs_round_trips(
    api: TestClient,
    isolated: list,
    crs: str,
    shift,  # noqa: ANN001
    tolerance: float,
) -> None:
    for row in isolated[:5]:
        gx, gy = shift(np.array([[row.lon, row.lat]]))[0]
        assert _metres(gx, gy, row.lon, row.lat) > 100  # the offset is real
        body = api.get("/geocode/reverse", params={"lon": gx, "lat": gy, "crs": crs}).json()
        res = body["result"]
        assert res["address_code"] == row.address_code and res["distance_m"] < tolerance
        assert body["query"]["crs"] == res["crs"] and res["crs"] in ("GCJ-02", "BD-09")
        assert _metres(res["location"]["lon"], res["location"]["lat"], gx, gy) < tolerance


def test_http_reverse_cgcs2000_is_not_shifted(api: TestClient, isolated: list) -> None:
    row = isolated[2]
    res = api.get("/geocode/reverse", params={"lon": row.lon, "lat": row.lat, "crs": "EPSG:4490"}).json()[
        "result"
    ]
    assert res["address_code"] == row.address_code and res["crs"] == "EPSG:4490"
    assert res["location"]["lon"] == pytest.approx(row.lon, abs=1e-7)


def test_http_partial_and_not_found(api: TestClient, address_db: Engine) -> None:
    ((code, lon, lat),) = _rows(
        address_db,
        """
        SELECT d.code, ST_X(p.g), ST_Y(p.g)
        FROM (SELECT * FROM addr.division WHERE level = 5 ORDER BY code LIMIT 50) d
        CROSS JOIN LATERAL (SELECT ST_PointOnSurface(d.geom) AS g) p
        WHERE (SELECT ST_Distance(a.geom::geography, p.g::geography) FROM addr.address a
               ORDER BY a.geom <-> p.g LIMIT 1) > 5
        ORDER BY d.code LIMIT 1
        """,
    )
    body = api.get("/geocode/reverse", params={"lon": lon, "lat": lat, "radius": 1}).json()
    assert body["status"] == "partial"
    assert body["result"]["community_code"] == code and body["result"]["level_code"] == "community"
    assert body["result"]["distance_m"] is None
    body = api.get("/geocode/reverse", params={"lon": OUTSIDE[0], "lat": OUTSIDE[1]}).json()
    assert body == {
        "query": {"lon": OUTSIDE[0], "lat": OUTSIDE[1], "crs": "EPSG:4326"},
        "status": "not_found",
        "result": None,
    }


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"lat": 39.9}, "lon"),
        ({"lon": 116.4}, "lat"),
        ({"lon": 116.4, "lat": "abc"}, "lat"),
        ({"lon": 200, "lat": 39.9}, "lon"),
        ({"lon": 39.9, "lat": 116.4}, "lon"),  # swapped
        ({"lon": 116.4, "lat": 60}, "lat"),
        ({"lon": "nan", "lat": 39.9}, "lon"),
        ({"lon": 116.4, "lat": "inf"}, "lat"),
        ({"lon": 116.4, "lat": 39.9, "radius": 0}, "radius"),
        ({"lon": 116.4, "lat": 39.9, "radius": 5001}, "radius"),
        ({"lon": 116.4, "lat": 39.9, "radius": "far"}, "radius"),
        ({"lon": 116.4, "lat": 39.9, "crs": "EPSG:3857"}, "crs"),
        ({"lon": 116.4, "lat": 39.9, "crs": "😀" * 3000}, "crs"),
    ],
)
def test_http_bad_input_is_a_problem_naming_the_parameter(api: TestClient, params: dict, field: str) -> None:
    r = api.get("/geocode/reverse", params=params)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["field"] == field


# --- CRS handling of the geocoding endpoints --------------------------------------------------


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        (None, "EPSG:4326"),
        ("", "EPSG:4326"),
        ("4326", "EPSG:4326"),
        ("EPSG:4326", "EPSG:4326"),
        ("CRS84", "EPSG:4326"),
        ("http://www.opengis.net/def/crs/OGC/1.3/CRS84", "EPSG:4326"),
        ("urn:ogc:def:crs:EPSG::4326", "EPSG:4326"),
        ("EPSG:4490", "EPSG:4490"),
        ("http://www.opengis.net/def/crs/EPSG/0/4490", "EPSG:4490"),
        ("cgcs2000", "EPSG:4490"),
        ("gcj02", "GCJ-02"),
        ("GCJ-02", "GCJ-02"),
        ("urn:geoshare:def:crs:GCJ-02", "GCJ-02"),
        ("BD-09", "BD-09"),
        ("bd09", "BD-09"),
    ],
)
def test_geocode_crs_names(given: str | None, canonical: str) -> None:
    assert coords.geocode_crs(given) == canonical


@pytest.mark.parametrize("given", ["EPSG:3857", "EPSG:4214", "mars", "4326x"])
def test_geocode_crs_refuses_others(given: str) -> None:
    with pytest.raises(BadParameter) as err:
        coords.geocode_crs(given)
    assert err.value.field == "crs"


def test_point_conversions_agree_with_the_reference() -> None:
    rng = np.random.default_rng(3)
    xy = np.column_stack((rng.uniform(115.5, 117.4, 50), rng.uniform(39.5, 41.0, 50)))
    gcj = coords.from_wgs84_many(xy, "GCJ-02")
    ref = np.array([eviltransform.wgs2gcj(lat, lon)[::-1] for lon, lat in xy])
    assert max(_metres(*a, *b) for a, b in zip(gcj, ref, strict=True)) < 0.5
    assert coords.from_wgs84(*xy[0], "GCJ-02") == pytest.approx(tuple(gcj[0]), abs=1e-12)
    for crs, budget in (("GCJ-02", 0.01), ("BD-09", 0.5), ("EPSG:4490", 0.0)):
        for lon, lat in xy[:10]:
            back = coords.to_wgs84(*coords.from_wgs84(lon, lat, crs), crs)
            assert _metres(*back, lon, lat) <= budget
    assert np.array_equal(coords.from_wgs84_many(xy, "EPSG:4490"), xy)
    assert coords.from_wgs84_many(np.empty((0, 2)), "GCJ-02").shape == (0, 2)
