"""Place names inside a geocoding query: 天安门, 北京首都国际机场, 中关村大街27号中关村大厦.

The address matcher answers first; places are consulted only when its answer is not confident or
the query has text after the address (a compound or remainder), so plain addresses pay nothing.
A name is found by probing the folded query at the positions where some place name could start
(its first two characters), longest name first. Then:

* the query is the name (divisions before it, at most 东门/附近 after it): the place, 0.95;
* an address before the name that is the place's own address, or a door that lies within
  ``CONFIRM_M`` of it: the place, 0.96 — the address confirms it; a door farther away contradicts
  it and neither is confident;
* a road-only or weak address match around the name: the place, 0.85;
* a district the query names that the place is not in: at most 0.4 (never first over a match);
* a known place without a point: its district, unconfident, and the answer says why.
"""

from __future__ import annotations

import math
import re

from geocode.gazetteer import DISTRICT, Gazetteer
from geocode.index import AddressIndex
from geocode.model import CONFIDENT, Candidate, GeocodeResult, Level, Status
from geocode.parse import read_admin
from geocode.places.index import PlaceIndex
from geocode.places.search import fold

CONFIRM_M = 500.0
NAMED, CONFIRMED, AROUND_WEAK = 0.95, 0.96, 0.85
CONTRADICTED, ADDRESS_CAP = 0.7, 0.75
WRONG_DISTRICT = 0.4
NO_POINT = 0.3
AMBIGUOUS = 0.55
_AFTER_NAME = re.compile(r"(?:[东西南北]{1,2}门|正门|大门|门口|附近|周边|内|旁边?)?")
_ADDRESS_LEVELS = {Level.door, Level.building, Level.interpolated, Level.road}


def worth_a_look(result: GeocodeResult) -> bool:
    """Whether the address answer leaves room for a place name (cheap: no lookups)."""
    return result.status is not Status.ok or bool(result.parsed.compound or result.parsed.remainder)


def find_names(places: PlaceIndex, text: str) -> list[tuple[int, int, list[int]]]:
    """(start, end, places) of the longest place name at each position, longest first."""
    out: list[tuple[int, int, list[int]]] = []
    n = len(text)
    for i in range(n - 1):
        if text[i : i + 2] not in places.starts:
            continue
        for j in range(min(n, i + places.longest), i + 1, -1):
            hits = places.by_key.get(text[i:j])
            if hits:
                out.append((i, j, hits))
                break
    out.sort(key=lambda s: s[0] - s[1])
    return out


def _metres(a: Candidate, lon: float, lat: float) -> float:
    dx = (a.lon - lon) * math.cos(math.radians(lat)) * 111_195.0
    return math.hypot(dx, (a.lat - lat) * 111_195.0)


def place_candidate(places: PlaceIndex, index: AddressIndex, p: int, score: float) -> Candidate | None:
    """The place dressed as a candidate; without a point, its district (None if unknown too)."""
    district = index.divisions.get(places.district_code[p] or "")
    township = index.divisions.get(places.street_code[p] or "")
    path = district.path if district else ()
    common = dict(
        province=path[0] if path else None,
        city=path[1] if len(path) > 1 else None,
        district=district.name if district else None,
        adcode=district.code if district else None,
    )
    if not places.has_point(p):
        if district is None:
            return None
        return Candidate(
            formatted_address=district.full_name, level=Level.district, score=min(score, NO_POINT),
            lon=district.lon, lat=district.lat, **common,
        )  # fmt: skip
    return Candidate(
        formatted_address=f"{district.full_name if district else ''}{places.name[p]}",
        level=Level.poi,
        score=score,
        lon=float(places.lon[p]),
        lat=float(places.lat[p]),
        township=township.name if township else None,
        towncode=township.code if township else None,
        **common,
    )


def resolve(
    places: PlaceIndex,
    index: AddressIndex,
    gaz: Gazetteer,
    result: GeocodeResult,
    *,
    city: str | None = None,
    district: str | None = None,
    limit: int = 5,
) -> GeocodeResult:
    """``result`` with the places its query names merged in (unchanged when it names none)."""
    text = fold(result.query)
    found = find_names(places, text)
    if not found:
        return result
    start, end, hits = found[0]
    context = f"{city or ''}{district or ''}"
    chain, read, _ = read_admin(gaz, context + text[:start])
    only_divisions = read == len(context) + start and _AFTER_NAME.fullmatch(text[end:]) is not None
    named = chain[DISTRICT].code if DISTRICT in chain else None
    best = result.best
    address = best if best is not None and best.level in _ADDRESS_LEVELS and best.score >= 0.5 else None
    others = list(result.candidates)
    reasons: list[str] = []
    pois: list[Candidate] = []
    written = text[max(read - len(context), 0) : start]  # the address written before the name
    for p in hits:
        if only_divisions:
            score = NAMED
        elif written and written in fold(places.address[p] or ""):
            score = CONFIRMED  # the place's own address is the one written
        elif address is not None and address.level is not Level.road and places.has_point(p):
            if _metres(address, float(places.lon[p]), float(places.lat[p])) <= CONFIRM_M:
                score = CONFIRMED
            else:
                score = CONTRADICTED
                reasons.append("the place named is not at the address written")
                others = [_capped(c) for c in others]
        else:
            score = AROUND_WEAK
        if named and places.district_code[p] and places.district_code[p] != named:
            score = min(score, WRONG_DISTRICT)
            reasons.append("the place is in another district than the one written")
        candidate = place_candidate(places, index, p, score)
        if candidate is None:
            continue
        if candidate.level is not Level.poi:
            reasons.append("the place is known but has no location; its district")
        pois.append(candidate)
    if not pois:
        return result
    pois.sort(key=lambda c: -c.score)
    ambiguous = (
        named is None
        and len(pois) > 1
        and pois[0].score == pois[1].score
        and pois[0].adcode != pois[1].adcode
    )
    if ambiguous:
        for c in pois:
            c.score *= AMBIGUOUS
    merged = sorted(pois + others, key=lambda c: -c.score)[:limit]
    top = merged[0]
    if ambiguous:
        status, message = Status.ambiguous, "several places have this name: add the district"
    elif top.score >= CONFIDENT:
        status, message = Status.ok, None
    else:
        status = Status.partial
        message = reasons[0] if reasons and top in pois else result.message
    return GeocodeResult(result.query, status, merged, result.parsed, message)


def _capped(c: Candidate) -> Candidate:
    if c.score > ADDRESS_CAP:
        c.score = ADDRESS_CAP
    return c
