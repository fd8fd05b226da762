"""Parsing a normalised address: the admin chain, the place name, and the number tail.

``北京市朝阳区将台地区将台东路22号院3号楼2单元301室`` →
admin [北京市, 朝阳区, 将台地区], head 将台东路, door 22 (院), building 3, unit 2, room 301.

The admin chain is read greedily, longest name first, keeping only names that lie on one path
(a street inside the district already read, or its parent when written in the wrong order).
Division names may just as well begin a road name (朝阳 → 朝阳门北街, 大兴国际机场 →
大兴国际机场东街), so :func:`parse` also returns the reading that gives the last division name
back to the head; the matcher tries both and keeps whichever finds the address.

What the matcher reads (head, door, building … as numbers) stays as it was; what people and the
API see, :meth:`Parsed.components`, cuts the text after the chain with
:func:`geocode.parsing.segment.segment` into every part real addresses have (development zone,
village and group, compound, phase, zone, building, unit, floor, room, shop), gives a division
stem back when it begins the next name (延安 + 路), and reads divisions written late or twice
(天山路街道上海市长宁区…). Stems of streets and towns outside the served city count only inside
a city or county already read, so a query of the served city never gains a town elsewhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

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
from geocode.parsing.lexicon import COMMUNITY_ENDS, DEVZONE_ENDS, POI_ENDS
from geocode.parsing.segment import Segments, segment

HOME_PROVINCE = "11"  # the served city's province: preferred when a name is ambiguous nationwide
MUNICIPALITIES = ("北京市", "天津市", "上海市", "重庆市")

_TOKEN_RE = re.compile(r"([甲乙丙丁])?(\d+)((?:-\d+)*)(号楼|号院|号|单元|室|层|楼|户|院)?")
_DOOR_UNITS = ("号", "号院", "院", None)
_ROAD_STARTS = frozenset("路街道巷弄大")
_DEVZONE_RE = re.compile("(?:" + "|".join(sorted(DEVZONE_ENDS, key=len, reverse=True)) + ")(?![路街道巷弄])")
_NEAR_ROAD_RE = re.compile(
    r"(?:路|街|道|巷|弄|大道|大街)|.(?:路|街|大道|大街|巷)|.[东西南北中](?:路|街|大道|大街)"
)  # 广化 + 桥路, 白云 + 山南路: the stem starts a road
_POI_WORD_RE = re.compile(
    "(?:" + "|".join(sorted((w for w in POI_ENDS if len(w) > 1), key=len, reverse=True)) + ")"
)  # 阳明 + 公寓: the stem begins a place name
_SIMPLE_RE = re.compile(
    r"(?P<road>(?:(?![区村镇乡园城街路道巷弄组社楼厂店])[\u4e00-\u9fff]){2,8}(?:大街|大道|胡同|路|街|巷))"
    r"(?P<door>[1-9]\d{0,4})号院?"
    r"(?:(?P<building>[1-9]\d{0,3})号楼)?(?:(?P<unit>[1-9]\d?)单元)?(?:(?P<room>[1-9]\d{2,4}|[1-9]\d{0,4}(?=室))室?)?"
)
_INNER_END_RE = re.compile(
    "|".join(w for w in POI_ENDS + DEVZONE_ENDS + COMMUNITY_ENDS if len(w) > 1) + "|中心|广场|市场|大厦|基地"
)
_TOWN_END_RE = re.compile(r"(?:街道|镇|乡|地区|社区|村|委会|办事处)$")
_TOWN_WORD_RE = re.compile(r"(?:街道办事处|街道|镇|乡)(?![路街道巷弄])")
_GENERIC_ROAD_RE = re.compile(
    r"[东西南北中]?[一二三四五六七八九十\d]*(?:大道|大街|路|街(?!道)|巷|弄|道)|[东西南北中]?环路"
)
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
    start: int = 0  # where the text after the division chain begins
    back: tuple[int, dict[int, Place], bool] | None = None  # the last name read: start, chain before, bare
    gave_back: bool = False  # division names were handed back to the head …
    handed: list[tuple[int, dict[int, Place]]] = field(default_factory=list)
    # … as (head characters up to the end of each name, the chain including it): a road matched
    # after that many characters did not use the name, so the name counts as context after all

    def components(self) -> Components:
        """The parts for people and the API: divisions from the chain, the rest from :func:`segment`."""
        simple = self._simple()
        if simple is not None:
            return simple
        return self._segmented()

    def _simple(self) -> Components | None:
        """The common plain form (将台东路22号院3号楼2单元301室) without the segmenter: the same
        answer (checked on 38,000 real and generated addresses) in a third of the time."""
        start, admin, township, devzone = _stem_before(self)
        if township or devzone:
            return None
        m = _SIMPLE_RE.fullmatch(self.text, start)
        if m is None or _INNER_END_RE.search(m["road"]):  # 天一广场开明街: a place before the road
            return None
        c = Components()
        for level, place in admin.items():
            setattr(c, _LEVEL_FIELDS[level], place.name)
        if c.province in MUNICIPALITIES and c.city is None:
            c.city = c.province
        c.road, c.number = m["road"], f"{m['door']}号"
        c.building = f"{m['building']}号楼" if m["building"] else None
        c.unit = f"{m['unit']}单元" if m["unit"] else None
        c.room = m["room"]
        return c

    def _segmented(self) -> Components:
        gaz = default_gazetteer()
        start, admin, township, devzone = _stem_before(self)
        seg = segment(self.text[start:], _division_at)
        admin = _late_divisions(gaz, seg.divisions, admin)
        c = Components()
        for level, place in admin.items():
            setattr(c, _LEVEL_FIELDS[level], place.name)
        c.township = c.township or township
        if c.township is None and TOWNSHIP not in admin and (CITY in admin or DISTRICT in admin):
            _town_before_name(gaz, seg, admin, c)
        if c.province in MUNICIPALITIES and c.city is None:
            c.city = c.province
        _fill(c, seg, self.trailing)
        c.devzone = devzone or c.devzone
        return c


def _stem_before(p: Parsed) -> tuple[int, dict[int, Place], str | None, str | None]:
    """Where the text after the divisions starts once the last name read is looked at again.

    (start, chain, township, devzone): a stem that begins the next name goes back to it (延安 +
    路146号, 阳明 + 公寓), a stem before a town or zone word becomes that town or zone (龙港 + 镇,
    崇福镇 + 开发区), and a zone the NBS lists among streets (萧山经济技术开发区) is a zone.
    """
    admin, start, text = p.admin, p.start, p.text
    township = devzone = None
    if p.back is not None:
        stem_start, before, bare = p.back
        level = admin[max(admin)].level
        stem = text[stem_start:start]
        unsuffixed = not bare and level >= TOWNSHIP and not _TOWN_END_RE.search(stem)
        begins_name = bare and (
            stem[-1] in _ROAD_STARTS
            or (level >= DISTRICT and _NEAR_ROAD_RE.match(text, start))
            or (level >= TOWNSHIP and _POI_WORD_RE.match(text, start))
        )
        if begins_name or ((bare or unsuffixed) and _GENERIC_ROAD_RE.match(text, start)):
            start, admin = stem_start, before
        elif bare and text.startswith(("市", "县", "区"), start) and len(text) > start + 1:
            start += 1  # 江津 + 市: a stem with a suffix it no longer has
        if bare and (m := _TOWN_WORD_RE.match(text, start)):
            township, start, admin = text[stem_start : m.end()], m.end(), before
        elif (bare or level == TOWNSHIP) and (m := _DEVZONE_RE.match(text, start)):
            devzone, start = text[stem_start : m.end()], m.end()
            if level >= TOWNSHIP:
                admin = before  # a town's stem is the zone's name; a city (宁波高新区) stays the city too
    town = admin.get(TOWNSHIP)
    if town is not None and _DEVZONE_RE.search(town.name):
        if devzone is None and p.back is not None and p.back[0] < start:
            devzone = text[p.back[0] : start]
            if text.startswith("区", start):  # 高新产业园 + 区
                devzone, start = devzone + "区", start + 1
        devzone, admin = devzone or town.name, {k: v for k, v in admin.items() if k != TOWNSHIP}
    return start, admin, township, devzone


def _late_divisions(gaz: Gazetteer, names: list[str], admin: dict[int, Place]) -> dict[int, Place]:
    """Divisions written after other words (天山路街道上海市长宁区…) complete the chain; a second,
    complete address after a stale prefix (…邹城市中国浙江省嘉兴市…) replaces what contradicts it."""
    for name in names:
        chain, end, _ = read_admin(gaz, name, admin)
        if end == len(name):
            admin = {**chain, **admin}
            continue
        chain, end, _ = read_admin(gaz, name)
        stale = PROVINCE in chain or min(admin, default=TOWNSHIP) >= TOWNSHIP
        if end != len(name) or not stale:
            continue
        kept = {k: v for k, v in admin.items() if all(_nested(v, q) for q in chain.values())}
        town = admin.get(TOWNSHIP)
        if town is not None and TOWNSHIP not in kept:  # 天山路街道 of 长宁区, not the one elsewhere
            same = [a.place for a in gaz.aliases.get(town.name, ()) if a.place.level == TOWNSHIP]
            fits = [q for q in same if all(_nested(q, x) for x in chain.values())]
            if fits:
                kept[TOWNSHIP] = fits[0]
        admin = {**kept, **chain}
    return admin


def _town_before_name(gaz: Gazetteer, seg: Segments, admin: dict[int, Place], c: Components) -> None:
    """崧厦伞城大道, 柳市大兴东路: a town's stem glued to the road name that follows it.

    Only for the reported parts: the matcher keeps its own readings. The stem must fit the chain
    read, and what is left must still be a name of its own (not 桥路 or 南路).
    """
    for attr in ("road",):  # a place name keeps its stem: 塘栖康宁合府, 下沙龙湖滟澜山 are written so
        name = getattr(seg, attr)
        if not name or len(name) < 5:
            continue
        for end, alias in gaz.scan(name, 0):
            place = alias.place
            if (
                place.level == TOWNSHIP
                and alias.bare
                and len(name) - end >= 3
                and not _NEAR_ROAD_RE.fullmatch(name, end)
                and not _GENERIC_ROAD_RE.fullmatch(name, end)
                and all(_nested(place, q) for q in admin.values())
            ):
                c.township = name[:end]
                setattr(seg, attr, name[end:])
                return
        return


def _nested(a: Place, b: Place) -> bool:
    return a.code.startswith(b.code) or b.code.startswith(a.code)


def _division_at(text: str, pos: int) -> int:
    """End of a full (not bare) province, city or county name starting at ``pos``; 0 when there is none.

    Streets are left to the segmenter: the NBS lists zones among them (经济开发区), which are not
    a repeated prefix but a part of the address."""
    gaz = default_gazetteer()
    if text[pos] not in _division_starts(gaz):
        return 0
    for end, alias in gaz.scan(text, pos):
        if not alias.bare and end - pos >= 3 and alias.place.level <= DISTRICT:
            return end
    return 0


@lru_cache(maxsize=1)
def _division_starts(gaz: Gazetteer) -> frozenset[str]:
    """First characters of the full province, city and county names (a quick no for most positions)."""
    return frozenset(
        text[0]
        for text, entries in gaz.aliases.items()
        if len(text) >= 3 and any(not a.bare and a.place.level <= DISTRICT for a in entries)
    )


def _is_division(gaz: Gazetteer, text: str | None) -> bool:
    if not text or not gaz.starts_name(text):
        return False
    _, end, steps = read_admin(gaz, text)
    return end == len(text) and not all(st.bare for st in steps)


def _fill(c: Components, seg: Segments, trailing: bool) -> None:
    """Copy the segmenter's parts into ``c`` in the API's spelling (22号, 3号楼, 2单元, 5层)."""
    gaz = default_gazetteer()
    if trailing:  # 将台东路22号（朝阳区）: the division written last is context, not a place name
        for name in ("poi", "subpoi"):
            if _is_division(gaz, getattr(seg, name)):
                setattr(seg, name, None)
        seg.rest = [w for w in seg.rest if not _is_division(gaz, w)]
    c.district = c.district or seg.district
    c.township = c.township or seg.township
    c.community = c.community or seg.community
    c.devzone, c.road, c.village_group = seg.devzone, seg.road, seg.group
    if seg.number:
        number = seg.number.removesuffix("院")
        c.number = number if number.endswith(("号", "弄")) else number + "号"
    c.poi, c.subpoi, c.compound = seg.poi, seg.subpoi, seg.poi
    c.phase, c.zone, c.shop = seg.phase, seg.zone, seg.shop
    if seg.building:
        c.building = f"{seg.building}号楼" if seg.building[-1].isdigit() else f"{seg.building}座"
    c.unit = f"{seg.unit}单元" if seg.unit else None
    c.floor = f"{seg.floor}层" if seg.floor else None
    c.room = seg.room
    c.remainder = "".join(seg.rest) or None


def _moved_town(admin: dict[int, Place], place: Place) -> bool:
    """A town outside the served city written under the county it belonged to before a split or
    merger (余杭区临平, now 临平区): same city, no town read yet — the town is kept."""
    city = admin.get(CITY)
    district = admin.get(DISTRICT)
    return (
        place.level == TOWNSHIP
        and not place.code.startswith(HOME_PROVINCE)
        and TOWNSHIP not in admin
        and district is not None
        and place.code[:4] == district.code[:4]
        and (city is None or place.code.startswith(city.code))
    )


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
    context = admin.get(DISTRICT) or admin.get(CITY)
    city_code = context.code[:4] if context is not None else None
    near_road: dict[int, bool] = {}
    for end, alias in found:
        place = alias.place
        code = place.code
        if place.level == TOWNSHIP and city_code is not None and code[:4] != city_code:
            continue  # a street of another city than the one read (41,000 of them share few names)
        # a street stem elsewhere (下沙 of 下沙街道) only inside its district or city, never a road's start
        if alias.bare and place.level == TOWNSHIP and not code.startswith(HOME_PROVINCE):
            if city_code is None:
                continue
            if end not in near_road:
                near_road[end] = _NEAR_ROAD_RE.match(text, end) is not None
            if near_road[end]:
                continue
        # division codes nest (11 ⊃ 1101 ⊃ 110105 ⊃ 110105023): one path means prefix-related codes
        consistent = all(code.startswith(c) or c.startswith(code) for c in codes)
        if not consistent and not _regrouped(admin, place, alias.bare) and not _moved_town(admin, place):
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
    p = Parsed(text=text, admin=dict(admin), head=rest[:head_end], gave_back=gave_back, start=start)
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
    if steps:
        readings[0].back = (steps[-1].start, steps[-1].before, steps[-1].bare)
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
