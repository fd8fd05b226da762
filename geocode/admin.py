"""Administrative divisions: which ones contain a point, their children, one division by code.

Every division row carries its whole path from the province (``path_codes``/``path_names``), so
finding the finest division containing a point answers all five levels at once. Each function
is one SQL round trip.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, text

LEVEL_NAMES: dict[int, str] = {1: "province", 2: "city", 3: "district", 4: "street", 5: "community"}
CODE_LENGTHS: dict[int, int] = {2: 1, 4: 2, 6: 3, 9: 4, 12: 5}  # code length → level
CODE_PATTERN = re.compile(r"[0-9]{2,12}")  # ASCII digits only (str.isdigit also takes "١٢")


def level_of(code: str) -> int | None:
    """A division's level read from its code's length (2/4/6/9/12 digits)."""
    return CODE_LENGTHS.get(len(code))


@dataclass(frozen=True, slots=True)
class AdminPath:
    """Names and codes from the province down to the finest known division (missing levels None)."""

    level: int  # the finest level present
    province: str | None = None
    province_code: str | None = None
    city: str | None = None
    city_code: str | None = None
    district: str | None = None
    district_code: str | None = None
    street: str | None = None
    street_code: str | None = None
    community: str | None = None
    community_code: str | None = None

    @classmethod
    def from_arrays(cls, codes: list[str], names: list[str]) -> AdminPath:
        """Levels are taken from code lengths, so a path with a gap stays correct."""
        fields: dict[str, Any] = {}
        finest = 0
        for code, name in zip(codes, names, strict=True):
            level = level_of(code)
            if level is None:
                continue
            key = LEVEL_NAMES[level]
            fields[key], fields[f"{key}_code"] = name, code
            finest = max(finest, level)
        return cls(level=finest, **fields)

    def parts(self) -> list[tuple[int, str, str]]:
        """(level, code, name) from the top down, only the levels present."""
        out = []
        for level, key in LEVEL_NAMES.items():
            code = getattr(self, f"{key}_code")
            if code is not None:
                out.append((level, code, getattr(self, key)))
        return out

    def joined(self) -> str:
        """The path as one address string; a municipality's city repeating its province is dropped."""
        names: list[str] = []
        for _, _, name in self.parts():
            if not names or names[-1] != name:
                names.append(name)
        return "".join(names)

    def as_dict(self) -> dict[str, dict[str, str] | None]:
        out: dict[str, dict[str, str] | None] = {}
        for key in LEVEL_NAMES.values():
            code = getattr(self, f"{key}_code")
            out[key] = {"code": code, "name": getattr(self, key)} if code is not None else None
        return out


@dataclass(frozen=True, slots=True)
class Division:
    """``name`` is the place name used in addresses and paths (受水河社区); ``official_name`` the
    registered one, which for communities and villages names the committee (受水河社区居委会)."""

    code: str
    name: str
    official_name: str
    level: int
    parent_code: str | None
    full_name: str
    path: AdminPath
    geometry: dict[str, Any] | None = None  # GeoJSON, only when asked for

    @property
    def level_name(self) -> str:
        return LEVEL_NAMES.get(self.level, str(self.level))

    def summary(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": self.name,
            "level": self.level,
            "level_name": self.level_name,
            "parent_code": self.parent_code,
        }


# The finest division first: levels are tried 5 → 1 and the outer LIMIT stops at the first hit,
# so the big district/city/province polygons are only tested where no community covers the point.
# (A lateral subquery runs as a nested loop over the VALUES list, in its order.) ``gate`` is a
# condition on outer columns only: when false, PostgreSQL skips the division scans altogether.
FINEST_DIVISION_SQL = """
    SELECT f.level, f.path_codes, f.path_names
    FROM (VALUES (5), (4), (3), (2), (1)) AS l(level)
    CROSS JOIN LATERAL (
        SELECT d.level, d.path_codes, d.path_names
        FROM addr.division d
        WHERE d.level = l.level AND ST_Intersects(d.geom, {point})
        ORDER BY d.code
        LIMIT 1
    ) f
    WHERE {gate}
    LIMIT 1
"""
_LOCATE = text(FINEST_DIVISION_SQL.format(point="ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)", gate="TRUE"))

_COLUMNS = "d.code, d.short_name, d.name, d.level, d.parent_code, d.full_name, d.path_codes, d.path_names"
_GET = text(f"SELECT {_COLUMNS}, NULL AS geojson FROM addr.division d WHERE d.code = :code")
_GET_GEOM = text(
    f"SELECT {_COLUMNS}, ST_AsGeoJSON(d.geom, 7) AS geojson FROM addr.division d WHERE d.code = :code"
)
# One row per child, or a single all-NULL child row when the parent exists but has none, or no
# row at all when the parent does not exist: "unknown" and "empty" are told apart in one query.
_CHILDREN = text(
    f"""
    SELECT {_COLUMNS}
    FROM (SELECT code FROM addr.division WHERE code = :parent) p
    LEFT JOIN addr.division d ON d.parent_code = p.code
    ORDER BY d.code
    """
)
_TOP = text(f"SELECT {_COLUMNS} FROM addr.division d WHERE d.parent_code IS NULL ORDER BY d.code")


def locate(conn: Connection, lon: float, lat: float) -> AdminPath | None:
    """The divisions containing a WGS84 point, or None where no division does."""
    row = conn.execute(_LOCATE, {"lon": lon, "lat": lat}).first()
    return AdminPath.from_arrays(row.path_codes, row.path_names) if row else None


def _division(row: Any, geojson: str | None = None) -> Division:
    return Division(
        code=row.code,
        name=row.short_name,
        official_name=row.name,
        level=row.level,
        parent_code=row.parent_code,
        full_name=row.full_name,
        path=AdminPath.from_arrays(row.path_codes, row.path_names),
        geometry=orjson.loads(geojson) if geojson else None,
    )


def get(conn: Connection, code: str, geometry: bool = False) -> Division | None:
    row = conn.execute(_GET_GEOM if geometry else _GET, {"code": code}).first()
    return _division(row, row.geojson) if row else None


def children(conn: Connection, parent: str | None) -> list[Division] | None:
    """The divisions directly below ``parent`` (the top level for None); None if it is unknown."""
    if parent is None:
        return [_division(r) for r in conn.execute(_TOP)]
    rows = conn.execute(_CHILDREN, {"parent": parent}).all()
    if not rows:
        return None
    return [_division(r) for r in rows if r.code is not None]
