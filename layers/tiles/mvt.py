"""One layer's vector tile (MVT) as one SQL statement.

``ST_AsMVT`` over ``ST_AsMVTGeom``: PostgreSQL finds the rows on the GiST index (``geom &&`` the
tile's envelope in EPSG:4326, widened by the MVT buffer, computed here in Python so nothing is
transformed for rows outside the tile), thins lines and polygons to about one MVT grid unit before
anything else touches them, clips and encodes; Python only receives the bytes.

Mercator sets (``WebMercatorQuad``, ``TianDiTuWebMercator``) cut tiles from ``ST_Transform(geom,
3857)`` of the rows found. The geographic sets (``WorldCRS84Quad``, ``CGCS2000Quad``) cut them from
the stored longitude/latitude directly: the data is WGS84 (EPSG:4326), and CGCS2000 (EPSG:4490)
agrees with it to a few centimetres, far below a tile pixel at any level served, so stored
coordinates are used as CGCS2000 ones as they are.

A basemap can put several layers in one tile with one statement: ``mvt_expression`` is one layer's
``ST_AsMVT(...)`` as a SQLAlchemy scalar subquery, and ``concatenated`` joins several with ``||``
(MVT layers concatenate byte-wise); ``mvt_sql`` gives the same expression as SQL text and bind
parameters for callers that build text statements.

Properties carry the attribute names of the API (Chinese included); PostgreSQL cuts identifiers at
63 bytes, so a name longer than that (22+ Chinese characters) reaches the tile shortened.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Connection, ScalarSelect, and_, func, literal, select
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.types import LargeBinary

from layers.crs import CRS84, CrsDef, resolve_crs
from layers.errors import BadParameter
from layers.model import LayerInfo
from layers.query import ItemsQuery, LayerTable, TimeInterval, where_clauses
from layers.tiles.matrixsets import MERCATOR_IDS, check_tile, geographic_bounds, get_tms, tile_bounds
from layers.tiles.pyramid import prefer_stored

EXTENT = 4096  # MVT grid units across a tile
BUFFER = 64  # grid units drawn beyond each edge, so strokes and labels join across tiles
DEFAULT_FEATURE_LIMIT = 10_000
GEOM_COLUMN = "_mvt_geom"
FID_COLUMN = "_mvt_fid"
_POINT_TYPES = frozenset({"point", "multipoint"})
_EARTH_RADIUS = 6378137.0


@dataclass(frozen=True)
class TileRequest:
    """One tile of one layer: ``x`` is the tile column, ``y`` the row, ``z`` the tile matrix."""

    tms_id: str
    z: int
    x: int
    y: int
    properties: tuple[str, ...] | None = None  # None: all the reader may see
    filter: str | None = None
    filter_lang: str | None = None
    filter_crs: CrsDef = field(default_factory=lambda: resolve_crs(CRS84, "filter-crs"))
    interval: TimeInterval | None = None


def _mercator_lat(y: float) -> float:
    return math.degrees(math.atan(math.sinh(y / _EARTH_RADIUS)))


def search_envelope(tile: TileRequest) -> tuple[float, float, float, float]:
    """The tile plus its MVT buffer as (west, south, east, north) degrees: the index search area."""
    tms = get_tms(tile.tms_id)
    minx, miny, maxx, maxy = tile_bounds(tms, tile.z, tile.x, tile.y)
    pad_x = (maxx - minx) * BUFFER / EXTENT
    pad_y = (maxy - miny) * BUFFER / EXTENT
    if tile.tms_id in MERCATOR_IDS:
        west, _, east, _ = geographic_bounds(tms, tile.z, tile.x, tile.y)
        pad_lon = (east - west) * BUFFER / EXTENT
        south, north = _mercator_lat(miny - pad_y), _mercator_lat(maxy + pad_y)
        return (west - pad_lon, max(south, -90.0), east + pad_lon, min(north, 90.0))
    return (minx - pad_x, max(miny - pad_y, -90.0), maxx + pad_x, min(maxy + pad_y, 90.0))


def _tolerance(tile: TileRequest) -> float:
    """About one MVT grid unit in degrees (the smaller of the two axes for Mercator tiles)."""
    west, south, east, north = geographic_bounds(get_tms(tile.tms_id), tile.z, tile.x, tile.y)
    return min(east - west, north - south) / EXTENT


def _tile_geometry(lt: LayerTable, tile: TileRequest) -> ColumnElement[Any]:
    geom: ColumnElement[Any] = lt.c.geom
    if (lt.layer.geometry_type or "").lower() not in _POINT_TYPES:
        # thin before transforming and clipping, which cost per vertex; collapsed parts are kept
        # (ST_AsMVTGeom drops what is below half a grid unit itself)
        geom = func.ST_Simplify(geom, _tolerance(tile), True)
    minx, miny, maxx, maxy = tile_bounds(get_tms(tile.tms_id), tile.z, tile.x, tile.y)
    if tile.tms_id in MERCATOR_IDS:
        geom = func.ST_Transform(geom, 3857)
    bounds = func.ST_MakeEnvelope(minx, miny, maxx, maxy)
    return func.ST_AsMVTGeom(geom, bounds, EXTENT, BUFFER, True)


def mvt_expression(
    layer: LayerInfo,
    tile: TileRequest,
    hidden: frozenset[str] = frozenset(),
    area_wkb: bytes | None = None,
    feature_limit: int = DEFAULT_FEATURE_LIMIT,
    name: str | None = None,
) -> ScalarSelect[Any]:
    """``(SELECT ST_AsMVT(...))`` for one layer and tile: an MVT layer named ``name`` (default: the layer id),
    feature ids its ``fid``, properties the chosen attributes. Empty tiles are empty bytes.

    ``hidden`` fields cannot be chosen nor filtered on (a 400 naming ``properties`` or ``filter``,
    as for an unknown name); ``area_wkb`` (EPSG:4326) keeps only the rows intersecting it."""
    check_tile(get_tms(tile.tms_id), tile.z, tile.y, tile.x)
    lt = LayerTable(layer, hidden, area_wkb)
    names = dict.fromkeys(tile.properties) if tile.properties is not None else None
    attrs = lt.layer.attributes if names is None else [lt.attribute(n, "properties") for n in names]
    query = ItemsQuery(
        limit=feature_limit,
        interval=tile.interval,
        filter=tile.filter,
        filter_lang=tile.filter_lang,
        filter_crs=tile.filter_crs,
    )
    envelope = func.ST_MakeEnvelope(*search_envelope(tile), 4326)
    rows = (
        select(
            lt.c.fid.label(FID_COLUMN),
            _tile_geometry(lt, tile).label(GEOM_COLUMN),
            *[lt.c[a.column].label(a.name) for a in attrs],
        )
        .select_from(lt.table)
        .where(and_(lt.c.geom.op("&&")(envelope), *where_clauses(lt, query)))
        .limit(feature_limit)
        .subquery("t")
    )
    mvt = func.ST_AsMVT(rows.table_valued(), literal(name or layer.id), EXTENT, GEOM_COLUMN, FID_COLUMN)
    return select(func.coalesce(mvt, literal(b"", LargeBinary()))).scalar_subquery()


def concatenated(parts: list[ScalarSelect[Any]]) -> ColumnElement[Any]:
    """Several layers' MVT expressions as one tile (``(q1) || (q2) || ...``)."""
    expr: ColumnElement[Any] = parts[0]
    for part in parts[1:]:
        expr = expr.op("||", return_type=LargeBinary())(part)
    return expr


def tile_expression(
    layer: LayerInfo,
    tile: TileRequest,
    hidden: frozenset[str] = frozenset(),
    area_wkb: bytes | None = None,
    feature_limit: int = DEFAULT_FEATURE_LIMIT,
) -> ColumnElement[Any]:
    """What a tile request runs: the layer's dense-tile pyramid first when it holds this tile as
    the reader would get it (``layers.tiles.pyramid``), else ``mvt_expression``."""
    cut = mvt_expression(layer, tile, hidden, area_wkb, feature_limit)
    return prefer_stored(cut, layer, tile, hidden, area_wkb, feature_limit)


def mvt_sql(
    layer: LayerInfo,
    tile: TileRequest,
    hidden: frozenset[str] = frozenset(),
    area_wkb: bytes | None = None,
    feature_limit: int = DEFAULT_FEATURE_LIMIT,
    prefix: str = "p",
) -> tuple[str, dict[str, Any]]:
    """``tile_expression`` as SQL text with ``:name`` binds, every bind named ``{prefix}{n}`` so the
    texts of several layers can be joined with ``||`` inside one ``sqlalchemy.text`` statement."""
    counter = itertools.count()

    def rename(bind: BindParameter[Any]) -> None:
        bind.key = f"{prefix}{next(counter)}"
        bind.unique = False

    expr = visitors.cloned_traverse(
        tile_expression(layer, tile, hidden, area_wkb, feature_limit), {}, {"bindparam": rename}
    )
    # the driver-neutral dialect: no ``::type`` bind casts, which ``text()`` would not parse
    compiled = expr.compile(dialect=PGDialect(paramstyle="named"))
    return str(compiled), dict(compiled.params)


def fetch_tile(
    conn: Connection,
    layer: LayerInfo,
    tile: TileRequest,
    hidden: frozenset[str] = frozenset(),
    area_wkb: bytes | None = None,
    feature_limit: int = DEFAULT_FEATURE_LIMIT,
) -> bytes:
    """The tile's bytes in one round trip; a filter the database cannot evaluate is its 400."""
    stmt = select(tile_expression(layer, tile, hidden, area_wkb, feature_limit))
    try:
        data = conn.execute(stmt).scalar()
    except DBAPIError as exc:
        state = getattr(exc.orig, "sqlstate", None) or ""
        if tile.filter and (state.startswith("22") or state == "XX000"):
            diag = getattr(exc.orig, "diag", None)
            reason = (diag and diag.message_primary) or state
            raise BadParameter(f"the filter cannot be evaluated: {reason}", field="filter") from None
        raise
    return bytes(data or b"")
