"""OGC API – Tiles (vector tiles, MVT) of every published layer, with TileJSON 3.0.0 for web maps.

A tile is one SQL statement on a miss and no database work on a hit: the layer lookup comes from the
worker's layer cache and the body from the tile cache. Tile URLs that carry ``v=<current version>``
are immutable (a new version changes the URL clients build from the tileset documents); other tile
URLs must be revalidated, and the strong ``ETag`` makes that a 304.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Request
from morecantile import TileMatrixSet
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.responses import Response

from geoshare.access import policy
from geoshare.access.identity import Principal
from geoshare.api import ogc_docs, openapi
from geoshare.api.auth import KEY_HEADER, KEY_PARAM, principal
from geoshare.api.deps import base_url, get_conn
from geoshare.api.ogc_params import check_params, parse_datetime, parse_names, single
from geoshare.api.responses import json_response
from geoshare.api.routes.ogc import readable
from geoshare.db.async_pool import CONNECTION_LOST, LoopPool
from geoshare.services.layer_cache import layer_cache
from layers.cql2 import filter_to_sql, parse_filter
from layers.crs import CRS84, resolve_crs
from layers.errors import BadParameter
from layers.model import LayerInfo
from layers.query import LayerTable
from layers.registry import layer_not_found, redact
from layers.tiles.budget import DEFAULT_BUDGET as DEFAULT_TILE_BUDGET
from layers.tiles.budget import TileBudget
from layers.tiles.cache import DEFAULT_BUDGET, TileCache, TileKey
from layers.tiles.full_detail import full_detail_zoom
from layers.tiles.matrixsets import TMS_IDS, get_tms, parse_tile, tile_limits
from layers.tiles.mvt import DEFAULT_FEATURE_LIMIT, TileRequest, fetch_plain_tile, fetch_tile, is_plain

router = APIRouter(tags=["OGC API – Tiles"])
log = logging.getLogger("geoshare.tiles")

MVT = "application/vnd.mapbox-vector-tile"
TILEJSON_VERSION = "3.0.0"
REL_TILING_SCHEME = "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme"
IMMUTABLE_SECONDS = 31_536_000
#: parameters that shape a tile; the tileset documents pass them on into their tile URL templates
SHAPING_PARAMS = ("properties", "filter", "filter-lang", "filter-crs", "datetime")
TILE_PARAMS = frozenset({*SHAPING_PARAMS, "v", "f", KEY_PARAM})
TILESET_PARAMS = frozenset({*SHAPING_PARAMS, "f", KEY_PARAM})
TILE_PATH = "/collections/{collection_id}/tiles/{tms_id}/{tile_matrix}/{tile_row}/{tile_col}"
TILE_DESCRIPTION = (
    "Parameters: properties, filter, filter-lang, filter-crs, datetime as for /items; v (the layer "
    "version the tile URL was built for: a current v makes the response immutable)."
)
_ATTR_JSON_TYPES = {
    "string": "string",
    "integer": "integer",
    "number": "number",
    "boolean": "boolean",
    "date": "string",
    "datetime": "string",
}
_DIMENSIONS = {
    "point": 0,
    "multipoint": 0,
    "linestring": 1,
    "multilinestring": 1,
    "polygon": 2,
    "multipolygon": 2,
}


@dataclass(frozen=True)
class TileSource:
    """A layer as one reader may tile it."""

    layer: LayerInfo  # redacted of the hidden fields
    hidden: frozenset[str]
    area: bytes | None  # WKB, EPSG:4326: rows outside are not the reader's
    shareable: bool  # the same bytes go to everyone: shared caches may keep them


def tile_source(conn: Connection, collection_id: str, who: Principal, request: Request) -> TileSource:
    """Which layer and version is current and what ``who`` may read of it: the one lookup every tile
    path makes (404 for a layer ``who`` may not see), from the worker's layer cache."""
    layer, hidden = readable(conn, collection_id, who, layer_cache(request.app.state))
    shareable = layer.sharing_class == "public" and who.is_anonymous
    return TileSource(layer, hidden, policy.area(who, layer), shareable)


def tile_cache(state: Any) -> TileCache:
    """The worker's tile cache, created on first use with the configured budget."""
    cache = getattr(state, "tile_cache", None)
    if cache is None:
        budget = getattr(state.settings, "tile_cache_bytes", DEFAULT_BUDGET)
        cache = TileCache(budget)
        state.tile_cache = cache
    return cache


def _format(params: QueryParams, accepted: tuple[str, ...]) -> str:
    f = (single(params, "f") or accepted[0]).lower()
    if f not in accepted:
        raise BadParameter(f"unsupported format f={f!r}; use one of {', '.join(accepted)}", field="f")
    return f


def _properties(params: QueryParams, layer: LayerInfo) -> tuple[str, ...] | None:
    names = parse_names(single(params, "properties"), "properties")
    if names is None:
        return None
    for name in names:
        if layer.attribute(name) is None:
            raise BadParameter(
                f"unknown property {name!r} in properties; see /queryables", field="properties"
            )
    return tuple(dict.fromkeys(names))


def _tile_request(
    params: QueryParams, layer: LayerInfo, tms_id: str, z: int, row: int, col: int
) -> TileRequest:
    filter_crs = single(params, "filter-crs")
    return TileRequest(
        tms_id,
        z,
        col,
        row,
        properties=_properties(params, layer),
        filter=single(params, "filter"),
        filter_lang=single(params, "filter-lang"),
        filter_crs=resolve_crs(filter_crs, "filter-crs"),
        interval=parse_datetime(single(params, "datetime")),
    )


def _version_param(params: QueryParams) -> int | None:
    raw = single(params, "v")
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise BadParameter(f"v must be a layer version number, got {raw!r}", field="v") from None


def etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    candidates = {t.strip().removeprefix("W/") for t in header.split(",")}
    return "*" in candidates or etag in candidates


def scoped(layer: LayerInfo, who: Principal, collection_id: str) -> TileSource:
    """``layer`` (a registry row) as ``who`` may tile it; 404 as for an unknown id when not readable."""
    if not policy.visibility(who).allows(layer):
        raise layer_not_found(collection_id)
    hidden = policy.hidden_fields(who, layer)
    shareable = layer.sharing_class == "public" and who.is_anonymous
    return TileSource(redact(layer, hidden), hidden, policy.area(who, layer), shareable)


def tile_headers(etag: str, shareable: bool, current: bool) -> dict[str, str]:
    """Versioned URLs (``v`` = the current version) are immutable; others must revalidate."""
    if current:
        cache_control = f"{'public' if shareable else 'private'}, max-age={IMMUTABLE_SECONDS}, immutable"
    else:
        cache_control = "no-cache" if shareable else "private, no-cache"
    return {"ETag": etag, "Cache-Control": cache_control, "Vary": KEY_HEADER}


@dataclass(frozen=True)
class TilePlan:
    """What a tile request is for its reader, from the layer's cached registry row."""

    source: TileSource
    request: TileRequest
    key: TileKey
    headers: dict[str, str]


def plan_for(
    source: TileSource, params: QueryParams, tms_id: str, z: int, row: int, col: int, version: int | None
) -> TilePlan:
    """The tile as ``source``'s reader may have it, its cache key and response headers (400 for a
    bad parameter)."""
    req = _tile_request(params, source.layer, tms_id, z, row, col)
    if req.filter is not None:  # refused here, before any cached answer or 304 could be given
        node = parse_filter(req.filter, req.filter_lang)
        filter_to_sql(node, LayerTable(source.layer).resolve, req.filter_crs)
    key = TileKey.of(source.layer, req, source.hidden, source.area)
    headers = tile_headers(key.etag(), source.shareable, version == source.layer.current_version)
    return TilePlan(source, req, key, headers)


def tile_plan(
    cached: LayerInfo,
    params: QueryParams,
    collection_id: str,
    who: Principal,
    tms_id: str,
    z: int,
    row: int,
    col: int,
    version: int | None,
) -> TilePlan:
    """``plan_for`` from the layer's cached registry row, without the body (404 for a layer ``who``
    may not read)."""
    return plan_for(scoped(cached, who, collection_id), params, tms_id, z, row, col, version)


def memory_answer(
    state: Any, key: TileKey, headers: dict[str, str], if_none_match: str | None
) -> tuple[int, bytes, dict[str, str]] | None:
    """304 when the client's copy is current, else 200 with the cached body; None on a cache miss."""
    if etag_matches(if_none_match, headers["ETag"]):
        return 304, b"", headers
    data = tile_cache(state).get(key)
    return None if data is None else (200, data, headers)


@router.get(
    TILE_PATH,
    summary="A vector tile (MVT)",
    description=TILE_DESCRIPTION,
    response_class=Response,
    responses={200: {"content": {MVT: {}}}},
    openapi_extra=openapi.query_parameters(TILE_PARAMS),
)
@router.head(  # its own route, so the two operations have their own ids in the OpenAPI document
    TILE_PATH,
    summary="A vector tile's headers (ETag, Cache-Control, size) without its body",
    description=TILE_DESCRIPTION,
    response_class=Response,
    openapi_extra=openapi.query_parameters(TILE_PARAMS),
)
async def tile(
    collection_id: str,
    tms_id: str,
    tile_matrix: str,
    tile_row: str,
    tile_col: str,
    request: Request,
    who: Principal = Depends(principal),
) -> Response:
    """In the event loop while the registry row is cached: from memory (tile cached, or a 304), else
    a plain tile awaited on the worker's asyncio pool; to a worker thread with an engine connection
    for the rest (the row not cached yet, a filter or time). Anonymous hits usually never get here:
    ``geoshare.api.tile_fastpath`` answers them before FastAPI."""
    params = request.query_params
    z, row, col, version = tile_address(params, tms_id, tile_matrix, tile_row, tile_col)
    state = request.app.state
    cached = layer_cache(state).peek(collection_id)
    # a layer this reader may not see is refused by the database path, as an unknown id is: in the
    # same time (``ogc.readable``)
    if cached is not None and policy.visibility(who).allows(cached):
        plan = tile_plan(cached, params, collection_id, who, tms_id, z, row, col, version)
        hit = memory_answer(state, plan.key, plan.headers, request.headers.get("if-none-match"))
        if hit is None and is_plain(plan.request):
            try:
                data = await fetch_from_pool(state, plan)
            except CONNECTION_LOST:  # e.g. the database restarted: the engine reads it below
                log.warning("tile pool connection lost; reading %s through the engine", request.url.path)
                data = None
            hit = None if data is None else (200, data, plan.headers)
        if hit is not None:
            return _respond(request, *hit)
    return await run_in_threadpool(
        _tile_from_database, request, collection_id, who, tms_id, z, row, col, version
    )


def _respond(request: Request, status: int, data: bytes, headers: dict[str, str]) -> Response:
    if status == 304:
        return Response(status_code=304, headers=headers)
    request.state.audit_count = 1  # tiles served
    return Response(data, media_type=MVT, headers=headers)


def _feature_limit(state: Any) -> int:
    return getattr(state.settings, "tile_feature_limit", DEFAULT_FEATURE_LIMIT)


def _budget(state: Any) -> TileBudget:
    settings = state.settings
    gzip = getattr(settings, "tile_budget_gzip_bytes", DEFAULT_TILE_BUDGET.gzip_bytes)
    return TileBudget(gzip, getattr(settings, "tile_budget_raw_bytes", DEFAULT_TILE_BUDGET.raw_bytes))


async def fetch_from_pool(state: Any, plan: TilePlan) -> bytes | None:
    """A plain tile (``is_plain``) read on the worker's asyncio pool and put in the tile cache; None
    when this event loop has no pool (the caller reads it through the engine instead)."""
    pool = await async_pool(state).get()
    if pool is None:
        return None
    source = plan.source
    conn = await pool.acquire()
    try:
        data = await fetch_plain_tile(
            conn,
            source.layer,
            plan.request,
            source.hidden,
            source.area,
            _feature_limit(state),
            _budget(state),
        )
    finally:
        pool.release(conn)
    tile_cache(state).put(plan.key, data)
    return data


def async_pool(state: Any) -> LoopPool:
    """The worker's asyncio pool for plain tiles, made on first use."""
    pool = getattr(state, "async_pool", None)
    if pool is None:
        pool = state.async_pool = LoopPool(state.settings.database_url, state.settings.pool_size)
    return pool


def tile_address(
    params: QueryParams, tms_id: str, tile_matrix: str, tile_row: str, tile_col: str
) -> tuple[int, int, int, int | None]:
    """(z, row, col, v) of a tile request, after checking its parameters: 400/404 as for any tile."""
    check_params(params, TILE_PARAMS)
    _format(params, ("mvt", MVT))
    _, z, row, col = parse_tile(tms_id, tile_matrix, tile_row, tile_col)
    return z, row, col, _version_param(params)


def tile_in_thread(
    collection_id: str,
    tms_id: str,
    tile_matrix: str,
    tile_row: str,
    tile_col: str,
    request: Request,
    who: Principal,
) -> Response:
    """The vector tile for callers already in a worker thread (``….mvt`` on the raster routes)."""
    z, row, col, version = tile_address(request.query_params, tms_id, tile_matrix, tile_row, tile_col)
    return _tile_from_database(request, collection_id, who, tms_id, z, row, col, version)


def _tile_from_database(
    request: Request,
    collection_id: str,
    who: Principal,
    tms_id: str,
    z: int,
    row: int,
    col: int,
    version: int | None,
) -> Response:
    state = request.app.state
    with state.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        source = tile_source(conn, collection_id, who, request)
        plan = plan_for(source, request.query_params, tms_id, z, row, col, version)
        hit = memory_answer(state, plan.key, plan.headers, request.headers.get("if-none-match"))
        if hit is None:
            limit = _feature_limit(state)
            data = fetch_tile(
                conn, source.layer, plan.request, source.hidden, source.area, limit, _budget(state)
            )
            tile_cache(state).put(plan.key, data)
            hit = (200, data, plan.headers)
    return _respond(request, *hit)


# --- tile matrix sets -------------------------------------------------------------------------


def _tms_ref(base: str, tms: TileMatrixSet) -> dict[str, Any]:
    ref: dict[str, Any] = {"id": tms.id, "title": tms.title or tms.id}
    if tms.uri:
        ref["uri"] = tms.uri
    ref["crs"] = str(tms.crs.root)
    ref["links"] = [ogc_docs.link(f"{base}/tileMatrixSets/{tms.id}", "self", ogc_docs.JSON, tms.title)]
    return ref


@router.get("/tileMatrixSets", summary="Tile matrix sets tiles are offered in")
def tile_matrix_sets(request: Request, base: str = Depends(base_url)) -> Response:
    check_params(request.query_params, frozenset({"f", KEY_PARAM}))
    _format(request.query_params, ("json", ogc_docs.JSON))
    return json_response({"tileMatrixSets": [_tms_ref(base, get_tms(i)) for i in TMS_IDS]})


@router.get("/tileMatrixSets/{tms_id}", summary="A tile matrix set (OGC TMS 2.0 JSON)")
def tile_matrix_set(tms_id: str, request: Request) -> Response:
    check_params(request.query_params, frozenset({"f", KEY_PARAM}))
    _format(request.query_params, ("json", ogc_docs.JSON))
    return json_response(get_tms(tms_id).model_dump(mode="json", exclude_none=True))


# --- tilesets ----------------------------------------------------------------------------------


def _shaping_query(params: QueryParams) -> list[tuple[str, str]]:
    """The tile-shaping parameters (and a ``key`` sent as a parameter) to carry into tile URLs."""
    return [(k, v) for k, v in params.multi_items() if k in SHAPING_PARAMS or k == KEY_PARAM]


def _tile_template(
    base: str, layer: LayerInfo, tms_id: str, xyz: tuple[str, str, str], params: QueryParams
) -> str:
    z, y, x = xyz
    path = f"{base}/collections/{quote(layer.id)}/tiles/{tms_id}/{z}/{y}/{x}"
    query = urlencode([("v", str(layer.current_version)), *_shaping_query(params)])
    return f"{path}?{query}"


def _chosen_attributes(layer: LayerInfo, params: QueryParams) -> list[Any]:
    names = _properties(params, layer)
    return layer.attributes if names is None else [layer.attribute(n) for n in names]


def _tileset_summary(base: str, layer: LayerInfo, tms: TileMatrixSet) -> dict[str, Any]:
    href = f"{base}/collections/{quote(layer.id)}/tiles/{tms.id}"
    doc: dict[str, Any] = {
        "title": f"{layer.title} ({tms.id})",
        "dataType": "vector",
        "crs": str(tms.crs.root),
    }
    if tms.uri:
        doc["tileMatrixSetURI"] = tms.uri
    doc["links"] = [
        ogc_docs.link(href, "self", ogc_docs.JSON, "tileset metadata"),
        ogc_docs.link(f"{base}/tileMatrixSets/{tms.id}", REL_TILING_SCHEME, ogc_docs.JSON, tms.title),
    ]
    return doc


@router.get("/collections/{collection_id}/tiles", summary="The layer's vector tilesets")
def tilesets(
    collection_id: str,
    request: Request,
    who: Principal = Depends(principal),
    conn: Connection = Depends(get_conn),
    base: str = Depends(base_url),
) -> Response:
    check_params(request.query_params, frozenset({"f", KEY_PARAM}))
    _format(request.query_params, ("json", ogc_docs.JSON))
    layer = tile_source(conn, collection_id, who, request).layer
    href = f"{base}/collections/{quote(layer.id)}"
    return json_response(
        {
            "links": [
                ogc_docs.link(f"{href}/tiles", "self", ogc_docs.JSON, "vector tilesets"),
                ogc_docs.link(href, "collection", ogc_docs.JSON, layer.title),
            ],
            "tilesets": [_tileset_summary(base, layer, get_tms(i)) for i in TMS_IDS],
        }
    )


def _tileset_doc(base: str, layer: LayerInfo, tms: TileMatrixSet, params: QueryParams) -> dict[str, Any]:
    attrs = _chosen_attributes(layer, params)
    doc = _tileset_summary(base, layer, tms)
    template = _tile_template(base, layer, tms.id, ("{tileMatrix}", "{tileRow}", "{tileCol}"), params)
    doc["links"].append({**ogc_docs.link(template, "item", MVT, "vector tiles (MVT)"), "templated": True})
    doc["links"].append(
        ogc_docs.link(
            f"{base}/collections/{quote(layer.id)}",
            "http://www.opengis.net/def/rel/ogc/1.0/geodata",
            ogc_docs.JSON,
            layer.title,
        )
    )
    doc["layers"] = [
        {
            "id": layer.id,
            "title": layer.title,
            "description": layer.description,
            "dataType": "vector",
            "geometryDimension": _DIMENSIONS.get((layer.geometry_type or "").lower()),  # None: mixed
            "minTileMatrix": str(tms.minzoom),
            "maxTileMatrix": str(tms.maxzoom),
            "propertiesSchema": {
                "type": "object",
                "properties": {a.name: {"type": _ATTR_JSON_TYPES[a.type]} for a in attrs},
            },
        }
    ]
    doc["layers"] = [{k: v for k, v in entry.items() if v is not None} for entry in doc["layers"]]
    if layer.extent:
        doc["boundingBox"] = {
            "lowerLeft": list(layer.extent[:2]),
            "upperRight": list(layer.extent[2:4]),
            "crs": CRS84,
        }
        doc["tileMatrixSetLimits"] = tile_limits(tms, layer.extent)
    return doc


def _tilejson(
    base: str, layer: LayerInfo, tms: TileMatrixSet, params: QueryParams, full_detail: int
) -> dict[str, Any]:
    """TileJSON 3; ``fullDetailZoom`` (top level and per vector layer): from this zoom on every
    tile holds every feature, below it tiles are thinned to the size budget (``gs_dropped``)."""
    attrs = _chosen_attributes(layer, params)
    doc: dict[str, Any] = {
        "tilejson": TILEJSON_VERSION,
        "name": layer.title,
        "description": layer.description,
        "version": f"{layer.current_version}.0.0",
        "scheme": "xyz",
        "tiles": [_tile_template(base, layer, tms.id, ("{z}", "{y}", "{x}"), params)],
        "minzoom": tms.minzoom,
        "maxzoom": tms.maxzoom,
        "vector_layers": [
            {
                "id": layer.id,
                "description": layer.title,
                "minzoom": tms.minzoom,
                "maxzoom": tms.maxzoom,
                "fields": {a.name: _ATTR_JSON_TYPES[a.type].capitalize() for a in attrs},
                "fullDetailZoom": full_detail,
            }
        ],
        "fullDetailZoom": full_detail,
        "geoshare:tileMatrixSet": tms.id,
    }
    if layer.licence:
        doc["attribution"] = layer.licence
    if layer.extent:
        doc["bounds"] = list(layer.extent[:4])
    return doc


@router.get(
    "/collections/{collection_id}/tiles/{tms_id}",
    summary="A vector tileset's metadata",
    openapi_extra=openapi.query_parameters(TILESET_PARAMS),
)
def tileset(
    collection_id: str,
    tms_id: str,
    request: Request,
    who: Principal = Depends(principal),
    conn: Connection = Depends(get_conn),
    base: str = Depends(base_url),
) -> Response:
    params = request.query_params
    check_params(params, TILESET_PARAMS)
    f = _format(params, ("json", ogc_docs.JSON, "tilejson"))
    tms = get_tms(tms_id)
    source = tile_source(conn, collection_id, who, request)
    layer = source.layer
    if f == "tilejson":
        return json_response(_tilejson(base, layer, tms, params, _full_detail(conn, request, source, tms)))
    return json_response(_tileset_doc(base, layer, tms, params))


@router.get(
    "/collections/{collection_id}/tiles/{tms_id}/tilejson.json",
    summary="TileJSON 3.0.0",
    openapi_extra=openapi.query_parameters(TILESET_PARAMS),
)
def tilejson(
    collection_id: str,
    tms_id: str,
    request: Request,
    who: Principal = Depends(principal),
    conn: Connection = Depends(get_conn),
    base: str = Depends(base_url),
) -> Response:
    params = request.query_params
    check_params(params, TILESET_PARAMS)
    _format(params, ("tilejson", "json", ogc_docs.JSON))
    tms = get_tms(tms_id)
    source = tile_source(conn, collection_id, who, request)
    return json_response(_tilejson(base, source.layer, tms, params, _full_detail(conn, request, source, tms)))


def _full_detail(conn: Connection, request: Request, source: Any, tms: TileMatrixSet) -> int:
    state = request.app.state
    return full_detail_zoom(conn, source.layer, tms.id, _budget(state), source.hidden, _feature_limit(state))
