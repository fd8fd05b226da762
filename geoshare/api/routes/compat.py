"""Amap- and Tianditu-compatible geocoding, so a department switches by changing the host.

These endpoints keep the vendors' conventions, errors included: bad input is answered with
HTTP 200 and the vendor's error body (Amap ``status "0"``/``infocode``, Tianditu ``status`` ≠
"0"), because client code written for them checks the body, not the HTTP status. The native API
(``/geocode``, ``/geocode/reverse``) answers problem+json instead.

Keys (``key`` for Amap, ``tk`` for Tianditu) are accepted and ignored until access control comes.
Amap coordinates are GCJ-02 in and out unless ``coordsys``/``crs`` says otherwise; Tianditu's are
CGCS2000 ≈ WGS84. Batches (``|``-separated) take up to ``BATCH_MAX`` items, not Amap's 10/20.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import Connection

from geocode import admin
from geocode.normalize import MAX_QUERY_CHARS
from geocode.reverse import reverse, reverse_many
from geoshare.api.deps import get_conn
from geoshare.api.input_text import text_fault
from geoshare.api.responses import json_response
from geoshare.services import compat_amap as amap
from geoshare.services import compat_tianditu as tianditu
from geoshare.services.coords import GCJ, WGS84, check_in_china, geocode_crs, to_wgs84
from layers.errors import LayerError

router = APIRouter(prefix="/compat", tags=["compatibility (Amap, Tianditu)"])
BATCH_MAX = 1000
AMAP_RADIUS_DEFAULT, AMAP_RADIUS_MAX = 1000.0, 3000.0  # Amap's own default and limit
TIANDITU_RADIUS = 500.0  # Tianditu takes no radius; it names an address within a few hundred metres
PARAM_MAX_CHARS = 64_000  # a 1,000-address batch fits; a runaway parameter does not
AMAP_COORDSYS = {"gps": WGS84, "autonavi": GCJ, "baidu": "BD-09"}


class CompatError(Exception):
    """Bad input on a compatibility endpoint, answered in the vendor's error shape."""

    def __init__(self, message: str, missing: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.missing = missing


def _amap(handler: Callable[[], dict[str, Any]]) -> Response:
    """Run a handler, turning every input error into Amap's error body (HTTP 200)."""
    try:
        return json_response(handler())
    except CompatError as exc:
        info = amap.MISSING_REQUIRED_PARAMS if exc.missing else amap.INVALID_PARAMS
        return json_response({**amap.error(info), "detail": exc.message})
    except LayerError as exc:
        info = amap.SERVICE_NOT_AVAILABLE if exc.status >= 500 else amap.INVALID_PARAMS
        return json_response({**amap.error(info), "detail": exc.detail})


def _param(request: Request, name: str, required: bool = False) -> str | None:
    value = request.query_params.get(name)
    if value is None or not value.strip():
        if required:
            raise CompatError(f"{name} is required", missing=True)
        return None
    if len(value) > PARAM_MAX_CHARS:
        raise CompatError(f"{name} is longer than {PARAM_MAX_CHARS} characters")
    return value.strip()


def _flag(request: Request, name: str) -> bool:
    value = (_param(request, name) or "false").lower()
    if value not in ("true", "false"):
        raise CompatError(f"{name} must be true or false")
    return value == "true"


def _amap_crs(request: Request) -> str:
    """Amap's ``coordsys`` words (gps, autonavi, baidu) or any geocoding ``crs``; GCJ-02 by default."""
    coordsys = _param(request, "coordsys")
    crs = _param(request, "crs")
    if coordsys is not None:
        if coordsys.lower() in AMAP_COORDSYS:
            return AMAP_COORDSYS[coordsys.lower()]
        crs = coordsys
    try:
        return geocode_crs(crs) if crs is not None else GCJ
    except LayerError as exc:
        raise CompatError(exc.detail) from None


def _check_output(request: Request) -> None:
    output = _param(request, "output")
    if output is not None and output.lower() != "json":
        raise CompatError("only output=JSON is offered")


def _split(value: str, batch: bool, name: str) -> list[str]:
    """``|``-separated items, which Amap only reads with batch=true."""
    if not batch:
        if "|" in value:
            raise CompatError(f"several {name} values (separated by |) need batch=true")
        return [value]
    items = value.split("|")
    if len(items) > BATCH_MAX:
        raise CompatError(f"at most {BATCH_MAX} items per batch in {name}")
    return items


_NUMBER = re.compile(r"^\s*[-+]?(?:\d+(?:\.\d*)?|\.\d+)\s*$")


def _lonlat(text: str, name: str) -> tuple[float, float]:
    parts = text.split(",")
    if len(parts) != 2 or not all(_NUMBER.match(p) for p in parts):
        raise CompatError(f"{name} must be 'lng,lat' with decimal numbers, got {text[:40]!r}")
    lon, lat = float(parts[0]), float(parts[1])
    try:
        check_in_china(lon, lat, f"{name} longitude", f"{name} latitude")
    except LayerError as exc:
        raise CompatError(exc.detail) from None
    return lon, lat


def _division_code(city: str) -> str:
    """Amap's numeric ``city``: a citycode (010), a 6-digit adcode (110000, 110100, 110105)."""
    by_area = {v: k for k, v in amap.CITY_AREA_CODES.items()}
    if city in by_area:
        return by_area[city]
    if len(city) == 6 and city.endswith("0000"):
        return city[:2]
    if len(city) == 6 and city.endswith("00"):
        return city[:4]
    return city


def _amap_context(request: Request, city: str | None) -> dict[str, str | None]:
    """Amap's ``city`` is a name, an adcode or a citycode; codes are turned into names."""
    if city is None or not (city.isascii() and city.isdigit()):
        return {"city": city, "district": None}
    code = _division_code(city)
    division = None
    if admin.CODE_PATTERN.fullmatch(code):
        with request.app.state.engine.connect() as conn:
            division = admin.get(conn, code)
    if division is None:
        raise CompatError(f"city {city!r} is neither a name nor a known division code")
    if division.level >= 3:
        return {"city": division.path.city, "district": division.path.district}
    return {"city": division.name, "district": None}


@router.get("/amap/v3/geocode/geo", summary="Amap-compatible forward geocoding")
def amap_geo(request: Request) -> Response:
    def run() -> dict[str, Any]:
        from geoshare.services.geocoding import forward  # the lead's engine entry point

        _check_output(request)
        batch = _flag(request, "batch")
        addresses = _split(_param(request, "address", required=True) or "", batch, "address")
        for a in addresses:
            if len(a) > MAX_QUERY_CHARS:
                raise CompatError(f"an address is longer than {MAX_QUERY_CHARS} characters")
        crs = _amap_crs(request)
        context = _amap_context(request, _param(request, "city"))
        results = [forward(request.app, a, limit=1, **context) for a in addresses]
        return amap.geo_response(results, crs=crs, batch=batch)

    return _amap(run)


@router.get("/amap/v3/geocode/regeo", summary="Amap-compatible reverse geocoding")
def amap_regeo(request: Request, conn: Connection = Depends(get_conn)) -> Response:
    def run() -> dict[str, Any]:
        _check_output(request)
        batch = _flag(request, "batch")
        crs = _amap_crs(request)
        raw = _split(_param(request, "location", required=True) or "", batch, "location")
        given = [_lonlat(item, "location") for item in raw]
        radius_text = _param(request, "radius") or str(AMAP_RADIUS_DEFAULT)
        if not _NUMBER.match(radius_text) or not 0 <= float(radius_text) <= AMAP_RADIUS_MAX:
            raise CompatError(f"radius must be a number of metres within 0..{AMAP_RADIUS_MAX:g}")
        extensions = (_param(request, "extensions") or "base").lower()
        if extensions not in ("base", "all"):
            raise CompatError("extensions must be base or all")
        points = [to_wgs84(lon, lat, crs) for lon, lat in given]
        candidates = reverse_many(conn, points, radius_m=float(radius_text))
        if batch:
            return amap.regeo_batch_response(candidates, points, crs=crs, extensions=extensions)
        return amap.regeo_response(candidates[0], points[0], crs=crs, extensions=extensions)

    return _amap(run)


def _lenient_json(value: str, name: str) -> dict[str, Any]:
    """Tianditu clients send JSON, or JSON with single quotes (its own examples do)."""
    for attempt in (value, value.replace("'", '"')):
        try:
            parsed = orjson.loads(attempt)
        except orjson.JSONDecodeError:
            continue
        if isinstance(parsed, dict):
            return parsed
    raise CompatError(f"{name} is not a JSON object")


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise CompatError(f"{name} must be a number")
    try:
        number = float(value)
    except ValueError:
        raise CompatError(f"{name} must be a number") from None
    if not math.isfinite(number):
        raise CompatError(f"{name} must be a finite number")
    return number


@router.get("/tianditu/geocoder", summary="Tianditu-compatible geocoder (forward: ds; reverse: postStr)")
def tianditu_geocoder(request: Request) -> Response:
    try:
        post_str = _param(request, "postStr")
        ds = _param(request, "ds")
        if post_str is not None:
            kind = _param(request, "type")
            if kind is not None and kind != "geocode":
                raise CompatError("type must be geocode")
            query = _lenient_json(post_str, "postStr")
            lon, lat = _number(query.get("lon"), "lon"), _number(query.get("lat"), "lat")
            try:
                check_in_china(lon, lat)
            except LayerError as exc:
                raise CompatError(exc.detail) from None
            with request.app.state.engine.connect() as conn:
                candidate = reverse(conn, lon, lat, radius_m=TIANDITU_RADIUS)
            return json_response(tianditu.reverse_response(candidate, (lon, lat)))
        if ds is not None:
            from geoshare.services.geocoding import forward  # the lead's engine entry point

            query = _lenient_json(ds, "ds")
            keyword = query.get("keyWord", query.get("keyword"))
            if not isinstance(keyword, str) or not keyword.strip():
                raise CompatError("ds needs a non-empty keyWord")
            if (problem := text_fault(keyword)) is not None:  # a JSON escape, past the URL rule
                raise CompatError(f"keyWord {problem}")
            if len(keyword) > MAX_QUERY_CHARS:
                raise CompatError(f"keyWord is longer than {MAX_QUERY_CHARS} characters")
            return json_response(tianditu.geocoder_response(forward(request.app, keyword, limit=1)))
        raise CompatError("send ds (forward) or postStr with type=geocode (reverse)")
    except CompatError as exc:
        return json_response(tianditu.error(exc.message))
    except LayerError as exc:
        return json_response(tianditu.error(exc.detail))


AMAP_TIPS_MAX, AMAP_PAGE_SIZE_MAX = 20, 25


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    value = _param(request, name)
    if value is None:
        return default
    if not value.isdigit() or not low <= int(value) <= high:
        raise CompatError(f"{name} must be an integer within {low}..{high}")
    return int(value)


def _keywords(request: Request) -> str:
    keywords = _param(request, "keywords", required=True) or ""
    if len(keywords) > MAX_QUERY_CHARS:
        raise CompatError(f"keywords is longer than {MAX_QUERY_CHARS} characters")
    return keywords


def _amap_near(request: Request, crs: str) -> tuple[float, float] | None:
    location = _param(request, "location")
    if location is None:
        return None
    return to_wgs84(*_lonlat(location, "location"), crs)


@router.get("/amap/v3/assistant/inputtips", summary="Amap-compatible input tips (as-you-type suggest)")
def amap_inputtips(request: Request) -> Response:
    def run() -> dict[str, Any]:
        from geoshare.services import geocoding, places

        _check_output(request)
        keywords = _keywords(request)
        crs = _amap_crs(request)
        near = _amap_near(request, crs)
        datatype = (_param(request, "datatype") or "all").lower()
        if datatype not in ("all", "poi", "bus", "busline"):
            raise CompatError("datatype must be all, poi, bus or busline")
        found = places.suggestions(request.app, keywords, near=near, limit=AMAP_TIPS_MAX)
        if datatype == "poi":
            found = [s for s in found if s.kind == "place"]
        elif datatype != "all":
            found = []  # no transit data
        divisions = geocoding.holder(request.app.state).get().divisions
        return amap.inputtips_response(found[:10], divisions, crs=crs)

    return _amap(run)


@router.get("/amap/v3/place/text", summary="Amap-compatible keyword search of places")
def amap_place_text(request: Request) -> Response:
    def run() -> dict[str, Any]:
        from geoshare.services import geocoding, places

        _check_output(request)
        keywords = _keywords(request)
        crs = _amap_crs(request)
        near = _amap_near(request, crs)
        size = _int_param(request, "offset", 20, 1, AMAP_PAGE_SIZE_MAX)
        page = _int_param(request, "page", 1, 1, 100)
        index, hits = places.search(request.app, keywords, near=near, limit=size * page)
        divisions = geocoding.holder(request.app.state).get().divisions
        return amap.place_text_response(index, hits[size * (page - 1) :], divisions, crs=crs)

    return _amap(run)
