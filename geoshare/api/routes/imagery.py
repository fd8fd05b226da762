"""Imagery: list, metadata, TileJSON and raster tiles; platform admins add and remove images.

Readers see imagery by the layer rule (public to everyone, shared to any key, restricted to the
owning department and platform admins); an image the reader may not see is "not found", like an
unknown id. Tile endpoints are plain ``def``: rendering runs in the threadpool, never on the event
loop. A tile wholly outside the image is a 404 problem, as OGC API – Tiles asks for tiles outside a
tile set's limits; TileJSON ``bounds`` tells clients not to ask for them. Partial tiles at the edge
are transparent outside the image (PNG, WebP).

Caching: the ETag is the file checksum with the tile's address, so it changes exactly when the
image is replaced. Tile URLs from TileJSON carry ``v=<checksum prefix>``; while it matches the
current file the tile is ``immutable`` for a year, and a stale ``v`` gets the current tile with
a short max-age.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from geoshare.access import policy
from geoshare.access.identity import Principal
from geoshare.api.auth import KEY_PARAM, principal, require_platform_admin
from geoshare.api.deps import base_url, get_conn
from geoshare.api.ogc_params import check_params
from geoshare.api.problems import Problem
from geoshare.api.responses import json_response
from layers.errors import BadParameter, NotFound
from layers.imagery import store, tiles
from layers.imagery.store import ImageryMetadata, ImageryRecord
from layers.tiles.matrixsets import TMS_IDS, check_tile, get_tms, parse_index

log = logging.getLogger("geoshare.imagery")

router = APIRouter(tags=["imagery"])

JSON = "application/json"
VERSION_PREFIX = store.URL_VERSION_CHARS  # hex digits of the checksum in ``v=``
_MIN_VERSION = 8
_IMMUTABLE = "max-age=31536000, immutable"
_REVALIDATE = "max-age=60"
_UPLOAD_CHUNK = 1 << 20


def _only(request: Request, *allowed: str) -> None:
    check_params(request.query_params, {*allowed, KEY_PARAM})


def _key_query(request: Request) -> dict[str, str]:
    """A key that came in the URL goes on the URLs we hand out (tile clients cannot send headers)."""
    key = request.query_params.get(KEY_PARAM)
    return {KEY_PARAM: key} if key else {}


def _read(conn: Connection, imagery_id: str, who: Principal) -> ImageryRecord:
    return store.get_imagery(conn, imagery_id, policy.visibility(who))


def _path(request: Request, image: ImageryRecord) -> Path:
    """The image's file; a registered image whose file is gone is the server's fault, said plainly
    (503, logged) rather than a stack trace."""
    path = store.imagery_dir(request.app.state.settings) / image.file_name
    if not path.is_file():
        log.error("imagery %s: file %s is missing from the imagery directory", image.id, image.file_name)
        raise Problem(
            503,
            f"the file of image {image.id!r} is missing on this server; restore it or add the image again "
            "(geoshare imagery add)",
            field="imageryId",
        )
    return path


def _links(base: str, image: ImageryRecord, query: dict[str, str]) -> list[dict[str, object]]:
    href = f"{base}/imagery/{quote(image.id)}"
    suffix = f"?{urlencode(query)}" if query else ""
    links: list[dict[str, object]] = [{"href": f"{href}{suffix}", "rel": "self", "type": JSON}]
    for tms_id in TMS_IDS:
        links.append(
            {
                "href": f"{href}/tiles/{tms_id}{suffix}",
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/tilesets-map",
                "type": JSON,
                "title": f"TileJSON, {tms_id}",
            }
        )
    return links


def _summary(base: str, image: ImageryRecord, query: dict[str, str]) -> dict[str, object]:
    return {
        "id": image.id,
        "title": image.title,
        "description": image.description,
        "department": image.department_code,
        "class": image.sharing_class,
        "bbox": list(image.bounds),
        "minzoom": image.minzoom,
        "maxzoom": image.maxzoom,
        "updated": image.updated_at.isoformat(),
        "links": _links(base, image, query),
    }


def _document(base: str, image: ImageryRecord, query: dict[str, str]) -> dict[str, object]:
    doc = _summary(base, image, query)
    doc.update(
        licence=image.licence,
        source=image.source,
        crs=image.crs,
        extent={
            "spatial": {"bbox": [list(image.bounds)], "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}
        },
        bandCount=image.band_count,
        dataType=image.dtype,
        resolution=list(image.resolution),
        width=image.width,
        height=image.height,
        nodata=image.nodata,
        sizeBytes=image.size_bytes,
        checksum=f"sha256:{image.checksum}",
        added=image.added_at.isoformat(),
        tileFormats=list(tiles.FORMATS),
        tileMatrixSets=list(TMS_IDS),
    )
    return doc


@router.get("/imagery", summary="Imagery the caller may see")
def list_imagery(
    request: Request,
    who: Principal = Depends(principal),
    conn: Connection = Depends(get_conn),
    base: str = Depends(base_url),
) -> Response:
    _only(request)
    query = _key_query(request)
    images = store.list_imagery(conn, policy.visibility(who))
    suffix = f"?{urlencode(query)}" if query else ""
    return json_response(
        {
            "links": [{"href": f"{base}/imagery{suffix}", "rel": "self", "type": JSON}],
            "imagery": [_summary(base, image, query) for image in images],
            "numberMatched": len(images),
        }
    )


@router.get("/imagery/{imagery_id}", summary="One image: metadata and links")
def imagery_metadata(
    imagery_id: str,
    request: Request,
    who: Principal = Depends(principal),
    conn: Connection = Depends(get_conn),
    base: str = Depends(base_url),
) -> Response:
    _only(request)
    return json_response(_document(base, _read(conn, imagery_id, who), _key_query(request)))


@router.get("/imagery/{imagery_id}/tiles/{tms_id}", summary="TileJSON 3.0.0 of an image")
def tilejson(
    imagery_id: str,
    tms_id: str,
    request: Request,
    tile_format: Annotated[str, Query(alias="format", description="png, jpg or webp")] = "png",
    who: Principal = Depends(principal),
    conn: Connection = Depends(get_conn),
    base: str = Depends(base_url),
) -> Response:
    _only(request, "format")
    tms = get_tms(tms_id)
    if tile_format not in tiles.FORMATS:
        raise BadParameter(f"format must be one of {', '.join(tiles.FORMATS)}", field="format")
    image = _read(conn, imagery_id, who)
    if tms_id == "WebMercatorQuad":
        minzoom, maxzoom = image.minzoom, image.maxzoom
    else:
        minzoom, maxzoom = tiles.zoom_range(_path(request, image), tms)
    query = {"v": image.checksum[:VERSION_PREFIX], **_key_query(request)}
    template = f"{base}/imagery/{quote(image.id)}/tiles/{tms_id}/{{z}}/{{y}}/{{x}}.{tile_format}"
    west, south, east, north = image.bounds
    attribution = " · ".join(v for v in (image.source, image.licence) if v)
    doc = {
        "tilejson": "3.0.0",
        "name": image.title,
        "description": image.description,
        "version": "1.0.0",
        "attribution": attribution or None,
        "scheme": "xyz",
        "tiles": [f"{template}?{urlencode(query)}"],
        "minzoom": minzoom,
        "maxzoom": maxzoom,
        "bounds": [west, south, east, north],
        "center": [(west + east) / 2, (south + north) / 2, minzoom],
        "tileMatrixSet": tms_id,
    }
    return json_response({k: v for k, v in doc.items() if v not in (None, "")})


def _etag(image: ImageryRecord, tms_id: str, z: int, y: int, x: int, fmt: str) -> str:
    return f'"{image.checksum[:20]}-{tms_id}-{z}-{y}-{x}-{fmt}"'


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return "*" in tags or etag in tags


def _cache_control(image: ImageryRecord, version: str | None) -> str:
    scope = "public" if image.sharing_class == "public" else "private"
    current = version is not None and len(version) >= _MIN_VERSION and image.checksum.startswith(version)
    return f"{scope}, {_IMMUTABLE if current else _REVALIDATE}"


@router.get(
    "/imagery/{imagery_id}/tiles/{tms_id}/{z}/{y}/{x}.{fmt}",
    summary="A raster tile (z = tileMatrix, y = tileRow, x = tileCol)",
    responses={200: {"content": {media: {} for _driver, media in tiles.FORMATS.values()}}},
)
def tile(
    imagery_id: str,
    tms_id: str,
    z: str,
    y: str,
    x: str,
    fmt: str,
    request: Request,
    v: Annotated[str | None, Query(description="checksum prefix from TileJSON: immutable caching")] = None,
    who: Principal = Depends(principal),
    conn: Connection = Depends(get_conn),
) -> Response:
    _only(request, "v")
    tms = get_tms(tms_id)
    level, row, col = parse_index(z, "tileMatrix"), parse_index(y, "tileRow"), parse_index(x, "tileCol")
    if fmt not in tiles.FORMATS:
        raise BadParameter(
            f"tile format must be one of {', '.join(tiles.FORMATS)}, got {fmt!r}", field="format"
        )
    check_tile(tms, level, row, col)
    image = _read(conn, imagery_id, who)
    etag = _etag(image, tms_id, level, row, col, fmt)
    headers = {"ETag": etag, "Cache-Control": _cache_control(image, v)}
    if _matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    body = tiles.render_tile(
        _path(request, image), tms, level, col, row, fmt, band_count=image.band_count, rescale=image.rescale
    )
    if body is None:
        raise NotFound(f"tile {level}/{row}/{col} of {tms_id} is outside image {image.id!r}", field="tile")
    return Response(body, media_type=tiles.FORMATS[fmt][1], headers=headers)


# -- administration --------------------------------------------------------------------------------


async def _receive(request: Request, directory: Path) -> Path:
    """The request body in a temporary file beside the store (same file system for the rename)."""
    limit = request.app.state.settings.upload_max_bytes
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=directory, prefix=".upload-", suffix=".tif", delete=False) as f:
        path, size = Path(f.name), 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise Problem(413, f"the image is larger than {limit} bytes", field="body")
                await run_in_threadpool(f.write, chunk)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
    if size == 0:
        path.unlink(missing_ok=True)
        raise BadParameter("the request body must be the image file (GeoTIFF)", field="body")
    return path


@router.put("/imagery/{imagery_id}", summary="Add or replace an image (platform admins)", status_code=200)
async def put_imagery(
    imagery_id: str,
    request: Request,
    title: Annotated[str, Query(min_length=1, max_length=500)],
    description: str = "",
    department: str | None = None,
    sharing_class: Annotated[
        str, Query(alias="class", description="public, shared or restricted")
    ] = "public",
    licence: str | None = None,
    source: str | None = None,
    who: Principal = Depends(require_platform_admin),
    base: str = Depends(base_url),
) -> Response:
    """The body is the raster file itself (e.g. ``curl -T image.tif``); it is converted to a COG
    unless it already is one. 201 when the id is new, 200 when it replaced an image."""
    meta = ImageryMetadata(imagery_id, title, description, department, sharing_class, licence, source)
    meta.check()
    directory = store.imagery_dir(request.app.state.settings)
    upload = await _receive(request, directory)
    try:
        image = await run_in_threadpool(store.add_imagery, request.app.state.engine, upload, directory, meta)
    finally:
        upload.unlink(missing_ok=True)
    status = 201 if image.added_at == image.updated_at else 200
    return json_response(_document(base, image, {}), status)


@router.delete("/imagery/{imagery_id}", summary="Remove an image (platform admins)", status_code=204)
def delete_imagery(
    imagery_id: str, request: Request, who: Principal = Depends(require_platform_admin)
) -> Response:
    store.remove_imagery(request.app.state.engine, imagery_id, store.imagery_dir(request.app.state.settings))
    return Response(status_code=204)
