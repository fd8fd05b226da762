"""Placing rows in divisions: by code, by name under their district, else by location."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from geocode.addressdb.importing.reading import _BLANKS, CONTRADICTION_M
from geocode.addressdb.importing.rows import Verdicts
from geocode.gazetteer import DISTRICT, default_gazetteer
from layers.errors import InvalidInput

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


def _resolve_level(
    level: int,
    column: str,
    label: str,
    parent: np.ndarray,
    coded: np.ndarray,
    location: np.ndarray,
    fields: pd.DataFrame,
    index: DivisionIndex,
    pts: np.ndarray,
    verdicts: Verdicts,
) -> np.ndarray:
    """A street or community per row: from its code, else its name under ``parent``, else the point."""
    found_at = index.ancestor(coded, level)
    if column in fields:
        need = verdicts.ok & (found_at < 0) & fields[column].notna().to_numpy()
        found = index.by_name(need, fields[column], level, parent, pts)
        values = fields[column].to_numpy(dtype=object)
        verdicts.reject(
            need & (found < 0),
            "unknown_division",
            lambda i: [f"unknown {label} {values[j]!r} in {index.name[parent[j]]}" for j in i],
        )
        found_at = np.where(need & (found >= 0), found, found_at)
    return _fill(found_at, index.ancestor(location, level), parent, index, pts, verdicts)


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

    street = _resolve_level(
        4, "street", "street/town", district, coded, location, fields, index, pts, verdicts
    )
    verdicts.reject(verdicts.ok & (street < 0), "no_street", "the district has no street/town boundaries")
    community = _resolve_level(
        5, "community", "community/village", street, coded, location, fields, index, pts, verdicts
    )
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
