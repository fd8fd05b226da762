"""Reverse geocoding: the nearest address point to a WGS84 location, or else its divisions.

One statement per call (or per batch): the GiST KNN operator picks the ``KNN`` nearest points in
degree space, their exact spheroid distances re-rank them (a degree of longitude is shorter than
one of latitude, so the two orders can differ), and a lateral subquery finds the finest division
containing the point — evaluated only when no address lies within the radius.

Ties: when a door point and a building point are equally near, the door wins. The door plate is
the registered address that building addresses derive from, and in practice ties are exact only
when both were placed on the same spot.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, DOUBLE_PRECISION

from geocode.admin import FINEST_DIVISION_SQL, AdminPath
from geocode.formatting import door_text
from geocode.model import Candidate, Level

KNN = 16  # candidates re-ranked by true distance; ample for the ~1.3 lon/lat stretch at 40°N
EXACT_M = 5.0  # within this distance an address scores 1.0 (the precision of a phone's GPS)
HALF_SCORE_M = 100.0  # every further 100 m halves the score

_PARTIAL_LEVELS = {5: Level.community, 4: Level.township, 3: Level.district, 2: Level.city, 1: Level.city}
_PARTIAL_SCORES = {
    Level.community: 0.6,
    Level.township: 0.5,
    Level.district: 0.4,
    Level.city: 0.3,
}

_REVERSE = text(
    f"""
    SELECT q.i, q.lon AS query_lon, q.lat AS query_lat,
           a.address_code, a.level, a.province, a.city, a.district, a.district_code, a.street,
           a.street_code, a.community, a.community_code, a.road, a.door_number, a.door_suffix,
           a.compound, a.building_number, a.full_address, a.lon, a.lat, a.distance_m,
           dv.level AS division_level, dv.path_codes, dv.path_names
    FROM unnest(:lons, :lats) WITH ORDINALITY AS q(lon, lat, i)
    CROSS JOIN LATERAL (SELECT ST_SetSRID(ST_MakePoint(q.lon, q.lat), 4326) AS g) p
    LEFT JOIN LATERAL (
        SELECT n.*, ST_X(n.geom) AS lon, ST_Y(n.geom) AS lat,
               ST_Distance(n.geom::geography, p.g::geography) AS distance_m
        FROM (
            SELECT x.address_code, x.level, x.province, x.city, x.district, x.district_code,
                   x.street, x.street_code, x.community, x.community_code, x.road, x.door_number,
                   x.door_suffix, x.compound, x.building_number, x.full_address, x.geom
            FROM addr.address x
            ORDER BY x.geom <-> p.g
            LIMIT {KNN}
        ) n
        ORDER BY distance_m, n.level <> 'door', n.address_code
        LIMIT 1
    ) a ON a.distance_m <= :radius
    LEFT JOIN LATERAL (  -- only where no address was found
        {FINEST_DIVISION_SQL.format(point="p.g", gate="a.address_code IS NULL")}
    ) dv ON true
    ORDER BY q.i
    """
).bindparams(
    bindparam("lons", type_=ARRAY(DOUBLE_PRECISION)),
    bindparam("lats", type_=ARRAY(DOUBLE_PRECISION)),
)


def score_for(distance_m: float) -> float:
    """1.0 up to ``EXACT_M``, then halving every ``HALF_SCORE_M`` metres."""
    return math.pow(0.5, max(0.0, distance_m - EXACT_M) / HALF_SCORE_M)


def _address(row: Any) -> Candidate:
    return Candidate(
        formatted_address=row.full_address,
        level=Level.door if row.level == "door" else Level.building,
        score=score_for(row.distance_m),
        lon=row.lon,
        lat=row.lat,
        province=row.province,
        city=row.city,
        district=row.district,
        township=row.street,
        community=row.community,
        road=row.road,
        number=door_text(row.door_number, row.door_suffix),
        compound=row.compound,
        building=f"{row.building_number}号楼" if row.building_number else None,
        adcode=row.district_code,
        towncode=row.street_code,
        community_code=row.community_code,
        address_code=row.address_code,
        distance_m=round(row.distance_m, 2),
    )


def _division_only(row: Any) -> Candidate:
    path = AdminPath.from_arrays(row.path_codes, row.path_names)
    level = _PARTIAL_LEVELS[path.level]
    return Candidate(
        formatted_address=path.joined(),
        level=level,
        score=_PARTIAL_SCORES[level],
        lon=row.query_lon,
        lat=row.query_lat,
        province=path.province,
        city=path.city,
        district=path.district,
        township=path.street,
        community=path.community,
        adcode=path.district_code,
        towncode=path.street_code,
        community_code=path.community_code,
    )


def _candidate(row: Any) -> Candidate | None:
    if row.address_code is not None:
        return _address(row)
    if row.path_codes:
        return _division_only(row)
    return None


def reverse_many(
    conn: Connection, points: Sequence[tuple[float, float]], radius_m: float = 100.0
) -> list[Candidate | None]:
    """:func:`reverse` for many WGS84 points in one statement, answers in input order."""
    if not points:
        return []
    rows = conn.execute(
        _REVERSE,
        {"lons": [float(p[0]) for p in points], "lats": [float(p[1]) for p in points], "radius": radius_m},
    ).all()
    return [_candidate(r) for r in rows]


def reverse(conn: Connection, lon: float, lat: float, radius_m: float = 100.0) -> Candidate | None:
    """The nearest address within ``radius_m`` of a WGS84 point; else the finest division
    containing it (the point itself as location, a lower score); None outside every division.
    """
    return reverse_many(conn, [(lon, lat)], radius_m)[0]
