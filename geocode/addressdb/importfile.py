"""Importing a city's address file (CSV or GeoPackage of address points) as the address database.

One row per door address or building. Each row is checked and resolved to its divisions (codes,
else names under its district, else the point's location), road, compound and building; rows
that cannot be placed are rejected with their line number (CSV: the header is line 1) or feature
number (vector files, from 1) and a reason, everything else becomes the five ``addr`` tables.
Roads, compounds and buildings are derived from the address points themselves, since an address
register carries no road centrelines: a road is the principal axis through its points, a
compound the hull of its points, a building a small square.

All work is column-wise (pandas, numpy, shapely); Python loops run over roads or divisions,
never rows. Codes come from stable identifiers (road codes from a hash of the road name), so a
re-import of the same file in any row order gives the same address codes. Writing goes through
:func:`replace_address_database` in the caller's transaction: all or nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import unicodedata
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer
from sqlalchemy import Connection, text

from geocode.addressdb.codes import address_codes
from geocode.addressdb.columns import ColumnMapping
from geocode.addressdb.load import ADDRESSES, BUILDINGS, COMPOUNDS, ROADS, replace_address_database
from geocode.addressdb.steps import Progress, Steps
from geocode.gazetteer import DISTRICT, default_gazetteer
from geocode.normalize import cn_to_int
from layers.crs import bd09_to_wgs84, gcj02_to_wgs84
from layers.errors import InvalidInput
from layers.ingest import read_source
from layers.ingest.crs import epsg_code, parse_crs
from layers.ingest.encoding import codec_name
from layers.ingest.sniff import sniff
from layers.ingest.tabular import read_table

"""(event "start" | "done", step name), as ``geoshare demo load`` reports its steps."""

CONTRADICTION_M = 500.0  # a named district this far from the point is wrong (or the point is)
COMPOUND_BUFFER_M = 15.0
BUILDING_HALF_M = 5.0
MIN_ROAD_M = 20.0
IMPORT_KEY = "addressdb_import"  # gs.setting: where the current address database came from
LOCK_KEY = "geoshare demo load"  # the advisory lock ``demo load`` takes: both replace ``addr``


# --- input coordinate systems ---------------------------------------------------------------


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


# --- reading --------------------------------------------------------------------------------


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


# --- verdicts ---------------------------------------------------------------------------------

Reasons = str | np.ndarray | Callable[[np.ndarray], list[str]]


class Verdicts:
    """Per row: the first problem found (rows without one are accepted) and its reason."""

    def __init__(self, problem: np.ndarray, reason: np.ndarray) -> None:
        self.problem = problem.copy()
        self.reason = reason.copy()

    @property
    def ok(self) -> np.ndarray:
        return pd.isna(self.problem)

    def reject(self, mask: np.ndarray, problem: str, reason: Reasons) -> None:
        """Reject rows in ``mask`` not rejected yet; a callable builds reasons for just those rows."""
        rows = np.flatnonzero(np.asarray(mask, dtype=bool) & self.ok)
        if not len(rows):
            return
        self.problem[rows] = problem
        if callable(reason):
            self.reason[rows] = np.array(reason(rows), dtype=object)
        elif isinstance(reason, np.ndarray):  # one reason per row of the file
            self.reason[rows] = reason[rows]
        else:
            self.reason[rows] = reason


# --- doors and buildings ------------------------------------------------------------------------

_NUMERAL = r"\d+|[零〇○一二两三四五六七八九十百千]+"
_DOOR_RE = re.compile(
    rf"^(?P<pre>[甲乙丙丁戊])?(?P<num>{_NUMERAL})(?:(?P<sep>[-之])(?P<sub>\d+))?(?P<post>[甲乙丙丁戊])?号?院?$"
)
_BUILDING_RE = re.compile(rf"^第?(?P<num>{_NUMERAL})(?:号楼|号|栋|幢|座|#|楼)?$")
_DASHES = str.maketrans({"—": "-", "–": "-", "‐": "-", "－": "-", "~": "-", "號": "号"})
_STEMS = ("甲", "乙", "丙", "丁", "戊")


def _to_int(text: str | None) -> int | None:
    if not text:
        return None
    return int(text) if text.isdigit() else cn_to_int(text)


def _parse_door(value: str) -> tuple[int | None, str, str | None, str | None]:
    m = _DOOR_RE.match(value.translate(_DASHES))
    number = _to_int(m["num"]) if m else None
    if m is None or number is None or (m["pre"] and m["post"]):
        return None, "", "no_door_number", f"no usable door number in {value!r}"
    if not 1 <= number <= 9999:
        return None, "", "door_number_out_of_range", f"door number {number} is outside 1..9999"
    suffix = m["pre"] or m["post"] or ""
    if m["sep"]:
        sub = int(m["sub"])
        if suffix or not 1 <= sub <= 9:
            return None, "", "unsupported_door_suffix", f"door suffix in {value!r} is not supported"
        suffix = f"{m['sep']}{sub}"
    return number, suffix, None, None


def _parse_building(value: str) -> tuple[int | None, str | None, str | None]:
    m = _BUILDING_RE.match(value)
    number = _to_int(m["num"]) if m else None
    if number is None:
        return None, "bad_building_number", f"no usable building number in {value!r}"
    if not 1 <= number <= 999:
        return None, "bad_building_number", f"building number {number} is outside 1..999"
    return number, None, None


def _per_distinct(
    values: pd.Series, parse: Callable[[str], tuple], blank: tuple, columns: list[str]
) -> pd.DataFrame:
    """Parse each distinct value once (a city has far fewer distinct doors than rows)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    table = pd.DataFrame([parse(str(u)) for u in uniques] + [blank], columns=columns)
    out = table.iloc[codes].reset_index(drop=True)
    out.index = values.index
    return out


def parse_doors(doors: pd.Series) -> pd.DataFrame:
    """ "甲12号" → (12, "甲"), "12-1号" → (12, "-1"), "12" → (12, ""); else a problem and reason."""
    blank = (None, "", "no_door_number", "the door number is empty")
    return _per_distinct(doors, _parse_door, blank, ["number", "suffix", "problem", "reason"])


def parse_buildings(buildings: pd.Series) -> pd.DataFrame:
    """ "3号楼", "3栋", "3", "三号楼" → 3; blank → NA (a door address); else a problem and reason."""
    return _per_distinct(buildings, _parse_building, (None, None, None), ["number", "problem", "reason"])


def door_text(number: np.ndarray, suffix: np.ndarray) -> np.ndarray:
    """The door as addresses write it: 12号, 甲12号, 12-1号, 12之1号."""
    n = np.asarray(number, dtype=np.int64).astype(str).astype(object)
    s = np.asarray(suffix, dtype=object)
    return np.where(np.isin(s, _STEMS), s + n + "号", n + s + "号")


# --- divisions --------------------------------------------------------------------------------

_SUFFIXES = {
    3: re.compile(r"(?<=..)(?:新区|区|县|市|旗)$"),
    4: re.compile(
        r"(?<=..)(?:街道办事处|街道办|街道|地区办事处|地区|镇人民政府|镇政府|镇|民族乡|乡人民政府|乡政府|乡|办事处)$"
    ),
    5: re.compile(
        r"(?<=..)(?:社区居民委员会|社区居委会|村村民委员会|村民委员会|村村委会|村委会|居民委员会|居委会|委员会|社区|村)$"
    ),
}
_PROVINCE_SUFFIX = re.compile(r"(?<=..)(?:省|市|自治区|特别行政区)$")


def name_key(value: str, level: int) -> str:
    """将台地区/将台街道/将台 → 将台; 多福巷社区居委会/多福巷社区/多福巷 → 多福巷; 朝阳区 → 朝阳.

    NFKC and no blanks, as the file's values: （集团） in the division table matches (集团).
    """
    value = _BLANKS.sub("", unicodedata.normalize("NFKC", value))
    return _SUFFIXES.get(level, _PROVINCE_SUFFIX).sub("", value)


def _keys(values: pd.Series, level: int, prefixes: tuple[str, ...] = ()) -> np.ndarray:
    """Name keys, once per distinct value; leading ``prefixes`` (北京市) are dropped first."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)

    def key(value: str) -> str:
        for prefix in prefixes:
            if value.startswith(prefix) and len(value) > len(prefix) + 1:
                value = value[len(prefix) :]
        return name_key(value, level)

    return np.array([key(str(u)) for u in uniques] + [None], dtype=object)[codes]


def utm_crs(lon: float, lat: float) -> str:
    """The UTM zone of a place: metres for hulls, buffers and road axes (Beijing: EPSG:32650)."""
    zone = int((lon + 180) // 6) % 60 + 1
    return f"EPSG:{(32600 if lat >= 0 else 32700) + zone}"


def _transform(geoms: np.ndarray, transformer: Transformer) -> np.ndarray:
    def move(xy: np.ndarray) -> np.ndarray:
        return np.column_stack(transformer.transform(xy[:, 0], xy[:, 1]))

    return shapely.transform(geoms, move)


class DivisionIndex:
    """The database's divisions in metres, with name keys, for column-wise lookups.

    Divisions are referred to by position (row in ``frame``); -1 means none.
    """

    def __init__(self, divisions: gpd.GeoDataFrame, utm: str) -> None:
        d = divisions.reset_index(drop=True)
        self.code = d["code"].astype(str).to_numpy(dtype=object)
        self.level = d["level"].astype(int).to_numpy()
        self.name = d["name"].astype(str).to_numpy(dtype=object)
        self.short = d["short_name"].astype(str).to_numpy(dtype=object)
        self._codes = pd.Index(self.code)
        self.parent = self.position(d["parent_code"].to_numpy(dtype=object))
        self.geom = _transform(d.geometry.to_numpy(), Transformer.from_crs(4326, utm, always_xy=True))
        self.has_geom = ~shapely.is_missing(self.geom)
        self._children: dict[int, tuple[np.ndarray, shapely.STRtree]] = {}
        self.names = self._child_names()
        self.districts = self._district_names()
        tops = [self.name[self.level == lv] for lv in (1, 2)]
        if not len(tops[0]) or not len(tops[1]):
            raise InvalidInput(
                "the division table has no province and city rows (levels 1, 2)", field="divisions"
            )
        self.province, self.city = str(tops[0][0]), str(tops[1][0])

    def position(self, codes: np.ndarray) -> np.ndarray:
        return self._codes.get_indexer(pd.Index(codes, dtype=object)).astype(np.int64)

    def _child_names(self) -> pd.DataFrame:
        """(parent position, name key) → position, for streets (4) and communities (5)."""
        frames = []
        for level in (4, 5):
            at = np.flatnonzero(self.level == level)
            for names in (self.name[at], self.short[at]):
                keys = [name_key(v, level) for v in names]
                frames.append(
                    pd.DataFrame({"level": level, "parent": self.parent[at], "key": keys, "pos": at})
                )
        return pd.concat(frames, ignore_index=True).drop_duplicates()

    def _district_names(self) -> pd.DataFrame:
        """Every name a district goes by: current, short (朝阳), former (崇文区; via the gazetteer,
        which reads ``beijing_renames.csv`` and ``division_renames_jionlp.txt``)."""
        at = np.flatnonzero(self.level == 3)
        known = dict(zip(self.code[at], at, strict=True))
        keys = [(name_key(v, 3), p) for v, p in zip(self.name[at], at, strict=True)]
        for alias, entries in default_gazetteer().aliases.items():
            for entry in entries:
                if entry.place.level == DISTRICT and entry.place.code in known:
                    keys.append((name_key(alias, 3), known[entry.place.code]))
        return pd.DataFrame(keys, columns=["key", "pos"]).drop_duplicates()

    def locate(self, pts: np.ndarray) -> np.ndarray:
        """The finest division containing each point (communities first, then streets, districts)."""
        found = np.full(len(pts), -1, dtype=np.int64)
        if not len(pts):
            return found
        tree = shapely.STRtree(pts)  # a tree over the points: each polygon is prepared once
        for level in (5, 4, 3):
            at = np.flatnonzero((self.level == level) & self.has_geom)
            todo = found < 0
            if not todo.any() or not len(at):
                continue
            polys, hits = tree.query(self.geom[at], predicate="intersects")
            keep = todo[hits]
            polys, hits = polys[keep], hits[keep]
            order = np.lexsort((at[polys], hits))  # on a shared border the smaller code wins
            hits, pos = hits[order], at[polys][order]
            first = np.unique(hits, return_index=True)[1]
            found[hits[first]] = pos[first]
        return found

    def ancestor(self, pos: np.ndarray, level: int) -> np.ndarray:
        """The ancestor (or self) at ``level`` of each position; -1 when there is none."""
        out = np.asarray(pos, dtype=np.int64).copy()
        for _ in range(5):
            deeper = (out >= 0) & (self.level[np.maximum(out, 0)] > level)
            if not deeper.any():
                break
            out[deeper] = self.parent[out[deeper]]
        out[(out >= 0) & (self.level[np.maximum(out, 0)] != level)] = -1
        return out

    def nearest_child(self, parent: np.ndarray, pts: np.ndarray) -> np.ndarray:
        """For each row with a parent (≥ 0): the parent's child nearest to its point; -1 if none."""
        out = np.full(len(parent), -1, dtype=np.int64)
        for p in np.unique(parent[parent >= 0]):
            if p not in self._children:
                kids = np.flatnonzero((self.parent == p) & self.has_geom)
                self._children[p] = (kids, shapely.STRtree(self.geom[kids]))
            kids, tree = self._children[p]
            if len(kids):
                rows = np.flatnonzero(parent == p)
                got = tree.query_nearest(pts[rows], all_matches=False)
                out[rows[got[0]]] = kids[got[1]]
        return out

    def pick(self, rows: np.ndarray, candidates: np.ndarray, pts: np.ndarray, n: int) -> np.ndarray:
        """(row, candidate) pairs → per row the candidate nearest its point (a name shared by two
        communities of one street, say); -1 for rows without a candidate."""
        out = np.full(n, -1, dtype=np.int64)
        if not len(rows):
            return out
        pairs = pd.DataFrame({"row": rows, "pos": candidates}).drop_duplicates()
        multi = pairs["row"].duplicated(keep=False).to_numpy()
        pairs["d"] = 0.0
        if multi.any():
            r, p = pairs["row"].to_numpy()[multi], pairs["pos"].to_numpy()[multi]
            far = shapely.distance(pts[r], self.geom[p])
            pairs.loc[multi, "d"] = np.nan_to_num(far, nan=np.inf)
        best = pairs.sort_values(["row", "d", "pos"]).drop_duplicates("row")
        out[best["row"].to_numpy()] = best["pos"].to_numpy()
        return out

    def by_name(
        self, need: np.ndarray, values: pd.Series, level: int, parent: np.ndarray, pts: np.ndarray
    ) -> np.ndarray:
        """Positions for the rows in ``need`` whose name (at ``level``) is known under ``parent``."""
        rows = np.flatnonzero(need)
        keys = _keys(values.iloc[rows], level, (self.province, self.city))
        if level == 3:
            found = pd.DataFrame({"row": rows, "key": keys}).merge(self.districts, on="key")
        else:
            table = self.names[self.names["level"] == level]
            asked = pd.DataFrame({"row": rows, "parent": parent[rows], "key": keys})
            found = asked.merge(table, on=["parent", "key"])
        return self.pick(found["row"].to_numpy(), found["pos"].to_numpy(), pts, len(parent))


@dataclass
class Placed:
    """Division positions per row (-1 for rejected rows)."""

    district: np.ndarray
    street: np.ndarray
    community: np.ndarray


_CODE_DIGITS = {"community_code": 12, "street_code": 9, "district_code": 6}


def _code_values(values: pd.Series, digits: int) -> np.ndarray:
    """Codes as the division table has them: 110101000000 (NBS 12-digit form) → 110101."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    short = [u[:digits] if len(u) == 12 and set(u[digits:]) <= {"0"} else u for u in map(str, uniques)]
    return np.array([*short, None], dtype=object)[codes]


def _apply_codes(fields: pd.DataFrame, index: DivisionIndex, verdicts: Verdicts) -> np.ndarray:
    """Division codes given in the file: the finest coded position per row (-1: none); codes
    must exist at their level and agree with each other."""
    finest = np.full(len(fields), -1, dtype=np.int64)
    for col, level in (("community_code", 5), ("street_code", 4), ("district_code", 3)):
        if col not in fields:
            continue
        values = _code_values(fields[col], _CODE_DIGITS[col])
        given = verdicts.ok & fields[col].notna().to_numpy()
        pos = index.position(values)
        bad = given & ((pos < 0) | (index.level[np.maximum(pos, 0)] != level))
        verdicts.reject(
            bad, "unknown_division", lambda i, c=col, v=values: [f"unknown {c} {v[j]!r}" for j in i]
        )
        clash = given & (finest >= 0) & (index.ancestor(finest, level) != pos)
        verdicts.reject(
            clash,
            "unknown_division",
            lambda i, c=col, v=values: [
                f"{c} {v[j]!r} disagrees with the row's finer division code" for j in i
            ],
        )
        take = verdicts.ok & given & (finest < 0)
        finest[take] = pos[take]
    return finest


def resolve_divisions(
    fields: pd.DataFrame, pts: np.ndarray, index: DivisionIndex, verdicts: Verdicts
) -> Placed:
    """Codes, else names (suffix-tolerant, under the row's district), else the point's location.

    A district given by code or name must agree with the location: a point farther than
    ``CONTRADICTION_M`` outside it is rejected (one of the two is wrong).
    """
    n = len(fields)
    coded = _apply_codes(fields, index, verdicts)
    district = index.ancestor(coded, 3)
    if "district" in fields:
        need = verdicts.ok & (district < 0) & fields["district"].notna().to_numpy()
        found = index.by_name(need, fields["district"], 3, district, pts)
        values = fields["district"].to_numpy(dtype=object)
        verdicts.reject(
            need & (found < 0), "unknown_division", lambda i: [f"unknown district {values[j]!r}" for j in i]
        )
        district = np.where(need & (found >= 0), found, district)
    given = district >= 0

    location = np.full(n, -1, dtype=np.int64)
    live = verdicts.ok
    location[live] = index.locate(pts[live])
    here = index.ancestor(location, 3)
    verdicts.reject(~given & (here < 0), "outside_city", "the point is outside the city's divisions")
    check = verdicts.ok & given & (here != district)
    if check.any():
        far = np.zeros(n)
        far[check] = shapely.distance(pts[check], index.geom[district[check]])

        def contradiction(rows: np.ndarray) -> list[str]:
            return [
                f"{'district code' if coded[j] >= 0 else 'district'} {index.name[district[j]]} contradicts "
                f"the location: the point is {far[j] / 1000:.1f} km outside it "
                f"({index.name[here[j]] if here[j] >= 0 else 'outside the city'})"
                for j in rows
            ]

        verdicts.reject(check & (far > CONTRADICTION_M), "district_contradicts_location", contradiction)
    district = np.where(given, district, here)

    street = index.ancestor(coded, 4)
    if "street" in fields:
        need = verdicts.ok & (street < 0) & fields["street"].notna().to_numpy()
        found = index.by_name(need, fields["street"], 4, district, pts)
        values = fields["street"].to_numpy(dtype=object)
        verdicts.reject(
            need & (found < 0),
            "unknown_division",
            lambda i: [f"unknown street/town {values[j]!r} in {index.name[district[j]]}" for j in i],
        )
        street = np.where(need & (found >= 0), found, street)
    street = _fill(street, index.ancestor(location, 4), district, index, pts, verdicts)
    verdicts.reject(verdicts.ok & (street < 0), "no_street", "the district has no street/town boundaries")

    community = index.ancestor(coded, 5)
    if "community" in fields:
        need = verdicts.ok & (community < 0) & fields["community"].notna().to_numpy()
        found = index.by_name(need, fields["community"], 5, street, pts)
        values = fields["community"].to_numpy(dtype=object)
        verdicts.reject(
            need & (found < 0),
            "unknown_division",
            lambda i: [f"unknown community/village {values[j]!r} in {index.name[street[j]]}" for j in i],
        )
        community = np.where(need & (found >= 0), found, community)
    community = _fill(community, index.ancestor(location, 5), street, index, pts, verdicts)
    verdicts.reject(verdicts.ok & (community < 0), "no_community", "the street/town has no communities")

    ok = verdicts.ok
    return Placed(
        district=np.where(ok, index.ancestor(community, 3), -1),
        street=np.where(ok, index.ancestor(community, 4), -1),
        community=np.where(ok, community, -1),
    )


def _fill(
    current: np.ndarray,
    located: np.ndarray,
    parent: np.ndarray,
    index: DivisionIndex,
    pts: np.ndarray,
    verdicts: Verdicts,
) -> np.ndarray:
    """Unresolved rows take the division containing their point if it lies under ``parent``,
    else ``parent``'s child nearest to the point (a door a few metres across a border)."""
    need = verdicts.ok & (current < 0)
    fits = need & (located >= 0) & (index.parent[np.maximum(located, 0)] == parent)
    out = np.where(fits, located, current)
    rest = need & ~fits
    if rest.any():
        out = np.where(rest, index.nearest_child(np.where(rest, parent, -1), pts), out)
    return out


# --- roads --------------------------------------------------------------------------------------


def _name_slot(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest(), "big") % 9999 + 1


def road_codes(district: np.ndarray, name: np.ndarray) -> np.ndarray:
    """4-digit road codes, unique per district and stable: the name's hash slot, and on a collision
    the next free slot, taken in (slot, name) order. The same set of roads always gets the same
    codes, whatever the row order. Unique per district (not only per street) so that community
    code + road code names one road."""
    roads = pd.DataFrame({"district": district, "name": name})
    roads["slot"] = [_name_slot(n) for n in roads["name"]]
    codes = np.empty(len(roads), dtype=object)
    for code, group in roads.sort_values(["district", "slot", "name"]).groupby("district", sort=False):
        if len(group) > 9999:
            raise InvalidInput(
                f"district {code} has more than 9,999 roads; road codes have 4 digits", field="road"
            )
        used: set[int] = set()
        for i, slot in zip(group.index, group["slot"], strict=True):
            while slot in used:
                slot = slot % 9999 + 1
            used.add(slot)
            codes[i] = f"{slot:04d}"
    return codes


@dataclass
class RoadAxes:
    lines: np.ndarray  # LineStrings in metres
    length: np.ndarray
    position: np.ndarray  # per address, 0..1 along its road


def road_axes(road: np.ndarray, x: np.ndarray, y: np.ndarray, door: np.ndarray) -> RoadAxes:
    """Each road as the principal axis through its points, spanning their projections, pointing
    the way door numbers grow; roads shorter than ``MIN_ROAD_M`` are stretched to it."""
    count = np.bincount(road).astype(float)
    cx, cy = np.bincount(road, x) / count, np.bincount(road, y) / count
    dx, dy = x - cx[road], y - cy[road]
    sxx, syy, sxy = np.bincount(road, dx * dx), np.bincount(road, dy * dy), np.bincount(road, dx * dy)
    theta = 0.5 * np.arctan2(2 * sxy, sxx - syy)
    ux, uy = np.cos(theta), np.sin(theta)
    t = dx * ux[road] + dy * uy[road]
    growth = np.bincount(road, t * (door - (np.bincount(road, door) / count)[road]))
    sign = np.where(growth < 0, -1.0, 1.0)
    ux, uy, t = ux * sign, uy * sign, t * sign[road]
    grouped = pd.Series(t).groupby(road)
    lo, hi = grouped.min().to_numpy(), grouped.max().to_numpy()
    short = hi - lo < MIN_ROAD_M
    mid = (lo + hi) / 2
    lo, hi = np.where(short, mid - MIN_ROAD_M / 2, lo), np.where(short, mid + MIN_ROAD_M / 2, hi)
    ends = np.stack(
        [np.column_stack([cx + lo * ux, cy + lo * uy]), np.column_stack([cx + hi * ux, cy + hi * uy])], axis=1
    )
    position = np.clip((t - lo[road]) / (hi - lo)[road], 0.0, 1.0)
    return RoadAxes(shapely.linestrings(ends), hi - lo, position)


# --- tables ---------------------------------------------------------------------------------------


def _check_rows(raw: RawAddresses, index: DivisionIndex, verdicts: Verdicts) -> pd.DataFrame:
    """Province/city, door, building and road of every row: the parsed values, rejects noted."""
    f, n = raw.fields, len(raw)
    for col, own in (("province", (index.province,)), ("city", (index.city, index.province, "市辖区"))):
        if col in f:
            keys = _keys(f[col], 1)
            fine = {name_key(o, 1) for o in own}
            wrong = f[col].notna().to_numpy() & ~np.isin(keys, list(fine))
            values = f[col].to_numpy(dtype=object)
            verdicts.reject(
                wrong,
                "wrong_city",
                lambda i, c=col, v=values, o=own[0]: [f"{c} {v[j]!r} is not {o}" for j in i],
            )
    doors = parse_doors(f["door"])
    if "building" in f:
        buildings = parse_buildings(f["building"])
    else:
        buildings = pd.DataFrame({"number": [None] * n, "problem": None, "reason": None})
    for parsed in (doors, buildings):
        problems = parsed["problem"].to_numpy(dtype=object)
        for problem in pd.unique(problems[~pd.isna(problems)]):
            verdicts.reject(problems == problem, str(problem), parsed["reason"].to_numpy(dtype=object))
    verdicts.reject(f["road"].isna().to_numpy(), "no_road", "the road is empty")
    out = pd.DataFrame(
        {
            "door_number": pd.array(doors["number"].to_numpy(), dtype="Int64"),
            "door_suffix": doors["suffix"].to_numpy(dtype=object),
            "building_number": pd.array(buildings["number"].to_numpy(), dtype="Int64"),
        }
    )
    for col in ("units", "floors"):
        values = pd.to_numeric(f[col], errors="coerce") if col in f else pd.Series(np.nan, index=f.index)
        values = values.where((values > 0) & (values % 1 == 0) & (values < 1000))
        out[col] = values.astype("Int64").to_numpy()
    return out


def _reject_duplicates(codes: np.ndarray, rows: np.ndarray, raw: RawAddresses, verdicts: Verdicts) -> None:
    series = pd.Series(codes)
    dup = series.duplicated().to_numpy()
    if dup.any():
        first = pd.Series(raw.line[rows]).groupby(series).transform("first").to_numpy()
        mask = np.zeros(len(raw), dtype=bool)
        mask[rows[dup]] = True
        at = {r: i for i, r in enumerate(rows)}
        verdicts.reject(mask, "duplicate", lambda i: [f"duplicate of {raw.unit} {first[at[j]]}" for j in i])


def _wgs84_frame(frame: pd.DataFrame, geoms: np.ndarray, back: Transformer) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(frame, geometry=_transform(geoms, back), crs=4326).rename_geometry("geom")


def _no_tables() -> dict[str, gpd.GeoDataFrame]:
    """Empty frames (nothing accepted): the import is refused, but the report still has counts."""
    return {
        key: gpd.GeoDataFrame({c: [] for c in spec.columns if c != "geom"}, geometry=[], crs=4326)
        for key, spec in (
            ("roads", ROADS),
            ("compounds", COMPOUNDS),
            ("buildings", BUILDINGS),
            ("addresses", ADDRESSES),
        )
    }


def build_tables(
    raw: RawAddresses, divisions: gpd.GeoDataFrame, progress: Progress | None = None
) -> tuple[dict[str, gpd.GeoDataFrame], pd.DataFrame]:
    """The five frames for :func:`replace_address_database` (divisions passed through unchanged)
    and the rejected rows (``line``, ``problem``, ``reason`` and the row's original values)."""
    steps = Steps(progress)
    if divisions.empty:
        raise InvalidInput("the address database has no divisions to place addresses in", field="divisions")
    minx, miny, maxx, maxy = divisions.total_bounds
    utm = utm_crs((minx + maxx) / 2, (miny + maxy) / 2)
    to_utm = Transformer.from_crs(4326, utm, always_xy=True)
    back = Transformer.from_crs(utm, 4326, always_xy=True)
    with steps.step("place rows in divisions"):
        index = DivisionIndex(divisions, utm)
        verdicts = Verdicts(raw.problem, raw.reason)
        parsed = _check_rows(raw, index, verdicts)
        x, y = to_utm.transform(raw.lon, raw.lat)
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        pts = np.full(len(raw), None, dtype=object)
        finite = np.isfinite(x) & np.isfinite(y)
        pts[finite] = shapely.points(x[finite], y[finite])
        placed = resolve_divisions(raw.fields, pts, index, verdicts)

    rows = np.flatnonzero(verdicts.ok)
    tables = _no_tables()
    if len(rows):
        with steps.step("address codes"):
            district_code = index.code[placed.district[rows]]
            road_name = raw.fields["road"].to_numpy(dtype=object)[rows]
            road_ix, road_keys = pd.factorize(pd.Series(district_code + "\x1f" + road_name), sort=True)
            unique_district = np.array([k.split("\x1f", 1)[0] for k in road_keys], dtype=object)
            unique_name = np.array([k.split("\x1f", 1)[1] for k in road_keys], dtype=object)
            code_of_road = road_codes(unique_district, unique_name)
            p = parsed.iloc[rows]
            codes = address_codes(
                pd.Series(index.code[placed.community[rows]]),
                pd.Series(code_of_road[road_ix]),
                p["door_number"].to_numpy(dtype=np.int64),
                p["door_suffix"].reset_index(drop=True),
                p["building_number"].reset_index(drop=True),
            )
            _reject_duplicates(codes, rows, raw, verdicts)

        with steps.step("roads, compounds and buildings"):
            keep = verdicts.ok[rows]
            rows, codes, road_ix = rows[keep], codes[keep], road_ix[keep]
            tables = _assemble(
                raw,
                index,
                parsed.iloc[rows].reset_index(drop=True),
                placed,
                rows,
                codes,
                road_ix,
                (unique_district, unique_name, code_of_road),
                x[rows],
                y[rows],
                back,
            )
    tables["divisions"] = divisions
    bad = np.flatnonzero(~verdicts.ok)
    rejects = pd.DataFrame(
        {"line": raw.line[bad], "problem": verdicts.problem[bad], "reason": verdicts.reason[bad]}
    )
    original = raw.original.iloc[bad].reset_index(drop=True)
    original.columns = [c if c not in rejects.columns else f"{c} (file)" for c in original.columns]
    return tables, pd.concat([rejects, original], axis=1)


def _assemble(
    raw: RawAddresses,
    index: DivisionIndex,
    p: pd.DataFrame,
    placed: Placed,
    rows: np.ndarray,
    codes: np.ndarray,
    road_ix: np.ndarray,
    roads_found: tuple[np.ndarray, np.ndarray, np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    back: Transformer,
) -> dict[str, gpd.GeoDataFrame]:
    f = raw.fields.iloc[rows].reset_index(drop=True)
    community, street, district = placed.community[rows], placed.street[rows], placed.district[rows]
    door = p["door_number"].to_numpy(dtype=np.int64)
    suffix = p["door_suffix"].to_numpy(dtype=object)

    # roads: only those with an accepted row, renumbered 0..R-1
    used, road_ix = np.unique(road_ix, return_inverse=True)
    unique_district, unique_name, code_of_road = (a[used] for a in roads_found)
    axes = road_axes(road_ix, x, y, door.astype(float))
    votes = pd.DataFrame({"road": road_ix, "street": index.code[street]}).value_counts().reset_index(name="n")
    votes = votes.sort_values(["road", "n", "street"], ascending=[True, False, True]).drop_duplicates("road")
    road_street = votes.sort_values("road")["street"].to_numpy(dtype=object)
    road_id = (road_street + code_of_road).astype(np.int64)
    roads = _wgs84_frame(
        pd.DataFrame(
            {
                "id": road_id,
                "road_code": code_of_road,
                "name": unique_name,
                "district_code": unique_district,
                "street_code": road_street,
                "road_class": "unknown",
                "length_m": axes.length,
            }
        ),
        axes.lines,
        back,
    )

    # compounds: one per (community, name); a building row without one gets "<road><door>院"
    doors_text = door_text(door, suffix)
    road_name = f["road"].to_numpy(dtype=object)
    has_building = p["building_number"].notna().to_numpy()
    compound = (
        f["compound"].to_numpy(dtype=object) if "compound" in f else np.full(len(f), None, dtype=object)
    )
    implicit = has_building & pd.isna(compound)
    compound = np.where(implicit, road_name + doors_text + "院", compound)
    in_compound = ~pd.isna(compound)
    ci = np.flatnonzero(in_compound)
    comp_ix, comp_keys = pd.factorize(
        pd.Series(index.code[community[ci]] + "\x1f" + compound[ci].astype(str)), sort=True
    )
    compound_id = np.full(len(f), -1, dtype=np.int64)
    compound_id[ci] = comp_ix + 1
    order = np.argsort(comp_ix, kind="stable")
    hulls = shapely.convex_hull(
        shapely.multipoints(np.column_stack([x[ci], y[ci]])[order], indices=comp_ix[order])
    )
    members = pd.DataFrame({"cid": comp_ix + 1, "road_id": road_id[road_ix[ci]], "door": door[ci]})
    main = (  # the compound's door: its most common one
        members.value_counts(["cid", "road_id", "door"])
        .reset_index(name="n")
        .sort_values(["cid", "n", "road_id", "door"], ascending=[True, False, True, True])
        .drop_duplicates("cid")
        .sort_values("cid")
    )
    comm_of = index.position(np.array([k.split("\x1f", 1)[0] for k in comp_keys], dtype=object))
    names = np.array([k.split("\x1f", 1)[1] for k in comp_keys], dtype=object)
    compounds = _wgs84_frame(
        pd.DataFrame(
            {
                "id": np.arange(1, len(comp_keys) + 1),
                "name": names,
                "kind": np.where([n.endswith("院") for n in names], "院", "小区"),
                "road_id": main["road_id"].to_numpy(),
                "door_number": main["door"].to_numpy(),
                "district_code": index.code[index.ancestor(comm_of, 3)],
                "street_code": index.code[index.ancestor(comm_of, 4)],
                "community_code": index.code[comm_of],
            }
        ),
        shapely.buffer(hulls, COMPOUND_BUFFER_M, quad_segs=4),
        back,
    )

    # buildings: one per (compound, number), a small square on its first point
    bi = np.flatnonzero(has_building)
    number = p["building_number"].to_numpy(dtype=object)
    building_id = np.full(len(f), -1, dtype=np.int64)
    building_id[bi] = compound_id[bi] * 1000 + number[bi].astype(np.int64)
    per = pd.DataFrame(
        {
            "id": building_id[bi],
            "compound_id": compound_id[bi],
            "number": number[bi].astype(np.int64),
            "floors": p["floors"].to_numpy()[bi],
            "units": p["units"].to_numpy()[bi],
            "x": x[bi],
            "y": y[bi],
            "code": codes[bi],
        }
    )  # several rows of one building (its doors): the smallest address code places it, whatever the order
    first = per.sort_values(["id", "code"]).groupby("id", sort=True).first().reset_index()
    h = BUILDING_HALF_M
    buildings = _wgs84_frame(
        pd.DataFrame(
            {
                "id": first["id"].to_numpy(),
                "compound_id": first["compound_id"].to_numpy(),
                "number": first["number"].to_numpy(),
                "name": first["number"].astype(str).to_numpy(dtype=object) + "号楼",
                "floors": first["floors"].astype("Int64").to_numpy(),
                "units": first["units"].astype("Int64").to_numpy(),
                "rooms_per_floor": pd.array([pd.NA] * len(first), dtype="Int64"),
            }
        ),
        shapely.box(first["x"] - h, first["y"] - h, first["x"] + h, first["y"] + h),
        back,
    )

    # addresses; full address as the demo writes it: 北京市 district street road door compound building
    stem = road_name + doors_text
    compound_part = np.full(len(f), "", dtype=object)  # 院 of "<road><door>院", else the compound's name
    compound_part[ci] = [
        c[len(s) :] if c.startswith(s) else c for c, s in zip(compound[ci], stem[ci], strict=True)
    ]
    numbers = np.where(has_building, number, 0).astype(np.int64).astype(str).astype(object)
    building_part = np.where(has_building, numbers + "号楼", "")
    top = index.province + ("" if index.city in ("", index.province) else index.city)
    province, city = index.ancestor(community, 1), index.ancestor(community, 2)
    full = top + index.name[district] + index.name[street] + stem + compound_part + building_part
    frame = pd.DataFrame(
        {
            "address_code": codes,
            "level": np.where(has_building, "building", "door"),
            "province_code": index.code[province],
            "province": index.name[province],
            "city_code": index.code[city],
            "city": index.name[city],
            "district_code": index.code[district],
            "district": index.name[district],
            "street_code": index.code[street],
            "street": index.name[street],
            "community_code": index.code[community],
            "community": index.short[community],
            "road_id": road_id[road_ix],
            "road": road_name,
            "door_number": door,
            "door_suffix": suffix,
            "side": np.where(door % 2 == 1, "L", "R"),
            "road_position": axes.position,
            "compound_id": pd.array(np.where(in_compound, compound_id, -1), dtype="Int64"),
            "compound": np.where(in_compound, compound, None),
            "building_id": pd.array(building_id, dtype="Int64"),
            "building_number": pd.array(np.where(has_building, number, None), dtype="Int64"),
            "units": p["units"].where(has_building).astype("Int64").to_numpy(),
            "floors": p["floors"].where(has_building).astype("Int64").to_numpy(),
            "rooms_per_floor": pd.array([pd.NA] * len(f), dtype="Int64"),
            "full_address": full,
        }
    )
    for col in ("compound_id", "building_id"):
        frame[col] = frame[col].mask(frame[col] < 0)
    addresses = gpd.GeoDataFrame(frame, geometry=shapely.points(raw.lon[rows], raw.lat[rows]), crs=4326)
    return {
        "roads": roads,
        "compounds": compounds,
        "buildings": buildings,
        "addresses": addresses.rename_geometry("geom"),
    }


# --- the import -----------------------------------------------------------------------------------


@dataclass
class ImportReport:
    file: str
    format: str
    encoding: str | None
    crs: str
    columns: dict[str, str]
    rows_read: int
    accepted: int
    rejected: int
    by_reason: dict[str, int]
    doors: int  # door-level addresses
    building_addresses: int
    roads: int
    compounds: int
    buildings: int
    max_reject_rate: float
    dry_run: bool
    written: bool = False
    rejects_file: str | None = None
    elapsed_s: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def reject_rate(self) -> float:
        return self.rejected / self.rows_read if self.rows_read else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "reject_rate": round(self.reject_rate, 6)}


class ImportRefused(InvalidInput):
    """Too many rows rejected (or none accepted): nothing was written."""

    def __init__(self, detail: str, report: ImportReport, rejects: pd.DataFrame) -> None:
        super().__init__(detail, field="max_reject_rate")
        self.report = report
        self.rejects = rejects


def read_divisions(conn: Connection) -> gpd.GeoDataFrame:
    """``addr.division`` as it is (geometry included): an import keeps it and only places rows in it."""
    frame = gpd.read_postgis(
        text(
            "SELECT code, level, name, short_name, parent_code, path_codes, path_names, full_name, geom "
            "FROM addr.division ORDER BY code"
        ),
        conn,
        geom_col="geom",
        crs=4326,
    )
    if frame.empty:
        raise InvalidInput(
            "the address database has no divisions (addr.division is empty); load them first",
            field="divisions",
        )
    return frame


def write_rejects(rejects: pd.DataFrame, path: Path) -> None:
    """UTF-8 with BOM, so that spreadsheet programs show the Chinese right."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rejects.to_csv(path, index=False, encoding="utf-8-sig")


def import_address_file(
    conn: Connection,
    path: Path,
    *,
    mapping: ColumnMapping | None = None,
    crs: str | None = None,
    encoding: str | None = None,
    rejects_path: Path | None = None,
    max_reject_rate: float = 0.02,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> ImportReport:
    """Import ``path`` as the whole address database, inside the caller's transaction.

    Raises :class:`ImportRefused` (after writing the rejects file) when more than
    ``max_reject_rate`` of the rows are rejected: the caller rolls back and nothing changes.
    ``dry_run`` does everything but the writing.
    """
    if not 0.0 <= max_reject_rate <= 1.0:
        raise InvalidInput("max_reject_rate must be within 0..1 (0.02 = 2 %)", field="max_reject_rate")
    started = time.perf_counter()
    steps = Steps(progress)
    with steps.step("read file"):
        raw = read_address_file(path, mapping, crs, encoding)
    with steps.step("read divisions"):
        divisions = read_divisions(conn)
    tables, rejects = build_tables(raw, divisions, progress)
    addresses = tables["addresses"]
    report = ImportReport(
        file=path.name,
        format=raw.format,
        encoding=raw.encoding,
        crs=raw.crs,
        columns=raw.columns,
        rows_read=len(raw),
        accepted=len(addresses),
        rejected=len(rejects),
        by_reason={str(k): int(v) for k, v in rejects["problem"].value_counts().sort_index().items()},
        doors=int((addresses["level"] == "door").sum()),
        building_addresses=int((addresses["level"] == "building").sum()),
        roads=len(tables["roads"]),
        compounds=len(tables["compounds"]),
        buildings=len(tables["buildings"]),
        max_reject_rate=max_reject_rate,
        dry_run=dry_run,
    )
    if rejects_path is not None and len(rejects):
        write_rejects(rejects, rejects_path)
        report.rejects_file = str(rejects_path)
    refusal = None
    if report.accepted == 0:
        refusal = "no row could be imported"
    elif report.reject_rate > max_reject_rate:
        refusal = (
            f"{report.rejected:,} of {report.rows_read:,} rows rejected ({report.reject_rate:.2%}), "
            f"more than the allowed {max_reject_rate:.2%}"
        )
    if refusal is None and not dry_run:
        with steps.step("write database"):
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": LOCK_KEY})
            replace_address_database(conn, **tables)
            _record_source(conn, report)
        report.written = True
    report.timings = steps.timings
    report.elapsed_s = round(time.perf_counter() - started, 2)
    if refusal is not None:
        raise ImportRefused(
            f"import refused: {refusal}; the address database was not changed", report, rejects
        )
    return report


def _record_source(conn: Connection, report: ImportReport) -> None:
    value = {
        "file": report.file,
        "rows_read": report.rows_read,
        "accepted": report.accepted,
        "rejected": report.rejected,
        "crs": report.crs,
    }
    conn.execute(
        text(
            "INSERT INTO gs.setting (key, value) VALUES (:k, CAST(:v AS jsonb)) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()"
        ),
        {"k": IMPORT_KEY, "v": json.dumps(value, ensure_ascii=False)},
    )
