"""Points for places that only have an address, from the engine's own geocoder.

A place is given the geocoder's point only when the answer is a door, building, interpolated door
or road at a score of at least ``ACCEPT`` (so the district agrees with the one written); anything
coarser leaves the place without a point (and records its district), because a guessed point
would be answered as a place's location with a confidence it does not have.
"""

from __future__ import annotations

from collections.abc import Iterable

from geocode.index import AddressIndex
from geocode.match import geocode
from geocode.model import Level
from geocode.places.model import PlaceRecord

ACCEPT = 0.5
_PLACING = {Level.door, Level.building, Level.interpolated, Level.road}


def locate(index: AddressIndex, records: Iterable[PlaceRecord]) -> dict[str, int]:
    """Fill ``lon``/``lat``/``located_by`` (and ``district_code``) in place; returns counts by outcome."""
    districts = {d.name: d.code for d in index.divisions.values() if d.level == 3}
    counts = {"had a point": 0, "located": 0, "no point": 0}
    for r in records:
        hint = r.tags.get("district") or None
        if r.district_code is None and hint in districts:
            r.district_code = districts[hint]
        if r.lon is not None:
            counts["had a point"] += 1
            continue
        best = geocode(index, r.address, district=hint, limit=1).best if r.address else None
        if best is not None and best.level in _PLACING and best.score >= ACCEPT:
            r.lon, r.lat, r.located_by = best.lon, best.lat, best.level.value
            counts["located"] += 1
        else:
            counts["no point"] += 1
        if r.district_code is None and best is not None and best.adcode and best.level is not Level.city:
            r.district_code = best.adcode
    return counts
