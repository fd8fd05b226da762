"""The in-memory address index each worker holds for forward geocoding.

Why in memory and not pg_trgm per query: a forward geocode needs several dependent lookups (road
by name within a district, door by number on that road, neighbours for interpolation, compound by
name, fuzzy road candidates); as SQL that is either several round trips or one heavy query, and
either way ~1 ms of database time per address before Python even starts. Held as sorted numpy
arrays (no Python object per address) the whole database costs ~40 bytes an address, so 5 million
addresses fit in a few hundred MB per worker, and each lookup is a dict probe or a binary search.
The index is rebuilt when the address database's version (``gs.setting`` key ``addressdb``)
changes; see ``geoshare.services.geocoding``.
"""

from __future__ import annotations

import bisect
import io
import time
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sqlalchemy import Connection, text

from geocode.addressdb.codes import _SUFFIX_CODES

SUFFIXES: list[str] = sorted(_SUFFIX_CODES, key=_SUFFIX_CODES.__getitem__)
SUFFIX_IX: dict[str, int] = {s: i for i, s in enumerate(SUFFIXES)}
VERSION_KEY = "addressdb"
MAX_DOOR = 9_999  # the packed keys hold four digits of door number …
MAX_BUILDING = 999  # … and three of building: anything larger would read as another road's address


def door_key(road: int, door: int, suffix: int, building: int) -> int:
    return ((road * 10_000 + door) * 100 + suffix) * 1000 + building


def parity_key(road: int, door: int) -> int:
    return (road * 2 + (door & 1)) * 10_000 + door


@dataclass(slots=True)
class Division:
    code: str
    level: int
    name: str
    path: tuple[str, ...]  # names from province down to this division
    full_name: str
    lon: float
    lat: float


@dataclass
class AddressIndex:
    version: str
    divisions: dict[str, Division]
    # roads (index = position)
    road_name: list[str]
    road_code: list[str]
    road_district: list[str]
    road_lon: np.ndarray
    road_lat: np.ndarray
    roads_by_name: dict[str, list[int]]
    # compounds
    compound_name: list[str]
    compound_kind: list[str]
    compound_road: np.ndarray
    compound_door: np.ndarray
    compound_suffix: np.ndarray
    compound_community: list[str]
    compounds_by_name: dict[str, list[int]]
    # addresses, sorted by key
    key: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    community: np.ndarray  # index into community_codes
    compound: np.ndarray  # -1 when none
    community_codes: list[str]
    # doors without suffix or building, by (road, parity, number): for interpolation
    pkey: np.ndarray
    plon: np.ndarray
    plat: np.ndarray
    road_max_door: np.ndarray
    names: list[str] = field(default_factory=list)  # unique road names
    names_in_district: dict[str, list[str]] = field(default_factory=dict)
    names_by_length: list[str] = field(default_factory=list)  # unique road names, shortest first
    length_starts: list[int] = field(default_factory=list)  # first position of each name length
    load_seconds: float = 0.0
    _alike: dict[str, frozenset[str]] | None = field(default=None, repr=False)

    @property
    def size(self) -> int:
        return int(self.key.size)

    # -- lookups -------------------------------------------------------------------------------
    def find(self, road: int, door: int, suffix: int, building: int) -> int:
        """Row of an exact address, or -1 (a number too large for the key is nowhere: 100010号)."""
        if not (0 <= door <= MAX_DOOR and 0 <= building <= MAX_BUILDING):
            return -1
        k = door_key(road, door, suffix, building)
        i = int(np.searchsorted(self.key, k))
        return i if i < self.key.size and self.key[i] == k else -1

    def buildings_of(self, road: int, door: int, suffix: int) -> int:
        """How many building rows hang off a door (0 when it is not a compound door)."""
        if not 0 <= door <= MAX_DOOR:
            return 0
        lo = int(np.searchsorted(self.key, door_key(road, door, suffix, 1)))
        hi = int(np.searchsorted(self.key, door_key(road, door, suffix, 999), side="right"))
        return hi - lo

    def neighbours(self, road: int, door: int) -> tuple[int, int]:
        """Positions in ``pkey`` of the nearest existing same-side doors below and above (-1 if none)."""
        if not 0 <= door <= MAX_DOOR:
            return -1, -1
        k = parity_key(road, door)
        i = int(np.searchsorted(self.pkey, k))
        base = (road * 2 + (door & 1)) * 10_000
        below = i - 1 if i > 0 and self.pkey[i - 1] >= base else -1
        above = i if i < self.pkey.size and self.pkey[i] < base + 10_000 else -1
        return below, above

    def names_of_length(self, shortest: int, longest: int) -> list[str]:
        """Road names of ``shortest``..``longest`` characters (a slice: no copying per name)."""
        if not self.length_starts:
            lengths = [len(n) for n in self.names_by_length]
            self.length_starts = [bisect.bisect_left(lengths, k) for k in range(max(lengths, default=0) + 2)]
        starts = self.length_starts
        lo = starts[min(max(shortest, 0), len(starts) - 1)]
        hi = starts[min(max(longest + 1, 0), len(starts) - 1)]
        return self.names_by_length[lo:hi]

    def named_alike(self, code: str) -> frozenset[str]:
        """Codes of the divisions of the same level and name as ``code`` (八里庄街道 is in 朝阳区 and
        海淀区): a query naming one names them all unless its district says which."""
        if self._alike is None:
            groups: dict[tuple[int, str], set[str]] = defaultdict(set)
            for c, d in self.divisions.items():
                groups[(d.level, d.name)].add(c)
            self._alike = {c: frozenset(g) for g in groups.values() for c in g}
        return self._alike.get(code, frozenset((code,)))

    def community_of(self, row: int) -> str:
        return self.community_codes[int(self.community[row])]


def _copy_frame(conn: Connection, sql: str, dtypes: dict[str, str]) -> pd.DataFrame:
    """``COPY (sql) TO STDOUT`` straight into pandas: far faster than row fetching for millions."""
    raw = conn.connection.driver_connection
    buf = io.BytesIO()
    with raw.cursor() as cur, cur.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)") as copy:
        for chunk in copy:
            buf.write(chunk)
    buf.seek(0)
    return pd.read_csv(
        buf, header=None, names=list(dtypes), dtype=dtypes, keep_default_na=False, na_values=[""]
    )


def current_version(conn: Connection) -> str:
    row = conn.execute(
        text("SELECT value->>'version' FROM gs.setting WHERE key = :k"), {"k": VERSION_KEY}
    ).first()
    return row[0] if row and row[0] else "unversioned"


def _divisions(conn: Connection) -> dict[str, Division]:
    rows = conn.execute(
        text(
            """
            WITH pts AS (
                SELECT code, level, CASE WHEN level = 5 THEN short_name ELSE name END AS name,
                       path_names, full_name,
                       ST_PointOnSurface(
                           coalesce(geom, (SELECT ST_Union(geom) FROM addr.division WHERE level = 3))
                       ) AS p
                FROM addr.division
            )
            SELECT code, level, name, path_names, full_name, ST_X(p), ST_Y(p) FROM pts
            """
        )
    ).all()
    out: dict[str, Division] = {}
    for code, level, name, path, full_name, x, y in rows:
        out[code] = Division(code, level, name, tuple(path), full_name, float(x or 0.0), float(y or 0.0))
    return out


def load_index(conn: Connection) -> AddressIndex:
    """Read the whole address database into arrays (seconds per million addresses)."""
    started = time.perf_counter()
    version = current_version(conn)
    divisions = _divisions(conn)
    roads = _copy_frame(
        conn,
        "SELECT id, road_code, name, district_code, ST_X(p), ST_Y(p) FROM "
        "(SELECT *, ST_LineInterpolatePoint(geom, 0.5) AS p FROM addr.road) r ORDER BY id",
        {"id": "int64", "road_code": "str", "name": "str", "district": "str", "x": "float64", "y": "float64"},
    )
    road_ix = pd.Series(np.arange(len(roads)), index=roads["id"].to_numpy())
    roads_by_name: dict[str, list[int]] = defaultdict(list)
    for i, name in enumerate(roads["name"]):
        roads_by_name[name].append(i)

    compounds = _copy_frame(
        conn,
        "SELECT c.id, c.name, c.kind, c.road_id, c.door_number, coalesce(a.suffix, ''), c.community_code "
        "FROM addr.compound c LEFT JOIN (SELECT compound_id, min(door_suffix) AS suffix FROM addr.address "
        "WHERE compound_id IS NOT NULL GROUP BY compound_id) a ON a.compound_id = c.id ORDER BY c.id",
        {
            "id": "int64",
            "name": "str",
            "kind": "str",
            "road_id": "Int64",
            "door": "Int64",
            "suffix": "str",
            "community": "str",
        },
    )
    compounds["suffix"] = compounds["suffix"].fillna("")
    compound_ix = pd.Series(np.arange(len(compounds)), index=compounds["id"].to_numpy())
    compounds_by_name: dict[str, list[int]] = defaultdict(list)
    for i, name in enumerate(compounds["name"]):
        compounds_by_name[name].append(i)

    a = _copy_frame(
        conn,
        "SELECT road_id, door_number, door_suffix, coalesce(building_number, 0), coalesce(compound_id, -1), "
        "community_code, ST_X(geom), ST_Y(geom) FROM addr.address",
        {
            "road_id": "int64",
            "door": "int64",
            "suffix": "str",
            "building": "int64",
            "compound_id": "int64",
            "community": "str",
            "x": "float64",
            "y": "float64",
        },
    )
    a["suffix"] = a["suffix"].fillna("")
    road = road_ix.reindex(a["road_id"].to_numpy()).to_numpy()
    suffix = a["suffix"].map(SUFFIX_IX).fillna(0).astype(np.int64).to_numpy()
    door = a["door"].to_numpy()
    building = a["building"].to_numpy()
    key = ((road * 10_000 + door) * 100 + suffix) * 1000 + building
    order = np.argsort(key, kind="stable")
    community_codes, community = np.unique(a["community"].to_numpy(dtype=str), return_inverse=True)
    compound = np.full(len(a), -1, dtype=np.int32)
    has = a["compound_id"].to_numpy() >= 0
    compound[has] = compound_ix.reindex(a["compound_id"].to_numpy()[has]).to_numpy()

    plain = (suffix == 0) & (building == 0)
    pkey = (road[plain] * 2 + (door[plain] & 1)) * 10_000 + door[plain]
    porder = np.argsort(pkey, kind="stable")
    road_max = np.zeros(len(roads), dtype=np.int32)
    np.maximum.at(road_max, road, door)

    names_in_district: dict[str, list[str]] = defaultdict(list)
    for name, district in zip(roads["name"], roads["district"], strict=True):
        names_in_district[district].append(name)

    index = AddressIndex(
        version=version,
        divisions=divisions,
        road_name=roads["name"].tolist(),
        road_code=roads["road_code"].tolist(),
        road_district=roads["district"].tolist(),
        road_lon=roads["x"].to_numpy(),
        road_lat=roads["y"].to_numpy(),
        roads_by_name=dict(roads_by_name),
        compound_name=compounds["name"].tolist(),
        compound_kind=compounds["kind"].tolist(),
        compound_road=road_ix.reindex(compounds["road_id"].fillna(-1).to_numpy())
        .fillna(-1)
        .astype(np.int64)
        .to_numpy(),
        compound_door=compounds["door"].fillna(0).astype(np.int64).to_numpy(),
        compound_suffix=compounds["suffix"].map(SUFFIX_IX).fillna(0).astype(np.int64).to_numpy(),
        compound_community=compounds["community"].tolist(),
        compounds_by_name=dict(compounds_by_name),
        key=key[order],
        lon=a["x"].to_numpy()[order],
        lat=a["y"].to_numpy()[order],
        community=community.astype(np.int32)[order],
        compound=compound[order],
        community_codes=community_codes.tolist(),
        pkey=pkey[porder],
        plon=a["x"].to_numpy()[plain][porder],
        plat=a["y"].to_numpy()[plain][porder],
        road_max_door=road_max,
        names=list(roads_by_name),
        names_in_district=dict(names_in_district),
        names_by_length=sorted(roads_by_name, key=len),
    )
    index.load_seconds = round(time.perf_counter() - started, 2)
    return index
