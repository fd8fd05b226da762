"""What a place is: a name with aliases, a category, an optional code, address and point."""

from __future__ import annotations

from dataclasses import dataclass, field

CATEGORIES: dict[str, str] = {
    "government": "政府机构",
    "school": "学校",
    "hospital": "医院",
    "park": "公园",
    "station": "车站",
    "airport": "机场",
    "landmark": "地标",
    "residential": "住宅区",
    "building": "楼宇",
    "other": "其他",
}
"""Stable English keys (``category=``) and the Chinese labels clients show."""

DEFAULT_WEIGHT = 0.5
"""How well known a place is (0..1): ranks equal matches; landmarks are near 1."""


@dataclass(slots=True)
class PlaceRecord:
    """One place as a source gives it, before it is stored (``lon``/``lat`` WGS84 or None)."""

    source_id: str
    name: str
    category: str = "other"
    aliases: list[str] = field(default_factory=list)
    code: str | None = None
    address: str | None = None
    lon: float | None = None
    lat: float | None = None
    weight: float = DEFAULT_WEIGHT
    district_code: str | None = None  # when the source says; a point's own district wins
    located_by: str | None = None  # "source" (the source's point) or the geocode level that placed it
    tags: dict[str, str] = field(default_factory=dict)

    def names(self) -> list[str]:
        """The name and aliases, each once, the name first."""
        out = [self.name]
        for a in self.aliases:
            if a and a not in out:
                out.append(a)
        return out


def check_category(value: str) -> str:
    """A category key, or ValueError naming the ones there are."""
    if value not in CATEGORIES:
        raise ValueError(f"unknown category {value!r}; one of {', '.join(CATEGORIES)}")
    return value
