"""Forward geocoding: from a parsed query to ranked, scored candidates.

Retrieval goes from precise to loose and stops at the first step that finds something: the road
named at the end of the head (exact), a compound named there, then fuzzy road names (typos,
dropped characters) by bigram candidates and edit similarity. Every road candidate is then
resolved down the hierarchy: building, door, interpolated door, road.

Scores are calibrated so that ``CONFIDENT`` (0.8) separates answers that are right ~99% of the
time from the rest: only a road named exactly as written (no characters added in front that
nothing explains), with the exact door (or building) and no contradicting division reaches it.
Fuzzy or edited names, missing doors, missing buildings and contradictions all stay below, which
is how a nonexistent address comes back "not sure" instead of confidently wrong.

The query is never contradicted: a candidate outside a division the query names (another city,
district or street) is never first and stays below 0.5. When the named division has no such road,
the division itself is the answer and the same road elsewhere is only a lower alternative.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rapidfuzz import process
from rapidfuzz.distance import OSA, Indel

from geocode.formatting import address_code, door_text, full_address
from geocode.gazetteer import (
    CITY,
    COMMUNITY,
    DISTRICT,
    PROVINCE,
    TOWNSHIP,
    Gazetteer,
    Place,
    default_gazetteer,
)
from geocode.index import SUFFIX_IX, SUFFIXES, AddressIndex
from geocode.model import CONFIDENT, Candidate, GeocodeResult, Level, Status
from geocode.parse import Parsed, parse, read_admin

BASE = {
    Level.building: 0.98,
    Level.door: 0.97,
    Level.interpolated: 0.62,
    Level.road: 0.5,
    Level.community: 0.45,
    Level.township: 0.4,
    Level.district: 0.3,
    Level.city: 0.15,
}
FUZZY_MIN = 0.6  # edit similarity below which a road name is not considered the same
FUZZY_CAP = 0.78  # a fuzzy name never makes a confident answer on its own
DISTRICT_MISMATCH = 0.45  # outside a named city, district or street: ranks such hits among themselves
CONTRADICTED_CAP = 0.45  # … and whatever else they score, they stay below this (and below every clean hit)
COMMUNITY_MISMATCH = 0.8  # another community than the one written: found, but not as written
COMPOUND_MISMATCH = 0.8
MISSING_BUILDING = 0.72  # building asked for but absent: the door itself, not confident
AMBIGUOUS = 0.55
_JUNK_RE = re.compile(r"[^\u3400-\u9fff\uf900-\ufaff]*")  # no Chinese character: labels, stray letters
_DIVISION_LEVELS = {
    COMMUNITY: Level.community,
    TOWNSHIP: Level.township,
    DISTRICT: Level.district,
    CITY: Level.city,
    PROVINCE: Level.city,
}


@dataclass(slots=True)
class _Hit:
    """A candidate before it is dressed as a :class:`Candidate`."""

    score: float
    level: Level
    road: int = -1
    row: int = -1  # address row for door/building levels
    lon: float = 0.0
    lat: float = 0.0
    door: int | None = None
    suffix: str = ""
    division: str | None = None  # division code for division levels
    outside: Place | None = None  # a division the query names that this candidate lies outside of
    similarity: float = 1.0  # of the road or compound name to the name as written


def _road_candidates(index: AddressIndex, head: str) -> tuple[list[int], float, str]:
    """Roads named by the head: (road positions, name similarity, leftover prefix)."""
    for i in range(len(head) - 1):
        roads = index.roads_by_name.get(head[i:])
        if roads:
            return roads, 1.0, head[:i]
    return [], 0.0, head


def _fuzzy_roads(index: AddressIndex, head: str, district: str | None) -> list[tuple[int, float]]:
    """(road, similarity) for names within a few edits of the head: typos, dropped characters."""
    if len(head) < 2:
        return []
    if district:
        names = index.names_in_district.get(district, [])
    else:  # city-wide: only names of about the head's length can be within a couple of edits
        names = index.names_of_length(len(head) - 2, len(head) + 2)
    out: list[tuple[int, float]] = []
    # Indel has a vectorised path: shortlist with it, then rank the few by OSA, which counts a
    # swap of two characters (看丹 → 丹看) as one edit
    shortlist = process.extract(head, names, scorer=Indel.normalized_similarity, limit=12, score_cutoff=0.5)
    scored = [(name, OSA.normalized_similarity(head, name)) for name, _, _ in shortlist]
    scored.sort(key=lambda ns: -ns[1])
    for name, sim in scored[:6]:
        if sim < FUZZY_MIN:
            break
        for road in index.roads_by_name[name]:
            if district is None or index.road_district[road] == district:
                out.append((road, float(sim)))
    return out[:8]


def _outside(index: AddressIndex, p: Parsed, district: str, community_code: str | None) -> Place | None:
    """The coarsest division the query names that a candidate in ``district`` (and community) is not in.

    A street is named by its name: 八里庄街道 without a district names both Beijing has."""
    for level in (PROVINCE, CITY):  # 上海市… or city=上海 against a Beijing road: another city altogether
        if level in p.admin and not district.startswith(p.admin[level].code):
            return p.admin[level]
    if DISTRICT in p.admin and p.admin[DISTRICT].code != district:
        return p.admin[DISTRICT]
    township = p.admin.get(TOWNSHIP)
    if township is not None:
        alike = index.named_alike(township.code) if DISTRICT not in p.admin else (township.code,)
        if community_code is not None and community_code[:9] not in alike:
            return township
        if not any(code.startswith(district) for code in alike):
            return township
    return None


def _admin_factor(
    index: AddressIndex, p: Parsed, district: str, community_code: str | None
) -> tuple[float, Place | None]:
    """(score factor, contradicted division) for a candidate in ``district`` and ``community_code``."""
    outside = _outside(index, p, district, community_code)
    factor = DISTRICT_MISMATCH if outside is not None else 1.0
    community = p.admin.get(COMMUNITY)
    if (
        community_code is not None
        and community is not None
        and community_code not in index.named_alike(community.code)
    ):
        factor *= COMMUNITY_MISMATCH
    return factor, outside


def _compound_factor(index: AddressIndex, p: Parsed, row: int) -> float:
    if not p.compound:
        return 1.0
    c = int(index.compound[row])
    if c >= 0 and index.compound_name[c] == p.compound:
        return 1.0
    if p.compound in index.compounds_by_name:  # names another compound: a contradiction
        return COMPOUND_MISMATCH
    return 1.0  # 底商, 东门 …: words that are not a place


def _on_road(index: AddressIndex, p: Parsed, road: int, sim: float) -> _Hit:
    """Resolve a query on one road: building → door → interpolation → road."""
    hit = _resolve(index, p, road, sim)
    hit.similarity = sim
    return hit


def _resolve(index: AddressIndex, p: Parsed, road: int, sim: float) -> _Hit:
    name_factor = 1.0 if sim >= 1.0 else min(FUZZY_CAP, sim * 0.95) / BASE[Level.door]
    district = index.road_district[road]
    if p.door is None:
        factor, outside = _admin_factor(index, p, district, None)
        score = (0.75 if p.building is None else BASE[Level.road]) * factor * name_factor
        lon, lat = float(index.road_lon[road]), float(index.road_lat[road])
        return _Hit(score, Level.road, road, lon=lon, lat=lat, outside=outside)
    suffix = SUFFIX_IX.get(p.suffix, 0)
    if p.building is not None:
        row = index.find(road, p.door, suffix, p.building)
        if row >= 0:
            factor, outside = _admin_factor(index, p, district, index.community_of(row))
            return _Hit(
                BASE[Level.building] * factor * name_factor,
                Level.building,
                road,
                row,
                door=p.door,
                suffix=p.suffix,
                outside=outside,
            )
    row = index.find(road, p.door, suffix, 0)
    if row >= 0:
        factor, outside = _admin_factor(index, p, district, index.community_of(row))
        factor *= name_factor * _compound_factor(index, p, row)
        if p.building is not None or (p.unit is not None and index.buildings_of(road, p.door, suffix)):
            factor *= MISSING_BUILDING  # a building asked for (or a unit among buildings): not here
        return _Hit(
            BASE[Level.door] * factor, Level.door, road, row, door=p.door, suffix=p.suffix, outside=outside
        )
    factor, outside = _admin_factor(index, p, district, None)
    hit = _interpolate(index, p, road, name_factor * factor)
    hit.outside = outside
    return hit


def _interpolate(index: AddressIndex, p: Parsed, road: int, factor: float) -> _Hit:
    """A door the database lacks: between its same-side neighbours, else the road itself."""
    assert p.door is not None
    below, above = index.neighbours(road, p.door)
    if below >= 0 and above >= 0:
        lo, hi = int(index.pkey[below] % 10_000), int(index.pkey[above] % 10_000)
        t = (p.door - lo) / (hi - lo) if hi > lo else 0.5
        lon = float(index.plon[below] + t * (index.plon[above] - index.plon[below]))
        lat = float(index.plat[below] + t * (index.plat[above] - index.plat[below]))
        score = BASE[Level.interpolated] * factor * (1.0 if hi - lo <= 12 else 0.85)
        return _Hit(score, Level.interpolated, road, lon=lon, lat=lat, door=p.door, suffix=p.suffix)
    near = below if below >= 0 else above
    if near >= 0 and abs(int(index.pkey[near] % 10_000) - p.door) <= 6:
        return _Hit(
            BASE[Level.interpolated] * factor * 0.85,
            Level.interpolated,
            road,
            lon=float(index.plon[near]),
            lat=float(index.plat[near]),
            door=p.door,
            suffix=p.suffix,
        )
    return _Hit(
        BASE[Level.road] * factor,
        Level.road,
        road,
        lon=float(index.road_lon[road]),
        lat=float(index.road_lat[road]),
    )


def _compound_hits(index: AddressIndex, p: Parsed, name: str, sim: float) -> list[_Hit]:
    hits: list[_Hit] = []
    building, unit, room = p.building, p.unit, p.room
    if p.door is not None:  # 富力苑7号 / 富力苑7-1-801: after a compound name a number is a building
        building, unit, room = p.door, p.building, p.unit
    for c in index.compounds_by_name.get(name, ()):
        road = int(index.compound_road[c])
        if road < 0:
            continue
        as_door = Parsed(
            text=p.text,
            admin=p.admin,
            head=index.road_name[road],
            door=int(index.compound_door[c]),
            suffix=SUFFIXES[int(index.compound_suffix[c])],
            building=building,
            unit=unit,
            room=room,
        )
        hit = _on_road(index, as_door, road, sim)
        community = index.compound_community[c]
        if COMMUNITY in p.admin and p.admin[COMMUNITY].code != community:
            hit.score *= COMMUNITY_MISMATCH
        hits.append(hit)
    return hits


def _division_hit(index: AddressIndex, p: Parsed, asked_more: bool) -> _Hit | None:
    if not p.admin:
        return None
    finest = p.admin[max(p.admin)]
    level = _DIVISION_LEVELS[finest.level]
    division = index.divisions.get(finest.code)
    if division is None:  # a division outside the address database's city
        return None
    score = BASE[level] if asked_more else 0.9
    return _Hit(score, level, lon=division.lon, lat=division.lat, division=division.code)


def _written_as(gaz: Gazetteer, p: Parsed, name: str, leftover: str) -> float:
    """1.0 when the name stands in the head as written; below when characters nothing explains come
    before it (新安贞东路 is not 安贞东路): the share of the written head the name accounts for."""
    if not leftover or _JUNK_RE.fullmatch(leftover):
        return 1.0
    # division names the admin reading did not take (a repeat, another order, after a label) …
    for start in range(len(leftover) - 1):
        chain, end, steps = read_admin(gaz, leftover[start:], p.admin)
        if start + end == len(leftover) and steps and (start == 0 or not all(s.bare for s in steps)):
            p.admin = chain  # … which the answer must then agree with (富阳金色家园 is not in Beijing)
            return 1.0
    return len(name) / (len(name) + len(leftover))


def _exact_hits(index: AddressIndex, p: Parsed, gaz: Gazetteer) -> list[_Hit]:
    """Candidates from a road or compound name the database has, as written (or with characters
    added in front, scored as an edit)."""
    head = p.head
    if not head:
        return []
    roads, sim, leftover = _road_candidates(index, head)
    if roads:
        if p.gave_back:
            # names handed back that the road does not begin with were divisions after all
            admin = p.admin
            for offset, chain in p.handed:
                if len(leftover) >= offset:
                    admin = chain
            p.admin = admin  # readings are this call's own: set, not copied
        sim = _written_as(gaz, p, index.road_name[roads[0]], leftover)
        return [_on_road(index, p, r, sim) for r in roads]
    for i in range(len(head) - 1):
        if head[i:] in index.compounds_by_name:
            hits = _compound_hits(index, p, head[i:], _written_as(gaz, p, head[i:], head[:i]))
            if hits:
                return hits
    return []


def _fuzzy_hits(index: AddressIndex, p: Parsed) -> tuple[list[_Hit], float]:
    """Hits on roads spelt like the head, and the best similarity found."""
    if not p.head:
        return [], 0.0
    if p.handed:
        # a misspelt name cannot show that it begins with the divisions handed back: keep them as context
        p.admin = p.handed[-1][1]
    district = p.admin[DISTRICT].code if DISTRICT in p.admin else None
    fuzzy = _fuzzy_roads(index, p.head, district)
    if not fuzzy and district and not p.gave_back:
        fuzzy = _fuzzy_roads(index, p.head, None)  # the district may be the mistake
    return [_on_road(index, p, r, s) for r, s in fuzzy], max((s for _, s in fuzzy), default=0.0)


def _dress(index: AddressIndex, gaz: Gazetteer, hit: _Hit, p: Parsed) -> Candidate:
    if hit.division is not None:
        division = index.divisions[hit.division]
        names: list[str | None] = [*division.path, None, None, None, None][:5]
        code = division.code
        return Candidate(
            formatted_address=division.full_name,
            level=hit.level,
            score=hit.score,
            lon=hit.lon,
            lat=hit.lat,
            province=names[0],
            city=names[1],
            district=names[2],
            township=names[3],
            community=division.name if division.level == COMMUNITY else None,
            adcode=code[:6] if len(code) >= 6 else None,
            towncode=code[:9] if len(code) >= 9 else None,
            community_code=code if len(code) == 12 else None,
        )
    road = hit.road
    if hit.row >= 0:
        row = hit.row
        key = int(index.key[row])
        building = key % 1000
        number, suffix = (key // 100_000) % 10_000, SUFFIXES[(key // 1000) % 100]
        community_code = index.community_of(row)
        lon, lat = float(index.lon[row]), float(index.lat[row])
    else:
        building, number, suffix = 0, hit.door, hit.suffix
        community_code = None
        lon, lat = hit.lon, hit.lat
    district_code = index.road_district[road]
    township_code = community_code[:9] if community_code else None
    district = index.divisions.get(district_code)
    township = index.divisions.get(township_code) if township_code else None
    community = index.divisions.get(community_code) if community_code else None
    c = int(index.compound[hit.row]) if hit.row >= 0 else -1
    compound, kind = (index.compound_name[c], index.compound_kind[c]) if c >= 0 else (None, None)
    door = door_text(number, suffix) if number is not None else ""
    province = district.path[0] if district else None
    return Candidate(
        formatted_address=full_address(
            province or "",
            district.name if district else "",
            township.name if township else "",
            index.road_name[road],
            door,
            compound,
            kind,
            building or None,
        ),
        level=hit.level,
        score=hit.score,
        lon=lon,
        lat=lat,
        province=province,
        city=district.path[1] if district and len(district.path) > 1 else None,
        district=district.name if district else None,
        township=township.name if township else None,
        community=community.name if community else None,
        road=index.road_name[road],
        number=door or None,
        compound=compound,
        building=f"{building}号楼" if building else None,
        unit=f"{p.unit}单元" if p.unit is not None and hit.level is Level.building else None,
        room=str(p.room) if p.room is not None and hit.level is Level.building else None,
        adcode=district_code,
        towncode=township_code,
        community_code=community_code,
        address_code=address_code(community_code, index.road_code[road], number, suffix, building or None)
        if community_code and number is not None and hit.row >= 0
        else None,
    )


def _context(gaz: Gazetteer, city: str | None, district: str | None) -> dict[int, Place]:
    admin: dict[int, Place] = {}
    for value in (city, district):
        if value:
            chain, end, _ = read_admin(gaz, value.strip(), admin)
            if end:
                admin = chain
    return admin


def geocode(
    index: AddressIndex,
    query: str,
    *,
    city: str | None = None,
    district: str | None = None,
    limit: int = 5,
    gaz: Gazetteer | None = None,
) -> GeocodeResult:
    """Candidates for one address, best first (see the module docstring for the scoring)."""
    gaz = gaz or default_gazetteer()
    readings = parse(query, _context(gaz, city, district), gaz)
    if not readings:
        return GeocodeResult(query, Status.empty, message="nothing to look up")
    scored = [(h, r) for r in readings for h in _exact_hits(index, r, gaz)]
    known_name = bool(scored)
    if not scored:
        # every reading: a name handed back (紫竹园西路 of 紫竹院街道) may be the closer spelling,
        # unless the greedy one is already within one edit of a long name
        for reading in readings:
            hits, best_sim = _fuzzy_hits(index, reading)
            scored.extend((h, reading) for h in hits)
            if best_sim >= 0.85:
                break
    main = readings[0]
    if not scored:
        asked_more = _asked_more(main)
        hit = _division_hit(index, main, asked_more)
        if hit is None:
            return GeocodeResult(
                query,
                Status.not_found,
                parts=main.components,
                message="no such place in the address database",
            )
        status = Status.partial if asked_more else Status.ok
        message = "the road or place is not in the address database; the division is" if asked_more else None
        return GeocodeResult(query, status, [_dress(index, gaz, hit, main)], main.components, message)
    division = _contradicted(index, gaz, scored)
    if division is not None and division[0] is None:  # named a city this database does not cover
        return GeocodeResult(query, Status.not_found, parts=division[1].components, message=division[2])
    scored.sort(key=lambda hp: (hp[0].outside is not None, -hp[0].score, hp[1].gave_back))
    ambiguous = _ambiguous(index, scored)
    if ambiguous:
        for h, _ in scored:
            h.score *= AMBIGUOUS
    seen: set[tuple[int, int, float, float]] = set()
    candidates: list[Candidate] = []
    if division is not None:
        candidates.append(_dress(index, gaz, division[0], division[1]))
    for h, reading in scored:
        ident = (h.road, h.row, round(h.lon, 6), round(h.lat, 6))
        if ident in seen:
            continue
        seen.add(ident)
        candidates.append(_dress(index, gaz, h, reading))
        if len(candidates) >= limit:
            break
    best_reading = scored[0][1] if division is None else division[1]
    best = candidates[0]
    if division is not None:
        status, message = Status.partial, division[2]
    elif ambiguous:
        status, message = Status.ambiguous, "the road name exists in several districts: add the district"
    elif best.score >= CONFIDENT:
        status, message = Status.ok, None
    else:
        status, message = Status.partial, _why_partial(best, best_reading, known_name, scored[0][0])
    return GeocodeResult(query, status, candidates, best_reading.components, message)


def _contradicted(
    index: AddressIndex, gaz: Gazetteer, scored: list[tuple[_Hit, Parsed]]
) -> tuple[_Hit | None, Parsed, str] | None:
    """Keep hits outside a named division below the clean ones and below 0.5. When every hit is
    outside, the named division leads: (its hit, or None outside the database's area; the
    reading; why). None when some hit agrees with every division the query names."""
    clean = [h.score for h, _ in scored if h.outside is None]
    floor = min(clean, default=1.0)
    for h, _ in scored:
        if h.outside is not None:
            h.score = min(h.score, CONTRADICTED_CAP, floor * 0.99)
    if clean:
        return None
    _, reading = max(scored, key=lambda hp: hp[0].score)
    named = reading.admin[max(reading.admin)]  # every hit is outside a named division: there is one
    where = "".join(dict.fromkeys(place.name for place in gaz.path(named)))  # 北京市 once, not as city too
    what = reading.head or "the address"
    division = _division_hit(index, reading, True)
    if division is None:
        return None, reading, f"{where} is outside the address database's area; nothing there matches"
    for h, _ in scored:
        h.score = min(h.score, division.score * 0.95)
    return division, reading, f"no {what} in {where}: the division itself (matches elsewhere follow, lower)"


def _asked_more(p: Parsed) -> bool:
    """Anything written beyond the divisions (a name, a number, a note): a division alone does not
    answer it, so the division is a partial answer, not a confident one."""
    return bool(p.head or p.compound or p.remainder) or any(
        v is not None for v in (p.door, p.building, p.unit, p.room, p.floor)
    )


def _ambiguous(index: AddressIndex, scored: list[tuple[_Hit, Parsed]]) -> bool:
    """Two top hits of the same quality in different districts that the query does not tell apart."""
    if len(scored) < 2:
        return False
    (a, pa), (b, _) = scored[0], scored[1]
    if DISTRICT in pa.admin or a.road < 0 or b.road < 0:
        return False
    return (
        abs(a.score - b.score) < 0.02
        and a.level == b.level
        and index.road_district[a.road] != index.road_district[b.road]
    )


def _why_partial(best: Candidate, p: Parsed, known_name: bool, hit: _Hit) -> str:
    if not known_name:
        return "no road of that name; the closest spelling was used"
    if hit.similarity < 1.0:
        return f"no road or place named {p.head}; {best.road or best.compound} was used"
    if best.level is Level.interpolated:
        return "no such door number; placed between its neighbours on the road"
    if best.level is Level.road:
        return "no such door number on this road" if p.door is not None else "matched the road only"
    if p.building is not None and best.level is Level.door:
        return "no such building at this door; the door itself"
    return "the divisions in the query do not agree with the address found"
