"""CSV with longitude/latitude columns, as exported from spreadsheets (UTF-8 with or without BOM, or GBK)."""

from __future__ import annotations

import io
import re

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from layers.errors import InvalidInput
from layers.ingest.encoding import detect, first_undecodable

LON_NAMES = ("lon", "lng", "long", "longitude", "x", "经度", "东经")
LAT_NAMES = ("lat", "latitude", "y", "纬度", "北纬")
_LEADING_ZERO = re.compile(r"^[+-]?0\d")


def decode_csv(data: bytes, encoding: str | None) -> tuple[str, str]:
    """Decode strictly; a forced encoding that fails names the line of the first bad byte."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
        encoding = encoding or "utf-8"
    lines = data.split(b"\n")
    if encoding:
        bad = first_undecodable(lines, encoding)
        if bad is not None:
            raise InvalidInput(f"line {bad + 1} is not valid {encoding} text", field="encoding", line=bad + 1)
    else:
        encoding = detect(lines)
    return data.decode(encoding), encoding


def _pick(columns: list[str], given: str | None, names: tuple[str, ...], option: str) -> str:
    if given is not None:
        if given not in columns:
            raise InvalidInput(f"the CSV has no column {given!r}", field=option)
        return given
    lowered = {c.strip().lower(): c for c in columns}
    for name in names:
        if name in lowered:
            return lowered[name]
    raise InvalidInput(
        f"cannot find the {option.split('_')[0]} column among {columns[:20]}; pass {option}=", field=option
    )


def _coordinate(frame: pd.DataFrame, column: str, option: str) -> np.ndarray:
    raw = frame[column]
    values = pd.to_numeric(raw.str.strip(), errors="coerce")
    bad = np.flatnonzero(values.isna().to_numpy())
    if len(bad):
        row = int(bad[0])
        shown = raw.iloc[row]
        what = "is empty" if shown is None or not str(shown).strip() else f"is not a number: {shown!r}"
        raise InvalidInput(f"line {row + 2}: {column} {what}", field=column, line=row + 2)
    return values.to_numpy(dtype="float64")


def _typed(series: pd.Series) -> pd.Series:
    """Numbers become numbers, unless leading zeros say they are codes (postcodes, IDs)."""
    present = series.dropna()
    if present.empty or present.str.match(_LEADING_ZERO).any():
        return series
    numbers = pd.to_numeric(present, errors="coerce")
    if numbers.isna().any():
        return series
    numbers = pd.to_numeric(series, errors="coerce")
    if (numbers.dropna() % 1 == 0).all() and numbers.abs().max() < 2**53:
        return numbers.astype("Int64")
    return numbers.astype("float64")


def read_table(data: bytes, label: str, *, encoding: str | None) -> tuple[pd.DataFrame, str]:
    """A CSV (comma or tab, encoding detected) as strings; the header must name every column."""
    text, encoding = decode_csv(data, encoding)
    sample = text[:8192]
    delimiter = "\t" if sample.count("\t") > sample.count(",") else ","
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            sep=delimiter,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            skip_blank_lines=True,
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise InvalidInput(f"cannot parse {label} as CSV: {exc}", field="file") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    unnamed = [c for c in frame.columns if not c or c.startswith("Unnamed: ")]
    if unnamed:
        raise InvalidInput(f"{label} has a column without a name in its header", field="file", line=1)
    return frame, encoding


def read_csv(
    data: bytes, label: str, *, encoding: str | None, lon_column: str | None, lat_column: str | None
) -> tuple[gpd.GeoDataFrame, str]:
    frame, encoding = read_table(data, label, encoding=encoding)
    columns = list(frame.columns)
    lon = _pick(columns, lon_column, LON_NAMES, "lon_column")
    lat = _pick(columns, lat_column, LAT_NAMES, "lat_column")
    x = _coordinate(frame, lon, "lon_column")
    y = _coordinate(frame, lat, "lat_column")
    attributes = frame.apply(_typed)
    return gpd.GeoDataFrame(attributes, geometry=shapely.points(x, y)), encoding
