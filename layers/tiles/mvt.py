"""One layer's vector tile (MVT) as one SQL statement.

``ST_AsMVT`` over ``ST_AsMVTGeom``: PostgreSQL finds the rows on the GiST index (``geom &&`` the
tile's envelope in EPSG:4326, widened by the MVT buffer, computed here in Python so nothing is
transformed for rows outside the tile), thins lines and polygons to about one MVT grid unit before
anything else touches them, clips and encodes; Python only receives the bytes.

Each layer's part of a tile keeps a size budget: the rows the reader may see go in whole while
their estimated bytes fit the pass's cap, else the most important of them (``layers.tiles.thinning``:
a CTE finds the rows once, a ``CASE`` runs the whole or the thinned branch); ``fetch_tile`` and
``fetch_plain_tile`` check the bytes and cut again with another cap when a pass misses the budget
(``layers.tiles.budget``). The cap is a bind like the tile's numbers, so the statement is still
compiled once per layer version and reader scope. Polygons smaller than a grid unit are drawn as
a square of about two units, so low zooms keep them as dust instead of losing them.

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
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Float,
    ScalarSelect,
    and_,
    bindparam,
    case,
    func,
    literal,
    select,
)
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
from layers.tiles import thinning
from layers.tiles.budget import DEFAULT_BUDGET, DROPPED_ATTRIBUTE, Fitter, TileBudget
from layers.tiles.matrixsets import (
    MERCATOR_IDS,
    check_tile,
    fast_geographic_bounds,
    fast_tile_bounds,
    get_tms,
    mercator_lat,
)
from layers.tiles.pyramid import STORED_TILE_KEYS, answers, is_stored, prefer_stored, stored_tile_params

EXTENT = 4096  # MVT grid units across a tile
BUFFER = 64  # grid units drawn beyond each edge, so strokes and labels join across tiles
DEFAULT_FEATURE_LIMIT = 10_000
GEOM_COLUMN = "_mvt_geom"
FID_COLUMN = "_mvt_fid"
CAP_KEY = "tile_cap"  # the pass's cap on estimated bytes (``layers.tiles.budget``)


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


def _numbers(tile: TileRequest | None, cap: int) -> dict[str, ColumnElement[Any]]:
    """The tile's numbers and the pass's byte cap as binds: valued (unique names, so several
    layers' expressions can share a statement) or, with no tile, named placeholders for a
    statement template."""
    if tile is None:
        return {
            **{name: bindparam(name, type_=Float()) for name in TILE_NUMBERS},
            CAP_KEY: bindparam(CAP_KEY, type_=BigInteger()),
        }
    return {
        **{k: bindparam(k, v, type_=Float(), unique=True) for k, v in tile_params(tile).items()},
        CAP_KEY: bindparam(CAP_KEY, cap, type_=BigInteger(), unique=True),
    }


def _tile_geometry(
    geom: ColumnElement[Any], geometry_type: str | None, tms_id: str, n: dict[str, ColumnElement[Any]]
) -> ColumnElement[Any]:
    tol = n["tile_tolerance"]
    if thinning.is_polygon_layer(geometry_type):
        # a polygon smaller than a grid unit would vanish in ST_AsMVTGeom: it is drawn as a square
        # of about two units instead (tippecanoe's "dust"), so a low zoom still shows where it is
        tiny = and_(
            func.ST_XMax(geom) - func.ST_XMin(geom) < tol, func.ST_YMax(geom) - func.ST_YMin(geom) < tol
        )
        geom = case(
            (tiny, func.ST_Expand(func.ST_Centroid(geom), tol)), else_=func.ST_Simplify(geom, tol, True)
        )
    elif not thinning.is_point_layer(geometry_type):
        # thin before transforming and clipping, which cost per vertex; collapsed parts are kept
        # (ST_AsMVTGeom drops what is below half a grid unit itself)
        geom = func.ST_Simplify(geom, tol, True)
    if tms_id in MERCATOR_IDS:
        geom = func.ST_Transform(geom, 3857)
    bounds = func.ST_MakeEnvelope(n["tile_minx"], n["tile_miny"], n["tile_maxx"], n["tile_maxy"])
    return func.ST_AsMVTGeom(geom, bounds, EXTENT, BUFFER, True)


def _as_mvt(rows: Any, name: str) -> ScalarSelect[Any]:
    mvt = func.ST_AsMVT(rows.table_valued(), literal(name), EXTENT, GEOM_COLUMN, FID_COLUMN)
    return select(func.coalesce(mvt, literal(b"", LargeBinary()))).scalar_subquery()


def mvt_expression(
    layer: LayerInfo,
    tile: TileRequest,
    hidden: frozenset[str] = frozenset(),
    area_wkb: bytes | None = None,
    feature_limit: int = DEFAULT_FEATURE_LIMIT,
    name: str | None = None,
    template: bool = False,
    cap: int = DEFAULT_BUDGET.first_cap(),
) -> ScalarSelect[Any]:
    """``(SELECT ST_AsMVT(...))`` for one layer and tile: an MVT layer named ``name`` (default: the layer id),
    feature ids its ``fid``, properties the chosen attributes. Empty tiles are empty bytes.

    All rows the reader may see go in while their estimated bytes stay within ``cap`` and they
    number at most ``feature_limit``; otherwise the tile keeps the most important ones
    (``layers.tiles.thinning``), each carrying ``gs_dropped``. The rows are found once (a CTE read
    by the fit test and by whichever branch runs).

    ``hidden`` fields cannot be chosen nor filtered on (a 400 naming ``properties`` or ``filter``,
    as for an unknown name); ``area_wkb`` (EPSG:4326) keeps only the rows intersecting it.
    ``template``: the tile's numbers and the cap are left as named placeholders (``TILE_NUMBERS``,
    ``CAP_KEY``)."""
    check_tile(get_tms(tile.tms_id), tile.z, tile.y, tile.x)
    n = _numbers(None if template else tile, cap)
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
    gtype = layer.geometry_type
    columns = [lt.c[a.column] for a in attrs]
    src = (
        select(
            lt.c.fid.label(thinning.FID),
            lt.c.geom.label(thinning.GEOM),
            *[c.label(a.name) for c, a in zip(columns, attrs, strict=True)],
            thinning.estimated_bytes(
                lt.c.geom,
                [(c, a.type) for c, a in zip(columns, attrs, strict=True)],
                gtype,
                n["tile_tolerance"],
            ).label(thinning.EST),
        )
        .select_from(lt.table)
        .where(and_(lt.c.geom.op("&&")(envelope), *where_clauses(lt, query, search_envelope(tile), envelope)))
        .cte(nesting=True)
    )
    label = name or layer.id
    fits = select(
        and_(func.coalesce(func.sum(src.c[thinning.EST]), 0) <= n[CAP_KEY], func.count() <= feature_limit)
    ).scalar_subquery()
    whole = select(
        src.c[thinning.FID].label(FID_COLUMN),
        _tile_geometry(src.c[thinning.GEOM], gtype, tile.tms_id, n).label(GEOM_COLUMN),
        *[src.c[a.name] for a in attrs],
    ).subquery("t")
    kept, dropped = thinning.kept_rows(src, gtype, n, n[CAP_KEY], feature_limit)
    thinned = (
        select(
            kept.c[thinning.FID].label(FID_COLUMN),
            _tile_geometry(kept.c[thinning.GEOM], gtype, tile.tms_id, n).label(GEOM_COLUMN),
            *[kept.c[a.name] for a in attrs],
            dropped.label(DROPPED_ATTRIBUTE),
        )
        .order_by(kept.c[thinning.ORDER], kept.c[thinning.FID])
        .subquery("t")
    )
    chosen = case((fits, _as_mvt(whole, label)), else_=_as_mvt(thinned, label))
    return select(chosen).add_cte(src, nest_here=True).scalar_subquery()


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
    budget: TileBudget = DEFAULT_BUDGET,
    cap: int | None = None,
) -> ColumnElement[Any]:
    """What a tile request runs: the layer's dense-tile pyramid first when it holds this tile as
    the reader would get it (``layers.tiles.pyramid``), else ``mvt_expression``."""
    cut = mvt_expression(
        layer, tile, hidden, area_wkb, feature_limit, template=template, cap=cap or budget.first_cap()
    )
    return prefer_stored(cut, layer, tile, hidden, area_wkb, feature_limit, budget, template=template)


def mvt_sql(
    layer: LayerInfo,
    tile: TileRequest,
    hidden: frozenset[str] = frozenset(),
    area_wkb: bytes | None = None,
    feature_limit: int = DEFAULT_FEATURE_LIMIT,
    prefix: str = "p",
    budget: TileBudget = DEFAULT_BUDGET,
) -> tuple[str, dict[str, Any]]:
    """``tile_expression`` as SQL text with ``:name`` binds, every bind named ``{prefix}{n}`` so the
    texts of several layers can be joined with ``||`` inside one ``sqlalchemy.text`` statement
    (one pass: the budget's first cap)."""
    counter = itertools.count()

    def rename(bind: BindParameter[Any]) -> None:
        bind.key = f"{prefix}{next(counter)}"
        bind.unique = False

    expr = visitors.cloned_traverse(
        tile_expression(layer, tile, hidden, area_wkb, feature_limit, budget=budget),
        {},
        {"bindparam": rename},
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
    layer: LayerInfo,
    tile: TileRequest,
    hidden: frozenset[str],
    area_wkb: bytes | None,
    feature_limit: int,
    budget: TileBudget,
) -> _Template:
    """The compiled statement for every tile of this shape (layer version, set, attributes, reader's
    hidden fields and area, limit, budget, pyramid): built and compiled once, then only the tile's
    numbers and the pass's cap change. Whether the area covers the tile's envelope changes the
    statement (the per-row area test is then skipped for rows inside the envelope), so it is part
    of the shape."""
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
        budget,
        pyramid.table if pyramid else None,
        area_wkb,
        covered,
    )
    found = _TEMPLATES.get(key)
    if found is None:
        expr = tile_expression(layer, tile, hidden, area_wkb, feature_limit, template=True, budget=budget)
        stored = is_stored(layer, tile, hidden, area_wkb, feature_limit, budget, template=True)
        compiled = select(expr, stored).compile(dialect=_DIALECT)
        numbered = select(expr, stored).compile(dialect=_NUMBERED_DIALECT)
        placeholders = {*TILE_NUMBERS, CAP_KEY, *STORED_TILE_KEYS}
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
    layer: LayerInfo,
    tile: TileRequest,
    hidden: frozenset[str],
    area_wkb: bytes | None,
    feature_limit: int,
    budget: TileBudget,
) -> tuple[_Template, dict[str, Any]]:
    """The tile's compiled-once statement and all its binds by name (the cap: the first pass's)."""
    check_tile(get_tms(tile.tms_id), tile.z, tile.y, tile.x)
    template = _template(layer, tile, hidden, area_wkb, feature_limit, budget)
    params = {
        **template.fixed,
        **tile_params(tile),
        CAP_KEY: budget.first_cap(),
        **stored_tile_params(tile, budget),
    }
    return template, params


def numbered_statement(
    layer: LayerInfo,
    tile: TileRequest,
    hidden: frozenset[str] = frozenset(),
    area_wkb: bytes | None = None,
    feature_limit: int = DEFAULT_FEATURE_LIMIT,
    budget: TileBudget = DEFAULT_BUDGET,
) -> tuple[str, list[Any]]:
    """A plain tile's first-pass statement in asyncpg's ``$n`` style and its arguments: what
    ``fetch_plain_tile`` sends (and what the tile benchmark drives directly as the database ceiling)."""
    template, params = _plain_statement(layer, tile, hidden, area_wkb, feature_limit, budget)
    return template.numbered_sql, [params[name] for name in template.order]


async def fetch_plain_tile(
    conn: asyncpg.Connection,
    layer: LayerInfo,
    tile: TileRequest,
    hidden: frozenset[str] = frozenset(),
    area_wkb: bytes | None = None,
    feature_limit: int = DEFAULT_FEATURE_LIMIT,
    budget: TileBudget = DEFAULT_BUDGET,
) -> bytes:
    """A plain tile (``is_plain``) awaited on an asyncpg connection: no worker thread per tile, and
    asyncpg's prepared statement and binary result cost less CPU than a psycopg call, CPU that on
    the same cores as the database the database no longer has. Passes over budget are repeated
    with a smaller cap (``layers.tiles.budget.Fitter``)."""
    template, params = _plain_statement(layer, tile, hidden, area_wkb, feature_limit, budget)
    fitter = Fitter(budget)
    cap: int | None = fitter.cap
    while cap is not None:
        params[CAP_KEY] = cap
        row = await conn.fetchrow(template.numbered_sql, *[params[k] for k in template.order])
        data = bytes(row[0] or b"") if row else b""
        if row and row[1]:
            return data  # from the pyramid, rendered within this budget
        cap = fitter.next_cap(data)
    return fitter.result


def fetch_tile(
    conn: Connection,
    layer: LayerInfo,
    tile: TileRequest,
    hidden: frozenset[str] = frozenset(),
    area_wkb: bytes | None = None,
    feature_limit: int = DEFAULT_FEATURE_LIMIT,
    budget: TileBudget = DEFAULT_BUDGET,
) -> bytes:
    """The tile's bytes, in one round trip unless a pass is over budget; a filter the database
    cannot evaluate is its 400.

    Plain tiles (``is_plain``: nearly all of them, area-limited readers' included) run a statement
    compiled once per shape and fetch the bytes in binary: a text result would hex-encode hundreds
    of kilobytes in the database and decode them again here, which costs more than cutting a light
    tile."""
    fitter = Fitter(budget)
    cap: int | None = fitter.cap
    while cap is not None:
        data, stored = _fetch_pass(conn, layer, tile, hidden, area_wkb, feature_limit, budget, cap)
        if stored:
            return data  # from the pyramid, rendered within this budget
        cap = fitter.next_cap(data)
    return fitter.result


def _fetch_pass(
    conn: Connection,
    layer: LayerInfo,
    tile: TileRequest,
    hidden: frozenset[str],
    area_wkb: bytes | None,
    feature_limit: int,
    budget: TileBudget,
    cap: int,
) -> tuple[bytes, bool]:
    """One pass: the tile's bytes under ``cap``, and whether they came from the pyramid."""
    if is_plain(tile):
        template, params = _plain_statement(layer, tile, hidden, area_wkb, feature_limit, budget)
        params[CAP_KEY] = cap
        driver = conn.connection.driver_connection
        row = driver.execute(template.sql, params, binary=True).fetchone()  # type: ignore[union-attr]
        return (bytes(row[0] or b""), bool(row[1])) if row else (b"", False)
    stmt = select(tile_expression(layer, tile, hidden, area_wkb, feature_limit, budget=budget, cap=cap))
    try:
        data = conn.execute(stmt).scalar()
    except DBAPIError as exc:
        state = getattr(exc.orig, "sqlstate", None) or ""
        if tile.filter and (state.startswith("22") or state == "XX000"):
            diag = getattr(exc.orig, "diag", None)
            reason = (diag and diag.message_primary) or state
            raise BadParameter(f"the filter cannot be evaluated: {reason}", field="filter") from None
        raise
    return bytes(data or b""), False
