"""CSV with longitude/latitude columns, as exported from spreadsheets (UTF-8 with or without BOM, or GBK).

Lines are named as a spreadsheet user counts them: 1-based, the header being line 1, blank lines and
the lines of a quoted multi-line cell counted too. A header naming a column twice is refused rather
than renamed (``a.1``): the name is the field's public name, and every other format refuses it too.
Integers beyond 64 bits stay exact as text, with a warning, rather than turning into rounded floats.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from layers.errors import InvalidInput
from layers.ingest.encoding import detect, first_undecodable

LON_NAMES = ("lon", "lng", "long", "longitude", "x", "经度", "东经")
LAT_NAMES = ("lat", "latitude", "y", "纬度", "北纬")
_LEADING_ZERO = re.compile(r"^[+-]?0\d")
_INTEGER = r"\s*[+-]?\d+\s*"


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


def _coordinate(frame: pd.DataFrame, column: str, lines: np.ndarray) -> np.ndarray:
    raw = frame[column]
    values = pd.to_numeric(raw.str.strip(), errors="coerce")
    bad = np.flatnonzero(values.isna().to_numpy())
    if len(bad):
        row = int(bad[0])
        shown = raw.iloc[row]
        what = "is empty" if shown is None or not str(shown).strip() else f"is not a number: {shown!r}"
        line = int(lines[row])
        raise InvalidInput(f"line {line}: {column} {what}", field=column, line=line)
    return values.to_numpy(dtype="float64")


def _typed_noted(series: pd.Series) -> tuple[pd.Series, bool]:
    """``_typed``, and whether integers were kept as text because they do not fit 64 bits."""
    present = series.dropna()
    if present.empty or present.str.match(_LEADING_ZERO).any():
        return series, False
    if present.str.fullmatch(_INTEGER).all():
        numbers = pd.to_numeric(present.str.strip())
        if numbers.dtype != np.int64:  # uint64, or Python ints: beyond a bigint, keep every digit
            return series, True
        out = pd.Series(pd.NA, index=series.index, dtype="Int64")
        out[present.index] = numbers
        return out, False
    numbers = pd.to_numeric(present, errors="coerce")
    if numbers.isna().any():
        return series, False
    numbers = pd.to_numeric(series, errors="coerce")
    if (numbers.dropna() % 1 == 0).all() and numbers.abs().max() < 2**53:
        return numbers.astype("Int64"), False
    return numbers.astype("float64"), False


def _typed(series: pd.Series) -> pd.Series:
    """Numbers become numbers, unless leading zeros say they are codes (postcodes, IDs); integers
    exactly (bigint), those beyond 64 bits stay text."""
    return _typed_noted(series)[0]


def _records(text: str, delimiter: str, label: str) -> tuple[list[str], np.ndarray]:
    """The header, and the line each data record starts on; a record with more or fewer fields
    than the header is refused naming its line (pandas blames the wrong one, or fills NaN)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header: list[str] | None = None
    starts: list[int] = []
    last = 0
    try:
        for row in reader:
            start, last = last + 1, reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank, as pandas skips it
            if header is None:
                header = row
            elif len(row) != len(header):
                raise InvalidInput(
                    f"line {start} of {label} has {len(row)} fields, its header {len(header)}",
                    field="file",
                    line=start,
                )
            else:
                starts.append(start)
    except csv.Error as exc:
        line = reader.line_num
        raise InvalidInput(
            f"cannot parse {label} as CSV: line {line}: {exc}", field="file", line=line
        ) from exc
    return header or [], np.asarray(starts, dtype=np.int64)


def _check_header(header: list[str], label: str) -> None:
    names = [h.strip() for h in header]
    if "" in names:
        raise InvalidInput(f"{label} has a column without a name in its header", field="file", line=1)
    twice = [n for n, count in Counter(names).items() if count > 1]
    if twice:
        where = [i + 1 for i, n in enumerate(names) if n == twice[0]]
        raise InvalidInput(
            f"{label} names the column {twice[0]!r} more than once in its header (columns "
            f"{', '.join(map(str, where))}); rename the copies, field names must be unique",
            field=twice[0],
            line=1,
        )


def read_table_lines(
    data: bytes, label: str, *, encoding: str | None
) -> tuple[pd.DataFrame, str, np.ndarray]:
    """``read_table``, and the line (1-based, header = 1) each row starts on."""
    text, encoding = decode_csv(data, encoding)
    sample = text[:8192]
    delimiter = "\t" if sample.count("\t") > sample.count(",") else ","
    header, lines = _records(text, delimiter, label)
    _check_header(header, label)
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
    if len(lines) != len(frame):  # the two parsers disagree on an odd file: count rows as lines
        lines = np.arange(2, len(frame) + 2, dtype=np.int64)
    return frame, encoding, lines


def read_table(data: bytes, label: str, *, encoding: str | None) -> tuple[pd.DataFrame, str]:
    """A CSV (comma or tab, encoding detected) as strings; the header must name every column once."""
    frame, encoding, _ = read_table_lines(data, label, encoding=encoding)
    return frame, encoding


def read_csv(
    data: bytes, label: str, *, encoding: str | None, lon_column: str | None, lat_column: str | None
) -> tuple[gpd.GeoDataFrame, str, list[dict[str, Any]]]:
    """The points, the encoding used, and warnings for the publish report."""
    frame, encoding, lines = read_table_lines(data, label, encoding=encoding)
    columns = list(frame.columns)
    lon = _pick(columns, lon_column, LON_NAMES, "lon_column")
    lat = _pick(columns, lat_column, LAT_NAMES, "lat_column")
    x = _coordinate(frame, lon, lines)
    y = _coordinate(frame, lat, lines)
    typed = {name: _typed_noted(frame[name]) for name in columns}
    attributes = pd.DataFrame({name: series for name, (series, _) in typed.items()}, index=frame.index)
    wide = [name for name, (_, kept) in typed.items() if kept]
    warnings = []
    if wide:
        warnings.append(
            {
                "code": "integers_kept_as_text",
                "fields": wide,
                "detail": f"{', '.join(wide)} hold integers beyond 64 bits (a bigint): kept exactly, as text",
            }
        )
    return gpd.GeoDataFrame(attributes, geometry=shapely.points(x, y)), encoding, warnings
