"""CQL2 (OGC API – Features Part 3) filters: pygeofilter parses, this module translates its AST
into SQLAlchemy Core expressions over a layer's data table.

Literals are coerced to the attribute's type here, so a type mismatch is a 400 naming the
property instead of a database error, and every value reaches SQL as a bound parameter.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import shapely
import shapely.geometry
from pygeofilter import ast, values
from pygeofilter.parsers.cql2_json import parse as parse_cql2_json
from pygeofilter.parsers.cql2_text import parse as parse_cql2_text
from sqlalchemy import ColumnElement, and_, between, false, func, literal, not_, or_, true
from sqlalchemy.types import BigInteger, Boolean, Date, DateTime, Float, LargeBinary, Text, TypeEngine

from layers.crs import CrsDef, geometry_to_crs84
from layers.errors import BadParameter

FIELD = "filter"
FILTER_LANGS = ("cql2-text", "cql2-json")
MAX_FILTER_CHARS = 20_000
#: C0 controls, DEL and lone UTF-16 surrogates: PostgreSQL holds none of them in text (NUL is a
#: psycopg error, a surrogate cannot be encoded), so a filter carrying one, raw or as a JSON
#: ``\u`` escape, is a 400 here rather than a 500 from the database
_BAD_CHARS = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")

#: SQLAlchemy types of the model's attribute types (``layers.model.SQL_TYPES`` as DDL names)
ATTRIBUTE_SQL_TYPES: dict[str, TypeEngine[Any]] = {
    "string": Text(),
    "integer": BigInteger(),
    "number": Float(),
    "boolean": Boolean(),
    "date": Date(),
    "datetime": DateTime(timezone=True),
}


@dataclass(frozen=True)
class Operand:
    """A property resolved to its column: what the translator needs to know about it."""

    expr: ColumnElement[Any]
    type: str  # model AttrType, or "geometry"


Resolver = Callable[[str], Operand | None]


class _Unsupported(Exception):
    pass


# --- parsing ---------------------------------------------------------------------------------

_IDENT_CHAR = re.compile(r"[\w.:]")
# pygeofilter's grammar ends a string at the first quote, so an escaped '' travels as this mark
_QUOTE_MARK = "\ue000"


def _quote_unicode_identifiers(text: str) -> str:
    """Double-quote bare identifiers with non-ASCII letters (``名称 = 'x'``).

    CQL2 allows Unicode identifiers but pygeofilter's grammar only accepts ASCII ones unquoted.
    String literals and already-quoted identifiers are left alone.
    """
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in "'\"":
            j = i + 1
            while j < n:
                if text[j] == ch:
                    if j + 1 < n and text[j + 1] == ch:  # doubled quote escapes itself
                        j += 2
                        continue
                    break
                j += 1
            body = text[i + 1 : j].replace(ch + ch, _QUOTE_MARK if ch == "'" else ch + ch)
            out.append(ch + body + text[j : j + 1])
            i = j + 1
        elif _IDENT_CHAR.match(ch):
            j = i
            while j < n and _IDENT_CHAR.match(text[j]):
                j += 1
            word = text[i:j]
            out.append(f'"{word}"' if not word.isascii() else word)
            i = j
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _normalise_json(node: Any) -> Any:
    """Bring standard CQL2 JSON into the shape pygeofilter 0.4 expects.

    ``{"bbox": [minx, miny, maxx, maxy]}`` becomes a GeoJSON polygon (pygeofilter reads the
    numbers in another order) and ``between`` takes its bounds as separate arguments.
    """
    if isinstance(node, list):
        return [_normalise_json(v) for v in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"bbox"}:
        box = node["bbox"]
        if not isinstance(box, list) or len(box) not in (4, 6) or not all(_is_number(v) for v in box):
            raise BadParameter("a bbox literal needs 4 or 6 numbers", field=FIELD)
        minx, miny, maxx, maxy = (box[0], box[1], box[3], box[4]) if len(box) == 6 else box
        return shapely.geometry.mapping(shapely.geometry.box(minx, miny, maxx, maxy))
    node = {k: _normalise_json(v) for k, v in node.items()}
    if node.get("op") == "between" and isinstance(node.get("args"), list) and len(node["args"]) == 3:
        node["args"] = [node["args"][0], [node["args"][1], node["args"][2]]]
    return node


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _refuse_bad_chars(value: Any) -> None:
    """A 400 on ``filter`` for the first control character (or surrogate) in ``value``'s strings."""
    if isinstance(value, str):
        found = _BAD_CHARS.search(value)
        if found is not None:
            raise BadParameter(
                f"filter contains the character U+{ord(found.group()):04X}; "
                "control characters and lone surrogates are not allowed",
                field=FIELD,
            )
    elif isinstance(value, dict):
        for k, v in value.items():
            _refuse_bad_chars(k)
            _refuse_bad_chars(v)
    elif isinstance(value, list):
        for v in value:
            _refuse_bad_chars(v)


def parse_filter(text: str, lang: str | None) -> ast.Node:
    """Parse a ``filter`` parameter; any parser complaint becomes a 400 carrying its message."""
    lang = (lang or "cql2-text").strip().lower()
    if lang not in FILTER_LANGS:
        raise BadParameter(
            f"unsupported filter-lang {lang!r}; use cql2-text or cql2-json", field="filter-lang"
        )
    if not text or not text.strip():
        raise BadParameter("filter is empty", field=FIELD)
    if len(text) > MAX_FILTER_CHARS:
        raise BadParameter(f"filter is longer than {MAX_FILTER_CHARS} characters", field=FIELD)
    _refuse_bad_chars(text)
    try:
        if lang == "cql2-json":
            try:
                doc = json.loads(text)
            except ValueError as exc:
                raise BadParameter(f"filter is not valid JSON: {exc}", field=FIELD) from None
            _refuse_bad_chars(doc)  # what JSON's \u escapes decoded to
            node = parse_cql2_json(_normalise_json(doc))
        else:
            node = parse_cql2_text(_quote_unicode_identifiers(text))
    except BadParameter:
        raise
    except Exception as exc:  # noqa: BLE001 - lark and pygeofilter raise many kinds
        message = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise BadParameter(f"cannot parse {lang} filter: {message}", field=FIELD) from None
    if not isinstance(node, ast.Node):
        raise BadParameter("filter must be a boolean expression", field=FIELD)
    return node


# --- translation -----------------------------------------------------------------------------

_SPATIAL = {
    ast.GeometryIntersects: func.ST_Intersects,
    ast.GeometryDisjoint: func.ST_Disjoint,
    ast.GeometryContains: func.ST_Contains,
    ast.GeometryWithin: func.ST_Within,
    ast.GeometryTouches: func.ST_Touches,
    ast.GeometryCrosses: func.ST_Crosses,
    ast.GeometryOverlaps: func.ST_Overlaps,
    ast.GeometryEquals: func.ST_Equals,
}
_COMPARE = {
    ast.Equal: lambda a, b: a == b,
    ast.NotEqual: lambda a, b: a != b,
    ast.LessThan: lambda a, b: a < b,
    ast.LessEqual: lambda a, b: a <= b,
    ast.GreaterThan: lambda a, b: a > b,
    ast.GreaterEqual: lambda a, b: a >= b,
}
_ARITHMETIC = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mul: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
}
_NUMERIC = ("integer", "number")
_UNITS_TO_METRES = {
    "meters": 1.0,
    "metres": 1.0,
    "m": 1.0,
    "kilometers": 1000.0,
    "km": 1000.0,
    "feet": 0.3048,
}


class Translator:
    def __init__(self, resolve: Resolver, filter_crs: CrsDef) -> None:
        self.resolve = resolve
        self.filter_crs = filter_crs

    def condition(self, node: Any) -> ColumnElement[bool]:
        if isinstance(node, bool):
            return true() if node else false()
        if isinstance(node, ast.And):
            return and_(self.condition(node.lhs), self.condition(node.rhs))
        if isinstance(node, ast.Or):
            return or_(self.condition(node.lhs), self.condition(node.rhs))
        if isinstance(node, ast.Not):
            return not_(self.condition(node.sub_node))
        if isinstance(node, ast.Include):
            return false() if node.not_ else true()
        if isinstance(node, ast.Comparison):
            return self._comparison(node)
        if isinstance(node, ast.Between):
            return self._between(node)
        if isinstance(node, ast.Like):
            return self._like(node)
        if isinstance(node, ast.In):
            return self._in(node)
        if isinstance(node, ast.IsNull):
            expr, _ = self.scalar(node.lhs)
            return expr.is_not(None) if node.not_ else expr.is_(None)
        if isinstance(
            node, ast.SpatialComparisonPredicate | ast.Relate | ast.BBox | ast.SpatialDistancePredicate
        ):
            return self._spatial(node)
        if isinstance(node, ast.TemporalPredicate):
            return self._temporal(node)
        if isinstance(node, ast.Attribute):
            expr, typ = self.scalar(node)
            if typ != "boolean":
                raise BadParameter(
                    f"property {node.name!r} is not boolean; compare it with a value", field=FIELD
                )
            return expr
        raise _Unsupported(type(node).__name__)

    # scalar operands: (expression, type or None for an untyped literal)

    def scalar(self, node: Any, want: str | None = None) -> tuple[ColumnElement[Any], str | None]:
        if isinstance(node, ast.Attribute):
            op = self._property(node.name)
            if op.type == "geometry":
                raise BadParameter(f"{node.name!r} is the geometry; use a spatial function", field=FIELD)
            return op.expr, op.type
        if isinstance(node, ast.Function):
            return self._function(node, want)
        if isinstance(node, ast.Arithmetic):
            lhs, lt = self.scalar(node.lhs, "number")
            rhs, rt = self.scalar(node.rhs, "number")
            for t in (lt, rt):
                if t is not None and t not in _NUMERIC:
                    raise BadParameter("arithmetic needs numeric properties", field=FIELD)
            return _ARITHMETIC[type(node)](lhs, rhs), "number"
        if isinstance(node, values.Geometry | values.Envelope):
            raise BadParameter("a geometry literal can only be used in a spatial function", field=FIELD)
        return self._literal(node, want), want

    def _property(self, name: str) -> Operand:
        op = self.resolve(name)
        if op is None:
            raise BadParameter(f"unknown property {name!r} in filter; see /queryables", field=FIELD)
        return op

    def _function(self, node: ast.Function, want: str | None) -> tuple[ColumnElement[Any], str | None]:
        name = node.name.lower()
        if name in ("lower", "casei") and len(node.arguments) == 1:
            expr, typ = self.scalar(node.arguments[0], "string")
            if typ not in (None, "string"):
                raise BadParameter("CASEI applies to text properties only", field=FIELD)
            return func.lower(expr), "string"
        raise BadParameter(f"unsupported function {node.name!r} in filter", field=FIELD)

    def _literal(self, value: Any, typ: str | None) -> ColumnElement[Any]:
        if isinstance(value, str):
            value = value.replace(_QUOTE_MARK, "'")
        return literal(coerce_value(value, typ, "a literal"), _sql_type(typ, value))

    def _pair(self, lhs: Any, rhs: Any) -> tuple[ColumnElement[Any], ColumnElement[Any], str | None]:
        """Translate two operands, typing a literal after the property it is compared with."""
        lhs_is_value = not isinstance(lhs, ast.Node)
        if lhs_is_value and isinstance(rhs, ast.Node):
            r, rt = self.scalar(rhs)
            left, lt = self.scalar(lhs, rt)
            return left, r, lt or rt
        left, lt = self.scalar(lhs)
        right, rt = self.scalar(rhs, lt)
        if (
            lt
            and rt
            and lt != rt
            and not (lt in _NUMERIC and rt in _NUMERIC)
            and {lt, rt} != {"date", "datetime"}
        ):
            raise BadParameter(f"cannot compare a {lt} with a {rt}", field=FIELD)
        return left, right, lt or rt

    def _comparison(self, node: ast.Comparison) -> ColumnElement[bool]:
        left, right, _ = self._pair(node.lhs, node.rhs)
        return _COMPARE[type(node)](left, right)

    def _between(self, node: ast.Between) -> ColumnElement[bool]:
        expr, typ = self.scalar(node.lhs)
        low, _ = self.scalar(node.low, typ)
        high, _ = self.scalar(node.high, typ)
        clause = between(expr, low, high)
        return not_(clause) if node.not_ else clause

    def _like(self, node: ast.Like) -> ColumnElement[bool]:
        expr, typ = self.scalar(node.lhs, "string")
        if typ not in (None, "string"):
            raise BadParameter("LIKE applies to text properties only", field=FIELD)
        pattern, _ = self.scalar(node.pattern, "string")
        clause = expr.ilike(pattern, escape="\\") if node.nocase else expr.like(pattern, escape="\\")
        return not_(clause) if node.not_ else clause

    def _in(self, node: ast.In) -> ColumnElement[bool]:
        expr, typ = self.scalar(node.lhs)
        if not node.sub_nodes:
            return true() if node.not_ else false()
        items = [self.scalar(v, typ)[0] for v in node.sub_nodes]
        return expr.not_in(items) if node.not_ else expr.in_(items)

    # spatial

    def _geometry_operand(self, node: Any) -> ColumnElement[Any]:
        if isinstance(node, ast.Attribute):
            op = self._property(node.name)
            if op.type != "geometry":
                raise BadParameter(f"{node.name!r} is not a geometry property", field=FIELD)
            return op.expr
        geom = self._geometry_literal(node)
        return func.ST_GeomFromWKB(literal(shapely.to_wkb(geom), _BYTES), 4326)

    def _geometry_literal(self, node: Any) -> Any:
        try:
            if isinstance(node, values.Geometry):
                geom = shapely.geometry.shape(node.geometry)
            elif isinstance(node, values.Envelope):  # ENVELOPE(west east north south) in text
                geom = shapely.geometry.box(node.x1, node.y2, node.x2, node.y1)
            elif (
                isinstance(node, ast.Function)
                and node.name.lower() == "bbox"
                and len(node.arguments) in (4, 6)
            ):
                args = [float(a) for a in node.arguments]
                minx, miny, maxx, maxy = (args[0], args[1], args[3], args[4]) if len(args) == 6 else args
                geom = shapely.geometry.box(minx, miny, maxx, maxy)
            else:
                raise BadParameter("expected a geometry literal or the geometry property", field=FIELD)
        except BadParameter:
            raise
        except Exception as exc:  # noqa: BLE001 - malformed coordinates in many shapes
            raise BadParameter(f"invalid geometry literal: {exc}", field=FIELD) from None
        if geom.is_empty:
            raise BadParameter("empty geometry literal", field=FIELD)
        if not geom.is_valid:
            reason = shapely.is_valid_reason(geom)
            raise BadParameter(f"invalid geometry literal: {reason}", field=FIELD)
        return geometry_to_crs84(geom, self.filter_crs, "filter")

    def _spatial(self, node: Any) -> ColumnElement[bool]:
        left = self._geometry_operand(node.lhs)
        if isinstance(node, ast.BBox):
            box = shapely.geometry.box(node.minx, node.miny, node.maxx, node.maxy)
            box = geometry_to_crs84(box, self.filter_crs, "filter")
            return func.ST_Intersects(left, func.ST_MakeEnvelope(*box.bounds, 4326))
        right = self._geometry_operand(node.rhs)
        if isinstance(node, ast.Relate):
            if not re.fullmatch(r"[TF012*]{9}", node.pattern or ""):
                raise BadParameter("S_RELATE needs a 9-character DE-9IM pattern", field=FIELD)
            return func.ST_Relate(left, right, literal(node.pattern, Text))
        if isinstance(node, ast.SpatialDistancePredicate):
            factor = _UNITS_TO_METRES.get(str(node.units).lower())
            if factor is None or not _is_number(node.distance):
                raise BadParameter(f"unsupported distance unit {node.units!r}; use meters", field=FIELD)
            near = func.ST_DWithin(func.geography(left), func.geography(right), float(node.distance) * factor)
            return near if isinstance(node, ast.DistanceWithin) else not_(near)
        return _SPATIAL[type(node)](left, right)

    # temporal: the layer's time property holds instants

    def _temporal(self, node: ast.TemporalPredicate) -> ColumnElement[bool]:
        if not isinstance(node.lhs, ast.Attribute):
            raise BadParameter("a temporal function needs a property first", field=FIELD)
        op = self._property(node.lhs.name)
        if op.type not in ("date", "datetime"):
            raise BadParameter(f"{node.lhs.name!r} is not a date or datetime property", field=FIELD)
        start, end = _interval_of(node.rhs)
        col = op.expr
        lo = col >= literal(start, _sql_type("datetime", start)) if start is not None else true()
        hi = col <= literal(end, _sql_type("datetime", end)) if end is not None else true()
        if isinstance(node, ast.TimeAfter):
            return col > literal(end, _sql_type("datetime", end)) if end is not None else false()
        if isinstance(node, ast.TimeBefore):
            return col < literal(start, _sql_type("datetime", start)) if start is not None else false()
        if isinstance(node, ast.TimeDisjoint):
            return not_(and_(lo, hi))
        if isinstance(node, ast.TimeEquals):
            return and_(lo, hi) if start == end else false()
        if isinstance(node, ast.TimeOverlaps | ast.TimeDuring | ast.TimeContains):
            return and_(lo, hi)
        raise BadParameter(
            f"temporal function {type(node).__name__} is not supported on instants; use "
            "T_AFTER, T_BEFORE, T_DISJOINT, T_EQUALS, T_INTERSECTS or T_DURING",
            field=FIELD,
        )


_BYTES = LargeBinary()


def _interval_of(value: Any) -> tuple[datetime | None, datetime | None]:
    if isinstance(value, values.Interval):
        start, end = value.start, value.end
        if isinstance(start, timedelta) or isinstance(end, timedelta):
            raise BadParameter("durations in intervals are not supported", field=FIELD)
        return _as_datetime(start, end=False), _as_datetime(end, end=True)
    if isinstance(value, datetime | date):
        return _as_datetime(value, end=False), _as_datetime(value, end=True)
    raise BadParameter("expected a TIMESTAMP, DATE or INTERVAL literal", field=FIELD)


def _as_datetime(value: date | datetime | None, *, end: bool) -> datetime | None:
    """A date as the first or last instant of that day (UTC); naive datetimes are UTC."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if end:
        return datetime.combine(value + timedelta(days=1), time.min, UTC) - timedelta(microseconds=1)
    return datetime.combine(value, time.min, UTC)


def _sql_type(typ: str | None, value: Any) -> Any:
    if typ in ATTRIBUTE_SQL_TYPES:
        return ATTRIBUTE_SQL_TYPES[typ]
    if isinstance(value, bool):
        return Boolean()
    if isinstance(value, int | float):
        return Float() if isinstance(value, float) else ATTRIBUTE_SQL_TYPES["integer"]
    if isinstance(value, datetime):
        return ATTRIBUTE_SQL_TYPES["datetime"]
    if isinstance(value, date):
        return ATTRIBUTE_SQL_TYPES["date"]
    return Text()


def coerce_value(value: Any, typ: str | None, what: str) -> Any:
    """``value`` as a Python value of attribute type ``typ``; a mismatch is a 400 on ``filter``."""
    if value is None:
        return None
    if typ is None:
        if isinstance(value, str | int | float | bool | date):
            return value
        raise BadParameter(f"unsupported literal {value!r}", field=FIELD)
    ok: Any = _COERCE[typ](value)
    if ok is _BAD:
        raise BadParameter(
            f"{what} {value!r} does not match the {typ} type of the property it meets", field=FIELD
        )
    return ok


_BAD = object()


def _to_string(v: Any) -> Any:
    return v if isinstance(v, str) else _BAD


def _to_integer(v: Any) -> Any:
    if isinstance(v, bool):
        return _BAD
    if isinstance(v, int):
        return v if -(2**63) <= v < 2**63 else float(v)
    return v if isinstance(v, float) else _BAD


def _to_number(v: Any) -> Any:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) and abs(v) < 1e308 else _BAD


def _to_boolean(v: Any) -> Any:
    return v if isinstance(v, bool) else _BAD


def _to_date(v: Any) -> Any:
    if isinstance(v, date):
        return v
    if isinstance(v, str):
        try:
            return date.fromisoformat(v) if len(v) == 10 else datetime.fromisoformat(v)
        except ValueError:
            return _BAD
    return _BAD


def _to_datetime(v: Any) -> Any:
    d = _to_date(v)
    if isinstance(d, datetime) and d.tzinfo is None:
        return d.replace(tzinfo=UTC)
    return d


_COERCE: dict[str, Callable[[Any], Any]] = {
    "string": _to_string,
    "integer": _to_integer,
    "number": _to_number,
    "boolean": _to_boolean,
    "date": _to_date,
    "datetime": _to_datetime,
}


def filter_to_sql(node: ast.Node, resolve: Resolver, filter_crs: CrsDef) -> ColumnElement[bool]:
    try:
        return Translator(resolve, filter_crs).condition(node)
    except _Unsupported as exc:
        raise BadParameter(f"unsupported filter construct {exc}", field=FIELD) from None
    except RecursionError:
        raise BadParameter("filter is nested too deeply", field=FIELD) from None
