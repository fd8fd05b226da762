"""``GET /layers/{id}/export``: a layer as a file for GIS tools and spreadsheets (offline packages).

GeoJSON and CSV stream from a server-side cursor on a connection of their own, closed when the
stream ends; GeoPackage and Shapefile are written to a temporary folder, sent with their length and
deleted afterwards. The sharing policy applies as on ``/items``: a layer the caller may not read is
404, hidden fields and rows outside the caller's area are in no format.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from fastapi import APIRouter, Depends, Request
from sqlalchemy import Connection
from starlette.background import BackgroundTask
from starlette.datastructures import QueryParams
from starlette.responses import FileResponse, Response, StreamingResponse

from geoshare.access import policy
from geoshare.access.identity import Principal
from geoshare.api import openapi
from geoshare.api.auth import KEY_PARAM, principal
from geoshare.api.ogc_params import check_params, parse_bbox, parse_names, single
from geoshare.api.routes.ogc import readable
from geoshare.services.layer_cache import layer_cache
from layers.crs import resolve_crs
from layers.errors import BadParameter, NotFound
from layers.export import (
    ExportPlan,
    ExportRequest,
    parse_format,
    plan_export,
    stream_export,
    write_export,
)
from layers.model import LayerInfo

router = APIRouter(tags=["layers"])

EXPORT_PARAMS = frozenset({"format", "bbox", "bbox-crs", "crs", "properties", "version", KEY_PARAM})


def _version(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        raise BadParameter(f"version must be a positive integer, got {raw!r}", field="version") from None
    if value < 1:
        raise BadParameter(f"version must be at least 1, got {value}", field="version")
    return value


def export_request(params: QueryParams) -> ExportRequest:
    """The query string as an ``ExportRequest``; an unknown or malformed parameter is a 400 naming it."""
    check_params(params, EXPORT_PARAMS)
    return ExportRequest(
        format=parse_format(single(params, "format")),
        crs=resolve_crs(single(params, "crs"), "crs"),
        bbox=parse_bbox(single(params, "bbox"), single(params, "bbox-crs")),
        properties=parse_names(single(params, "properties"), "properties"),
        version=_version(single(params, "version")),
    )


def _readable(
    conn: Connection, layer_id: str, who: Principal, request: Request
) -> tuple[LayerInfo, frozenset[str]]:
    """``ogc.readable`` (404 alike for unknown and unreadable layers), naming this path's parameter."""
    try:
        return readable(conn, layer_id, who, layer_cache(request.app.state))
    except NotFound as exc:
        exc.field = "layer_id"
        raise


def _closing(
    pieces: Iterator[bytes], conn: Connection, plan: ExportPlan, request: Request
) -> Iterator[bytes]:
    """The stream, then the connection back to the pool (also when the client goes away) and the
    features sent into the audit record (read as the response's last chunk leaves)."""
    try:
        yield from pieces
    finally:
        request.state.audit_count = plan.features_read
        conn.close()


def _file_response(conn: Connection, plan: ExportPlan, headers: dict[str, str]) -> Response:
    folder = Path(tempfile.mkdtemp(prefix="geoshare-export-"))
    try:
        path = folder / plan.file_name
        write_export(conn, plan, path)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return FileResponse(
        path,
        media_type=plan.request.format.media_type,
        headers=headers,
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
    )


@router.get(
    "/layers/{layer_id}/export",
    summary="The layer as a file: GeoPackage, GeoJSON, CSV or zipped Shapefile",
    description="Parameters: format (gpkg|geojson|csv|shp, required), bbox (minx,miny,maxx,maxy), "
    "bbox-crs, crs (e.g. EPSG:4490, EPSG:3857, GCJ-02), properties (comma-separated), version "
    "(the current one only). Files use longitude/easting-first axis order. A Shapefile zip holds "
    "fields.csv mapping its 10-byte field names to the layer's property names.",
    openapi_extra=openapi.query_parameters(EXPORT_PARAMS),
)
def export_layer(layer_id: str, request: Request, who: Principal = Depends(principal)) -> Response:
    wanted = export_request(request.query_params)
    conn = request.app.state.engine.connect()  # not autocommit: server-side cursors need a transaction
    try:
        layer, hidden = _readable(conn, layer_id, who, request)
        plan = plan_export(layer, wanted, hidden, policy.area(who, layer))
        headers = {"Content-Disposition": f'attachment; filename="{plan.file_name}"'}
        if plan.request.format.streamed:
            stream = _closing(stream_export(conn, plan), conn, plan, request)
            return StreamingResponse(stream, media_type=plan.request.format.media_type, headers=headers)
        response = _file_response(conn, plan, headers)
        request.state.audit_count = plan.features_read
    except BaseException:
        conn.close()
        raise
    conn.close()
    return response
