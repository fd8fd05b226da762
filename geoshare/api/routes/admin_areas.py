"""Administrative divisions: locate a point, list children, one division (with its boundary).

``/admin-areas/locate`` is declared before ``/admin-areas/{code}`` so it is not read as a code.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from sqlalchemy import Connection

from geocode import admin
from geoshare.api.deps import get_conn
from geoshare.api.responses import json_response
from geoshare.services.coords import LAT_RANGE, LON_RANGE, check_in_china, geocode_crs, to_wgs84
from layers.errors import BadParameter, NotFound

router = APIRouter(tags=["administrative divisions"])


def check_code(value: str, field: str) -> str:
    """Division codes are 2–12 ASCII digits; anything else is refused before reaching SQL."""
    if not admin.CODE_PATTERN.fullmatch(value):
        shown = value if len(value) <= 40 else value[:40] + "…"
        raise BadParameter(f"{field} {shown!r} is not a division code (2 to 12 digits)", field=field)
    return value


@router.get("/admin-areas/locate", summary="The divisions containing a point")
def locate(
    lon: float = Query(..., description="longitude in `crs`, within China", json_schema_extra=LON_RANGE),
    lat: float = Query(..., description="latitude in `crs`, within China", json_schema_extra=LAT_RANGE),
    crs: str | None = Query(None, description="EPSG:4326 (default), EPSG:4490, GCJ-02 or BD-09"),
    conn: Connection = Depends(get_conn),
) -> Response:
    crs_name = geocode_crs(crs)
    check_in_china(lon, lat)
    path = admin.locate(conn, *to_wgs84(lon, lat, crs_name))
    if path is None:
        raise NotFound(f"no administrative division contains ({lon}, {lat}) in {crs_name}")
    return json_response(path.as_dict())


@router.get("/admin-areas", summary="Divisions below a parent (the top level without one)")
def list_areas(
    parent: str | None = Query(None, description="the parent's code; omit for the provinces"),
    conn: Connection = Depends(get_conn),
) -> Response:
    if parent is not None:
        check_code(parent, "parent")
    areas = admin.children(conn, parent)
    if areas is None:
        raise NotFound(f"no division has the code {parent!r}", field="parent")
    return json_response({"parent": parent, "areas": [a.summary() for a in areas]})


@router.get("/admin-areas/{code}", summary="One division, its path and (on request) its boundary")
def get_area(
    code: str,
    geometry: bool = Query(False, description="include the boundary as GeoJSON (can be large)"),
    conn: Connection = Depends(get_conn),
) -> Response:
    check_code(code, "code")
    division = admin.get(conn, code, geometry=geometry)
    if division is None:
        raise NotFound(f"no division has the code {code!r}", field="code")
    body = division.summary()
    body["official_name"] = division.official_name
    body["full_name"] = division.full_name
    body["path"] = [
        {"code": c, "name": n, "level": lv, "level_name": admin.LEVEL_NAMES[lv]}
        for lv, c, n in division.path.parts()
    ]
    if geometry:
        body["geometry"] = division.geometry
    return json_response(body)
