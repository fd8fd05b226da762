"""One raster tile's features, for every layer drawn in it, in one SQL statement.

Each drawn layer is a ``SELECT`` over its table (``LayerTable`` and ``where_clauses``, as for vector
tiles, so the reader's hidden fields and area and the request's filter apply in the database); the
selects are joined with ``UNION ALL``. PostGIS finds rows on the GiST index (``geom &&`` the tile
plus the render buffer, in EPSG:4326), thins lines and polygons to half a pixel, transforms them to
Web Mercator for the Mercator grids and clips them to the buffered tile, and returns WKB in the
map's CRS; polygons to be labelled also get a point inside them (``ST_PointOnSurface`` of the
whole polygon, so a large area is labelled once, not in every tile it covers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    LargeBinary,
    Select,
    Text,
    and_,
    case,
    cast,
    func,
    literal,
    null,
    select,
    union_all,
)
from sqlalchemy.exc import DBAPIError

from layers.crs import CRS84, CrsDef, resolve_crs
from layers.errors import BadParameter
from layers.model import LayerInfo
from layers.query import ItemsQuery, LayerTable, TimeInterval, where_clauses
from layers.render.engine import BUFFER_PX, TILE_SIZE
from layers.tiles.matrixsets import MERCATOR_IDS, check_tile, geographic_bounds, get_tms, tile_bounds

_POINT_TYPES = frozenset({"point", "multipoint"})
_EARTH_RADIUS = 6378137.0
_PAD = BUFFER_PX / TILE_SIZE


@dataclass(frozen=True)
class Source:
    """One layer drawn into a tile, as the reader may read it (``layer`` redacted of ``hidden``)."""

    layer: LayerInfo
    hidden: frozenset[str] = frozenset()
    area: bytes | None = None  # WKB, EPSG:4326: rows outside are not the reader's
    filter: str | None = None
    filter_lang: str | None = None
    filter_crs: CrsDef = field(default_factory=lambda: resolve_crs(CRS84, "filter-crs"))
    interval: TimeInterval | None = None
    label: str | None = None  # attribute drawn as the label; None (or hidden) draws none
    rank: str | None = None  # attribute returned as ``rank`` (e.g. the road class)


@dataclass(frozen=True)
class Row:
    wkb: bytes
    label: str | None
    rank: str | None
    anchor: bytes | None  # a label point inside a polygon


@dataclass(frozen=True)
class TileBox:
    tms_id: str
    z: int
    x: int  # column
    y: int  # row

    @property
    def mercator(self) -> bool:
        return self.tms_id in MERCATOR_IDS

    @property
    def srs(self) -> str:
        """Mapnik's name of the map CRS (CGCS2000 tiles are cut from the stored WGS84 lon/lat, which
        agrees with CGCS2000 to centimetres, as for vector tiles)."""
        return "epsg:3857" if self.mercator else "epsg:4326"

    def bounds(self) -> tuple[float, float, float, float]:
        """(minx, miny, maxx, maxy) in the map CRS, x east."""
        return tile_bounds(get_tms(self.tms_id), self.z, self.x, self.y)

    def buffered(self) -> tuple[float, float, float, float]:
        minx, miny, maxx, maxy = self.bounds()
        dx, dy = (maxx - minx) * _PAD, (maxy - miny) * _PAD
        return (minx - dx, miny - dy, maxx + dx, maxy + dy)

    def search_envelope(self) -> tuple[float, float, float, float]:
        """The buffered tile as (west, south, east, north) degrees: the index search area."""
        minx, miny, maxx, maxy = self.buffered()
        if self.mercator:
            west, south = _lonlat(minx, miny)
            east, north = _lonlat(maxx, maxy)
            return (west, max(south, -90.0), east, min(north, 90.0))
        return (minx, max(miny, -90.0), maxx, min(maxy, 90.0))

    def half_pixel_degrees(self) -> float:
        west, south, east, north = geographic_bounds(get_tms(self.tms_id), self.z, self.x, self.y)
        return min(east - west, north - south) / TILE_SIZE / 2


def _lonlat(x: float, y: float) -> tuple[float, float]:
    return (math.degrees(x / _EARTH_RADIUS), math.degrees(math.atan(math.sinh(y / _EARTH_RADIUS))))


def _in_map_crs(geom: ColumnElement[Any], box: TileBox) -> ColumnElement[Any]:
    return func.ST_Transform(geom, 3857) if box.mercator else geom


def _select(index: int, source: Source, box: TileBox, label_zoom: bool, limit: int) -> Select[Any]:
    lt = LayerTable(source.layer, source.hidden, source.area)
    query = ItemsQuery(
        limit=limit,
        interval=source.interval,
        filter=source.filter,
        filter_lang=source.filter_lang,
        filter_crs=source.filter_crs,
    )
    geom: ColumnElement[Any] = lt.c.geom
    drawn = geom
    if (source.layer.geometry_type or "").lower() not in _POINT_TYPES:
        simplified = func.ST_Simplify(geom, box.half_pixel_degrees(), True)
        drawn = func.ST_ClipByBox2D(_in_map_crs(simplified, box), func.ST_MakeEnvelope(*box.buffered()))
    else:
        drawn = _in_map_crs(geom, box)
    label_attr = source.layer.attribute(source.label) if source.label and label_zoom else None
    rank_attr = source.layer.attribute(source.rank) if source.rank else None
    label = cast(lt.c[label_attr.column], Text) if label_attr else cast(null(), Text)
    rank = cast(lt.c[rank_attr.column], Text) if rank_attr else cast(null(), Text)
    anchor: ColumnElement[Any] = cast(null(), LargeBinary)
    if label_attr is not None:
        inside = _in_map_crs(func.ST_PointOnSurface(geom), box)
        anchor = case(
            (func.ST_Dimension(geom) == 2, func.ST_AsBinary(inside)), else_=cast(null(), LargeBinary)
        )
    envelope = func.ST_MakeEnvelope(*box.search_envelope(), 4326)
    rows = (
        select(
            literal(index, Integer()).label("src"),
            func.ST_AsBinary(drawn).label("wkb"),
            label.label("label"),
            rank.label("rank"),
            anchor.label("anchor"),
        )
        .select_from(lt.table)
        .where(and_(geom.op("&&")(envelope), *where_clauses(lt, query, box.search_envelope(), envelope)))
        .limit(limit)
        .subquery(f"s{index}")
    )
    return select(rows)


def fetch_features(
    conn: Connection,
    sources: list[Source],
    box: TileBox,
    feature_limit: int,
    labels: list[bool] | None = None,
) -> list[list[Row]]:
    """Each source's rows in the tile (``labels[i]``: whether source i's labels show at this zoom),
    in one round trip. Empty geometries (clipped away) are dropped; a filter the database cannot
    evaluate is its 400, as for vector tiles."""
    check_tile(get_tms(box.tms_id), box.z, box.y, box.x)
    out: list[list[Row]] = [[] for _ in sources]
    if not sources:
        return out
    flags = labels if labels is not None else [True] * len(sources)
    selects = [_select(i, s, box, flags[i], feature_limit) for i, s in enumerate(sources)]
    stmt = selects[0] if len(selects) == 1 else union_all(*selects)
    try:
        result = conn.execute(stmt).all()
    except DBAPIError as exc:
        state = getattr(exc.orig, "sqlstate", None) or ""
        if any(s.filter for s in sources) and (state.startswith("22") or state == "XX000"):
            diag = getattr(exc.orig, "diag", None)
            reason = (diag and diag.message_primary) or state
            raise BadParameter(f"the filter cannot be evaluated: {reason}", field="filter") from None
        raise
    for src, wkb, label, rank, anchor in result:
        if wkb is None:
            continue
        out[src].append(Row(bytes(wkb), label, rank, bytes(anchor) if anchor is not None else None))
    return out
