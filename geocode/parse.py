"""Parsing a normalised address: the admin chain, the place name, and the number tail.

``北京市朝阳区将台地区将台东路22号院3号楼2单元301室`` →
admin [北京市, 朝阳区, 将台地区], head 将台东路, door 22 (院), building 3, unit 2, room 301.

The admin chain is read greedily, longest name first, keeping only names that lie on one path
(a street inside the district already read, or its parent when written in the wrong order).
Division names may just as well begin a road name (朝阳 → 朝阳门北街, 大兴国际机场 →
大兴国际机场东街), so :func:`parse` also returns the reading that gives the last division name
back to the head; the matcher tries both and keeps whichever finds the address.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

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
from geocode.model import Components
from geocode.normalize import normalize

HOME_PROVINCE = "11"  # the served city's province: preferred when a name is ambiguous nationwide
MUNICIPALITIES = ("北京市", "天津市", "上海市", "重庆市")

_TOKEN_RE = re.compile(r"([甲乙丙丁])?(\d+)((?:-\d+)*)(号楼|号院|号|单元|室|层|楼|户|院)?")
_DOOR_UNITS = ("号", "号院", "院", None)
_LEVEL_FIELDS = {
    PROVINCE: "province",
    CITY: "city",
    DISTRICT: "district",
    TOWNSHIP: "township",
    COMMUNITY: "community",
}


@dataclass(slots=True)
class Parsed:
    text: str
    admin: dict[int, Place] = field(default_factory=dict)
    head: str = ""
    door: int | None = None
    suffix: str = ""
    yard: bool = False  # 号院 / 院: the door opens a compound
    compound: str = ""  # a name written after the door (天通新村)
    building: int | None = None
    unit: int | None = None
    room: int | None = None
    floor: int | None = None
    remainder: str = ""
    trailing: bool = False  # a division name was written after the address (… 22号，朝阳区)
    gave_back: bool = False  # division names were handed back to the head …
    handed: list[tuple[int, dict[int, Place]]] = field(default_factory=list)
    # … as (head characters up to the end of each name, the chain including it): a road matched
    # after that many characters did not use the name, so the name counts as context after all

    def components(self) -> Components:
        c = Components()
        for level, place in self.admin.items():
            setattr(c, _LEVEL_FIELDS[level], place.name)
        c.road = self.head or None
        if self.door is not None:
            c.number = (
                f"{self.suffix}{self.door}号"
                if self.suffix in ("甲", "乙", "丙", "丁")
                else (f"{self.door}{self.suffix}号")
            )
        c.compound = self.compound or None
        c.building = f"{self.building}号楼" if self.building is not None else None
        c.unit = f"{self.unit}单元" if self.unit is not None else None
        c.room = str(self.room) if self.room is not None else None
        c.floor = f"{self.floor}层" if self.floor is not None else None
        c.remainder = self.remainder or None
        return c


def _regrouped(admin: dict[int, Place], place: Place, bare: bool) -> bool:
    """A county written under the prefecture it belonged to before a regrouping (柳州地区忻城县,
    now 来宾市): same province, no county read yet, and its full name — the county wins."""
    city = admin.get(CITY)
    return (
        not bare
        and place.level == DISTRICT
        and city is not None
        and DISTRICT not in admin
        and place.code[:2] == city.code[:2]
        and all(q.level < CITY or q.contains(place) or q is city for q in admin.values())
    )


def _best_alias(
    gaz: Gazetteer, text: str, pos: int, admin: dict[int, Place]
) -> tuple[int, Place, bool] | None:
    best: tuple[int, Place, bool] | None = None
    best_rank: tuple[int, bool, bool, bool, int, bool] | None = None
    found = gaz.scan(text, pos)
    if not found:
        return None
    codes = [q.code for q in admin.values()]
    for end, alias in found:
        place = alias.place
        code = place.code
        # division codes nest (11 ⊃ 1101 ⊃ 110105 ⊃ 110105023): one path means prefix-related codes
        consistent = all(code.startswith(c) or c.startswith(code) for c in codes)
        if not consistent and not _regrouped(admin, place, alias.bare):
            continue
        home = code.startswith(HOME_PROVINCE)
        same = admin.get(place.level)
        fresh = same is None or same.code != code  # 吉林吉林: the second one is the city
        # the served city wins ties down to its districts (朝阳 → 朝阳区 of Beijing), but not with a
        # street or village stem against a province or county elsewhere (河北 → 河北省, not 河北镇)
        rank = (end, consistent, fresh, home and place.level <= DISTRICT, -place.level, home)
        if best_rank is None or rank > best_rank:
            best, best_rank = (end, place, alias.bare), rank
    return best


@dataclass(slots=True)
class AdminStep:
    """One division name read: where it started, the chain before it, and whether it was a bare stem."""

    start: int
    before: dict[int, Place]
    bare: bool


def read_admin(
    gaz: Gazetteer, text: str, admin: dict[int, Place] | None = None
) -> tuple[dict[int, Place], int, list[AdminStep]]:
    """Consume division names from the start: (chain, end position, the steps taken)."""
    chain = dict(admin or {})
    pos = 0
    steps: list[AdminStep] = []
    while pos < len(text):
        hit = _best_alias(gaz, text, pos, chain)
        if hit is None:
            break
        end, place, bare = hit
        if CITY in chain and place.level == DISTRICT and not chain[CITY].contains(place):
            chain[CITY] = gaz.places[place.parent or place.code[:4]]  # regrouped: today's prefecture
        same = chain.get(place.level)
        if bare and same is not None and same.code == place.code:
            break  # 酒仙桥街道酒仙桥东路: a stem repeated right after its division starts the road name
        steps.append(AdminStep(pos, dict(chain), bare))
        chain[place.level] = place
        pos = end
    return chain, pos, steps


def _read_tail(p: Parsed, rest: str, gaz: Gazetteer) -> None:
    """Fill door, building, unit, room and floor from the text after the head."""
    cursor = 0
    words: list[str] = []
    for m in _TOKEN_RE.finditer(rest):
        gap = rest[cursor : m.start()]
        cursor = m.end()
        pre, value, dashes, unit = m.group(1), int(m.group(2)), m.group(3), m.group(4)
        parts = [int(x) for x in dashes.split("-")[1:]] if dashes else []
        if gap:
            if p.door is not None and p.building is None and not p.compound:
                p.compound = gap
            else:
                words.append(gap)
        if p.door is None and p.building is None and unit in _DOOR_UNITS and value > 0:
            p.door = value
            p.yard = unit in ("号院", "院")
            if pre:
                p.suffix = pre
            if parts and (unit is not None or len(parts) == 1):
                p.suffix = f"-{parts[0]}"
            elif len(parts) >= 2:
                p.building, p.unit = parts[0], parts[1]
                p.room = parts[2] if len(parts) > 2 else None
            continue
        if pre:
            words.append(pre)
        if parts and unit is None and p.building is None:
            p.building, p.unit = value, parts[0]
            p.room = parts[1] if len(parts) > 1 else None
        elif unit == "号楼" or (unit in ("楼", "号") and p.building is None):
            if p.building is None:
                p.building = value
            else:
                p.floor = value
        elif unit == "单元":
            p.unit = value
        elif unit in ("室", "户"):
            p.room = value
        elif unit in ("层", "楼"):
            p.floor = value
        elif unit is None:
            if p.building is None and p.unit is None and p.yard:
                p.building = value
            elif p.room is None:
                p.room = value
        else:
            words.append(m.group(0))
    if cursor < len(rest):
        tail = rest[cursor:]
        if p.door is not None and p.building is None and not p.compound and not words:
            p.compound = tail
        else:
            words.append(tail)
    # a division name written after the address (将台东路22号朝阳区) is context, not remainder
    kept: list[str] = []
    for w in [p.compound, *words] if p.compound else words:
        if not gaz.starts_name(w):
            if w != p.compound:
                kept.append(w)
            continue
        chain, end, steps = read_admin(gaz, w, p.admin)
        added = [level for level in chain if level not in p.admin]
        # a whole word of division names, or a full district (or coarser) name before other words
        whole = end == len(w) and not all(s.bare for s in steps)
        leading = end > 0 and not steps[0].bare and min(added, default=COMMUNITY + 1) <= DISTRICT
        if added and (whole or leading):
            p.admin = chain  # 将台东路22号（朝阳区）（近地铁站）: the district counts, the rest is remainder
            p.trailing = True
            if w == p.compound:
                p.compound = ""
            if end < len(w):
                kept.append(w[end:])
        elif w != p.compound:
            kept.append(w)
    p.remainder = "".join(kept)


def _split(text: str, start: int, admin: dict[int, Place], gaz: Gazetteer, gave_back: bool) -> Parsed:
    rest = text[start:]
    m = _TOKEN_RE.search(rest)
    head_end = m.start() if m else len(rest)
    p = Parsed(text=text, admin=dict(admin), head=rest[:head_end], gave_back=gave_back)
    _read_tail(p, rest[head_end:], gaz)
    return p


def parse(query: str, context: dict[int, Place] | None = None, gaz: Gazetteer | None = None) -> list[Parsed]:
    """Readings of ``query``, the greedy one first; empty when nothing usable is left."""
    gaz = gaz or default_gazetteer()
    text = normalize(query)
    if not text:
        return []
    admin, end, steps = read_admin(gaz, text, context)
    readings = [_split(text, end, admin, gaz, False)]
    if end >= len(text):
        return readings
    # hand back the last division name, or the last two when both were bare stems (酒仙桥 + 东路)
    for k in range(len(steps) - 1, max(len(steps) - 3, -1), -1):
        step = steps[k]
        if k < len(steps) - 1 and not (step.bare and steps[-1].bare):
            break
        if k == len(steps) - 1 and not (step.bare or not text[end].isdigit()):
            continue
        other = _split(text, step.start, step.before, gaz, True)
        for j in range(k, len(steps)):
            stop = steps[j + 1].start if j + 1 < len(steps) else end
            chain = steps[j + 1].before if j + 1 < len(steps) else admin
            other.handed.append((stop - step.start, chain))
        readings.append(other)
    return readings


def parse_divisions(query: str) -> Components:
    """Only the division part (province … community), canonical current names, implied parents filled."""
    gaz = default_gazetteer()
    readings = parse(query, gaz=gaz)
    comps = Components()
    if not readings:
        return comps
    # a division written out after the address outweighs a stem guessed at its start
    admin = next((r.admin for r in readings if r.trailing), readings[0].admin)
    if admin:
        finest = admin[max(admin)]
        for place in gaz.path(finest):
            if place.level in _LEVEL_FIELDS:
                setattr(comps, _LEVEL_FIELDS[place.level], place.name)
    if comps.province in MUNICIPALITIES and comps.city is None:
        comps.city = comps.province
    return comps
