"""The part of an address after its divisions, cut into named parts by the words that end them.

``下沙经济开发区21号大街1482号`` → devzone 下沙经济开发区, road 21号大街, number 1482号;
``泰和小区B栋1097`` → poi 泰和小区, building B, room 1097; ``华东园7-6-1046`` → building 7,
unit 6, room 1046. At each position every kind of part is tried and the one that ends first wins
(ties go to the kind listed first), so a name never swallows the next part. Numbers are read by
context: after a road a bare number is the door, after a compound it is a building or a room.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from geocode.normalize import cn_to_int
from geocode.parsing.lexicon import (
    ASSIST_WORDS,
    COMMUNITY_ENDS,
    DEVZONE_ENDS,
    GROUP_ENDS,
    POI_ENDS,
    ROAD_ENDS,
    TOWNSHIP_ENDS,
)

_H = "\u4e00-\u9fff"


def _alt(words: tuple[str, ...]) -> str:
    return "|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True))


_NAME = rf"[{_H}A-Za-z][{_H}A-Za-z0-9]"  # with a count after it: a first character, then up to n more
# 小区, 园区, 工业区, 三区 … end in 区 without being counties: the character before 区 says so
_NOT_COUNTY = "(?<![小新园校景城社厂街片商活业发税假政易一二三四五六七八九十东南西北中])"
_KINDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("assist", re.compile(_alt(ASSIST_WORDS))),
    ("junk", re.compile(r"中国|市辖区|城区|市区")),
    (
        "district",
        re.compile(rf"[{_H}]{{2,3}}{_NOT_COUNTY}(?:区|县)(?![路街道巷弄])"),
    ),
    ("township", re.compile(rf"(?![市县区省])[{_H}]{{2,6}}?(?:{_alt(TOWNSHIP_ENDS)})(?![路街道巷弄区村])")),
    ("devzone", re.compile(rf"(?:{_NAME}{{0,9}}?)?(?:{_alt(DEVZONE_ENDS)})(?![路街道巷弄区])")),
    (
        "road",
        re.compile(
            rf"(?:\d+号|[东西南北中]?\d+|[{_H}A-Za-z]{{1,7}}?\d{{1,3}}(?=[路街])|[{_H}A-Za-z]{{1,10}}?)"
            rf"(?:{_alt(ROAD_ENDS)}|(?<!街)道|[里线](?=\d|$))(?![道区村镇路街巷弄])"
        ),
    ),
    (
        "community",
        re.compile(
            rf"[{_H}][{_H}A-Za-z0-9]{{0,6}}?(?:{_alt(COMMUNITY_ENDS[:-1])}|(?<!新)村)(?![路街道巷弄委村]|民委|民小组|民组)"
        ),
    ),
    ("vgroup", re.compile(rf"[{_H}]{{1,3}}?(?:{_alt(GROUP_ENDS)})(?![{_H}])")),
    ("group", re.compile(rf"\d+(?:{_alt(GROUP_ENDS)})")),
    (
        "poi",
        re.compile(
            rf"{_NAME}{{0,13}}?(?:{_alt(tuple(w for w in POI_ENDS if len(w) > 1))})(?![路街道巷弄区])"
        ),
    ),
    # a one-character ending (苑, 城, 庭) ends a name of at least two characters before it (康庭和苑)
    (
        "poi",
        re.compile(
            rf"{_NAME}{{1,13}}?(?:{_alt(tuple(w for w in POI_ENDS if len(w) == 1))})(?![路街道巷弄区])"
        ),
    ),
    ("poi", re.compile(r"(?:\d+号|[东南西北正后侧])(?:大门|门)(?![\u4e00-\u9fff]*?[路街])")),
    ("dash", re.compile(r"([A-Za-z]?\d+[A-Za-z]?(?:-[A-Za-z]?\d+[A-Za-z]?)+)(号楼|号|室|单元)?")),
    ("phase", re.compile(r"\d+期")),
    (
        "building",
        re.compile(r"([A-Za-z]?\d+[A-Za-z]?|[A-Za-z]{1,2}|[东南西北中])(?:号楼|栋|幢|座|号?馆)|[A-Za-z]楼"),
    ),
    ("entrance", re.compile(r"[A-Za-z\d]{1,2}门")),
    ("zone", re.compile(r"(?:[A-Za-z]|\d+|[东南西北中]|[一二三四五六七八九十]{1,2})区(?![路街道巷弄])")),
    ("unit", re.compile(r"(?:\d+|[A-Za-z]|[东西中])(?:单元|梯)")),
    ("floor", re.compile(r"(?:负|地下|-|B)?\d+[A-Za-z]?(?:层|楼|F|f)(?!\d*号)")),
    (
        "shop",
        re.compile(
            r"[A-Za-z]?\d+[A-Za-z]?(?:号商铺|商铺|号铺|铺|号店面|店面|号店|店|号档|档|号摊位|摊位|号商位|商位)"
        ),
    ),
    ("number", re.compile(r"[甲乙丙丁]?\d+[A-Za-z]?(?:号院|号|弄)")),
    ("room", re.compile(r"[A-Za-z]?\d+[A-Za-z]?(?:室|号房|房间|房|户)?")),
)
_NAMES = frozenset(("township", "devzone", "road", "community", "poi"))
_WORDS = frozenset(("assist", "vgroup", "junk", "district"))
_NAME_KINDS = tuple((k, p) for k, p in _KINDS if k in _NAMES or k in _WORDS)
_NUMBERS = tuple((k, p) for k, p in _KINDS if k not in _NAMES and k not in _WORDS)
_END_WORDS = frozenset(DEVZONE_ENDS + POI_ENDS + COMMUNITY_ENDS) - frozenset(
    ("村", "里", "居", "城", "园", "苑")
)
_ROAD_END_RE = re.compile(
    r"[东西南北中横]{0,2}[一二三四五六七八九十\d]*(?:大道|大街|路|街|巷|弄|镇|乡|街道)|[东西南北中]?环路"
)
_END_WORD_RE = re.compile(
    "(?:" + _alt(tuple(w for w in POI_ENDS + DEVZONE_ENDS if len(w) > 1 and w != "国际")) + ")(?![区])"
)
_ASSIST_RE = re.compile(_alt(ASSIST_WORDS))
_NUMBER_STARTS = frozenset("负地东南西北中甲乙丙丁一二三四五六七八九十")  # besides ASCII digits and letters
_ROAD_TAIL_RE = re.compile(r"[东西南北中横]?[一二三四五六七八九十]*(?:大道|大街|路|街(?!道))")
_DIGIT_ROAD = re.compile(r"\d+号?(?:大街|路|街|大道)(?![道区村镇])|\d+(?:国道|省道|县道)")


@dataclass(slots=True)
class Segments:
    """Parts as written (normalised); numbers keep their digits and letters only (B, 12, 1097)."""

    district: str | None = None  # a county the gazetteer does not know (a former one), as written
    township: str | None = None
    devzone: str | None = None
    community: str | None = None
    group: str | None = None
    road: str | None = None
    number: str | None = None
    poi: str | None = None
    subpoi: str | None = None
    phase: str | None = None
    zone: str | None = None
    building: str | None = None
    unit: str | None = None
    floor: str | None = None
    room: str | None = None
    shop: str | None = None
    rest: list[str] = field(default_factory=list)
    divisions: list[str] = field(default_factory=list)  # full division names met inside (repeats, late ones)


_CORE_RE = re.compile(r"(?:号楼|号院|号房|号馆|房间|号|栋|幢|座|单元|梯|室|层|楼|房|户|期|区|F|f|馆)$")


def _core(token: str) -> str:
    """12号楼 → 12, B栋 → B, 3单元 → 3: the number or letter that identifies the part."""
    return _CORE_RE.sub("", token)


def _shop_core(token: str) -> str:
    return re.sub(r"[^0-9A-Za-z].*$", "", token)


class _Reader:
    def __init__(self) -> None:
        self.s = Segments()
        self.last = ""  # the kind of the last name read: road, poi …

    def name(self, kind: str, text: str) -> None:
        s = self.s
        if s.road and kind == "road" and (text[0] in "与和及" or (self.last == "road" and s.number is None)):
            s.rest.append(text)  # 山阴路与永久路, 开元北街龙潭路: a second road, the door follows it
            return
        if kind == "township" and s.township is None and not (s.road or s.poi or s.community):
            s.township = text
        elif kind == "devzone" and s.devzone is None and not (s.road or s.poi):
            s.devzone = text
        elif kind == "road" and s.road is None:
            s.road = text
        elif kind == "community" and s.community is None and not (s.road or s.poi):
            s.community = text
        elif s.poi is None:
            s.poi = text
            kind = "poi" if kind != "bare" else "bare"
        elif s.subpoi is None and s.building is None:
            s.subpoi = text
            kind = "poi"
        else:
            s.rest.append(text)
            return
        self.last = kind

    def number(self, kind: str, text: str, m: re.Match[str]) -> None:
        s = self.s
        # after a road, a village, or a name without any ending (杨公堤00号), a number is the door
        door_free = s.number is None and (
            self.last in ("road", "bare") or (self.last == "community" and not s.poi)
        )
        if kind == "dash":
            parts = m.group(1).split("-")
            door_free = door_free and self.last != "bare" and m.group(2) != "室"
            if m.group(2) == "号楼" and s.building is None:
                s.building = m.group(1)  # 3-2幢
            elif door_free and m.group(2) == "号":
                s.number = m.group(1) + "号"  # 111-8号: one door number
            elif door_free and len(parts) == 2:
                s.number, s.building = parts[0] + "号", parts[1]  # 大桥西路70-7: door 70, building 7
            elif s.building is None:
                s.building = parts[0]
                if len(parts) >= 3:
                    s.unit, s.room = parts[1], parts[2]
                elif m.group(2) == "号":
                    s.unit = parts[1]  # 万家新城140-9号: building 140, entrance 9
                else:
                    s.room = parts[1]
            else:
                s.unit, s.room = parts[0], parts[-1]
        elif kind == "number":
            if door_free or (s.number is None and text.endswith(("号院", "弄"))):
                s.number = text
            elif s.building is None and s.unit is None:
                s.building = _core(text)
            elif s.unit is None and s.floor is None and s.room is None and len(_core(text)) <= 2:
                s.unit = _core(text)  # 52栋13号: after a building, a number is its entrance
            elif s.room is None:
                s.room = _core(text)
            else:
                s.rest.append(text)
        elif kind == "room" and door_free and text.isdigit():
            s.number = text
        elif kind == "room" and text.isdigit() and len(text) <= 2 and s.building is None and s.unit is None:
            s.building = text  # 小区5-… / 小区5 with a room after it: a building
        elif kind == "entrance" and s.building is not None and s.unit is None:
            s.unit = text[:-1]  # h楼d门: entrance d of building h
        elif kind == "shop":
            s.shop = s.shop or _shop_core(text)
            if s.room is None:
                s.room = s.shop
        elif kind in ("building", "unit", "floor", "room", "phase", "zone", "group"):
            value = text if kind == "group" else _core(text)
            if kind == "zone" and (number := cn_to_int(value)) is not None:
                value = str(number)  # 三区 → 3, as 三期 → 3 and 三单元 → 3
            attr = kind
            if getattr(s, attr) is not None:
                s.rest.append(text)
                return
            if kind == "building" and s.unit is not None:
                s.rest.append(text)
                return
            setattr(s, attr, value)
        else:
            s.rest.append(text)
        if kind != "group":
            self.last = "number"


def _road_after_end(between: str) -> bool:
    """大兴国际 + 机场东街: an ending word, then a road word — the whole is a road's name."""
    m = _END_WORD_RE.match(between)
    return m is not None and _ROAD_TAIL_RE.fullmatch(between, m.end()) is not None


def _next(text: str, pos: int, limit: int) -> tuple[int, str, re.Match[str]] | None:
    """The part starting at ``pos``: the longest number, else the name that ends first (by ``limit``).

    A road that starts with a number (21号大街, 3路) is a name that beats the number inside it.
    """
    first = text[pos]
    if first.isdigit():
        road = _DIGIT_ROAD.match(text, pos)
        if road:
            return road.end(), "road", road
    best: tuple[int, str, re.Match[str]] | None = None
    if first.isascii() or first in _NUMBER_STARTS:
        for kind, pattern in _NUMBERS:
            m = pattern.match(text, pos)
            if m and m.end() > pos and (best is None or m.end() > best[0]):
                best = (m.end(), kind, m)
        if best is not None:
            return best
    found = [(m.end(), kind, m) for kind, pattern in _NAME_KINDS if (m := pattern.match(text, pos, limit))]
    if not found:
        return None
    found.sort(key=lambda f: f[0])
    best = found[0]
    for other in found[1:] if best[1] != "road" else ():
        # 北苑 + 工业区, 文化中心 + 广场: a bare ending word after a name belongs to it
        between = text[best[0] : other[0]]
        if other[0] > best[0] and (
            between in _END_WORDS or _ROAD_END_RE.fullmatch(between) or _road_after_end(between)
        ):
            best = other
    if best[1] == "road":  # 横街 + 东路, 中山 + 二路: a road word right after a road name extends it
        while m := _ROAD_TAIL_RE.match(text, best[0]):
            best = (m.end(), "road", best[2])
    elif best[1] in ("poi", "devzone"):  # 鑫春家园 + 小区, 上海国金中心 + 办公楼
        while (m := _END_WORD_RE.match(text, best[0])) and not _ROAD_TAIL_RE.match(text, m.end()):
            best = (m.end(), best[1], best[2])
    return best


def segment(text: str, division_at: Callable[[str, int], int] | None = None) -> Segments:
    """Cut ``text`` (normalised, divisions already read off) into its parts.

    ``division_at(text, pos)`` is where a full division name starting at ``pos`` ends (0: none):
    a repeated prefix inside the address (…余杭区中国浙江省杭州市余杭区东兴路) is skipped as such.
    """
    reader = _Reader()
    pending = ""
    pos, n = 0, len(text)
    stops = [m.start() for m in _ASSIST_RE.finditer(text)]  # names never run across 对面, 附近 …
    while pos < n:
        if division_at is not None and (end := division_at(text, pos)) > pos:
            if pending:
                reader.s.rest.append(pending)  # AAAA浙江温州市: junk before a repeated prefix
                pending = ""
            reader.s.divisions.append(text[pos:end])
            pos = end
            continue
        while stops and stops[0] <= pos:
            stops.pop(0)
        best = _next(text, pos, stops[0] if stops else n)
        if best is None:
            pending += text[pos]
            pos += 1
            continue
        end, kind, m = best
        token = text[pos:end]
        if pending:
            if kind in _NAMES:
                token, pending = pending + token, ""
            else:
                reader.name("bare", pending)
                pending = ""
        if kind in _NAMES:
            reader.name(kind, token)
        elif kind == "vgroup" and reader.last == "community" and reader.s.group is None:
            reader.s.group = token
        elif kind == "vgroup":
            pending += token
            pos = end
            continue
        elif kind in ("assist", "junk"):
            reader.s.rest.append(token)
        elif kind == "district":
            if reader.s.district is None and not (reader.s.road or reader.s.poi or reader.s.township):
                reader.s.district = token
            else:
                reader.s.rest.append(token)
        else:
            reader.number(kind, token, m)
        pos = end
    if pending:
        reader.name("poi", pending)
    return reader.s
