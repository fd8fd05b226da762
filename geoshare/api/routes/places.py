"""Place names (地名): ``GET /places`` (search) and ``GET /suggest`` (as-you-type).

``/places`` answers GeoJSON (a ``FeatureCollection``, ``numberReturned``): a place is a point
feature any map library draws as it is, and a place without a point has ``geometry: null``.
``/suggest`` answers a flat list, because a search box shows rows, not features, and mixes kinds
(place, road, compound, division, address) that are not all points of the same thing.

Both run on the worker's in-memory indexes (``services.places``): async handlers, no thread hop.
Coordinates in and out are in ``crs`` (EPSG:4326 by default, EPSG:4490, GCJ-02, BD-09).
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from geocode.normalize import MAX_QUERY_CHARS
from geocode.places.model import CATEGORIES
from geocode.places.suggest import Suggestion
from geoshare.api.responses import json_response
from geoshare.services import places
from geoshare.services.coords import WGS84, from_wgs84, geocode_crs, to_wgs84
from layers.errors import BadParameter

router = APIRouter(tags=["place names"])
LIMIT_MAX = 100
SUGGEST_LIMIT_MAX = 20
GEOJSON = "application/geo+json"


def check_query(value: str | None, field: str = "q", required: bool = True) -> str | None:
    if value is None or not value.strip():
        if required:
            raise BadParameter(f"{field} is required and must not be blank", field=field)
        return None
    if len(value) > MAX_QUERY_CHARS:
        raise BadParameter(f"{field} is longer than {MAX_QUERY_CHARS} characters; is it a name?", field=field)
    return value.strip()


def _numbers(value: str, field: str, count: int) -> list[float]:
    parts = value.split(",")
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        numbers = []
    if len(numbers) != count or not all(math.isfinite(n) for n in numbers):
        shape = "lon,lat" if count == 2 else "minlon,minlat,maxlon,maxlat"
        raise BadParameter(f"{field} must be {shape} (decimal degrees), got {value[:40]!r}", field=field)
    return numbers


def parse_near(value: str | None, crs: str, field: str = "near") -> tuple[float, float] | None:
    if value is None or not value.strip():
        return None
    lon, lat = _numbers(value, field, 2)
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise BadParameter(f"{field} is outside -180..180, -90..90", field=field)
    return to_wgs84(lon, lat, crs) if crs != WGS84 else (lon, lat)


def parse_bbox(value: str | None, crs: str) -> tuple[float, float, float, float] | None:
    if value is None or not value.strip():
        return None
    x0, y0, x1, y1 = _numbers(value, "bbox", 4)
    if not (-180 <= x0 <= x1 <= 180 and -90 <= y0 <= y1 <= 90):
        raise BadParameter(
            "bbox must be minlon,minlat,maxlon,maxlat with min ≤ max, in degrees", field="bbox"
        )
    if crs != WGS84:
        (x0, y0), (x1, y1) = to_wgs84(x0, y0, crs), to_wgs84(x1, y1, crs)
    return x0, y0, x1, y1


def parse_categories(value: str | None) -> set[str] | None:
    if value is None or not value.strip():
        return None
    found = {v.strip() for v in value.split(",") if v.strip()}
    unknown = sorted(found - set(CATEGORIES))
    if unknown:
        raise BadParameter(
            f"unknown category {unknown[0]!r}; one of {', '.join(CATEGORIES)}", field="category"
        )
    return found


def _location(lon: float | None, lat: float | None, crs: str) -> tuple[float, float] | None:
    if lon is None or lat is None or math.isnan(lon):
        return None
    x, y = (lon, lat) if crs == WGS84 else from_wgs84(lon, lat, crs)
    return round(x, 7), round(y, 7)


@router.get("/places", summary="Search place names (地名): GeoJSON features, best first")
async def search_places(
    request: Request,
    q: str | None = Query(None, description="name or alias, whole or in part"),
    bbox: str | None = Query(None, description="minlon,minlat,maxlon,maxlat (in crs)"),
    near: str | None = Query(None, description="lon,lat: nearer places rank higher"),
    category: str | None = Query(None, description=f"comma-separated: {', '.join(CATEGORIES)}"),
    limit: int = Query(10, ge=1, le=LIMIT_MAX),
    crs: str | None = Query(None, description="EPSG:4326 (default), EPSG:4490, GCJ-02 or BD-09"),
) -> Response:
    out_crs = geocode_crs(crs)
    text = check_query(q, required=False)
    box, point, cats = parse_bbox(bbox, out_crs), parse_near(near, out_crs), parse_categories(category)
    if text is None and box is None and point is None and cats is None:
        raise BadParameter("give q, or at least one of bbox, near and category", field="q")
    index, hits = places.search(request.app, text, bbox=box, near=point, categories=cats, limit=limit)
    features: list[dict[str, Any]] = []
    for i, score, distance in hits:
        xy = _location(float(index.lon[i]), float(index.lat[i]), out_crs)
        features.append(
            {
                "type": "Feature",
                "id": int(index.ids[i]),
                "geometry": {"type": "Point", "coordinates": list(xy)} if xy else None,
                "properties": {
                    "name": index.name[i],
                    "aliases": list(index.aliases[i]),
                    "category": index.category[i],
                    "category_label": CATEGORIES.get(index.category[i], index.category[i]),
                    "code": index.code[i],
                    "address": index.address[i],
                    "adcode": index.district_code[i],
                    "towncode": index.street_code[i],
                    "score": round(score, 3),
                    "distance_m": None if distance is None else round(distance, 1),
                },
            }
        )
    request.state.audit_count = 1
    body = {
        "type": "FeatureCollection",
        "numberReturned": len(features),
        "crs": out_crs,
        "features": features,
    }
    return json_response(body, media_type=GEOJSON)


def suggestion_body(s: Suggestion, crs: str) -> dict[str, Any]:
    xy = _location(s.lon, s.lat, crs)
    return {
        "name": s.name,
        "kind": s.kind,
        "category": s.category,
        "category_label": CATEGORIES.get(s.category) if s.category else None,
        "address": s.address,
        "adcode": s.district_code,
        "id": s.place_id,
        "location": {"lon": xy[0], "lat": xy[1]} if xy else None,
        "distance_m": None if s.distance_m is None else round(s.distance_m, 1),
        "score": round(s.score, 3),
    }


@router.get("/suggest", summary="As-you-type suggestions: places, roads, compounds, divisions, addresses")
async def suggest(
    request: Request,
    q: str | None = Query(None, description="what has been typed so far"),
    near: str | None = Query(None, description="lon,lat (in crs): nearer suggestions rank higher"),
    limit: int = Query(10, ge=1, le=SUGGEST_LIMIT_MAX),
    crs: str | None = Query(None, description="EPSG:4326 (default), EPSG:4490, GCJ-02 or BD-09"),
) -> Response:
    out_crs = geocode_crs(crs)
    text = check_query(q)
    assert text is not None
    point = parse_near(near, out_crs)
    found = places.suggestions(request.app, text, near=point, limit=limit)
    request.state.audit_count = 1
    return json_response(
        {"query": text, "crs": out_crs, "suggestions": [suggestion_body(s, out_crs) for s in found]}
    )
