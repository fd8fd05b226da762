"""Query parameters of ``/items`` parsed into an ``ItemsQuery``; every mistake is a 400 naming it.

Parameters are read by hand from the raw query string because OGC API – Features lets a
collection's own property names be query parameters, and anything else must be refused. The API
key parameter (``key``) is accepted everywhere; a layer property of that name is shadowed by it.
"""

from __future__ import annotations

import math
from collections.abc import Container, Iterable
from datetime import UTC, date, datetime, time, timedelta

from starlette.datastructures import QueryParams

from geoshare.api.auth import KEY_PARAM
from layers.crs import bbox_to_crs84, resolve_crs
from layers.errors import BadParameter
from layers.model import LayerInfo
from layers.query import ItemsQuery, SortKey, TimeInterval

ITEMS_PARAMS = frozenset(
    {
        "f",
        "limit",
        "bbox",
        "bbox-crs",
        "datetime",
        "properties",
        "sortby",
        "filter",
        "filter-lang",
        "filter-crs",
        "crs",
        "cursor",
        KEY_PARAM,
    }
)
FEATURE_PARAMS = frozenset({"f", "crs", "properties", KEY_PARAM})
FORMAT_PARAMS = frozenset({"f", KEY_PARAM})  # documents that take no other parameter
JSON_FORMATS = ("json", "geojson", "application/json", "application/geo+json")


def check_params(params: Iterable[str], allowed: Container[str]) -> None:
    """Refuse the first parameter not in ``allowed``: a 400 naming it, since a misspelt parameter
    silently ignored gives a wrong answer that looks right."""
    for key in params:
        if key not in allowed:
            raise BadParameter(f"unknown parameter {key!r}", field=key)


def check_format(params: QueryParams) -> None:
    f = params.get("f")
    if f is not None and f.lower() not in JSON_FORMATS:
        raise BadParameter(f"unsupported format f={f!r}; this server speaks JSON only (f=json)", field="f")


def single(params: QueryParams, name: str) -> str | None:
    values = params.getlist(name)
    if len(values) > 1:
        raise BadParameter(f"parameter {name!r} given more than once", field=name)
    return values[0] if values else None


def parse_limit(raw: str | None, default: int, maximum: int) -> int:
    """Over the maximum is clamped (OGC allows it); zero, negatives and non-integers are a 400."""
    if raw is None:
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise BadParameter(f"limit must be a positive integer, got {raw!r}", field="limit") from None
    if value < 1:
        raise BadParameter(f"limit must be at least 1, got {value}", field="limit")
    return min(value, maximum)


def _numbers(raw: str, name: str) -> list[float]:
    try:
        numbers = [float(v) for v in raw.split(",")]
    except ValueError:
        raise BadParameter(f"{name} must be comma-separated numbers, got {raw!r}", field=name) from None
    if not all(math.isfinite(v) for v in numbers):
        raise BadParameter(f"{name} must contain finite numbers", field=name)
    return numbers


def parse_bbox(raw: str | None, crs_raw: str | None) -> tuple[float, float, float, float] | None:
    if crs_raw is not None and raw is None:
        raise BadParameter("bbox-crs given without bbox", field="bbox-crs")
    if raw is None:
        return None
    crs = resolve_crs(crs_raw, "bbox-crs")
    numbers = _numbers(raw, "bbox")
    if len(numbers) == 6:
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    if len(numbers) != 4:
        raise BadParameter("bbox needs 4 numbers (minx,miny,maxx,maxy) or 6 with heights", field="bbox")
    minx, miny, maxx, maxy = numbers
    if minx > maxx or miny > maxy:
        raise BadParameter("bbox lower corner must not exceed the upper corner", field="bbox")
    return bbox_to_crs84((minx, miny, maxx, maxy), crs, "bbox")  # type: ignore[return-value]


def _instant(raw: str, *, end: bool) -> tuple[datetime, bool]:
    """An RFC 3339 instant; a plain date means the whole day (end bound then exclusive)."""
    text = raw.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            if end:
                return datetime.combine(day + timedelta(days=1), time.min, UTC), True
            return datetime.combine(day, time.min, UTC), False
        value = datetime.fromisoformat(text.replace("z", "Z"))
    except (ValueError, OverflowError):
        raise BadParameter(
            f"datetime {raw!r} is not an RFC 3339 date or date-time (e.g. 2024-05-01T08:00:00Z)",
            field="datetime",
        ) from None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)), False


def parse_datetime(raw: str | None) -> TimeInterval | None:
    if raw is None:
        return None
    if "/" not in raw:
        start, _ = _instant(raw, end=False)
        end, exclusive = _instant(raw, end=True)
        return TimeInterval(start, end, exclusive)
    parts = raw.split("/")
    if len(parts) != 2:
        raise BadParameter("datetime interval must be start/end with '..' for an open end", field="datetime")
    lo_raw, hi_raw = (p.strip() for p in parts)
    start = None if lo_raw in ("", "..") else _instant(lo_raw, end=False)[0]
    end, exclusive = (None, False) if hi_raw in ("", "..") else _instant(hi_raw, end=True)
    if start is None and end is None:
        raise BadParameter("datetime interval is open at both ends", field="datetime")
    if start is not None and end is not None and start > end:
        raise BadParameter("datetime interval starts after it ends", field="datetime")
    return TimeInterval(start, end, exclusive)


def parse_names(raw: str | None, name: str) -> list[str] | None:
    if raw is None:
        return None
    names = [n.strip() for n in raw.split(",")]
    if raw.strip() == "":
        return []
    if any(n == "" for n in names):
        raise BadParameter(f"{name} has an empty name", field=name)
    return names


def parse_sortby(raw: str | None) -> list[SortKey]:
    keys = []
    for item in parse_names(raw, "sortby") or []:
        descending = item.startswith("-")
        name = item[1:].strip() if item[:1] in "+-" else item
        if item.lower().endswith((" desc", " asc")):  # "name DESC" as some clients write it
            name, direction = item.rsplit(" ", 1)
            descending = direction.lower() == "desc"
        if not name:
            raise BadParameter("sortby has an empty name", field="sortby")
        keys.append(SortKey(name.strip(), descending))
    return keys


def items_query(params: QueryParams, layer: LayerInfo, default_limit: int, max_limit: int) -> ItemsQuery:
    """``layer`` as the reader sees it (hidden fields redacted), so naming one is an unknown property."""
    check_format(params)
    equals: dict[str, str] = {}
    for key in params:
        if key in ITEMS_PARAMS:
            continue
        if layer.attribute(key) is None:
            raise BadParameter(
                f"unknown parameter {key!r}: neither a standard parameter nor a property of {layer.id!r}",
                field=key,
            )
        equals[key] = single(params, key) or ""
    filter_crs_raw = single(params, "filter-crs")
    return ItemsQuery(
        limit=parse_limit(single(params, "limit"), default_limit, max_limit),
        crs=resolve_crs(single(params, "crs"), "crs"),
        bbox=parse_bbox(single(params, "bbox"), single(params, "bbox-crs")),
        interval=parse_datetime(single(params, "datetime")),
        properties=parse_names(single(params, "properties"), "properties"),
        equals=equals,
        filter=single(params, "filter"),
        filter_lang=single(params, "filter-lang"),
        filter_crs=resolve_crs(filter_crs_raw, "filter-crs"),
        sortby=parse_sortby(single(params, "sortby")),
        cursor=single(params, "cursor"),
    )
