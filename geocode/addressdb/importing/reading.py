"""Reading an address file into columns: headers mapped, coordinates to WGS84."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from geocode.addressdb.columns import ColumnMapping
from layers.crs import bd09_to_wgs84, gcj02_to_wgs84
from layers.ingest import read_source
from layers.ingest.crs import epsg_code, parse_crs
from layers.ingest.encoding import codec_name
from layers.ingest.sniff import sniff
from layers.ingest.tabular import read_table

CONTRADICTION_M = 500.0  # a named district this far from the point is wrong (or the point is)
COMPOUND_BUFFER_M = 15.0
BUILDING_HALF_M = 5.0
MIN_ROAD_M = 20.0
IMPORT_KEY = "addressdb_import"  # gs.setting: where the current address database came from
LOCK_KEY = "geoshare demo load"  # the advisory lock ``demo load`` takes: both replace ``addr``


@dataclass(frozen=True)
class InputCrs:
    """What ``--crs`` names: an EPSG CRS, or GCJ-02/BD-09 (offset lon/lat, no EPSG code)."""

    label: str
    epsg: int | None
    offset: Callable[[np.ndarray], np.ndarray] | None = None


_OFFSET_CRS = {
    "gcj-02": InputCrs("GCJ-02", None, gcj02_to_wgs84),
    "gcj02": InputCrs("GCJ-02", None, gcj02_to_wgs84),
    "bd-09": InputCrs("BD-09", None, bd09_to_wgs84),
    "bd09": InputCrs("BD-09", None, bd09_to_wgs84),
}
_NAMED_EPSG = {"wgs84": 4326, "crs84": 4326, "ogc:crs84": 4326, "cgcs2000": 4490}


def input_crs(value: str | None) -> InputCrs | None:
    if value is None or not value.strip() or value.strip().lower() == "auto":
        return None
    raw = value.strip()
    if raw.lower() in _OFFSET_CRS:
        return _OFFSET_CRS[raw.lower()]
    if raw.lower() in _NAMED_EPSG:
        code = _NAMED_EPSG[raw.lower()]
    else:
        code = epsg_code(parse_crs(raw, field="crs"), field="crs")
    return InputCrs(f"EPSG:{code}", code)


def _to_wgs84(x: np.ndarray, y: np.ndarray, crs: InputCrs) -> tuple[np.ndarray, np.ndarray]:
    """Longitude/latitude on WGS84; EPSG:4490 (CGCS2000) differs by centimetres and passes through."""
    ok = np.isfinite(x) & np.isfinite(y)
    if crs.offset is not None:
        out = crs.offset(np.column_stack([x[ok], y[ok]]))
        x, y = x.copy(), y.copy()
        x[ok], y[ok] = out[:, 0], out[:, 1]
    elif crs.epsg not in (4326, 4490):
        lon, lat = Transformer.from_crs(crs.epsg, 4326, always_xy=True).transform(x[ok], y[ok])
        x, y = x.copy(), y.copy()
        x[ok], y[ok] = lon, lat
    return x, y


@dataclass
class RawAddresses:
    """The file's rows as canonical fields (cleaned text, NA when blank) and WGS84 points."""

    fields: pd.DataFrame
    lon: np.ndarray
    lat: np.ndarray
    line: np.ndarray  # CSV line (header = 1) or feature number (from 1)
    original: pd.DataFrame  # the file's own columns, for the rejects file
    problem: np.ndarray  # early rejects (unreadable coordinates): problem key or None
    reason: np.ndarray
    columns: dict[str, str]
    format: str
    encoding: str | None
    crs: str
    unit: str  # "line" | "feature"

    def __len__(self) -> int:
        return len(self.fields)


_BLANKS = re.compile(r"\s+")


def _clean(series: pd.Series) -> pd.Series:
    """NFKC (full-width → half-width), no blanks, NA when empty; done once per distinct value."""
    if pd.api.types.is_float_dtype(series) and (series.dropna() % 1 == 0).all():
        series = series.astype("Int64")
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    cleaned = np.array(
        [_BLANKS.sub("", unicodedata.normalize("NFKC", str(u))) or None for u in uniques] + [None],
        dtype=object,
    )
    return pd.Series(cleaned[codes], index=series.index, dtype=object)


def _numbers(series: pd.Series, header: str) -> tuple[np.ndarray, np.ndarray]:
    """Floats, and per row the reason it has none (None when fine)."""
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64")
    reason = np.full(len(series), None, dtype=object)
    for i in np.flatnonzero(~np.isfinite(values)):
        shown = series.iloc[i]
        shown = "" if pd.isna(shown) else str(shown).strip()
        reason[i] = f"{header} is not a number: {shown!r}" if shown else f"{header} is empty"
    return values, reason


def _read_frame(
    path: Path, encoding: str | None, crs: InputCrs | None
) -> tuple[pd.DataFrame, np.ndarray | None, InputCrs | None, str, str | None]:
    """(attributes, geometries or None, the file's CRS, format, encoding)."""
    kind = sniff(path)
    if kind == "csv":
        frame, used = read_table(path.read_bytes(), path.name, encoding=encoding)
        return frame, None, None, kind, used
    source_crs = crs.label if crs is not None and crs.epsg is not None else None
    if crs is not None and crs.offset is not None:
        source_crs = "EPSG:4326"  # GCJ-02/BD-09 are lon/lat degrees, whatever the file declares
    source = read_source(path, encoding=encoding, source_crs=source_crs)
    frame = source.frame
    geoms = frame.geometry.to_numpy() if frame.geometry.name in frame.columns else None
    attributes = pd.DataFrame(frame.drop(columns=frame.geometry.name)).reset_index(drop=True)
    file_crs = InputCrs(source.source_crs, int(source.source_crs.split(":")[1]))
    return attributes, geoms, file_crs, source.format, source.report.get("encoding")


def read_address_file(
    path: Path, mapping: ColumnMapping | None = None, crs: str | None = None, encoding: str | None = None
) -> RawAddresses:
    """Read and map the columns; coordinates end in WGS84, unreadable ones are early rejects.

    ``crs``: the coordinates' CRS (default: WGS84 for CSV, the declared CRS for vector files);
    ``GCJ-02``/``BD-09`` undo the offsets of Chinese web maps. ``encoding``: ``auto`` detects.
    """
    mapping = mapping or ColumnMapping()
    forced = None if encoding is None or encoding.strip().lower() in ("", "auto") else codec_name(encoding)
    wanted = input_crs(crs)
    frame, geoms, file_crs, fmt, used = _read_frame(path, forced, wanted)
    n = len(frame)
    has_geometry = geoms is not None and bool((~shapely.is_missing(geoms)).any())
    columns = mapping.resolve([str(c) for c in frame.columns], has_geometry=has_geometry)
    problem = np.full(n, None, dtype=object)
    reason = np.full(n, None, dtype=object)
    original = frame  # kept for the rejects file; only vector files add their point columns
    if "lon" in columns and not (has_geometry and "lon" not in mapping.overrides):
        x, x_bad = _numbers(frame[columns["lon"]], columns["lon"])
        y, y_bad = _numbers(frame[columns["lat"]], columns["lat"])
        bad = np.where(pd.isna(x_bad), y_bad, x_bad)
        problem[~pd.isna(bad)] = "bad_coordinates"
        reason[:] = bad
        source_crs = wanted or InputCrs("EPSG:4326", 4326)
    else:
        columns.pop("lon", None)
        columns.pop("lat", None)
        assert geoms is not None
        types = shapely.get_type_id(geoms)
        point = (types == shapely.GeometryType.POINT) & ~shapely.is_empty(geoms)
        x = np.where(point, shapely.get_x(np.where(point, geoms, None)), np.nan)
        y = np.where(point, shapely.get_y(np.where(point, geoms, None)), np.nan)
        missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
        problem[~point] = "bad_coordinates"
        reason[missing] = "the feature has no geometry"
        for i in np.flatnonzero(~point & ~missing):
            reason[i] = f"the geometry is a {geoms[i].geom_type}, not a point"
        original["_x"], original["_y"] = x, y
        source_crs = wanted if wanted is not None and wanted.offset is not None else file_crs
    assert source_crs is not None
    lon, lat = _to_wgs84(np.asarray(x, dtype=float), np.asarray(y, dtype=float), source_crs)
    outside = pd.isna(problem) & ~((np.abs(lon) <= 180) & (np.abs(lat) <= 90))
    problem[outside] = "bad_coordinates"
    for i in np.flatnonzero(outside):
        reason[i] = f"({x[i]:g}, {y[i]:g}) is not longitude, latitude in {source_crs.label}"
    fields = pd.DataFrame(
        {name: _clean(frame[header]) for name, header in columns.items()}, index=frame.index
    )
    first = 2 if fmt == "csv" else 1
    return RawAddresses(
        fields=fields.reset_index(drop=True),
        lon=lon,
        lat=lat,
        line=np.arange(first, n + first, dtype=np.int64),
        original=original.reset_index(drop=True),
        problem=problem,
        reason=reason,
        columns=columns,
        format=fmt,
        encoding=used,
        crs=source_crs.label,
        unit="line" if fmt == "csv" else "feature",
    )
