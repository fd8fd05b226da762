"""The in-memory place index each worker holds: columns as arrays, names in a :class:`NameIndex`.

Rebuilt when ``gs.setting`` key ``places`` changes (see ``geoshare.services.places``). At tens of
thousands of places it loads in well under a second and costs a few MB.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import Connection, text

from geocode.places.search import NameIndex, distances_m, fold, rank
from geocode.places.store import current_version


@dataclass
class PlaceIndex:
    version: str
    ids: np.ndarray
    name: list[str]
    aliases: list[tuple[str, ...]]
    category: list[str]
    code: list[str | None]
    address: list[str | None]
    district_code: list[str | None]
    street_code: list[str | None]
    lon: np.ndarray  # NaN where the place has no point
    lat: np.ndarray
    weight: np.ndarray
    names: NameIndex
    by_key: dict[str, list[int]] = field(default_factory=dict)  # folded name or alias → places
    starts: set[str] = field(default_factory=set)  # first two characters of every key
    longest: int = 0
    load_seconds: float = 0.0

    def __len__(self) -> int:
        return int(self.ids.size)

    def has_point(self, i: int) -> bool:
        return not math.isnan(float(self.lon[i]))

    def search(
        self,
        q: str | None,
        *,
        bbox: tuple[float, float, float, float] | None = None,
        near: tuple[float, float] | None = None,
        categories: set[str] | None = None,
        limit: int = 10,
    ) -> list[tuple[int, float, float | None]]:
        """(place, score, metres from ``near``) best first; without ``q``, every place the filters keep."""
        if q:
            entries, quality = self.names.match(q)
        else:
            entries, quality = np.arange(len(self), dtype=np.int32), np.full(len(self), 0.5)
        if entries.size == 0:
            return []
        keep = np.ones(entries.size, dtype=bool)
        if categories:
            cats = np.array([self.category[i] in categories for i in entries], dtype=bool)
            keep &= cats
        lon, lat = self.lon[entries], self.lat[entries]
        if bbox is not None:
            with np.errstate(invalid="ignore"):
                keep &= (lon >= bbox[0]) & (lon <= bbox[2]) & (lat >= bbox[1]) & (lat <= bbox[3])
        entries, quality, lon, lat = entries[keep], quality[keep], lon[keep], lat[keep]
        distance = distances_m(lon, lat, near) if near is not None else None
        score = rank(quality, self.weight[entries], distance)
        top = np.argsort(-score, kind="stable")[:limit]
        return [
            (
                int(entries[t]),
                float(score[t]),
                None if distance is None or np.isnan(distance[t]) else float(distance[t]),
            )
            for t in top
        ]


def build_index(version: str, rows: list[tuple]) -> PlaceIndex:
    """From rows of (id, name, aliases, category, code, address, district, street, lon, lat, weight)."""
    n = len(rows)
    aliases = [tuple(r[2] or ()) for r in rows]
    names = [r[1] for r in rows]
    by_key: dict[str, list[int]] = {}
    for i, (nm, al) in enumerate(zip(names, aliases, strict=True)):
        for k in {fold(nm), *(fold(a) for a in al)}:
            if len(k) >= 2:
                by_key.setdefault(k, []).append(i)
    return PlaceIndex(
        version=version,
        ids=np.array([r[0] for r in rows], dtype=np.int64),
        name=names,
        aliases=aliases,
        category=[r[3] for r in rows],
        code=[r[4] for r in rows],
        address=[r[5] for r in rows],
        district_code=[r[6] for r in rows],
        street_code=[r[7] for r in rows],
        lon=np.array([np.nan if r[8] is None else r[8] for r in rows], dtype=np.float64).reshape(n),
        lat=np.array([np.nan if r[9] is None else r[9] for r in rows], dtype=np.float64).reshape(n),
        weight=np.array([r[10] for r in rows], dtype=np.float64).reshape(n),
        names=NameIndex.build([nm, *al] for nm, al in zip(names, aliases, strict=True)),
        by_key=by_key,
        starts={k[:2] for k in by_key},
        longest=max((len(k) for k in by_key), default=0),
    )


def load_places(conn: Connection) -> PlaceIndex:
    started = time.perf_counter()
    version = current_version(conn)
    rows = conn.execute(
        text(
            "SELECT id, name, aliases, category, code, address, district_code, street_code, "
            "ST_X(geom), ST_Y(geom), weight FROM addr.place ORDER BY id"
        )
    ).all()
    index = build_index(version, [tuple(r) for r in rows])
    index.load_seconds = round(time.perf_counter() - started, 3)
    return index


def empty_index() -> PlaceIndex:
    return build_index("none", [])
