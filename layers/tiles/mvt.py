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
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from sqlalchemy import ColumnElement, Connection, Float, ScalarSelect, and_, bindparam, func, literal, select
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.types import LargeBinary

from layers.crs import CRS84, CrsDef, resolve_crs
from layers.errors import BadParameter
from layers.model import LayerInfo
from layers.query import ItemsQuery, LayerTable, TimeInterval, area_covers, where_clauses
from layers.tiles.matrixsets import (
    MERCATOR_IDS,
    check_tile,
    fast_geographic_bounds,
    fast_tile_bounds,
    get_tms,
    mercator_lat,
)
from layers.tiles.pyramid import STORED_TILE_KEYS, answers, prefer_stored, stored_tile_params

EXTENT = 4096  # MVT grid units across a tile
BUFFER = 64  # grid units drawn beyond each edge, so strokes and labels join across tiles
DEFAULT_FEATURE_LIMIT = 10_000
GEOM_COLUMN = "_mvt_geom"
FID_COLUMN = "_mvt_fid"
_POINT_TYPES = frozenset({"point", "multipoint"})


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


#: a tile's own numbers, bound by these names in every tile statement (``tile_params``)
TILE_NUMBERS = (
    "tile_minx", "tile_miny", "tile_maxx", "tile_maxy",
    "search_west", "search_south", "search_east", "search_north", "tile_tolerance",
)  # fmt: skip


def tile_params(tile: TileRequest) -> dict[str, float]:
    """The tile in its set's CRS, its search envelope (the tile plus the MVT buffer, in degrees:
    rows are found on the index of stored longitude/latitude, so nothing is transformed for rows
    outside the tile) and the thinning tolerance (about one MVT grid unit in degrees, the smaller
    axis for Mercator tiles). Plain arithmetic: this runs on every tile request."""
    minx, miny, maxx, maxy = fast_tile_bounds(tile.tms_id, tile.z, tile.x, tile.y)
    west, south, east, north = fast_geographic_bounds(tile.tms_id, tile.z, tile.x, tile.y)
    pad_x, pad_y = (maxx - minx) * BUFFER / EXTENT, (maxy - miny) * BUFFER / EXTENT
    if tile.tms_id in MERCATOR_IDS:
        pad_lon = (east - west) * BUFFER / EXTENT
        search = (west - pad_lon, mercator_lat(miny - pad_y), east + pad_lon, mercator_lat(maxy + pad_y))
    else:
        search = (minx - pad_x, miny - pad_y, maxx + pad_x, maxy + pad_y)
    return {
        "tile_minx": minx,
        "tile_miny": miny,
        "tile_maxx": maxx,
        "tile_maxy": maxy,
        "search_west": search[0],
        "search_south": max(search[1], -90.0),
        "search_east": search[2],
        "search_north": min(search[3], 90.0),
        "tile_tolerance": min(east - west, north - south) / EXTENT,
    }


def search_envelope(tile: TileRequest) -> tuple[float, float, float, float]:
    """The tile plus its MVT buffer as (west, south, east, north) degrees: the index search area."""
    p = tile_params(tile)
    return (p["search_west"], p["search_south"], p["search_east"], p["search_north"])


def _numbers(tile: TileRequest | None) -> dict[str, ColumnElement[Any]]:
    """The tile's numbers as binds: valued (unique names, so several layers' expressions can share
    a statement) or, with no tile, named placeholders for a statement template."""
    if tile is None:
        return {name: bindparam(name, type_=Float()) for name in TILE_NUMBERS}
    return {k: bindparam(k, v, type_=Float(), unique=True) for k, v in tile_params(tile).items()}


def _tile_geometry(lt: LayerTable, tms_id: str, n: dict[str, ColumnElement[Any]]) -> ColumnElement[Any]:
    geom: ColumnElement[Any] = lt.c.geom
    if (lt.layer.geometry_type or "").lower() not in _POINT_TYPES:
        # thin before transforming and clipping, which cost per vertex; collapsed parts are kept
        # (ST_AsMVTGeom drops what is below half a grid unit itself)
        geom = func.ST_Simplify(geom, n["tile_tolerance"], True)
    if tms_id in MERCATOR_IDS:
        geom = func.ST_Transform(geom, 3857)
    bounds = func.ST_MakeEnvelope(n["tile_minx"], n["tile_miny"], n["tile_maxx"], n["tile_maxy"])
    return func.ST_AsMVTGeom(geom, bounds, EXTENT, BUFFER, True)


def mvt_expression(
    layer: LayerInfo,
    tile: TileRequest,
    hidden: frozenset[str] = frozenset(),
    area_wkb: bytes | None = None,
    feature_limit: int = DEFAULT_FEATURE_LIMIT,
    name: str | None = None,
    template: bool = False,
) -> ScalarSelect[Any]:
    """``(SELECT ST_AsMVT(...))`` for one layer and tile: an MVT layer named ``name`` (default: the layer id),
    feature ids its ``fid``, properties the chosen attributes. Empty tiles are empty bytes.

    ``hidden`` fields cannot be chosen nor filtered on (a 400 naming ``properties`` or ``filter``,
    as for an unknown name); ``area_wkb`` (EPSG:4326) keeps only the rows intersecting it.
    ``template``: the tile's numbers are left as named placeholders (``TILE_NUMBERS``)."""
    check_tile(get_tms(tile.tms_id), tile.z, tile.y, tile.x)
    n = _numbers(None if template else tile)
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
    envelope = func.ST_MakeEnvelope(
        n["search_west"], n["search_south"], n["search_east"], n["search_north"], 4326
    )
    rows = (
        select(
            lt.c.fid.label(FID_COLUMN),
            _tile_geometry(lt, tile.tms_id, n).label(GEOM_COLUMN),
            *[lt.c[a.column].label(a.name) for a in attrs],
        )
        .select_from(lt.table)
        .where(and_(lt.c.geom.op("&&")(envelope), *where_clauses(lt, query, search_envelope(tile), envelope)))
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
    template: bool = False,
) -> ColumnElement[Any]:
    """What a tile request runs: the layer's dense-tile pyramid first when it holds this tile as
    the reader would get it (``layers.tiles.pyramid``), else ``mvt_expression``."""
    cut = mvt_expression(layer, tile, hidden, area_wkb, feature_limit, template=template)
    return prefer_stored(cut, layer, tile, hidden, area_wkb, feature_limit, template=template)


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


@dataclass(frozen=True)
class _Template:
    sql: str  # psycopg's paramstyle (``fetch_tile``, on the engine's connections)
    fixed: dict[str, Any]  # the binds that do not depend on the tile
    numbered_sql: str  # asyncpg's ``$n`` paramstyle (``fetch_plain_tile``, on the asyncio pool)
    order: tuple[str, ...]  # the bind names of ``numbered_sql``'s ``$1``, ``$2``, …


_TEMPLATES: dict[tuple[Any, ...], _Template] = {}
_MAX_TEMPLATES = 512


_DIALECT = PGDialect_psycopg()
_NUMBERED_DIALECT = PGDialect_asyncpg()


def _template(
    layer: LayerInfo, tile: TileRequest, hidden: frozenset[str], area_wkb: bytes | None, feature_limit: int
) -> _Template:
    """The compiled statement for every tile of this shape (layer version, set, attributes, reader's
    hidden fields and area, limit, pyramid): built and compiled once, then only the tile's numbers
    change. Whether the area covers the tile's envelope changes the statement (the per-row area test
    is then skipped for rows inside the envelope), so it is part of the shape."""
    pyramid = answers(layer, tile, hidden, area_wkb, feature_limit)
    covered = area_wkb is not None and area_covers(area_wkb, search_envelope(tile))
    key = (
        layer.id,
        layer.table_name,
        layer.geometry_type,
        tuple((a.name, a.column) for a in layer.attributes),
        tile.tms_id,
        tile.properties,
        hidden,
        feature_limit,
        pyramid.table if pyramid else None,
        area_wkb,
        covered,
    )
    found = _TEMPLATES.get(key)
    if found is None:
        expr = tile_expression(layer, tile, hidden, area_wkb, feature_limit, template=True)
        compiled = select(expr).compile(dialect=_DIALECT)
        numbered = select(expr).compile(dialect=_NUMBERED_DIALECT)
        placeholders = {*TILE_NUMBERS, *STORED_TILE_KEYS}
        fixed = {k: v for k, v in compiled.params.items() if k not in placeholders}
        order = tuple(numbered.positiontup or ())
        if len(_TEMPLATES) >= _MAX_TEMPLATES:
            _TEMPLATES.clear()
        found = _TEMPLATES[key] = _Template(str(compiled), fixed, str(numbered), order)
    return found


def is_plain(tile: TileRequest) -> bool:
    """No filter or time: the shape nearly every tile request has, served from a statement compiled
    once (``fetch_tile``, ``fetch_plain_tile``)."""
    return tile.filter is None and tile.interval is None


def _plain_statement(
    layer: LayerInfo, tile: TileRequest, hidden: frozenset[str], area_wkb: bytes | None, feature_limit: int
) -> tuple[_Template, dict[str, Any]]:
    """The tile's compiled-once statement and all its binds by name."""
    check_tile(get_tms(tile.tms_id), tile.z, tile.y, tile.x)
    template = _template(layer, tile, hidden, area_wkb, feature_limit)
    return template, {**template.fixed, **tile_params(tile), **stored_tile_params(tile)}


def numbered_statement(
    layer: LayerInfo,
    tile: TileRequest,
    hidden: frozenset[str] = frozenset(),
    area_wkb: bytes | None = None,
    feature_limit: int = DEFAULT_FEATURE_LIMIT,
) -> tuple[str, list[Any]]:
    """A plain tile's statement in asyncpg's ``$n`` style and its arguments: what
    ``fetch_plain_tile`` sends (and what the tile benchmark drives directly as the database ceiling)."""
    template, params = _plain_statement(layer, tile, hidden, area_wkb, feature_limit)
    return template.numbered_sql, [params[name] for name in template.order]


async def fetch_plain_tile(
    conn: asyncpg.Connection,
    layer: LayerInfo,
    tile: TileRequest,
    hidden: frozenset[str] = frozenset(),
    area_wkb: bytes | None = None,
    feature_limit: int = DEFAULT_FEATURE_LIMIT,
) -> bytes:
    """A plain tile (``is_plain``) awaited on an asyncpg connection: no worker thread per tile, and
    asyncpg's prepared statement and binary result cost less CPU than a psycopg call, CPU that on
    the same cores as the database the database no longer has."""
    sql, args = numbered_statement(layer, tile, hidden, area_wkb, feature_limit)
    return bytes(await conn.fetchval(sql, *args) or b"")


def fetch_tile(
    conn: Connection,
    layer: LayerInfo,
    tile: TileRequest,
    hidden: frozenset[str] = frozenset(),
    area_wkb: bytes | None = None,
    feature_limit: int = DEFAULT_FEATURE_LIMIT,
) -> bytes:
    """The tile's bytes in one round trip; a filter the database cannot evaluate is its 400.

    Plain tiles (``is_plain``: nearly all of them, area-limited readers' included) run a statement
    compiled once per shape and fetch the bytes in binary: a text result would hex-encode hundreds
    of kilobytes in the database and decode them again here, which costs more than cutting a light
    tile."""
    if is_plain(tile):
        template, params = _plain_statement(layer, tile, hidden, area_wkb, feature_limit)
        driver = conn.connection.driver_connection
        row = driver.execute(template.sql, params, binary=True).fetchone()  # type: ignore[union-attr]
        return bytes(row[0] or b"") if row else b""
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
