"""SQL for ``/items`` and ``/items/{featureId}``.

One statement per page: PostgreSQL filters, orders, limits and renders every Feature as GeoJSON
text, then ``string_agg`` joins them, so Python only splices bytes.  The page fetches one row
more than asked to learn whether a next page exists, and returns the sort keys of its last row
for the keyset cursor.  Only the offset CRSs (GCJ-02, BD-09), which PostGIS cannot compute,
take a slower path that converts WKB geometries with numpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from threading import Lock
from typing import Any

import numpy as np
import orjson
import shapely
from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    case,
    cast,
    column,
    false,
    func,
    literal,
    literal_column,
    or_,
    select,
    table,
    true,
    union_all,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.expression import TableClause
from sqlalchemy.types import BigInteger, Text

from layers.cql2 import ATTRIBUTE_SQL_TYPES, Operand, coerce_value, filter_to_sql, parse_filter
from layers.crs import CRS84, CrsDef, from_crs84_fn, resolve_crs, transform_geometries
from layers.errors import BadParameter, NotFound
from layers.model import Attribute, LayerInfo
from layers.paging import decode_cursor, encode_cursor
from layers.registry import redact

GEOMETRY_NAMES = ("geometry", "geom")
# json_build_object takes at most 100 arguments; wider layers are built in chunks
_JSON_PAIRS_PER_CALL = 48


@dataclass(frozen=True)
class TimeInterval:
    """Bounds of a ``datetime`` parameter; None is open.  ``end_exclusive`` for whole days."""

    start: datetime | None
    end: datetime | None
    end_exclusive: bool = False


@dataclass(frozen=True)
class SortKey:
    name: str
    descending: bool = False


@dataclass
class ItemsQuery:
    limit: int
    crs: CrsDef = field(default_factory=lambda: resolve_crs(CRS84, "crs"))
    bbox: tuple[float, float, float, float] | None = None  # CRS84
    interval: TimeInterval | None = None
    properties: list[str] | None = None
    equals: dict[str, str] = field(default_factory=dict)
    filter: str | None = None
    filter_lang: str | None = None
    filter_crs: CrsDef = field(default_factory=lambda: resolve_crs(CRS84, "filter-crs"))
    sortby: list[SortKey] = field(default_factory=list)
    cursor: str | None = None

    @property
    def is_filtered(self) -> bool:
        return bool(self.bbox or self.interval or self.equals or self.filter)


@dataclass(frozen=True)
class ItemsPage:
    features: bytes  # Feature objects joined by commas, ready to go between "[" and "]"
    number_returned: int
    next_cursor: str | None


# --- the reader's area --------------------------------------------------------------------

Bounds = tuple[float, float, float, float]  # west, south, east, north in CRS84 degrees
_SHAPE_LOCK = Lock()  # GEOS prepared geometries build their indexes lazily: one caller at a time


@lru_cache(maxsize=64)
def area_constant(area: bytes) -> ColumnElement[Any]:
    """The area as a geometry constant of the SQL text (hex EWKB), not a bind parameter.

    Bound, ``ST_GeomFromWKB($n, 4326)`` is parsed again for every row once psycopg's prepared
    statement gets a generic plan (after five runs), and ``geom && $n`` is planned with a default
    selectivity: a page without a bbox then sorted every row in the area instead of stopping after
    one page (1.5 s instead of 2 ms on a million points). A literal is parsed once when the
    statement is prepared, every row meets the same polygon (which PostGIS prepares once per
    statement), and the planner estimates with it. The text is hex digits only.
    """
    shape = shapely.set_srid(shapely.from_wkb(area), 4326)
    ewkb = shapely.to_wkb(shape, hex=True, include_srid=True)
    return literal_column(f"CAST('{ewkb}' AS geometry)")


@lru_cache(maxsize=64)
def _area_shape(area: bytes) -> shapely.Geometry | None:
    """The area as a prepared polygon for box tests; None when invalid (no box is then "covered")."""
    shape = shapely.from_wkb(area)
    if shape is None or shape.is_empty or not shape.is_valid:
        return None
    shapely.prepare(shape)
    return shape


def area_covers(area: bytes, bounds: Bounds) -> bool:
    """Whether every point of the box (edges included) lies in the area: then any row meeting
    the box meets the area. A few microseconds with the prepared polygon, cached per area."""
    west, south, east, north = bounds
    shape = _area_shape(area)
    if shape is None or not (west < east and south < north):
        return False
    with _SHAPE_LOCK:
        return bool(shapely.covers(shape, shapely.box(*bounds)))


class LayerTable:
    """A layer's data table as SQLAlchemy columns; names come only from the layer's attributes.

    ``hidden`` fields are left out altogether: they cannot be selected, filtered or sorted on, and a
    name among them is refused exactly like an unknown one. ``area`` (WKB, EPSG:4326) limits the rows
    to those intersecting it (a sharing agreement's division area): every statement built on this
    table carries that predicate, or a box test that implies it, so a row outside it never leaves the
    database.
    """

    def __init__(
        self, layer: LayerInfo, hidden: frozenset[str] = frozenset(), area: bytes | None = None
    ) -> None:
        if not layer.table_name:
            raise NotFound(f"layer {layer.id!r} has no published data", field="collectionId")
        layer = redact(layer, hidden)
        self.layer = layer
        cols = [column(a.column, ATTRIBUTE_SQL_TYPES[a.type]) for a in layer.attributes]
        self.table: TableClause = table(
            layer.table_name,
            column("fid", BigInteger()),
            column("fkey", Text()),
            column("geom"),
            *cols,
            schema="layerdata",
        )
        self.c = self.table.c
        self.area = area

    def scope_clauses(
        self,
        bbox: Bounds | None = None,
        envelope: Bounds | None = None,
        envelope_sql: ColumnElement[Any] | None = None,
    ) -> list[ColumnElement[bool]]:
        """Row limits that hold whatever the request asks (the agreement area).

        ``bbox``: the statement also keeps only rows that ``ST_Intersects`` this box (CRS84);
        ``envelope``: it keeps only rows whose bounding box overlaps this one (``&&``, as tiles do),
        ``envelope_sql`` being that box in the statement (default: built from ``envelope``). When
        the area covers either box, most or all of the per-row test against the area is left out:
        a reader looking at part of its own district pays nothing for the limit, with the same rows.
        A statement compiled once and reused for other envelopes must therefore be kept apart by
        ``area_covers(area, envelope)`` as well as by the area.
        """
        if self.area is None:
            return []
        if bbox is not None and area_covers(self.area, bbox):
            return []  # a row meeting the box meets the area that covers it
        inside_area = func.ST_Intersects(self.c.geom, area_constant(self.area))
        if envelope is not None and area_covers(self.area, envelope):
            # a row whose box lies within the envelope lies within the area; only rows straddling
            # the envelope's edge (never points) need the real test
            if envelope_sql is None:
                envelope_sql = func.ST_MakeEnvelope(*envelope, 4326)
            within = self.c.geom.op("@")(select(envelope_sql).scalar_subquery())
            return [case((within, true()), else_=inside_area)]
        return [inside_area]

    def attribute(self, name: str, param: str) -> Attribute:
        attr = self.layer.attribute(name)
        if attr is None:
            raise BadParameter(f"unknown property {name!r} in {param}; see /queryables", field=param)
        return attr

    def resolve(self, name: str) -> Operand | None:
        if name in GEOMETRY_NAMES:
            return Operand(self.c.geom, "geometry")
        attr = self.layer.attribute(name)
        if attr is not None:
            return Operand(self.c[attr.column], attr.type)
        if name == "id":
            return self.id_operand()
        return None

    def id_operand(self) -> Operand:
        key = self.layer.attribute(self.layer.key_field) if self.layer.key_field else None
        if key is not None:
            return Operand(self.c[key.column], key.type)
        return Operand(self.c.fid, "integer") if not self.layer.key_field else Operand(self.c.fkey, "string")


# --- rendering -----------------------------------------------------------------------------


def _json_key(name: str) -> ColumnElement[Any]:
    return cast(literal(name, Text()), Text())


def properties_json(lt: LayerTable, names: list[str] | None) -> ColumnElement[Any]:
    """``{"名称": a1, ...}`` as JSON text, attributes in layer order."""
    attrs = lt.layer.attributes if names is None else [lt.attribute(n, "properties") for n in names]
    if not attrs:
        return literal_column("'{}'")
    chunks = []
    for i in range(0, len(attrs), _JSON_PAIRS_PER_CALL):
        args: list[Any] = []
        for a in attrs[i : i + _JSON_PAIRS_PER_CALL]:
            args += [_json_key(a.name), lt.c[a.column]]
        chunks.append(cast(func.json_build_object(*args), Text()))
    if len(chunks) == 1:
        return chunks[0]
    # splice {"a":1} {"b":2} {"c":3} into {"a":1,"b":2,"c":3}, keeping the attribute order
    expr: ColumnElement[Any] = func.left(chunks[0], -1, type_=Text())
    for n, chunk in enumerate(chunks[1:], start=2):
        body = chunk if n == len(chunks) else func.left(chunk, -1, type_=Text())
        expr = expr + literal_column("','", Text()) + func.substr(body, 2, type_=Text())
    return expr


def output_geometry(geom: ColumnElement[Any], crs: CrsDef) -> ColumnElement[Any]:
    if crs.srid == 3857:
        return func.ST_Transform(geom, 3857)
    if crs.lat_first:  # EPSG:4326 and CGCS2000 (EPSG:4490) agree with WGS84 within centimetres
        return func.ST_FlipCoordinates(geom)
    return geom


def feature_text(lt: LayerTable, q: ItemsQuery) -> ColumnElement[Any]:
    geometry = func.ST_AsGeoJSON(output_geometry(lt.c.geom, q.crs), q.crs.decimals, 0)
    return (
        literal_column("""'{"type":"Feature","id":'""")
        + cast(func.to_json(lt.c.fkey), Text())
        + literal_column("""',"geometry":'""")
        + geometry
        + literal_column("""',"properties":'""")
        + properties_json(lt, q.properties)
        + literal_column("'}'")
    )


# --- filtering -----------------------------------------------------------------------------


def _typed_value(raw: str, attr: Attribute) -> Any:
    """A ``property=value`` query value as the attribute's type (400 naming the property)."""
    try:
        if attr.type == "integer":
            value: Any = int(raw)
            if not -(2**63) <= value < 2**63:
                raise ValueError("out of range")
            return value
        if attr.type == "number":
            number = float(raw)
            if not np.isfinite(number):
                raise ValueError("not finite")
            return number
        if attr.type == "boolean":
            lowered = raw.strip().lower()
            if lowered not in ("true", "false"):
                raise ValueError("expected true or false")
            return lowered == "true"
        if attr.type in ("date", "datetime"):
            return coerce_value(raw, attr.type, attr.name)
    except (ValueError, BadParameter):
        raise BadParameter(f"{attr.name}={raw!r} is not a valid {attr.type}", field=attr.name) from None
    return raw


def where_clauses(
    lt: LayerTable,
    q: ItemsQuery,
    envelope: Bounds | None = None,
    envelope_sql: ColumnElement[Any] | None = None,
) -> list[ColumnElement[bool]]:
    """The request's row filters plus the reader's scope. ``envelope``: the box (CRS84) the caller
    already keeps rows to with ``geom && envelope`` (tiles), ``envelope_sql`` that box as the
    statement has it; they let the area limit be cheap (see ``LayerTable.scope_clauses``)."""
    clauses: list[ColumnElement[bool]] = lt.scope_clauses(q.bbox, envelope, envelope_sql)
    if q.bbox is not None:
        clauses.append(func.ST_Intersects(lt.c.geom, func.ST_MakeEnvelope(*q.bbox, 4326)))
    if q.interval is not None:
        clauses.append(_time_clause(lt, q.interval))
    for name, raw in q.equals.items():
        attr = lt.attribute(name, name)
        clauses.append(lt.c[attr.column] == literal(_typed_value(raw, attr), ATTRIBUTE_SQL_TYPES[attr.type]))
    if q.filter is not None:
        node = parse_filter(q.filter, q.filter_lang)
        clauses.append(filter_to_sql(node, lt.resolve, q.filter_crs))
    return clauses


def _time_clause(lt: LayerTable, interval: TimeInterval) -> ColumnElement[bool]:
    time_field = lt.layer.time_field
    attr = lt.layer.attribute(time_field) if time_field else None
    if attr is None:
        raise BadParameter(f"layer {lt.layer.id!r} has no time field to filter by datetime", field="datetime")
    col = lt.c[attr.column]
    ts = ATTRIBUTE_SQL_TYPES["datetime"]
    parts: list[ColumnElement[bool]] = []
    if interval.start is not None:
        parts.append(col >= literal(interval.start, ts))
    if interval.end is not None:
        parts.append(
            col < literal(interval.end, ts) if interval.end_exclusive else col <= literal(interval.end, ts)
        )
    return and_(col.is_not(None), *parts)


# --- ordering and keyset paging ------------------------------------------------------------


@dataclass(frozen=True)
class _OrderKey:
    expr: ColumnElement[Any]
    type: str
    descending: bool


def order_keys(lt: LayerTable, sortby: list[SortKey]) -> list[_OrderKey]:
    keys: list[_OrderKey] = []
    for s in sortby:
        op = lt.id_operand() if s.name == "id" else None
        if op is None:
            attr = lt.attribute(s.name, "sortby")
            op = Operand(lt.c[attr.column], attr.type)
        keys.append(_OrderKey(op.expr, op.type, s.descending))
    keys.append(_OrderKey(lt.c.fid, "integer", False))  # unique tie-breaker, always last
    return keys


def sort_spec(sortby: list[SortKey]) -> str:
    return ",".join(("-" if s.descending else "+") + s.name for s in sortby)


def _bound(value: Any, typ: str) -> ColumnElement[Any]:
    if typ in ("date", "datetime"):
        return cast(literal(value, Text()), ATTRIBUTE_SQL_TYPES[typ])
    return literal(value, ATTRIBUTE_SQL_TYPES[typ])


def _after(key: _OrderKey, value: Any) -> ColumnElement[bool]:
    """Rows strictly after ``value`` in this key's order; PostgreSQL sorts NULL as the largest."""
    if not key.descending:
        return false() if value is None else or_(key.expr > _bound(value, key.type), key.expr.is_(None))
    return key.expr.is_not(None) if value is None else key.expr < _bound(value, key.type)


def _same(key: _OrderKey, value: Any) -> ColumnElement[bool]:
    return key.expr.is_(None) if value is None else key.expr == _bound(value, key.type)


def keyset_clause(keys: list[_OrderKey], last: list[Any]) -> ColumnElement[bool]:
    if len(keys) == 1:
        return keys[0].expr > _bound(last[0], "integer")
    branches: list[ColumnElement[bool]] = []
    for i, key in enumerate(keys):
        branches.append(
            and_(*[_same(k, v) for k, v in zip(keys[:i], last[:i], strict=True)], _after(key, last[i]))
        )
    return or_(*branches)


def _check_cursor_types(keys: list[_OrderKey], last: list[Any]) -> None:
    for key, value in zip(keys, last, strict=True):
        expected = {
            "string": str,
            "date": str,
            "datetime": str,
            "integer": int,
            "number": int | float,
            "boolean": bool,
        }[key.type]
        if value is None:
            continue
        valid = isinstance(value, expected) and (key.type == "boolean" or not isinstance(value, bool))
        if valid and key.type in ("date", "datetime"):
            try:
                datetime.fromisoformat(value)
            except ValueError:
                valid = False
        if not valid:
            raise BadParameter("invalid or expired cursor; restart from the first page", field="cursor")


# --- statements ----------------------------------------------------------------------------


def page_select(lt: LayerTable, q: ItemsQuery, payload: list[ColumnElement[Any]]) -> Select[Any]:
    """The ordered page (one row more than the limit) with each row's keys for the next cursor.

    Deep pages stay index-driven: the first sort key gets a range bound the planner can use.
    PostgreSQL sorts NULL last in ascending order, so when the cursor stopped on a value, the
    rows still to come are "from that value on" plus every NULL; those two parts are read
    separately, each in index order, and stitched together.
    """
    keys = order_keys(lt, q.sortby)
    clauses = where_clauses(lt, q)
    key_json = func.json_build_array(*[k.expr for k in keys]).label("keys")
    order = [k.expr.desc() if k.descending else k.expr.asc() for k in keys]
    if not q.cursor:
        return _ordered(select(*payload, key_json), lt, clauses, order, q.limit)
    last = decode_cursor(q.cursor, sort_spec(q.sortby), len(keys), lt.layer.current_version)
    _check_cursor_types(keys, last)
    after = keyset_clause(keys, last)
    first, value = keys[0], last[0]
    if len(keys) == 1 or first.descending and value is None:
        return _ordered(select(*payload, key_json), lt, [*clauses, after], order, q.limit)
    if value is None:  # ascending, already among the NULLs at the end
        return _ordered(
            select(*payload, key_json), lt, [*clauses, first.expr.is_(None), after], order, q.limit
        )
    bound = _bound(value, first.type)
    if first.descending:  # NULLs came first and are behind us
        return _ordered(
            select(*payload, key_json), lt, [*clauses, first.expr <= bound, after], order, q.limit
        )
    sort_cols = [k.expr.label(f"_s{i}") for i, k in enumerate(keys)]
    parts = [
        _ordered(select(*payload, key_json, literal(n).label("_part"), *sort_cols), lt, part, order, q.limit)
        for n, part in enumerate(([*clauses, first.expr >= bound, after], [*clauses, first.expr.is_(None)]))
    ]
    both = union_all(*(p.subquery().select() for p in parts)).subquery("parts")
    names = [c.key for c in both.c if c.key not in ("_part",) and not c.key.startswith("_s")]
    resort = [both.c[f"_s{i}"].desc() if k.descending else both.c[f"_s{i}"].asc() for i, k in enumerate(keys)]
    return select(*[both.c[n] for n in names]).order_by(both.c["_part"], *resort).limit(q.limit + 1)


def _ordered(
    stmt: Select[Any], lt: LayerTable, clauses: list[ColumnElement[bool]], order: list[Any], limit: int
) -> Select[Any]:
    return stmt.select_from(lt.table).where(and_(true(), *clauses)).order_by(*order).limit(limit + 1)


def fetch_page(
    conn: Connection,
    layer: LayerInfo,
    q: ItemsQuery,
    hidden: frozenset[str] = frozenset(),
    area: bytes | None = None,
) -> ItemsPage:
    lt = LayerTable(layer, hidden, area)
    if not q.crs.in_database:
        return _fetch_page_offset_crs(conn, lt, q)
    inner = page_select(lt, q, [feature_text(lt, q).label("feature")]).subquery("page")
    numbered = select(inner.c.feature, inner.c["keys"], func.row_number().over().label("rn")).subquery(
        "numbered"
    )
    within = numbered.c.rn <= q.limit
    stmt = select(
        func.string_agg(numbered.c.feature, literal_column("','")).filter(within),
        func.count(),
        func.max(cast(numbered.c["keys"], Text())).filter(numbered.c.rn == q.limit),
    )
    features, fetched, last_keys = _run(conn, stmt, q).one()
    returned = min(fetched, q.limit)
    next_cursor = None
    if fetched > q.limit and last_keys is not None:
        next_cursor = encode_cursor(orjson.loads(last_keys), sort_spec(q.sortby), lt.layer.current_version)
    return ItemsPage((features or "").encode(), returned, next_cursor)


def _run(conn: Connection, stmt: Select[Any], q: ItemsQuery) -> Any:
    """Execute; a data error the database finds in a user's filter values is that filter's 400."""
    try:
        return conn.execute(stmt)
    except DBAPIError as exc:
        state = getattr(exc.orig, "sqlstate", None) or ""
        if q.filter and (state.startswith("22") or state == "XX000"):
            reason = str(getattr(exc.orig, "diag", None) and exc.orig.diag.message_primary or state)
            raise BadParameter(f"the filter cannot be evaluated: {reason}", field="filter") from None
        raise


def _fetch_page_offset_crs(conn: Connection, lt: LayerTable, q: ItemsQuery) -> ItemsPage:
    payload = [
        lt.c.fkey,
        func.ST_AsBinary(lt.c.geom).label("wkb"),
        properties_json(lt, q.properties).label("props"),
    ]
    rows = _run(conn, page_select(lt, q, payload), q).all()
    page = rows[: q.limit]
    features = render_offset_features(page, q.crs)
    next_cursor = None
    if len(rows) > q.limit:
        next_cursor = encode_cursor(_json_keys(page[-1].keys), sort_spec(q.sortby), lt.layer.current_version)
    return ItemsPage(features, len(page), next_cursor)


def _json_keys(value: Any) -> list[Any]:
    return orjson.loads(value) if isinstance(value, str | bytes) else list(value)


def render_offset_features(rows: list[Any], crs: CrsDef) -> bytes:
    if not rows:
        return b""
    geoms = shapely.from_wkb(np.array([bytes(r.wkb) for r in rows], dtype=object))
    convert = from_crs84_fn(crs)
    geoms = transform_geometries(geoms, lambda xy: np.round(convert(xy), crs.decimals))
    texts = shapely.to_geojson(geoms)
    parts = [
        b'{"type":"Feature","id":%b,"geometry":%b,"properties":%b}'
        % (orjson.dumps(r.fkey), g.encode(), r.props.encode())
        for r, g in zip(rows, texts, strict=True)
    ]
    return b",".join(parts)


def fetch_feature(
    conn: Connection,
    layer: LayerInfo,
    feature_id: str,
    crs: CrsDef,
    properties: list[str] | None = None,
    hidden: frozenset[str] = frozenset(),
    area: bytes | None = None,
) -> bytes:
    """One Feature as GeoJSON bytes; 404 naming ``featureId`` when the key is unknown (or outside
    the reader's area)."""
    lt = LayerTable(layer, hidden, area)
    match = and_(lt.c.fkey == literal(feature_id, Text()), *lt.scope_clauses())
    q = ItemsQuery(limit=1, crs=crs, properties=properties)
    if crs.in_database:
        stmt = select(feature_text(lt, q)).select_from(lt.table).where(match)
        text = conn.execute(stmt).scalar()
        if text is None:
            raise NotFound(f"feature {feature_id!r} not found in {layer.id!r}", field="featureId")
        return text.encode()
    stmt = (
        select(
            lt.c.fkey,
            func.ST_AsBinary(lt.c.geom).label("wkb"),
            properties_json(lt, properties).label("props"),
        )
        .select_from(lt.table)
        .where(match)
    )
    rows = conn.execute(stmt).all()
    if not rows:
        raise NotFound(f"feature {feature_id!r} not found in {layer.id!r}", field="featureId")
    return render_offset_features(rows, crs)
