"""What the address engine answers: match levels, candidates and results.

These shapes are the engine's contract with the platform: the HTTP layer serialises them as they
are (after a CRS change of ``lon``/``lat``), the compatibility endpoints re-shape them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Level(StrEnum):
    """How precisely a candidate was located, finest first. Values are the stable English names."""

    door = "door"
    building = "building"
    interpolated = "road_interpolated"
    road = "road"
    community = "community"
    township = "township"
    district = "district"
    city = "city"
    poi = "poi"

    @property
    def label(self) -> str:
        """The Chinese name clients show (门址, 楼栋 …)."""
        return LEVEL_LABELS[self]


LEVEL_LABELS: dict[Level, str] = {
    Level.door: "门址",
    Level.building: "楼栋",
    Level.interpolated: "道路插值",
    Level.road: "道路",
    Level.community: "社区",
    Level.township: "街道",
    Level.district: "区县",
    Level.city: "城市",
    Level.poi: "兴趣点",
}

CONFIDENT = 0.8
"""Scores at or above this are confident answers; below it the engine is saying "not sure"."""


class Status(StrEnum):
    ok = "ok"  # a confident answer
    ambiguous = "ambiguous"  # several places fit equally (e.g. a road name in several districts)
    partial = "partial"  # found, but coarser than the query asked for (no such door, road only …)
    not_found = "not_found"  # nothing in the address database fits
    empty = "empty"  # nothing to look up (blank or no usable characters)


@dataclass(slots=True)
class Components:
    """The parts of an address as parsed from the query (names as written, normalised)."""

    province: str | None = None
    city: str | None = None
    district: str | None = None
    township: str | None = None
    community: str | None = None
    road: str | None = None
    number: str | None = None
    compound: str | None = None
    building: str | None = None
    unit: str | None = None
    room: str | None = None
    floor: str | None = None
    remainder: str | None = None  # text nothing explained ("底商", "东门" …)
    devzone: str | None = None  # development zone, park or new area (下沙经济开发区)
    village_group: str | None = None  # 3组, 村民小组
    poi: str | None = None  # the named place or compound as written (泰和小区, 北苑工业区)
    subpoi: str | None = None  # a named part of it (竹苑, 东区)
    phase: str | None = None  # 2期 → "2"
    zone: str | None = None  # B区 → "B"
    shop: str | None = None  # 12号商铺 → "12"


@dataclass(slots=True)
class Candidate:
    """One place the query may mean; ``lon``/``lat`` are WGS84 (EPSG:4326) inside the engine."""

    formatted_address: str
    level: Level
    score: float
    lon: float
    lat: float
    province: str | None = None
    city: str | None = None
    district: str | None = None
    township: str | None = None
    community: str | None = None
    road: str | None = None
    number: str | None = None
    compound: str | None = None
    building: str | None = None
    unit: str | None = None
    room: str | None = None
    adcode: str | None = None  # district code (6 digits)
    towncode: str | None = None  # street/town code (9 digits)
    community_code: str | None = None  # community/village code (12 digits)
    address_code: str | None = None  # GB/T 39609-2020 region-based code
    distance_m: float | None = None  # reverse geocoding only

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["level"] = self.level.label
        out["level_code"] = self.level.value
        out["score"] = round(self.score, 3)
        return out


@dataclass(slots=True)
class GeocodeResult:
    query: str
    status: Status
    candidates: list[Candidate] = field(default_factory=list)
    parts: Components | Callable[[], Components] = field(default_factory=Components)
    message: str | None = None  # why the status is what it is, for people

    @property
    def parsed(self) -> Components:
        """The query's parts, worked out when first asked for: a batch for a CSV job never asks,
        and the segmenter costs 25-40 µs an address."""
        if not isinstance(self.parts, Components):
            self.parts = self.parts()
        return self.parts

    @property
    def best(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None
