"""Which features a tile keeps when they do not all fit its budget: the order of importance.

All rows the reader may see (filter, time, agreement area and hidden fields applied first, in the
same statement) are ranked, and kept in rank order while the sum of their estimated MVT bytes stays
under the pass's cap (``layers.tiles.budget`` verifies the real bytes). Ranking is deterministic
(no randomness, ties broken by ``fid``), so every cut of a tile gives the same bytes.

Points: a quadtree over the tile, read off the Morton (Z-order) codes of the points at 2^16 cells
a side. Sorted by code, a point is the first of its cell at level L (the tile split 2^L a side)
exactly when it differs from its predecessor in the top 2L bits, so one ``lag`` gives each point
the coarsest level it represents. Keeping levels 0, 1, 2, ... in turn is grid thinning with the
grid chosen by the data: every occupied cell of the coarsest grid that fits keeps one point, the
next level's cells fill in (in hash order of ``fid``, so the partial level is spread evenly, not
swept from one corner). A sparse area keeps all its points; the densest cells lose most, so the
core stays the densest part of the picture, as with tippecanoe's ``--drop-densest-as-needed``
(which drops the smallest gaps along the same curve). Coincident points go first. Lower zooms keep
a subset of what higher zooms keep, since a cell's first point is also first in its sub-cell.

Lines and polygons: simplified to the tile's resolution as before, then kept longest (largest)
first, so what goes is what draws as a few pixels anyway.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Float,
    Integer,
    and_,
    case,
    cast,
    func,
    literal,
    literal_column,
    or_,
    over,
    select,
)
from sqlalchemy.sql.selectable import CTE, Subquery

FID = "_thin_fid"
GEOM = "_thin_geom"
EST = "_thin_est"
ORDER = "_thin_order"  # the order kept features are written in: along the Z-curve for points,
# so neighbours (and their similar values) sit together and the tile compresses better
_POINT_TYPES = frozenset({"point", "multipoint"})
_POLYGON_TYPES = frozenset({"polygon", "multipolygon"})
_CELLS = 65535  # 2^16 - 1: the quadtree's finest cell index
_FEATURE_BYTES = 16  # an MVT feature's fixed bytes (message, id, type, a point's geometry)
_TAG_BYTES = 4  # a property's two tag varints and its value's framing
_VALUE_BYTES = {"integer": 5, "number": 9, "boolean": 1, "date": 10, "datetime": 25}  # as MVT encodes them


def is_point_layer(geometry_type: str | None) -> bool:
    return (geometry_type or "").lower() in _POINT_TYPES


def is_polygon_layer(geometry_type: str | None) -> bool:
    return (geometry_type or "").lower() in _POLYGON_TYPES


def estimated_bytes(
    geom: ColumnElement[Any],
    columns: list[tuple[ColumnElement[Any], str]],
    geometry_type: str | None,
    tolerance: Any,
) -> ColumnElement[Any]:
    """A feature's MVT bytes, roughly: fixed framing, two bytes a vertex (at most one vertex per
    grid unit of its outline, whatever the stored detail) and each value as if unique. Only text
    is measured (``octet_length`` reads its header); other types have their encoded size, so the
    estimate costs little more than reading the row."""
    est: ColumnElement[Any] = literal(_FEATURE_BYTES)
    if not is_point_layer(geometry_type):
        outline = (func.ST_XMax(geom) - func.ST_XMin(geom) + func.ST_YMax(geom) - func.ST_YMin(geom)) * 2
        vertices = func.least(func.ST_NPoints(geom), cast(outline / tolerance, Integer()) + 4)
        est = est + vertices * 2
    for col, typ in columns:
        if typ == "string":
            est = est + func.coalesce(func.octet_length(col) + _TAG_BYTES, 0)
        else:
            est = est + case((col.is_(None), 0), else_=_TAG_BYTES + _VALUE_BYTES.get(typ, 9))
    return est


def _morton(x: ColumnElement[Any], y: ColumnElement[Any]) -> ColumnElement[Any]:
    """Interleaved bits of two 16-bit cell indices (x in the even bits), as bigint arithmetic."""

    def spread(v: ColumnElement[Any]) -> ColumnElement[Any]:
        for shift, mask in ((8, 0x00FF00FF), (4, 0x0F0F0F0F), (2, 0x33333333), (1, 0x55555555)):
            v = (v.op("|")(v.op("<<")(literal_column(str(shift))))).op("&")(literal_column(str(mask)))
        return v

    return spread(x).op("|")(spread(y).op("<<")(literal_column("1")))


def _cell(value: ColumnElement[Any], low: Any, high: Any) -> ColumnElement[Any]:
    scaled = cast(func.floor((value - low) / (high - low) * (_CELLS + 1)), Integer())
    return cast(func.greatest(0, func.least(_CELLS, scaled)), BigInteger())


def _point_order(src: CTE, n: dict[str, ColumnElement[Any]]) -> tuple[Subquery, list[ColumnElement[Any]]]:
    """Rows of ``src`` with their quadtree level (0: first in the tile) and hash; the order keys."""
    g = src.c[GEOM]
    x = _cell(func.ST_XMin(g), n["search_west"], n["search_east"])
    y = _cell(func.ST_YMin(g), n["search_south"], n["search_north"])
    coded = select(src, _morton(x, y).label("_thin_code")).subquery("thin_coded")
    code = coded.c["_thin_code"]
    prev = over(func.lag(code), order_by=(code, coded.c[FID]))
    diff = code.op("#")(prev)
    # highest differing bit b (0..31) -> first level whose cells differ: (33 - b) // 2
    top_bit = func.floor(func.ln(cast(diff, Float())) / 0.6931471805599453)
    level = case(
        (prev.is_(None), 0),
        (diff == 0, 17),
        else_=cast(func.floor((33 - top_bit) / 2), Integer()),
    )
    levelled = select(
        *[coded.c[c.name] for c in src.c],
        code.label(ORDER),
        level.label("_thin_level"),
        func.hashint8(coded.c[FID]).label("_h"),
    ).subquery("thin_levelled")
    return levelled, [levelled.c["_thin_level"], levelled.c["_h"], levelled.c[FID]]


def _size_order(src: CTE, geometry_type: str | None) -> tuple[Subquery, list[ColumnElement[Any]]]:
    g = src.c[GEOM]
    size = func.ST_Area(g) if is_polygon_layer(geometry_type) else func.ST_Length(g)
    sized = select(src, src.c[FID].label(ORDER), size.label("_thin_size")).subquery("thin_sized")
    return sized, [sized.c["_thin_size"].desc(), sized.c[FID]]


def kept_rows(
    src: CTE, geometry_type: str | None, n: dict[str, ColumnElement[Any]], cap: Any, feature_limit: int
) -> tuple[Subquery, ColumnElement[Any]]:
    """The rows of ``src`` a thinned tile keeps (at least its most important one, ``ORDER`` the
    order to write them in), and how many it drops (the same on each row)."""
    ordered, keys = _point_order(src, n) if is_point_layer(geometry_type) else _size_order(src, geometry_type)
    cum = over(func.sum(ordered.c[EST]), order_by=keys, rows=(None, 0))
    rank = over(func.row_number(), order_by=keys)
    ranked = select(
        *[ordered.c[c.name] for c in src.c],
        ordered.c[ORDER],
        cum.label("_thin_cum"),
        rank.label("_thin_rank"),
        over(func.count()).label("_thin_total"),
    ).subquery("thin_ranked")
    rank_ = ranked.c["_thin_rank"]
    keep = or_(rank_ == 1, and_(ranked.c["_thin_cum"] <= cap, rank_ <= feature_limit))
    kept = select(ranked).where(keep).subquery("thin_kept")
    dropped = kept.c["_thin_total"] - over(func.count())
    return kept, dropped
