"""Forward geocoding: ``GET /geocode`` and ``POST /geocode/batch`` (JSON, up to 1,000 addresses).

Handlers are ``async``: matching is a few dozen microseconds of pure CPU on the worker's
in-memory index, so a hop to the thread pool would cost more than the work.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from geocode.model import Candidate, Components, GeocodeResult
from geocode.normalize import MAX_QUERY_CHARS
from geoshare.api.input_text import text_fault
from geoshare.api.responses import json_response
from geoshare.api.routes import jobs
from geoshare.services import geocoding
from geoshare.services.coords import from_wgs84, geocode_crs
from layers.errors import BadParameter

router = APIRouter(tags=["geocoding"])
BATCH_MAX = 1000
LIMIT_MAX = 20


def candidate_body(c: Candidate, crs: str) -> dict[str, Any]:
    lon, lat = (c.lon, c.lat) if crs == "EPSG:4326" else from_wgs84(c.lon, c.lat, crs)
    return {
        "formatted_address": c.formatted_address,
        "province": c.province,
        "city": c.city,
        "district": c.district,
        "township": c.township,
        "community": c.community,
        "road": c.road,
        "number": c.number,
        "compound": c.compound,
        "building": c.building,
        "unit": c.unit,
        "room": c.room,
        "adcode": c.adcode,
        "towncode": c.towncode,
        "community_code": c.community_code,
        "address_code": c.address_code,
        "level": c.level.label,
        "level_code": c.level.value,
        "score": round(c.score, 3),
        "location": {"lon": round(lon, 7), "lat": round(lat, 7)},
        "crs": crs,
    }


def result_body(r: GeocodeResult, crs: str, parsed: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "query": r.query,
        "status": r.status.value,
        "candidates": [candidate_body(c, crs) for c in r.candidates],
    }
    if r.message:
        body["message"] = r.message
    if parsed:
        body["parsed"] = {
            name: getattr(r.parsed, name)
            for name in Components.__slots__
            if getattr(r.parsed, name) is not None
        }
    return body


def check_address(value: str | None, field: str) -> str:
    if value is None or not value.strip():
        raise BadParameter(f"{field} is required and must not be blank", field=field)
    if len(value) > MAX_QUERY_CHARS:
        raise BadParameter(
            f"{field} is longer than {MAX_QUERY_CHARS} characters; is it an address?", field=field
        )
    return value


def _refuse_controls(value: str, field: str) -> None:
    """The URL rule (``api.input_text``) for a JSON body's strings, which it cannot see."""
    problem = text_fault(value)
    if problem is not None:
        raise BadParameter(f"{field} {problem}", field=field)


@router.get("/geocode", summary="Address → coordinates (forward geocoding)")
async def geocode_one(
    request: Request,
    address: str | None = Query(None, description="the address, in any usual Chinese form"),
    city: str | None = Query(None, description="admin context: city name, e.g. 北京"),
    district: str | None = Query(None, description="admin context: district name, e.g. 朝阳区"),
    limit: int = Query(5, ge=1, le=LIMIT_MAX),
    crs: str | None = Query(None, description="EPSG:4326 (default), EPSG:4490, GCJ-02 or BD-09"),
) -> Response:
    address = check_address(address, "address")
    out_crs = geocode_crs(crs)
    result = geocoding.forward(request.app, address, city=city, district=district, limit=limit)
    request.state.audit_count = 1
    return json_response(result_body(result, out_crs))


_BATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["addresses"],
                    "properties": {
                        "addresses": {"type": "array", "items": {"type": "string"}, "maxItems": BATCH_MAX},
                        "city": {"type": "string"},
                        "district": {"type": "string"},
                        "limit": {"type": "integer", "minimum": 1, "maximum": LIMIT_MAX, "default": 1},
                        "crs": {"type": "string", "enum": ["EPSG:4326", "EPSG:4490", "GCJ-02", "BD-09"]},
                    },
                },
                "example": {
                    "addresses": ["北京市朝阳区将台东路22号", "海淀区中关村三巷38号"],
                    "crs": "GCJ-02",
                },
            }
        },
    }
}


@router.post(
    "/geocode/batch", summary="Many addresses at once (JSON, up to 1,000)", openapi_extra=_BATCH_BODY
)
async def geocode_batch(request: Request) -> Response:
    if jobs.is_csv_upload(request):  # a CSV file of any size becomes a job (202 + Location)
        return await jobs.accept_csv_upload(request)
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("application/json"):
        raise BadParameter(
            'send JSON {"addresses": [...]} (up to 1,000), or a CSV file (text/csv or multipart "file")',
            field="content-type",
        )
    try:
        payload = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise BadParameter(f"the body is not valid JSON: {exc}", field="body") from None
    options: dict[str, Any] = {}
    if isinstance(payload, dict):
        addresses = payload.get("addresses")
        options = payload
    else:
        addresses = payload
    if not isinstance(addresses, list):
        raise BadParameter("addresses must be a JSON list of strings", field="addresses")
    if len(addresses) > BATCH_MAX:
        raise BadParameter(
            f"at most {BATCH_MAX} addresses per request; upload larger files to POST /jobs/geocode",
            field="addresses",
        )
    for i, a in enumerate(addresses):
        if not isinstance(a, str):
            raise BadParameter(f"addresses[{i}] is not a string", field=f"addresses[{i}]")
        _refuse_controls(a, f"addresses[{i}]")
    for name in ("city", "district"):
        if isinstance(options.get(name), str):
            _refuse_controls(options[name], name)
    limit = options.get("limit", 1)
    if not isinstance(limit, int) or not 1 <= limit <= LIMIT_MAX:
        raise BadParameter(f"limit must be an integer within 1..{LIMIT_MAX}", field="limit")
    out_crs = geocode_crs(options.get("crs"))
    city, district = options.get("city"), options.get("district")
    results = geocoding.forward_many(
        request.app,
        [a[: MAX_QUERY_CHARS * 2] for a in addresses],
        city=city if isinstance(city, str) else None,
        district=district if isinstance(district, str) else None,
        limit=limit,
    )
    bodies = [result_body(r, out_crs) for r in results]
    request.state.audit_count = len(results)
    by_status: dict[str, int] = {}
    for r in results:
        by_status[r.status.value] = by_status.get(r.status.value, 0) + 1
    matched = by_status.get("ok", 0)  # confident answers, as the CSV jobs count them
    return json_response(
        {"count": len(results), "matched": matched, "by_status": by_status, "crs": out_crs, "results": bodies}
    )
