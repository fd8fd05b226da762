"""OGC API – Records at ``/records``: the catalog as QGIS MetaSearch, OWSLib ``ogcapi.records`` and
pygeoapi-style harvesters read it (``Records(base + "/records")``).

An API root of its own, beside ``/catalog`` and the Features root: one collection, ``catalog``
(``itemType: record``), whose items are the records ``services.records`` makes, searchable with
``q``, ``bbox``, ``datetime``, ``type`` and the queryables ``department`` and ``theme``, paged with
``limit`` and ``offset`` (``next`` links).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from sqlalchemy import Connection
from starlette.responses import Response

from geoshare.access.identity import Principal
from geoshare.access.store import list_departments
from geoshare.api import ogc_docs, openapi
from geoshare.api.auth import KEY_PARAM, principal
from geoshare.api.deps import base_url, get_conn
from geoshare.api.ogc_params import check_params, parse_bbox, parse_datetime, single
from geoshare.api.responses import json_response
from geoshare.services import records
from layers.errors import BadParameter, NotFound

router = APIRouter(tags=["OGC API – Records"])

CATALOG = "catalog"
_RECORDS = "http://www.opengis.net/spec/ogcapi-records-1/1.0/conf"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-common-2/1.0/conf/collections",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    f"{_RECORDS}/core", f"{_RECORDS}/record-core", f"{_RECORDS}/record-collection",
    f"{_RECORDS}/record-api", f"{_RECORDS}/json", f"{_RECORDS}/queryables",
]  # fmt: skip
ITEM_PARAMS = frozenset(
    {"q", "bbox", "bbox-crs", "datetime", "type", "department", "theme", "limit", "offset", "f", KEY_PARAM}
)
MAX_LIMIT = 1000
QUERYABLES = {
    "q": "words in the title, description or keywords (all must match)",
    "type": "dataset (layers and imagery) or service",
    "department": "the keeper: department code or name",
    "theme": "the layer's theme (imagery: 'imagery')",
}


def _doc_params(request: Request, allowed: frozenset[str] = frozenset({"f", KEY_PARAM})) -> None:
    check_params(request.query_params, allowed)
    f = (single(request.query_params, "f") or "json").lower()
    if f not in ("json",):
        raise BadParameter(f"unsupported format f={f!r}; use json", field="f")


def _collection(base: str) -> dict[str, Any]:
    href = f"{base}/records/collections/{CATALOG}"
    return {
        "id": CATALOG, "type": "Catalog", "itemType": "record", "title": "GeoShare 数据目录",
        "description": "The city's shared layers, imagery and services: keeper, sharing class, "
        "update frequency and currency of each.",
        "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]], "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}},
        "links": [
            ogc_docs.link(href, "self", ogc_docs.JSON, "this catalog"),
            ogc_docs.link(f"{href}/items", "items", ogc_docs.GEOJSON, "its records"),
            ogc_docs.link(f"{href}/queryables", "http://www.opengis.net/def/rel/ogc/1.0/queryables",
                          "application/schema+json", "what records can be searched by"),
        ],
    }  # fmt: skip


@router.get("/records", summary="OGC API – Records landing page")
def landing(request: Request, base: str = Depends(base_url)) -> Response:
    _doc_params(request)
    return json_response({
        "title": "GeoShare – OGC API Records",
        "description": "The catalog of the city's layers, imagery and services.",
        "links": [
            ogc_docs.link(f"{base}/records", "self", ogc_docs.JSON, "this document"),
            ogc_docs.link(f"{base}/api", "service-desc", ogc_docs.OPENAPI_JSON, "the API definition"),
            ogc_docs.link(f"{base}/records/conformance", "conformance", ogc_docs.JSON, "conformance"),
            ogc_docs.link(f"{base}/records/collections", "data", ogc_docs.JSON, "the catalogs"),
        ],
    })  # fmt: skip


@router.get("/records/conformance", summary="OGC API – Records conformance classes")
def conformance(request: Request) -> Response:
    _doc_params(request)
    return json_response({"conformsTo": CONFORMANCE})


@router.get("/records/collections", summary="The catalogs (one: catalog)")
def collections(request: Request, base: str = Depends(base_url)) -> Response:
    _doc_params(request)
    return json_response({
        "collections": [_collection(base)],
        "links": [ogc_docs.link(f"{base}/records/collections", "self", ogc_docs.JSON, "this document")],
    })  # fmt: skip


def _catalog_id(catalog_id: str) -> None:
    if catalog_id != CATALOG:
        raise NotFound(f"catalog {catalog_id!r} does not exist; the one is {CATALOG!r}", field="catalogId")


@router.get("/records/collections/{catalog_id}", summary="The catalog's description")
def collection(catalog_id: str, request: Request, base: str = Depends(base_url)) -> Response:
    _catalog_id(catalog_id)
    _doc_params(request)
    return json_response(_collection(base))


@router.get("/records/collections/{catalog_id}/queryables", summary="What records can be searched by")
def queryables(catalog_id: str, request: Request, base: str = Depends(base_url)) -> Response:
    _catalog_id(catalog_id)
    _doc_params(request)
    props: dict[str, Any] = {n: {"type": "string", "description": t} for n, t in QUERYABLES.items()}
    props["type"]["enum"] = list(records.TYPES)
    return json_response(
        {"$schema": "https://json-schema.org/draft/2020-12/schema",
         "$id": f"{base}/records/collections/{CATALOG}/queryables", "type": "object",
         "title": "GeoShare 数据目录", "properties": props},
        media_type="application/schema+json",
    )  # fmt: skip


def _names(conn: Connection) -> dict[str, str]:
    return {d.code: d.name for d in list_departments(conn)}


def _int(raw: str | None, name: str, default: int, high: int) -> int:
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) > high or (name == "limit" and int(raw) < 1):
        raise BadParameter(f"{name} must be a whole number within {int(name == 'limit')}..{high}", field=name)
    return int(raw)


@router.get(
    "/records/collections/{catalog_id}/items",
    summary="Search the catalog's records",
    description="Parameters: q, bbox, bbox-crs, datetime, type (dataset|service), department, theme, "
    f"limit (1–{MAX_LIMIT}, default 10), offset.",
    response_class=Response,
    responses={200: {"description": "the records (GeoJSON)", "content": {ogc_docs.GEOJSON: {}}}},
    openapi_extra=openapi.query_parameters(ITEM_PARAMS),
)
def items(
    catalog_id: str,
    request: Request,
    who: Principal = Depends(principal),
    conn: Connection = Depends(get_conn),
    base: str = Depends(base_url),
) -> Response:
    _catalog_id(catalog_id)
    params = request.query_params
    _doc_params(request, ITEM_PARAMS)
    kind = single(params, "type")
    if kind is not None and kind not in records.TYPES:
        raise BadParameter(f"type must be one of {', '.join(records.TYPES)}", field="type")
    when = parse_datetime(single(params, "datetime"))
    limit = _int(single(params, "limit"), "limit", 10, MAX_LIMIT)
    offset = _int(single(params, "offset"), "offset", 0, 1_000_000)
    found = records.search(
        conn, who, base, _names(conn),
        q=single(params, "q"), bbox=parse_bbox(single(params, "bbox"), single(params, "bbox-crs")),
        interval=(when.start, when.end) if when else None, kind=kind,
        department=single(params, "department"), theme=single(params, "theme"),
    )  # fmt: skip
    page = found[offset : offset + limit]
    request.state.audit_count = len(page)
    href = f"{base}/records/collections/{CATALOG}/items"
    kept = [(k, v) for k, v in params.multi_items() if k != "offset"]
    here = f"{href}?{urlencode(params.multi_items())}"
    links = [ogc_docs.link(here, "self", ogc_docs.GEOJSON, "this page")]
    if offset + limit < len(found):
        following = urlencode([*kept, ("offset", str(offset + limit))])
        links.append(ogc_docs.link(f"{href}?{following}", "next", ogc_docs.GEOJSON, "the next page"))
    body = {"type": "FeatureCollection", "features": page, "numberMatched": len(found),
            "numberReturned": len(page), "links": links}  # fmt: skip
    return json_response(body, media_type=ogc_docs.GEOJSON)


@router.get(
    "/records/collections/{catalog_id}/items/{record_id}",
    summary="One record",
    response_class=Response,
    responses={200: {"description": "the record (GeoJSON)", "content": {ogc_docs.GEOJSON: {}}}},
)
def item(
    catalog_id: str,
    record_id: str,
    request: Request,
    who: Principal = Depends(principal),
    conn: Connection = Depends(get_conn),
    base: str = Depends(base_url),
) -> Response:
    _catalog_id(catalog_id)
    _doc_params(request)
    every = records.search(conn, who, base, _names(conn), q=None, bbox=None, interval=None, kind=None,
                           department=None, theme=None)  # fmt: skip
    record = next((r for r in every if r["id"] == record_id), None)
    if record is None:
        raise NotFound(f"record {record_id!r} does not exist", field="recordId")
    return json_response(record, media_type=ogc_docs.GEOJSON)
