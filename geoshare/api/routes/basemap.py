"""The base map (政务电子地图): one multi-layer vector tile source, its TileJSON and MapLibre styles.

Which base layers it holds is configured (``GEOSHARE_BASEMAP_CONFIG``, default
``geoshare/config/basemap.toml``). Each part is a published layer read under the same rules as
any other: a part the reader may not see is left out of the tile, hidden fields are not in it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Depends, Request
from sqlalchemy import Connection
from starlette.responses import Response

from geoshare.access.identity import Principal
from geoshare.api import ogc_docs
from geoshare.api.auth import KEY_PARAM, principal
from geoshare.api.deps import base_url, get_conn
from geoshare.api.ogc_params import check_params, single
from geoshare.api.responses import json_response
from geoshare.api.routes.tiles import (
    MVT,
    TILEJSON_VERSION,
    etag_matches,
    tile_cache,
    tile_headers,
)
from geoshare.services.basemap import basemap_config, readable_parts
from geoshare.services.layer_cache import layer_cache
from geoshare.services.tile_store import tile_store
from layers.basemap.config import Basemap
from layers.basemap.style import PALETTES, build_style
from layers.basemap.tiles import Part, fetch_basemap_tile, tile_key
from layers.errors import BadParameter
from layers.tiles.matrixsets import get_tms, parse_tile
from layers.tiles.mvt import DEFAULT_FEATURE_LIMIT

router = APIRouter(tags=["base map"])


def _config(request: Request) -> Basemap:
    return basemap_config(request.app.state.settings)


def _parts(conn: Connection, request: Request, who: Principal, zoom: int | None = None) -> list[Part]:
    return readable_parts(conn, _config(request), who, layer_cache(request.app.state), zoom)


def _key_query(request: Request) -> list[tuple[str, str]]:
    key = request.query_params.get(KEY_PARAM)
    return [(KEY_PARAM, key)] if key else []


@router.get("/basemap", summary="The base map: its layers and links to tiles and styles")
def basemap(
    request: Request,
    who: Principal = Depends(principal),
    conn: Connection = Depends(get_conn),
    base: str = Depends(base_url),
) -> Response:
    check_params(request.query_params, {KEY_PARAM, "f"})
    config = _config(request)
    parts = _parts(conn, request, who)
    extra = _key_query(request)
    suffix = f"?{urlencode(extra)}" if extra else ""
    links = [
        ogc_docs.link(f"{base}/basemap/style.json?{urlencode([('variant', v), *extra])}", "stylesheet",
                      "application/vnd.mapbox.style+json", f"MapLibre style ({v})")
        for v in PALETTES
    ] + [
        ogc_docs.link(f"{base}/basemap/tiles/{t}/tilejson.json{suffix}", "describedby", ogc_docs.JSON,
                      f"TileJSON ({t})")
        for t in ("WebMercatorQuad", "CGCS2000Quad")
    ]  # fmt: skip
    return json_response(
        {
            "title": config.title,
            "attribution": config.attribution,
            "layers": [
                {
                    "name": p.config.name,
                    "source": p.config.source,
                    "role": p.config.role,
                    "minzoom": p.config.minzoom,
                    "maxzoom": p.config.maxzoom,
                    "version": p.layer.current_version,
                    "updated": p.layer.updated_at.isoformat(),
                }
                for p in parts
            ],
            "links": links,
        }
    )


def _tilejson(request: Request, base: str, tms_id: str, parts: list[Part]) -> dict[str, Any]:
    config = _config(request)
    tms = get_tms(tms_id)
    versions = ".".join(str(p.layer.current_version) for p in parts)
    query = urlencode([("v", versions), *_key_query(request)])
    extents = [p.layer.extent for p in parts if p.layer.extent]
    doc: dict[str, Any] = {
        "tilejson": TILEJSON_VERSION,
        "name": config.title,
        "attribution": config.attribution,
        "scheme": "xyz",
        "tiles": [f"{base}/basemap/tiles/{tms_id}/{{z}}/{{y}}/{{x}}?{query}"],
        "minzoom": max(config.minzoom, tms.minzoom),
        "maxzoom": min(config.maxzoom, tms.maxzoom),
        "vector_layers": [
            {
                "id": p.config.name,
                "description": p.layer.title,
                "minzoom": p.config.minzoom,
                "maxzoom": p.config.maxzoom,
                "fields": {n: "String" for n in p.config.tile_properties if p.layer.attribute(n)},
            }
            for p in parts
        ],
        "geoshare:tileMatrixSet": tms_id,
    }
    if extents:
        doc["bounds"] = [
            min(e[0] for e in extents), min(e[1] for e in extents),
            max(e[2] for e in extents), max(e[3] for e in extents),
        ]  # fmt: skip
    return doc


@router.get("/basemap/tiles/{tms_id}/tilejson.json", summary="The base map's TileJSON 3.0.0")
def basemap_tilejson(
    tms_id: str,
    request: Request,
    who: Principal = Depends(principal),
    conn: Connection = Depends(get_conn),
    base: str = Depends(base_url),
) -> Response:
    check_params(request.query_params, {KEY_PARAM, "f"})
    return json_response(_tilejson(request, base, tms_id, _parts(conn, request, who)))


@router.get("/basemap/style.json", summary="A MapLibre GL style for the base map (variant light or dark)")
def basemap_style(request: Request, base: str = Depends(base_url)) -> Response:
    check_params(request.query_params, {KEY_PARAM, "variant"})
    variant = single(request.query_params, "variant") or "light"
    if variant not in PALETTES:
        raise BadParameter(f"variant is one of {', '.join(PALETTES)}", field="variant")
    extra = _key_query(request)
    suffix = f"?{urlencode(extra)}" if extra else ""
    style = build_style(
        _config(request),
        f"{base}/basemap/tiles/WebMercatorQuad/tilejson.json{suffix}",
        f"{base}/fonts/{{fontstack}}/{{range}}.pbf",
        variant,
    )
    return Response(orjson.dumps(style), media_type="application/json")


@router.get(
    "/basemap/tiles/{tms_id}/{tile_matrix}/{tile_row}/{tile_col}",
    summary="A base map vector tile (MVT, one layer per configured part)",
    response_class=Response,
    responses={200: {"content": {MVT: {}}}},
)
def basemap_tile(
    tms_id: str,
    tile_matrix: str,
    tile_row: str,
    tile_col: str,
    request: Request,
    who: Principal = Depends(principal),
    conn: Connection = Depends(get_conn),
) -> Response:
    check_params(request.query_params, {KEY_PARAM, "v"})
    _, z, row, col = parse_tile(tms_id, tile_matrix, tile_row, tile_col)
    # content zooms are Web Mercator levels: WorldCRS84Quad level z shows about level z + 1, while
    # Tianditu's c grid (CGCS2000Quad) numbers its levels to match Web Mercator's scales
    content_zoom = z + 1 if tms_id == "WorldCRS84Quad" else z
    every = _parts(conn, request, who)
    parts = [p for p in every if p.config.in_zoom(content_zoom)]
    key = tile_key(parts, tms_id, z, col, row)
    etag = key.etag()
    versions = ".".join(str(p.layer.current_version) for p in every)
    shareable = who.is_anonymous and all(p.layer.sharing_class == "public" for p in parts)
    headers = tile_headers(etag, shareable, single(request.query_params, "v") == versions)
    if etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    cache = tile_cache(request.app.state)
    data = cache.get(key)
    if data is None:
        store = tile_store(request.app.state.settings) if shareable else None
        data = store.get(tms_id, z, col, row, etag) if store else None
        if data is None:
            limit = getattr(request.app.state.settings, "tile_feature_limit", DEFAULT_FEATURE_LIMIT)
            data = fetch_basemap_tile(conn, parts, tms_id, z, col, row, limit)
            if store:
                store.put(tms_id, z, col, row, etag, data)
        cache.put(key, data)
    request.state.audit_count = 1  # tiles served
    return Response(data, media_type=MVT, headers=headers)
