"""WMTS 1.0.0: KVP GetCapabilities/GetTile and RESTful tiles for the base map, imagery and layers.

Layers offered are what the reader may read: ``basemap`` (styles ``light`` and ``dark``),
``imagery.{id}`` for each image, and each published layer by its id (style ``default``), the same
rule as everywhere else (an unreadable layer is neither listed nor served, and asking for it reads
exactly like asking for an unknown one). A ``key`` sent as a parameter is written into every URL of
the capabilities, so a keyed URL pasted into QGIS keeps working for the tiles.

Tiles are the ones the raster and imagery endpoints serve (same bytes, ETags and cache), addressed
through Tianditu's ``c``/``w`` matrix sets or ``WebMercatorQuad`` (see ``geoshare.api.wmts_xml``).
Parameter names are case-insensitive. Errors are OWS ExceptionReports, as the WMTS standard asks
(the one place the API answers XML errors rather than problem+json); ``TileOutOfRange`` is HTTP 400
per WMTS 1.0.0 Table 28.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Request
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.responses import Response

from geoshare.access import policy
from geoshare.access.identity import Principal
from geoshare.api import wmts_xml
from geoshare.api.auth import KEY_PARAM, principal
from geoshare.api.deps import base_url, get_conn
from geoshare.api.problems import Problem
from geoshare.api.routes import imagery as imagery_routes
from geoshare.api.routes.raster import TileAddress, basemap_raster, layer_raster
from geoshare.api.routes.tiles import tile_source
from geoshare.api.wmts_xml import BY_IDENTIFIER, MatrixSetDef, WmtsLayer
from geoshare.services.basemap import basemap_config, readable_parts
from geoshare.services.layer_cache import layer_cache
from layers.basemap.style import PALETTES
from layers.errors import LayerError
from layers.imagery import store as imagery_store
from layers.registry import list_layers
from layers.tiles.matrixsets import get_tms, tile_limits

router = APIRouter(tags=["WMTS"])
log = logging.getLogger("geoshare.api")

BASEMAP = "basemap"
IMAGERY_PREFIX = "imagery."
DEFAULT_STYLE = "default"
RASTER_FORMATS = {"image/png": "png", "image/webp": "webp"}
IMAGERY_FORMATS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}
_STATUS = {
    "MissingParameterValue": 400,
    "InvalidParameterValue": 400,
    "TileOutOfRange": 400,
    "VersionNegotiationFailed": 400,
    "OperationNotSupported": 501,
    "NoApplicableCode": 500,
}
REST_INDICES = "{Style}/{TileMatrixSet}/{TileMatrix}/{TileRow}/{TileCol}"
_TILE_FIELDS = {"tileMatrix": "TileMatrix", "tileRow": "TileRow", "tileCol": "TileCol", "tile": "TileRow"}


class WmtsError(Exception):
    def __init__(self, code: str, text: str, locator: str | None = None, status: int | None = None) -> None:
        super().__init__(text)
        self.code, self.text, self.locator = code, text, locator
        self.status = status or _STATUS[code]


def _missing(name: str) -> WmtsError:
    return WmtsError("MissingParameterValue", f"parameter {name} is required", name)


def _invalid(name: str, text: str) -> WmtsError:
    return WmtsError("InvalidParameterValue", text, name)


def _report(error: WmtsError) -> Response:
    body = wmts_xml.exception_report(error.code, error.text, error.locator)
    return Response(body, status_code=error.status, media_type=wmts_xml.XML_TYPE)


def _from_engine(exc: LayerError | Problem) -> WmtsError:
    """An engine or API error as the WMTS exception a client understands."""
    status = exc.status
    text = exc.detail
    field = exc.extra.get("field") if isinstance(exc, Problem) else exc.field
    if field in _TILE_FIELDS and status in (400, 404):
        return WmtsError("TileOutOfRange", text, _TILE_FIELDS[field])
    if status == 404:  # indices and matrix sets are checked first: an unknown or unreadable layer
        return _invalid("Layer", text)
    if status in (400, 422):
        return _invalid(str(field or "request"), text)
    return WmtsError("NoApplicableCode", text, None, status)


async def _guarded(
    request: Request, conn: Connection, work: Callable[[Request, Connection, Principal], Response]
) -> Response:
    """Authenticate and run ``work`` in the threadpool, answering any failure as an ExceptionReport."""
    try:
        who = await principal(request)
        return await run_in_threadpool(work, request, conn, who)
    except WmtsError as exc:
        return _report(exc)
    except (LayerError, Problem) as exc:
        return _report(_from_engine(exc))
    except Exception:
        log.exception("WMTS request failed: %s", request.url.path)
        return _report(WmtsError("NoApplicableCode", "internal error; the incident was logged"))


# -- capabilities --------------------------------------------------------------------------------


def _query(request: Request, **extra: str) -> str:
    """``?v=..&key=..`` for URLs handed out: the key only when it came as a parameter."""
    pairs = [*extra.items()]
    key = request.query_params.get(KEY_PARAM)
    if key:
        pairs.append((KEY_PARAM, key))
    return f"?{urlencode(pairs)}" if pairs else ""


def _templates(base: str, identifier: str, formats: dict[str, str], query: str) -> dict[str, str]:
    path = f"{base}/wmts/1.0.0/{quote(identifier)}/{REST_INDICES}"
    return {media: f"{path}.{ext}{query}" for media, ext in formats.items()}


def _union(boxes: list[list[float] | tuple[float, ...]]) -> tuple[float, float, float, float] | None:
    if not boxes:
        return None
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def _offered_layers(request: Request, conn: Connection, who: Principal, base: str) -> list[WmtsLayer]:
    config = basemap_config(request.app.state.settings)
    parts = readable_parts(conn, config, who, layer_cache(request.app.state))
    versions = ".".join(str(p.layer.current_version) for p in parts)
    offered = [
        WmtsLayer(
            BASEMAP,
            config.title,
            config.attribution,
            _union([p.layer.extent for p in parts if p.layer.extent]),
            tuple((v, f"{config.title}（{'浅色' if v == 'light' else '深色'}）") for v in PALETTES),
            tuple(RASTER_FORMATS),
            _templates(base, BASEMAP, RASTER_FORMATS, _query(request, v=versions)),
        )
    ]
    for image in imagery_store.list_imagery(conn, policy.visibility(who)):
        identifier = IMAGERY_PREFIX + image.id
        limits = {
            m.identifier: tile_limits(get_tms(m.tms_id), list(image.bounds)) for m in wmts_xml.MATRIX_SETS
        }
        query = _query(request, v=image.checksum[: imagery_routes.VERSION_PREFIX])
        offered.append(
            WmtsLayer(
                identifier,
                image.title,
                image.description,
                image.bounds,
                ((DEFAULT_STYLE, image.title),),
                tuple(IMAGERY_FORMATS),
                _templates(base, identifier, IMAGERY_FORMATS, query),
                limits,
            )
        )
    for layer in list_layers(conn, policy.visibility(who)):
        if layer.id == BASEMAP or not layer.table_name:
            continue
        offered.append(
            WmtsLayer(
                layer.id,
                layer.title,
                layer.description,
                tuple(layer.extent[:4]) if layer.extent else None,  # type: ignore[arg-type]
                ((DEFAULT_STYLE, layer.title),),
                tuple(RASTER_FORMATS),
                _templates(base, layer.id, RASTER_FORMATS, _query(request, v=str(layer.current_version))),
            )
        )
    return offered


def _capabilities(request: Request, conn: Connection, who: Principal) -> Response:
    base = base_url(request)
    key = request.query_params.get(KEY_PARAM)
    kvp = f"{base}/wmts?{urlencode([(KEY_PARAM, key)]) + '&' if key else ''}"
    rest = f"{base}/wmts/1.0.0/WMTSCapabilities.xml{_query(request)}"
    title = f"{request.app.title} WMTS"
    body = wmts_xml.capabilities(
        title, "政务电子地图、遥感影像与部门图层", kvp, rest, _offered_layers(request, conn, who, base)
    )
    return Response(body, media_type=wmts_xml.XML_TYPE)


# -- tiles ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TileCall:
    layer: str
    style: str
    media: str
    matrix_set: str
    matrix: str
    row: str
    col: str
    version: str | None


def _matrix_set(identifier: str) -> MatrixSetDef:
    definition = BY_IDENTIFIER.get(identifier)
    if definition is None:
        known = ", ".join(BY_IDENTIFIER)
        raise _invalid("TileMatrixSet", f"unknown TileMatrixSet {identifier!r}; one of {known}")
    return definition


def _address(call: TileCall, fmt: str) -> TileAddress:
    definition = _matrix_set(call.matrix_set)
    tms = get_tms(definition.tms_id)
    ids = {m.id for m in tms.tileMatrices}
    if call.matrix not in ids:
        raise _invalid("TileMatrix", f"TileMatrix {call.matrix!r} is not in {call.matrix_set}")
    z = int(call.matrix)
    matrix = tms.matrix(z)
    indices = []
    for name, raw, size in (
        ("TileRow", call.row, matrix.matrixHeight),
        ("TileCol", call.col, matrix.matrixWidth),
    ):
        if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
            raise _invalid(name, f"{name} must be a non-negative integer, got {raw!r}")
        if int(raw) >= size:
            raise WmtsError(
                "TileOutOfRange", f"{name} {raw} is outside 0..{size - 1} at TileMatrix {z}", name
            )
        indices.append(int(raw))
    return TileAddress(definition.tms_id, z, indices[0], indices[1], fmt)


def _format(media: str, formats: dict[str, str]) -> str:
    fmt = formats.get(media)
    if fmt is None:
        raise _invalid(
            "Format", f"Format {media!r} is not offered for this layer; one of {', '.join(formats)}"
        )
    return fmt


def _narrowed(request: Request, version: str | None) -> Request:
    """The request as the imagery endpoint expects it: only ``key`` and ``v`` as parameters."""
    pairs = [(k, v) for k, v in request.query_params.multi_items() if k == KEY_PARAM]
    if version is not None:
        pairs.append(("v", version))
    return Request({**request.scope, "query_string": urlencode(pairs).encode()}, request.receive)


def _known(request: Request, conn: Connection, who: Principal, layer: str) -> None:
    """Nothing for a layer ``who`` may read; otherwise the unknown-layer error (``Layer``), the same
    one the tile itself would give, worded alike for unknown and unreadable layers."""
    if layer.startswith(IMAGERY_PREFIX):
        imagery_store.get_imagery(conn, layer.removeprefix(IMAGERY_PREFIX), policy.visibility(who))
    else:
        tile_source(conn, layer, who, request)


def _tile(request: Request, conn: Connection, who: Principal, call: TileCall) -> Response:
    if call.layer == BASEMAP:
        style = call.style if call.style not in ("", DEFAULT_STYLE) else "light"
        if style not in PALETTES:
            raise _invalid("Style", f"Style {call.style!r} of basemap is one of {', '.join(PALETTES)}")
        tile = _address(call, _format(call.media, RASTER_FORMATS))
        return basemap_raster(conn, request, who, tile, style, call.version)
    if call.style not in ("", DEFAULT_STYLE):
        _known(request, conn, who, call.layer)  # a style is wrong only for a layer that exists
        raise _invalid("Style", f"Style {call.style!r} is not offered; use {DEFAULT_STYLE!r}")
    if call.layer.startswith(IMAGERY_PREFIX):
        tile = _address(call, _format(call.media, IMAGERY_FORMATS))
        return imagery_routes.tile(
            call.layer.removeprefix(IMAGERY_PREFIX),
            tile.tms_id,
            str(tile.z),
            str(tile.row),
            str(tile.col),
            tile.fmt,
            _narrowed(request, call.version),
            v=call.version,
            who=who,
            conn=conn,
        )
    tile = _address(call, _format(call.media, RASTER_FORMATS))
    return layer_raster(conn, request, who, call.layer, tile, None, call.version)


# -- KVP ----------------------------------------------------------------------------------------


def _kvp(params: QueryParams) -> dict[str, str]:
    """Parameters by lower-cased name (KVP names are case-insensitive); ``key`` must be lower case,
    since authentication reads it before this does."""
    out: dict[str, str] = {}
    for name, value in params.multi_items():
        lowered = name.lower()
        if lowered == KEY_PARAM and name != KEY_PARAM:
            raise _invalid(name, f"send the API key as {KEY_PARAM!r} (lower case)")
        if lowered in out and out[lowered] != value:
            raise _invalid(name, f"parameter {name} given more than once")
        out[lowered] = value
    return out


def _required(kvp: dict[str, str], name: str, empty_ok: bool = False) -> str:
    value = kvp.get(name.lower())
    if value is None or (not value and not empty_ok):
        raise _missing(name)
    return value


def _dispatch(request: Request, conn: Connection, who: Principal) -> Response:
    kvp = _kvp(request.query_params)
    service = _required(kvp, "SERVICE")
    if service.upper() != "WMTS":
        raise _invalid("SERVICE", f"SERVICE must be WMTS, got {service!r}")
    operation = _required(kvp, "REQUEST")
    if operation.lower() == "getcapabilities":
        accepted = kvp.get("acceptversions")
        if accepted and "1.0.0" not in [v.strip() for v in accepted.split(",")]:
            raise WmtsError("VersionNegotiationFailed", "only version 1.0.0 is offered", "AcceptVersions")
        return _capabilities(request, conn, who)
    if operation.lower() != "gettile":
        raise WmtsError("OperationNotSupported", f"REQUEST {operation!r} is not supported", "REQUEST")
    version = kvp.get("version")
    if version is not None and version != "1.0.0":
        raise _invalid("VERSION", f"VERSION must be 1.0.0, got {version!r}")
    call = TileCall(
        layer=_required(kvp, "LAYER"),
        style=_required(kvp, "STYLE", empty_ok=True),
        media=_required(kvp, "FORMAT"),
        matrix_set=_required(kvp, "TILEMATRIXSET"),
        matrix=_required(kvp, "TILEMATRIX"),
        row=_required(kvp, "TILEROW"),
        col=_required(kvp, "TILECOL"),
        version=kvp.get("v"),
    )
    return _tile(request, conn, who, call)


@router.get(
    "/wmts",
    summary="WMTS 1.0.0 (KVP): GetCapabilities and GetTile",
    response_class=Response,
    responses={
        200: {"content": {wmts_xml.XML_TYPE: {}, "image/png": {}, "image/webp": {}, "image/jpeg": {}}}
    },
)
async def wmts_kvp(request: Request, conn: Connection = Depends(get_conn)) -> Response:
    return await _guarded(request, conn, _dispatch)


# -- RESTful --------------------------------------------------------------------------------------


@router.get(
    "/wmts/1.0.0/WMTSCapabilities.xml",
    summary="WMTS 1.0.0 capabilities (RESTful)",
    response_class=Response,
    responses={200: {"content": {wmts_xml.XML_TYPE: {}}}},
)
async def wmts_rest_capabilities(request: Request, conn: Connection = Depends(get_conn)) -> Response:
    return await _guarded(request, conn, _capabilities)


_EXTENSIONS = {"png": "image/png", "webp": "image/webp", "jpg": "image/jpeg", "jpeg": "image/jpeg"}


@router.get(
    "/wmts/1.0.0/{layer}/{style}/{matrix_set}/{matrix}/{row}/{col}.{ext}",
    summary="A WMTS tile (RESTful ResourceURL)",
    response_class=Response,
    responses={200: {"content": {"image/png": {}, "image/webp": {}, "image/jpeg": {}}}},
)
async def wmts_rest_tile(
    layer: str,
    style: str,
    matrix_set: str,
    matrix: str,
    row: str,
    col: str,
    ext: str,
    request: Request,
    conn: Connection = Depends(get_conn),
) -> Response:
    def work(req: Request, c: Connection, who: Principal) -> Response:
        media = _EXTENSIONS.get(ext.lower())
        if media is None:
            raise _invalid("Format", f"unknown tile extension {ext!r}; one of {', '.join(_EXTENSIONS)}")
        call = TileCall(layer, style, media, matrix_set, matrix, row, col, req.query_params.get("v"))
        return _tile(req, c, who, call)

    return await _guarded(request, conn, work)
