"""OGC API – Features Parts 1–3: landing page, conformance, collections, items, queryables.

Endpoints are plain ``def`` (run in the threadpool): one registry lookup, one items query, and
the features text from PostgreSQL spliced into the response without being parsed again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote, urlencode

import orjson
from fastapi import APIRouter, Depends, Request
from sqlalchemy import Connection
from starlette.responses import Response

from geoshare.access import policy
from geoshare.access.identity import Principal
from geoshare.api import ogc_docs, openapi
from geoshare.api.auth import principal
from geoshare.api.deps import base_url, get_conn
from geoshare.api.ogc_params import (
    FEATURE_PARAMS,
    FORMAT_PARAMS,
    check_format,
    check_params,
    items_query,
    parse_names,
    single,
)
from geoshare.api.responses import json_response
from geoshare.services.layer_cache import LayerCache, layer_cache
from geoshare.settings import Settings
from layers.crs import CrsDef, resolve_crs
from layers.model import LayerInfo
from layers.query import fetch_feature, fetch_page
from layers.registry import get_layer, list_layers, redact

router = APIRouter(tags=["OGC API – Features"])


def _format_only(request: Request) -> None:
    check_format(request.query_params)
    check_params(request.query_params, FORMAT_PARAMS)


@router.get("/", summary="Landing page")
def landing_page(request: Request, base: str = Depends(base_url)) -> Response:
    _format_only(request)
    app = request.app
    return json_response(ogc_docs.landing(base, app.title, app.description))


@router.get("/conformance", summary="Conformance classes")
def conformance(request: Request) -> Response:
    _format_only(request)
    return json_response({"conformsTo": ogc_docs.CONFORMANCE})


@router.get("/collections", summary="Published layers")
def collections(
    request: Request,
    who: Principal = Depends(principal),
    conn: Connection = Depends(get_conn),
    base: str = Depends(base_url),
) -> Response:
    _format_only(request)
    layers = list_layers(conn, policy.visibility(who))
    docs = [ogc_docs.collection(base, redact(layer, policy.hidden_fields(who, layer))) for layer in layers]
    return json_response(
        {
            "links": [ogc_docs.link(f"{base}/collections", "self", ogc_docs.JSON, "published layers")],
            "collections": docs,
            "crs": docs[0]["crs"] if docs else [],
        }
    )


@router.get("/collections/{collection_id}", summary="One layer")
def collection(
    collection_id: str,
    request: Request,
    who: Principal = Depends(principal),
    conn: Connection = Depends(get_conn),
    base: str = Depends(base_url),
) -> Response:
    _format_only(request)
    return json_response(
        ogc_docs.collection(base, readable(conn, collection_id, who, layer_cache(request.app.state))[0])
    )


@router.get("/collections/{collection_id}/queryables", summary="Queryable properties (JSON Schema)")
def queryables(
    collection_id: str,
    request: Request,
    who: Principal = Depends(principal),
    conn: Connection = Depends(get_conn),
    base: str = Depends(base_url),
) -> Response:
    _format_only(request)
    return json_response(
        ogc_docs.queryables(base, readable(conn, collection_id, who, layer_cache(request.app.state))[0]),
        media_type=ogc_docs.SCHEMA_JSON,
    )


def readable(
    conn: Connection, collection_id: str, who: Principal, cache: LayerCache | None = None
) -> tuple[LayerInfo, frozenset[str]]:
    """The layer as ``who`` may see it (hidden fields redacted) and those hidden fields; a layer
    ``who`` may not read is "not found", exactly like an unknown id. With ``cache`` the registry row
    comes from the worker's layer cache (no database round trip when it is there). A cached row the
    reader may not see is looked up again under the reader's own visibility: the refusal then costs
    the one lookup an unknown id costs, so its timing does not tell the two apart."""
    visibility = policy.visibility(who)
    if cache is None:
        layer = get_layer(conn, collection_id, visibility)
    else:
        layer = cache.get(conn, collection_id)
        if not visibility.allows(layer):
            layer = get_layer(conn, collection_id, visibility)  # NotFound, as for an unknown id
    hidden = policy.hidden_fields(who, layer)
    return redact(layer, hidden), hidden


def _crs_headers(crs: CrsDef) -> dict[str, str]:
    return {"Content-Crs": f"<{crs.uri}>"}


_FEATURES_SCHEMA = {"type": "object", "required": ["type", "features"], "properties": {
    "type": {"type": "string", "enum": ["FeatureCollection"]},
    "features": {"type": "array", "items": {"type": "object"}},
    "numberMatched": {"type": "integer"}, "numberReturned": {"type": "integer"},
    "links": {"type": "array", "items": {"type": "object"}},
}}  # fmt: skip
_DEFAULTS = Settings()


@router.get(
    "/collections/{collection_id}/items",
    summary="Features",
    description="Parameters: limit, bbox, bbox-crs, datetime, properties, sortby, filter, filter-lang "
    "(cql2-text|cql2-json), filter-crs, crs, cursor, and any queryable property as property=value. "
    "limit above the server maximum is clamped to it.",
    response_class=Response,
    responses={200: {"description": "a page of features (GeoJSON)", "content": {
        ogc_docs.GEOJSON: {"schema": _FEATURES_SCHEMA}}}},
    openapi_extra={"parameters": openapi.items_parameters(
        _DEFAULTS.items_default_limit, _DEFAULTS.items_max_limit)},
)  # fmt: skip
def items(
    collection_id: str,
    request: Request,
    who: Principal = Depends(principal),
    conn: Connection = Depends(get_conn),
    base: str = Depends(base_url),
) -> Response:
    settings = request.app.state.settings
    layer, hidden = readable(conn, collection_id, who, layer_cache(request.app.state))
    q = items_query(request.query_params, layer, settings.items_default_limit, settings.items_max_limit)
    area = policy.area(who, layer)
    page = fetch_page(conn, layer, q, hidden, area)
    request.state.audit_count = page.number_returned

    href = f"{base}/collections/{quote(layer.id)}/items"
    kept = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
    self_query = urlencode(request.query_params.multi_items())
    links = [
        ogc_docs.link(f"{href}?{self_query}" if self_query else href, "self", ogc_docs.GEOJSON, "this page"),
        ogc_docs.link(f"{base}/collections/{quote(layer.id)}", "collection", ogc_docs.JSON, layer.title),
    ]
    if page.next_cursor:
        links.append(
            ogc_docs.link(
                f"{href}?{urlencode([*kept, ('cursor', page.next_cursor)])}",
                "next",
                ogc_docs.GEOJSON,
                "next page",
            )
        )
    head = {
        "type": "FeatureCollection",
        "timeStamp": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }
    if not q.is_filtered and area is None:
        head["numberMatched"] = layer.feature_count
    head["numberReturned"] = page.number_returned
    head["links"] = links
    body = orjson.dumps(head)[:-1] + b',"features":[' + page.features + b"]}"
    return Response(body, media_type=ogc_docs.GEOJSON, headers=_crs_headers(q.crs))


@router.get(
    "/collections/{collection_id}/items/{feature_id}",
    summary="One feature",
    response_class=Response,
    responses={200: {"description": "the feature (GeoJSON)", "content": {ogc_docs.GEOJSON: {"schema": {
        "type": "object", "properties": {"type": {"type": "string", "enum": ["Feature"]}}}}}}},
    openapi_extra={"parameters": [p for p in openapi.items_parameters(1, 1) if p["name"] in (
        "crs", "properties")]},
)  # fmt: skip
def item(
    collection_id: str,
    feature_id: str,
    request: Request,
    who: Principal = Depends(principal),
    conn: Connection = Depends(get_conn),
    base: str = Depends(base_url),
) -> Response:
    params = request.query_params
    check_format(params)
    check_params(params, FEATURE_PARAMS)
    layer, hidden = readable(conn, collection_id, who, layer_cache(request.app.state))
    crs = resolve_crs(single(params, "crs"), "crs")
    feature = fetch_feature(
        conn,
        layer,
        feature_id,
        crs,
        parse_names(single(params, "properties"), "properties"),
        hidden,
        policy.area(who, layer),
    )
    request.state.audit_count = 1
    collection_href = f"{base}/collections/{quote(layer.id)}"
    links = orjson.dumps(
        [
            ogc_docs.link(f"{collection_href}/items/{quote(feature_id, safe='')}", "self", ogc_docs.GEOJSON),
            ogc_docs.link(collection_href, "collection", ogc_docs.JSON, layer.title),
        ]
    )
    body = feature[:-1] + b',"links":' + links + b"}"
    return Response(body, media_type=ogc_docs.GEOJSON, headers=_crs_headers(crs))
