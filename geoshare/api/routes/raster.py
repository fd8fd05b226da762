"""Raster tiles (PNG, WebP) of the base map and of every layer, drawn server-side with Mapnik.

For clients that cannot draw vector tiles: the same tile matrix sets, access rules, ``filter`` and
caching as the vector tiles (a strong ``ETag``, 304 on ``If-None-Match``, ``immutable`` when the URL
carries the current ``v``), and the same worker tile cache under keys of their own. A miss is one SQL
statement (every drawn layer's features) and one Mapnik render.

These paths end in ``.{fmt}`` and share their prefix with the vector tile routes, whose last segment
matches ``5.png`` too: this router must be registered before ``tiles`` and ``basemap``. ``.mvt`` and
``.pbf`` are answered here with the vector tile, so those suffixes work as well.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from fastapi import APIRouter, Depends, Request
from sqlalchemy import Connection
from starlette.datastructures import QueryParams
from starlette.responses import Response

from geoshare.access.identity import Principal
from geoshare.api import openapi
from geoshare.api.auth import KEY_PARAM, principal
from geoshare.api.deps import get_conn
from geoshare.api.ogc_params import check_params, parse_datetime, single
from geoshare.api.routes import basemap as basemap_routes
from geoshare.api.routes import tiles as tile_routes
from geoshare.api.routes.tiles import SHAPING_PARAMS, etag_matches, tile_cache, tile_headers, tile_source
from geoshare.services.basemap import basemap_config, readable_parts
from geoshare.services.layer_cache import layer_cache
from layers.basemap.style import PALETTES
from layers.basemap.tiles import part_filter
from layers.crs import resolve_crs
from layers.errors import BadParameter
from layers.render.features import Source, TileBox
from layers.render.tiles import (
    FORMATS,
    STYLE_VERSION,
    basemap_parts_at,
    content_zoom,
    render_basemap_tile,
    render_layer_tile,
    style_fingerprint,
)
from layers.tiles.cache import TileKey
from layers.tiles.matrixsets import parse_tile
from layers.tiles.mvt import DEFAULT_FEATURE_LIMIT, TileRequest

router = APIRouter(tags=["raster tiles"])

VECTOR_SUFFIXES = frozenset({"mvt", "pbf"})
LAYER_PARAMS = frozenset({*SHAPING_PARAMS, "v", KEY_PARAM})  # ``properties`` is accepted and ignored
BASEMAP_PARAMS = frozenset({"variant", "v", KEY_PARAM})
_IMAGE_RESPONSES = {200: {"content": {media: {} for media in FORMATS.values()}}}


@dataclass(frozen=True)
class RasterKey:
    """Pins a raster tile's bytes: the vector key of its data, the image format and the drawing."""

    data: Hashable
    fmt: str
    style: str

    def etag(self) -> str:
        return '"r' + hashlib.sha256(repr(self).encode()).hexdigest()[:31] + '"'


@dataclass(frozen=True)
class TileAddress:
    tms_id: str
    z: int
    row: int
    col: int
    fmt: str


def parse_address(tms_id: str, tile_matrix: str, tile_row: str, tile_col: str, fmt: str) -> TileAddress:
    """The tile's indices checked against the set (400 for a malformed index or format, 404 outside)."""
    if fmt.isdigit():  # "…/0/1.5": a malformed column, not a format
        raise BadParameter("tileCol must be a whole number", field="tileCol")
    if fmt not in FORMATS:
        raise BadParameter(
            f"raster tile format must be one of {', '.join(FORMATS)}, got {fmt!r}", field="format"
        )
    _, z, row, col = parse_tile(tms_id, tile_matrix, tile_row, tile_col)
    return TileAddress(tms_id, z, row, col, fmt)


def _feature_limit(request: Request) -> int:
    return getattr(request.app.state.settings, "tile_feature_limit", DEFAULT_FEATURE_LIMIT)


def _cached_response(
    request: Request, key: RasterKey, fmt: str, immutable: bool, shareable: bool, draw: Callable[[], bytes]
) -> Response:
    etag = key.etag()
    headers = tile_headers(etag, shareable, immutable)
    if etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    cache = tile_cache(request.app.state)
    data = cache.get(key)
    if data is None:
        data = draw()
        cache.put(key, data)
    return Response(data, media_type=FORMATS[fmt], headers=headers)


def layer_raster(
    conn: Connection,
    request: Request,
    who: Principal,
    collection_id: str,
    tile: TileAddress,
    params: QueryParams | None = None,
    version: str | None = None,
) -> Response:
    """One layer's raster tile as ``who`` may see it; ``params`` may carry filter, filter-lang,
    filter-crs and datetime (the vector tiles' shaping parameters; ``properties`` plays no part)."""
    params = params or QueryParams()
    source = tile_source(conn, collection_id, who, request)
    interval = parse_datetime(single(params, "datetime"))
    req = TileRequest(
        tile.tms_id,
        tile.z,
        tile.col,
        tile.row,
        filter=single(params, "filter"),
        filter_lang=single(params, "filter-lang"),
        filter_crs=resolve_crs(single(params, "filter-crs"), "filter-crs"),
        interval=interval,
    )
    key = RasterKey(TileKey.of(source.layer, req, source.hidden, source.area), tile.fmt, STYLE_VERSION)
    draw_source = Source(
        source.layer,
        source.hidden,
        source.area,
        filter=req.filter,
        filter_lang=req.filter_lang,
        filter_crs=req.filter_crs,
        interval=interval,
    )
    box = TileBox(tile.tms_id, tile.z, tile.col, tile.row)
    immutable = version is not None and version == str(source.layer.current_version)
    return _cached_response(
        request,
        key,
        tile.fmt,
        immutable,
        source.shareable,
        lambda: render_layer_tile(conn, draw_source, box, tile.fmt, _feature_limit(request)),
    )


def check_variant(variant: str | None) -> str:
    value = variant or "light"
    if value not in PALETTES:
        raise BadParameter(f"variant is one of {', '.join(PALETTES)}, got {value!r}", field="variant")
    return value


def basemap_raster(
    conn: Connection, request: Request, who: Principal, tile: TileAddress, variant: str, version: str | None
) -> Response:
    """The base map's raster tile in palette ``variant``: the parts ``who`` may read, as in the
    vector base map (a part the reader may not see is left out, hidden fields are never labels)."""
    config = basemap_config(request.app.state.settings)
    every = readable_parts(conn, config, who, layer_cache(request.app.state))
    parts = basemap_parts_at(every, tile.tms_id, tile.z)
    level = content_zoom(tile.tms_id, tile.z)
    data_key = tuple(
        (
            p.config.name,
            TileKey.of(
                p.layer,
                TileRequest(tile.tms_id, tile.z, tile.col, tile.row, filter=part_filter(p.config, level)),
                p.hidden,
                p.area,
            ),
        )
        for p in parts
    )
    key = RasterKey(data_key, tile.fmt, style_fingerprint(parts, variant))
    versions = ".".join(str(p.layer.current_version) for p in every)
    shareable = who.is_anonymous and all(p.layer.sharing_class == "public" for p in parts)
    box = TileBox(tile.tms_id, tile.z, tile.col, tile.row)
    return _cached_response(
        request,
        key,
        tile.fmt,
        version is not None and version == versions,
        shareable,
        lambda: render_basemap_tile(conn, parts, box, variant, tile.fmt, _feature_limit(request)),
    )


@router.get(
    "/basemap/tiles/{tms_id}/{tile_matrix}/{tile_row}/{tile_col}.{fmt}",
    summary="A base map raster tile (PNG or WebP; .mvt/.pbf: the vector tile)",
    description="Parameters: variant (light or dark), v (the layer versions from the TileJSON: a "
    "current v makes the response immutable).",
    response_class=Response,
    responses=_IMAGE_RESPONSES,
    openapi_extra=openapi.query_parameters(BASEMAP_PARAMS),
)
def basemap_raster_tile(
    tms_id: str,
    tile_matrix: str,
    tile_row: str,
    tile_col: str,
    fmt: str,
    request: Request,
    who: Principal = Depends(principal),
    conn: Connection = Depends(get_conn),
) -> Response:
    if fmt in VECTOR_SUFFIXES:
        return basemap_routes.basemap_tile(tms_id, tile_matrix, tile_row, tile_col, request, who, conn)
    params = request.query_params
    check_params(params, BASEMAP_PARAMS)
    variant = check_variant(single(params, "variant"))
    tile = parse_address(tms_id, tile_matrix, tile_row, tile_col, fmt)
    return basemap_raster(conn, request, who, tile, variant, single(params, "v"))


@router.get(
    "/collections/{collection_id}/tiles/{tms_id}/{tile_matrix}/{tile_row}/{tile_col}.{fmt}",
    summary="A layer's raster tile (PNG or WebP; .mvt/.pbf: the vector tile)",
    description="Parameters: filter, filter-lang, filter-crs, datetime as for /items; v (the layer "
    "version: a current v makes the response immutable). Drawn in a default style by geometry type.",
    response_class=Response,
    responses=_IMAGE_RESPONSES,
    openapi_extra=openapi.query_parameters(LAYER_PARAMS),
)
def layer_raster_tile(
    collection_id: str,
    tms_id: str,
    tile_matrix: str,
    tile_row: str,
    tile_col: str,
    fmt: str,
    request: Request,
    who: Principal = Depends(principal),
    conn: Connection = Depends(get_conn),
) -> Response:
    if fmt in VECTOR_SUFFIXES:
        return tile_routes.tile_in_thread(
            collection_id, tms_id, tile_matrix, tile_row, tile_col, request, who
        )
    params = request.query_params
    check_params(params, LAYER_PARAMS)
    tile = parse_address(tms_id, tile_matrix, tile_row, tile_col, fmt)
    version = single(params, "v")
    if version is not None and not version.isdigit():
        raise BadParameter(f"v must be a layer version number, got {version!r}", field="v")
    return layer_raster(conn, request, who, collection_id, tile, params, version)
