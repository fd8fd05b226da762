"""As-you-type suggestions over places, roads, compounds, divisions and door addresses.

Built once per address index version: roads (one entry per name and district),
compounds and districts/townships go into one :class:`NameIndex`; places keep their own. A query
with a digit also runs the geocoder, so ``中关村大街2`` offers the doors it resolves to. Every
source is scored the same way (``search.rank``: match, fame, nearness) and merged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from geocode.gazetteer import Gazetteer
from geocode.index import AddressIndex, door_key
from geocode.match import geocode
from geocode.model import Level
from geocode.places.index import PlaceIndex
from geocode.places.search import NameIndex, distances_m, rank

KIND_WEIGHT = {"division": 0.9, "road": 0.55, "compound": 0.45}
_DIGIT = re.compile(r"\d")
_ADDRESS_LEVELS = {Level.door, Level.building, Level.interpolated}


@dataclass(slots=True)
class Suggestion:
    kind: str  # place | road | compound | division | address
    name: str
    score: float
    lon: float | None
    lat: float | None
    district_code: str | None = None
    address: str | None = None  # what to show under the name (the district, the full address …)
    category: str | None = None  # places only
    place_id: int | None = None
    distance_m: float | None = None


@dataclass
class AddressNames:
    """The address index's names as suggest entries (built once per index version)."""

    kind: list[str]
    name: list[str]
    district: list[str | None]
    lon: np.ndarray
    lat: np.ndarray
    weight: np.ndarray
    names: NameIndex
    version: str  # of the address index it was built from

    @classmethod
    def build(cls, index: AddressIndex) -> AddressNames:
        kind: list[str] = []
        name: list[str] = []
        district: list[str | None] = []
        lons: list[float] = []
        lats: list[float] = []
        for division in index.divisions.values():
            if division.level in (3, 4):
                kind.append("division"), name.append(division.name), district.append(division.code[:6])
                lons.append(division.lon), lats.append(division.lat)
        seen: set[tuple[str, str]] = set()
        for road, (road_name, road_district) in enumerate(
            zip(index.road_name, index.road_district, strict=True)
        ):
            if (road_name, road_district) in seen:
                continue
            seen.add((road_name, road_district))
            kind.append("road"), name.append(road_name), district.append(road_district)
            lons.append(float(index.road_lon[road])), lats.append(float(index.road_lat[road]))
        c_lon, c_lat = _compound_points(index)
        for c, compound_name in enumerate(index.compound_name):
            (
                kind.append("compound"),
                name.append(compound_name),
                district.append(index.compound_community[c][:6]),
            )
            lons.append(float(c_lon[c])), lats.append(float(c_lat[c]))
        return cls(
            kind=kind,
            name=name,
            district=district,
            lon=np.asarray(lons, dtype=np.float64),
            lat=np.asarray(lats, dtype=np.float64),
            weight=np.asarray([KIND_WEIGHT[k] for k in kind], dtype=np.float64),
            names=NameIndex.build([n] for n in name),
            version=index.version,
        )


def _compound_points(index: AddressIndex) -> tuple[np.ndarray, np.ndarray]:
    """Each compound's gate (its door address; NaN when the database has none)."""
    road = index.compound_road
    keys = door_key(road, index.compound_door, index.compound_suffix, 0)
    at = np.searchsorted(index.key, keys)
    at = np.minimum(at, max(index.key.size - 1, 0))
    ok = (road >= 0) & (index.key.size > 0)
    if index.key.size:
        ok &= index.key[at] == keys
    lon = np.where(ok, index.lon[at] if index.key.size else np.nan, np.nan)
    lat = np.where(ok, index.lat[at] if index.key.size else np.nan, np.nan)
    return lon, lat


def suggest(
    q: str,
    index: AddressIndex,
    names: AddressNames,
    places: PlaceIndex,
    gaz: Gazetteer,
    *,
    near: tuple[float, float] | None = None,
    limit: int = 10,
) -> list[Suggestion]:
    """The best ``limit`` suggestions for what has been typed so far."""
    out: list[Suggestion] = []
    for i, score, distance in places.search(q, near=near, limit=limit):
        has_point = places.has_point(i)
        out.append(
            Suggestion(
                "place", places.name[i], score,
                float(places.lon[i]) if has_point else None, float(places.lat[i]) if has_point else None,
                places.district_code[i], places.address[i], places.category[i], int(places.ids[i]), distance,
            )
        )  # fmt: skip
    entries, quality = names.names.match(q)
    if entries.size:
        lon, lat = names.lon[entries], names.lat[entries]
        distance = distances_m(lon, lat, near) if near is not None else None
        score = rank(quality, names.weight[entries], distance)
        for t in np.argsort(-score, kind="stable")[:limit]:
            e = int(entries[t])
            has_point = not np.isnan(lon[t])
            out.append(
                Suggestion(
                    names.kind[e], names.name[e], float(score[t]),
                    float(lon[t]) if has_point else None, float(lat[t]) if has_point else None,
                    names.district[e], _district_name(index, names.district[e]),
                    distance_m=None if distance is None or np.isnan(distance[t]) else float(distance[t]),
                )
            )  # fmt: skip
    if _DIGIT.search(q):
        out.extend(_addresses(q, index, gaz, near, limit))
    out.sort(key=lambda s: -s.score)
    return _unique(out)[:limit]


def _addresses(
    q: str, index: AddressIndex, gaz: Gazetteer, near: tuple[float, float] | None, limit: int
) -> list[Suggestion]:
    result = geocode(index, q, limit=min(limit, 5), gaz=gaz)
    out = []
    for c in result.candidates:
        if c.level not in _ADDRESS_LEVELS:
            continue
        distance = None
        if near is not None:
            distance = float(distances_m(np.array([c.lon]), np.array([c.lat]), near)[0])
        quality = float(rank(np.array([0.8 + 0.2 * c.score]), np.array([0.6]), None if distance is None
                             else np.array([distance]))[0])  # fmt: skip
        out.append(
            Suggestion(
                "address",
                c.formatted_address,
                quality,
                c.lon,
                c.lat,
                c.adcode,
                c.formatted_address,
                distance_m=distance,
            )  # fmt: skip
        )
    return out


def _district_name(index: AddressIndex, code: str | None) -> str | None:
    division = index.divisions.get(code or "")
    return division.full_name if division else None


def _unique(items: list[Suggestion]) -> list[Suggestion]:
    """One suggestion per (kind, name, district): a road in two streets of a district is one road."""
    seen: set[tuple[str, str, str | None]] = set()
    out = []
    for s in items:
        key = (s.kind, s.name, s.district_code)
        if key not in seen:
            seen.add(key)
            out.append(s)
    return out
