"""Checking a frame before storage: geometries valid, repaired or rejected; attributes typed; keys unique.

Every rejection names the 1-based feature number, so a publisher can find the row in their GIS.
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
from layers.model import Attribute, AttrType, LayerMetadata

GEOMETRY_NAMES = {
    0: "Point", 1: "LineString", 3: "Polygon", 4: "MultiPoint",
    5: "MultiLineString", 6: "MultiPolygon", 7: "GeometryCollection",
}  # fmt: skip
_MULTI_OF = {"Point": "MultiPoint", "LineString": "MultiLineString", "Polygon": "MultiPolygon"}


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
    seen: set[str] = set()
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise InvalidInput(f"a field has an empty name ({name!r})", field=str(name))
        if name in seen:
            raise InvalidInput(f"the field name {name!r} appears twice", field=name)
        seen.add(name)


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

    geometries = to_lonlat(np.array(frame.geometry.to_numpy(), dtype=object), source_crs)
    repaired = _repair(geometries)

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
    return PreparedLayer(
        geometries=geometries,
        attributes=attributes,
        columns=columns,
        keys=keys,
        geometry_type=geometry_type(geometries),
        extent=[float(v) for v in shapely.total_bounds(geometries)],
        time_extent=time_extent,
        repaired=repaired,
    )
