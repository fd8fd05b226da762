"""Reverse geocoding: ``GET /geocode/reverse?lon=&lat=[&crs=&radius=]``.

One SQL statement per request (nearest address by KNN, else the containing divisions). The
answer is 200 in all three cases — ``ok`` (an address within the radius), ``partial`` (only the
divisions containing the point) and ``not_found`` (outside every division, ``result`` null) —
because "nothing here" is a normal answer for a point, not a missing resource.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from sqlalchemy import Connection

from geocode.model import Candidate, Level
from geocode.reverse import reverse
from geoshare.api.deps import get_conn
from geoshare.services.coords import LAT_RANGE, LON_RANGE, check_in_china, from_wgs84, geocode_crs, to_wgs84

router = APIRouter(tags=["geocoding"])
RADIUS_MAX = 5000.0
_ADDRESS_LEVELS = (Level.door, Level.building)


def reverse_body(c: Candidate, crs: str) -> dict[str, Any]:
    """``Candidate.as_dict`` with the point as ``location`` in the client's CRS."""
    body = c.as_dict()
    lon, lat = from_wgs84(body.pop("lon"), body.pop("lat"), crs)
    body["location"] = {"lon": round(lon, 7), "lat": round(lat, 7)}
    body["crs"] = crs
    return body


@router.get("/geocode/reverse", summary="Coordinates → nearest address (reverse geocoding)")
def reverse_geocode(
    lon: float = Query(..., description="longitude in `crs`, within China", json_schema_extra=LON_RANGE),
    lat: float = Query(..., description="latitude in `crs`, within China", json_schema_extra=LAT_RANGE),
    crs: str | None = Query(None, description="EPSG:4326 (default), EPSG:4490, GCJ-02 or BD-09"),
    radius: float = Query(100.0, ge=1.0, le=RADIUS_MAX, description="search radius in metres"),
    conn: Connection = Depends(get_conn),
) -> Response:
    crs_name = geocode_crs(crs)
    check_in_china(lon, lat)
    candidate = reverse(conn, *to_wgs84(lon, lat, crs_name), radius_m=radius)
    if candidate is None:
        status, result = "not_found", None
    else:
        status = "ok" if candidate.level in _ADDRESS_LEVELS else "partial"
        result = reverse_body(candidate, crs_name)
    body = {"query": {"lon": lon, "lat": lat, "crs": crs_name}, "status": status, "result": result}
    return Response(orjson.dumps(body), media_type="application/json")
