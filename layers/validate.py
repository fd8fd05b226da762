"""Checking a frame before storage: geometries valid, repaired or rejected; attributes typed; keys unique.

Every rejection names the 1-based feature number, so a publisher can find the row in their GIS.
PostgreSQL's own limits are checked here too, before anything is written, so a file past them is a
422 naming the field or feature (and a dry run says so) rather than an error halfway through a load:
columns per table, identifier length (field names are SQL aliases in tile queries, and PostgreSQL
would cut longer ones, silently merging two), btree entry size (the key field is a unique index)
and row size.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from layers.errors import InvalidInput
from layers.ingest.crs import crs_warnings
from layers.model import Attribute, AttrType, LayerMetadata

GEOMETRY_NAMES = {
    0: "Point", 1: "LineString", 3: "Polygon", 4: "MultiPoint",
    5: "MultiLineString", 6: "MultiPolygon", 7: "GeometryCollection",
}  # fmt: skip
_MULTI_OF = {"Point": "MultiPoint", "LineString": "MultiLineString", "Polygon": "MultiPolygon"}

OWN_COLUMNS = 4  # fid, fkey, geom, _hash (``layers.model``)
MAX_ATTRIBUTES = 1_600 - OWN_COLUMNS  # PostgreSQL's columns per table
MAX_NAME_BYTES = 63  # NAMEDATALEN - 1
MAX_KEY_BYTES = 2_600  # a btree entry must fit a third of a page: 2,704 bytes with its headers
MAX_ROW_BYTES = 8_160  # a row must fit a page once long values are moved out of line (TOAST)
_TOASTED = 24  # a long text (or geometry) value moved out of line leaves at most this in the row
_FIXED = {"integer": 8, "number": 8, "datetime": 8, "date": 4, "boolean": 1}  # bytes, also alignment


@dataclass
class PreparedLayer:
    """Everything storage needs, already in EPSG:4326 and typed."""

    geometries: np.ndarray  # shapely geometries, valid, 2D, lon/lat
    attributes: list[Attribute]
    columns: list[pd.Series]  # one per attribute, values normalised for its type
    keys: np.ndarray | None  # feature key text per feature when the layer declares key_field
    geometry_type: str
    extent: list[float]
    time_extent: list[Any] | None = None
    repaired: list[int] = field(default_factory=list)  # 1-based feature numbers
    warnings: list[dict[str, Any]] = field(default_factory=list)  # for the publish report


def _reject(feature: int, detail: str, field_name: str = "geometry") -> InvalidInput:
    return InvalidInput(f"feature {feature}: {detail}", field=field_name, line=feature)


# ---------------------------------------------------------------- geometry


def _keep_dimension(fixed: Any, dimension: int) -> Any | None:
    """The repaired geometry reduced to the original dimension, or None if nothing of it is left."""
    if fixed is None or shapely.is_empty(fixed):
        return None
    if shapely.get_dimensions(fixed) == dimension and shapely.get_type_id(fixed) != 7:
        return fixed
    parts = [p for p in shapely.get_parts(fixed) if shapely.get_dimensions(p) == dimension and not p.is_empty]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else shapely.union_all(parts)


def _repair(geometries: np.ndarray) -> list[int]:
    """Repair invalid geometries in place with make_valid when the dimension survives; else reject."""
    invalid = np.flatnonzero(~shapely.is_valid(geometries))
    if len(invalid) == 0:
        return []
    originals = geometries[invalid]
    fixed = shapely.make_valid(originals, method="structure", keep_collapsed=False)
    dimensions = shapely.get_dimensions(originals)
    for i, original, candidate, dimension in zip(invalid, originals, fixed, dimensions, strict=True):
        kept = _keep_dimension(candidate, int(dimension))
        if kept is None or not shapely.is_valid(kept):
            reason = shapely.is_valid_reason(original)
            raise _reject(int(i) + 1, f"invalid geometry that cannot be repaired ({reason})")
        geometries[i] = kept
    return [int(i) + 1 for i in invalid]


def to_lonlat(geometries: np.ndarray, source: CRS) -> np.ndarray:
    """Reject missing geometries, drop Z/M, transform to EPSG:4326 and check the range."""
    missing = np.flatnonzero(shapely.is_missing(geometries) | shapely.is_empty(geometries))
    if len(missing):
        raise _reject(int(missing[0]) + 1, "no geometry (null, empty or unreadable)")
    if shapely.has_z(geometries).any():
        geometries = shapely.force_2d(geometries)
    if source.to_epsg() != 4326:
        geometries = gpd.GeoSeries(geometries, crs=source).to_crs(4326).to_numpy()
    bounds = shapely.bounds(geometries)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(bounds).all(axis=1) | (bounds[:, 0] < -180) | (bounds[:, 2] > 180)
        bad |= (bounds[:, 1] < -90) | (bounds[:, 3] > 90)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise _reject(
            i + 1,
            f"coordinates out of range after transforming to longitude/latitude "
            f"(bounds {bounds[i].tolist()}); is the source CRS right?",
        )
    return np.asarray(geometries, dtype=object)


def geometry_type(geometries: np.ndarray) -> str:
    names = {GEOMETRY_NAMES.get(int(t), "Geometry") for t in np.unique(shapely.get_type_id(geometries))}
    if len(names) == 1:
        return names.pop()
    for single, multi in _MULTI_OF.items():
        if names == {single, multi}:
            return multi
    return "Geometry"


_MAKE_MULTI = {"MultiPoint": shapely.multipoints, "MultiLineString": shapely.multilinestrings,
               "MultiPolygon": shapely.multipolygons}  # fmt: skip


def promote(geometries: np.ndarray, kind: str) -> np.ndarray:
    """A layer of Polygons and MultiPolygons is declared MultiPolygon: its Polygons become
    one-part MultiPolygons, so every feature is what the collection says (clients that trust the
    declared type, GDAL and QGIS among them, would otherwise misread the singles)."""
    make = _MAKE_MULTI.get(kind)
    if make is None:
        return geometries
    single = shapely.get_type_id(geometries) != next(k for k, v in GEOMETRY_NAMES.items() if v == kind)
    if single.any():
        geometries = geometries.copy()
        parts = geometries[single]
        geometries[single] = make(parts, indices=np.arange(len(parts)))
    return geometries


# ---------------------------------------------------------------- attributes


def _object_type(values: pd.Series) -> AttrType:
    kinds = {type(v) for v in values}
    if kinds <= {bool, np.bool_}:
        return "boolean"
    if kinds <= {int, np.int64, np.int32}:
        return "integer"
    if kinds <= {int, float, np.int64, np.int32, np.float64}:
        return "number"
    if all(isinstance(v, dt.datetime) for v in values):
        return "datetime"
    if all(isinstance(v, dt.date) for v in values):
        return "date"
    return "string"


def infer_type(series: pd.Series) -> AttrType:
    kind = series.dtype
    if pd.api.types.is_bool_dtype(kind):
        return "boolean"
    if pd.api.types.is_integer_dtype(kind):
        unsigned_overflow = pd.api.types.is_unsigned_integer_dtype(kind) and series.max() >= 2**63
        return "number" if unsigned_overflow else "integer"
    if pd.api.types.is_float_dtype(kind):
        return "number"
    if pd.api.types.is_datetime64_any_dtype(kind):
        return "datetime"
    if pd.api.types.is_object_dtype(kind):
        present = series.dropna()
        return "string" if present.empty else _object_type(present)
    return "string"


def normalise(series: pd.Series, kind: AttrType) -> pd.Series:
    """Give mixed object columns one representation per type (strings for 'string')."""
    if kind == "string" and not isinstance(series.dtype, pd.StringDtype):
        mask = series.isna()
        return series.astype(object).where(mask, series.astype(str)).where(~mask, None)
    return series


def check_field_names(names: list[Any]) -> None:
    if len(names) > MAX_ATTRIBUTES:
        raise InvalidInput(
            f"the data has {len(names):,} fields; a layer can hold at most {MAX_ATTRIBUTES:,}", field="file"
        )
    seen: set[str] = set()
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise InvalidInput(f"a field has an empty name ({name!r})", field=str(name))
        if name in seen:
            raise InvalidInput(f"the field name {name!r} appears twice", field=name)
        if len(name.encode("utf-8")) > MAX_NAME_BYTES:
            raise InvalidInput(
                f"the field name {name!r} is {len(name.encode('utf-8'))} bytes long (UTF-8); "
                f"field names may be at most {MAX_NAME_BYTES} bytes",
                field=name,
            )
        seen.add(name)


def _utf8_lengths(values: pd.Series, enough: int) -> np.ndarray:
    """UTF-8 byte length per text value (0 for nulls), or an upper bound when even that is at most
    ``enough`` (encoding every value costs a second a million)."""
    chars = values.map(len, na_action="ignore").fillna(0).to_numpy(dtype=np.int64)
    if len(chars) == 0 or chars.max() * 4 <= enough:
        return chars * 4
    return np.fromiter((0 if v is None else len(v.encode("utf-8")) for v in values), np.int64, len(values))


def check_row_size(columns: list[pd.Series], attributes: list[Attribute]) -> None:
    """Refuse the first feature whose row would not fit a PostgreSQL page, laid out as PostgreSQL does
    (fixed-width values aligned to their size, long text moved out of line, nulls taking nothing)."""
    header = -(-(23 + -(-(OWN_COLUMNS + len(attributes)) // 8)) // 8) * 8
    base = header + 8 + _TOASTED + _TOASTED + 33  # fid, fkey and geom at their most, _hash
    widest = sum(2 * _FIXED[a.type] - 1 if a.type in _FIXED else _TOASTED for a in attributes)
    if base + widest <= MAX_ROW_BYTES:
        return  # no row can be too big: skip the per-row sums
    offset = np.full(len(columns[0]), base, dtype=np.int64)
    for series, attribute in zip(columns, attributes, strict=True):
        present = series.notna().to_numpy()
        size = _FIXED.get(attribute.type)
        if size is None:
            text = series.astype(object).where(present, None)
            offset += np.where(present, np.minimum(_utf8_lengths(text, _TOASTED) + 1, _TOASTED), 0)
        else:
            offset = np.where(present, -(-offset // size) * size + size, offset)
    too_big = np.flatnonzero(offset > MAX_ROW_BYTES)
    if len(too_big):
        i = int(too_big[0])
        raise _reject(
            i + 1,
            f"its {len(attributes):,} attribute values take about {int(offset[i]):,} bytes, more than the "
            f"{MAX_ROW_BYTES:,} a PostgreSQL row can hold; split the fields over several layers",
            "file",
        )


def key_text(series: pd.Series, kind: AttrType, name: str) -> np.ndarray:
    """The key as text per feature; nulls, blanks and duplicates are rejected with their feature number."""
    missing = series.isna().to_numpy()
    if missing.any():
        raise _reject(
            int(np.flatnonzero(missing)[0]) + 1, f"no value for the key field {name!r}", "key_field"
        )
    if kind == "integer":
        text = series.astype("int64").astype(str)
    elif kind == "number":
        text = pd.Series([str(int(v)) if float(v).is_integer() else repr(float(v)) for v in series])
    elif kind in ("date", "datetime"):
        text = pd.Series([v.isoformat() for v in series])
    else:
        text = series.astype(str).str.strip()
        blank = (text == "").to_numpy()
        if blank.any():
            raise _reject(
                int(np.flatnonzero(blank)[0]) + 1, f"blank value for the key field {name!r}", "key_field"
            )
    values = text.to_numpy(dtype=object)
    lengths = _utf8_lengths(pd.Series(values, dtype=object), MAX_KEY_BYTES)
    if len(lengths) and lengths.max() > MAX_KEY_BYTES:
        i = int(np.flatnonzero(lengths > MAX_KEY_BYTES)[0])
        raise _reject(
            i + 1,
            f"the key of field {name!r} is {int(lengths[i]):,} bytes long (UTF-8); keys may be at most "
            f"{MAX_KEY_BYTES:,} bytes (they are indexed)",
            "key_field",
        )
    duplicated = pd.Series(values).duplicated().to_numpy()
    if duplicated.any():
        i = int(np.flatnonzero(duplicated)[0])
        raise _reject(i + 1, f"the key {values[i]!r} of field {name!r} is not unique", "key_field")
    return values


def _as_time(series: pd.Series, name: str) -> tuple[pd.Series, AttrType]:
    """Parse a textual time field; unparseable values are rejected with their feature number."""
    parsed = pd.to_datetime(series, errors="coerce", format="mixed")
    bad = (parsed.isna() & series.notna()).to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise _reject(i + 1, f"the time field {name!r} holds {series.iloc[i]!r}, not a date", "time_field")
    has_clock = series.dropna().astype(str).str.contains(":").any()
    if not has_clock:
        return pd.Series([None if pd.isna(v) else v.date() for v in parsed], dtype=object), "date"
    return parsed, "datetime"


def _time_extent(series: pd.Series) -> list[Any]:
    present = series.dropna()
    if present.empty:
        return [None, None]
    low, high = present.min(), present.max()

    def plain(v: Any) -> Any:
        if isinstance(v, pd.Timestamp):
            return v.to_pydatetime()
        return dt.datetime.combine(v, dt.time()) if isinstance(v, dt.date) else v

    return [plain(low), plain(high)]


def prepare(frame: gpd.GeoDataFrame, metadata: LayerMetadata, source_crs: CRS) -> PreparedLayer:
    """Validate and normalise ``frame`` (in ``source_crs``) for storage."""
    names = [c for c in frame.columns if c != frame.geometry.name]
    check_field_names(names)
    for option in ("key_field", "time_field"):
        wanted = getattr(metadata, option)
        if wanted is not None and wanted not in names:
            raise InvalidInput(
                f"{option} {wanted!r} is not a field of the data (fields: {names[:20]})", field=option
            )
    unknown = [f for f in metadata.restricted_fields if f not in names]
    if unknown:
        raise InvalidInput(
            f"restricted field {unknown[0]!r} is not a field of the data", field="restricted_fields"
        )
    if metadata.key_field and metadata.key_field in metadata.restricted_fields:
        raise InvalidInput(
            f"the key field {metadata.key_field!r} cannot be restricted: it is every feature's public id",
            field="restricted_fields",
        )

    raw = np.array(frame.geometry.to_numpy(), dtype=object)
    geometries = to_lonlat(raw, source_crs)
    repaired = _repair(geometries)
    extent = [float(v) for v in shapely.total_bounds(geometries)]
    crs_name = f"EPSG:{source_crs.to_epsg()}" if source_crs.to_epsg() else source_crs.name
    warnings = crs_warnings(shapely.total_bounds(raw), extent, source_crs, crs_name)

    attributes: list[Attribute] = []
    columns: list[pd.Series] = []
    keys = None
    time_extent = None
    for n, name in enumerate(names, start=1):
        series = frame[name].reset_index(drop=True)
        if isinstance(series.dtype, gpd.array.GeometryDtype):
            series = pd.Series(shapely.to_wkt(series.to_numpy()), dtype=object)
        kind = infer_type(series)
        if name == metadata.time_field:
            if kind not in ("date", "datetime"):
                series, kind = _as_time(series, name)
            time_extent = _time_extent(series)
        series = normalise(series, kind)
        if name == metadata.key_field:
            keys = key_text(series, kind, name)
        attributes.append(Attribute(name=name, column=f"a{n}", type=kind))
        columns.append(series)
    if attributes:
        check_row_size(columns, attributes)
    shape = geometry_type(geometries)
    geometries = promote(geometries, shape)
    return PreparedLayer(
        geometries=geometries,
        attributes=attributes,
        columns=columns,
        keys=keys,
        geometry_type=shape,
        extent=extent,
        time_extent=time_extent,
        repaired=repaired,
        warnings=warnings,
    )
