"""The division gazetteer: every name (and usual short, suffixed and former form) of every division.

All of China down to street/town (街道/镇/乡, 41,352 with their NBS codes) from the NBS tables,
the served city (Beijing) down to community/village, and renamed or merged divisions
(崇文区 → 东城区, 江东区 → 鄞州区) pointing at today's. Built once per process from the package
data; lookups are plain dict probes, which is what keeps parsing in the microseconds.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

PROVINCE, CITY, DISTRICT, TOWNSHIP, COMMUNITY = 1, 2, 3, 4, 5
HOME_PROVINCE_CODE = "11"  # the served city, whose streets and communities come from its own table

_ETHNIC = (
    "蒙古|回|藏|维吾尔|苗|彝|壮|布依|朝鲜|满|侗|瑶|白|土家|哈尼|哈萨克|傣|黎|傈僳|佤|畲|高山|拉祜|水|东乡|纳西|"
    "景颇|柯尔克孜|土|达斡尔|仫佬|羌|布朗|撒拉|毛南|仡佬|锡伯|阿昌|普米|塔吉克|怒|乌孜别克|俄罗斯|鄂温克|德昂|"
    "保安|裕固|京|塔塔尔|独龙|鄂伦春|赫哲|门巴|珞巴|基诺|各"
)
_AUTONOMOUS_RE = re.compile(rf"(?:(?:{_ETHNIC})族)+自治(?:区|州|县|旗)$")
_PROVINCE_SHORT = {
    "内蒙古自治区": "内蒙古",
    "广西壮族自治区": "广西",
    "西藏自治区": "西藏",
    "宁夏回族自治区": "宁夏",
    "新疆维吾尔自治区": "新疆",
    "香港特别行政区": "香港",
    "澳门特别行政区": "澳门",
}
_TOWNSHIP_FORMS = {
    "街道": ("街道", "街道办事处", "街道办", "办事处"),
    "地区": ("地区", "地区办事处", "街道", "街道办事处", "乡", "镇"),
    "镇": ("镇", "镇人民政府", "镇政府", "地区"),
    "乡": ("乡", "乡人民政府", "乡政府", "地区"),
}
_COMMUNITY_SUFFIXES = (
    "社区居民委员会",
    "社区居委会",
    "村民委员会",
    "居民委员会",
    "村委会",
    "居委会",
    "委员会",
)


@dataclass(frozen=True, slots=True)
class Place:
    code: str
    level: int
    name: str  # today's official name, short form for communities (多福巷社区)
    parent: str | None

    def contains(self, other: Place) -> bool:
        return other.level > self.level and other.code.startswith(self.code)


@dataclass(frozen=True, slots=True)
class Alias:
    place: Place
    bare: bool  # a stem without its suffix (朝阳 for 朝阳区): may as well start a road name


def _data(name: str) -> Path:
    return Path(str(resources.files("geocode") / "data" / name))


def _rows(name: str) -> list[dict[str, str]]:
    with _data(name).open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def community_name(official: str) -> str:
    """多福巷社区居委会 → 多福巷社区, 十里河村村委会 → 十里河村: the form addresses use."""
    for suffix in _COMMUNITY_SUFFIXES:
        if official.endswith(suffix) and len(official) > len(suffix) + 1:
            stem = official[: -len(suffix)]
            if suffix.startswith("社区") or suffix == "居委会" or suffix == "居民委员会":
                return stem if stem.endswith("社区") else stem + "社区"
            return stem if stem.endswith("村") else stem + "村"
    return official


class Gazetteer:
    """Alias → places; ``scan`` finds every division name starting at a position."""

    def __init__(self) -> None:
        self.places: dict[str, Place] = {}
        self.aliases: dict[str, list[Alias]] = {}
        self.max_len = 0
        self._trie: dict[str, dict] = {}  # character trie of all aliases; key "" holds the entries

    def add_place(self, place: Place) -> None:
        self.places[place.code] = place

    def add_alias(self, text: str, place: Place, bare: bool = False) -> None:
        if len(text) < 2:
            return
        entries = self.aliases.setdefault(text, [])
        if any(a.place.code == place.code for a in entries):
            return
        entries.append(Alias(place, bare))
        self.max_len = max(self.max_len, len(text))
        node = self._trie
        for ch in text:
            node = node.setdefault(ch, {})
        node[""] = entries

    def scan(self, text: str, start: int) -> list[tuple[int, Alias]]:
        """(end, alias) of every name starting at ``start``, longest first."""
        found: list[tuple[int, Alias]] = []
        node = self._trie
        for end in range(start, len(text)):
            node = node.get(text[end])  # type: ignore[assignment]
            if node is None:
                break
            entries = node.get("")
            if entries:
                found.extend((end + 1, a) for a in entries)
        found.reverse()
        return found

    def starts_name(self, text: str) -> bool:
        return bool(text) and text[0] in self._trie

    def path(self, place: Place) -> list[Place]:
        out = [place]
        while out[-1].parent and out[-1].parent in self.places:
            out.append(self.places[out[-1].parent])
        return out[::-1]


def _autonomous_forms(name: str) -> tuple[str, ...]:
    """德宏傣族景颇族自治州 → 德宏州, 德宏自治州; 务川仡佬族苗族自治县 → 务川县: the short written forms."""
    stripped = _AUTONOMOUS_RE.sub("", name)
    if stripped == name or len(stripped) < 2:
        return ()
    kind = name[-1]
    return (stripped + kind, stripped + "自治" + kind)


def _short_county(name: str) -> str | None:
    stripped = _AUTONOMOUS_RE.sub("", name)
    if stripped != name:
        return stripped if len(stripped) >= 2 else None
    for suffix in ("新区", "区", "县", "市", "旗"):
        if name.endswith(suffix) and len(name) - len(suffix) >= 2:
            return name[: -len(suffix)]
    return None


def _short_city(name: str) -> str | None:
    stripped = _AUTONOMOUS_RE.sub("", name)
    if stripped != name:
        return stripped if len(stripped) >= 2 else None
    for suffix in ("地区", "市", "盟"):
        if name.endswith(suffix) and len(name) - len(suffix) >= 2:
            return name[: -len(suffix)]
    return None


def _add_china(g: Gazetteer) -> dict[str, Place]:
    provinces: dict[str, Place] = {}
    for row in _rows("provinces.csv"):
        p = Place(row["code"], PROVINCE, row["name"], None)
        g.add_place(p)
        provinces[p.code] = p
        g.add_alias(p.name, p)
        short = _PROVINCE_SHORT.get(p.name) or re.sub(r"[省市]$", "", p.name)
        g.add_alias(short, p, bare=True)
        if p.name in _PROVINCE_SHORT:
            g.add_alias(short + "省", p)  # 广西省, 新疆省: written as if a province
    for row in _rows("cities.csv"):
        province = provinces[row["provinceCode"]]
        municipal = row["name"] in ("市辖区", "县", "省直辖县级行政区划", "自治区直辖县级行政区划")
        name = province.name if municipal and province.name.endswith("市") else row["name"]
        c = Place(row["code"], CITY, name, province.code)
        g.add_place(c)
        if municipal and not province.name.endswith("市"):
            continue  # 省直辖县级行政区划 is not a name anyone writes
        g.add_alias(c.name, c)
        for form in _autonomous_forms(c.name):
            g.add_alias(form, c)
        short = _short_city(c.name)
        if short:
            g.add_alias(short, c, bare=True)
            if c.name.endswith("市") and short + "地区" not in g.aliases:
                g.add_alias(short + "地区", c)  # most prefecture cities were 地区 before (柳州地区)
    for row in _rows("areas.csv"):
        d = Place(row["code"], DISTRICT, row["name"], row["cityCode"])
        g.add_place(d)
        g.add_alias(d.name, d)
        for form in _autonomous_forms(d.name):
            g.add_alias(form, d)
        short = _short_county(d.name)
        if short and short != g.places[d.parent].name:
            g.add_alias(short, d, bare=True)
    return provinces


def _add_city_detail(g: Gazetteer) -> None:
    """Streets/towns and communities/villages of the served city (Beijing)."""
    for row in _rows("beijing_divisions_nbs2023.csv"):
        level = int(row["level"])
        if level == TOWNSHIP:
            t = Place(row["code"], TOWNSHIP, row["name"], row["district_code"])
            g.add_place(t)
            g.add_alias(t.name, t)
            for form, variants in _TOWNSHIP_FORMS.items():
                if t.name.endswith(form) and len(t.name) - len(form) >= 2:
                    stem = t.name[: -len(form)]
                    g.add_alias(stem, t, bare=True)
                    for v in variants:
                        g.add_alias(stem + v, t)
                    break
        elif level == COMMUNITY:
            name = community_name(row["name"])
            c = Place(row["code"], COMMUNITY, name, row["street_code"])
            g.add_place(c)
            g.add_alias(row["name"], c)
            g.add_alias(name, c)
            stem = name[:-2] if name.endswith("社区") else name[:-1] if name.endswith("村") else name
            if stem != name:
                if name.endswith("社区"):
                    for v in ("社区居委会", "社区居民委员会", "居委会"):
                        g.add_alias(stem + v, c)
                else:
                    for v in ("村委会", "村村委会", "村民委员会", "村村民委员会"):
                        g.add_alias(stem + v, c)
                if len(stem) >= 2:
                    g.add_alias(stem, c, bare=True)


_NATIONAL_FORMS = {
    "街道": ("街道办事处", "街道办", "街办"),
    "镇": ("镇人民政府", "镇政府"),
    "乡": ("乡人民政府", "乡政府"),
}


def _add_townships(g: Gazetteer) -> None:
    """Streets and towns of every other province: full names, official forms and bare stems.

    A stem (下沙 of 下沙街道, 织里 of 织里镇) is written alone often, but starts as many road names
    (龙山路) as it names towns: the parser accepts it only inside a city or district already read
    and not right before a road word.
    """
    for row in _rows("streets.csv"):
        if row["provinceCode"] == HOME_PROVINCE_CODE or row["code"] in g.places:
            continue
        t = Place(row["code"], TOWNSHIP, row["name"], row["areaCode"])
        g.add_place(t)
        g.add_alias(t.name, t)
        for form, variants in _NATIONAL_FORMS.items():
            if t.name.endswith(form) and len(t.name) - len(form) >= 2:
                stem = t.name[: -len(form)]
                for v in variants:
                    g.add_alias(stem + v, t)
                g.add_alias(stem, t, bare=True)
                break


def _add_renames(g: Gazetteer) -> None:
    """Former names resolve to today's division (never shadowing a current name)."""
    for row in _rows("beijing_renames.csv"):
        place = g.places.get(row["code"])
        if place and row["old_name"] not in g.aliases:
            g.add_alias(row["old_name"], place)
            short = _short_county(row["old_name"])
            if short and short not in g.aliases:
                g.add_alias(short, place, bare=True)
    by_province: dict[tuple[str, str], Place] = {}
    for p in g.places.values():
        if p.level == DISTRICT:
            by_province[(g.places[p.code[:2]].name, p.name)] = p
    for row in _rows("county_renames.csv"):
        target = by_province.get((row["province"], row["new_name"]))
        if target and row["old_name"] not in g.aliases:
            g.add_alias(row["old_name"], target)
            short = _short_county(row["old_name"])
            if short and short not in g.aliases:
                g.add_alias(short, target, bare=True)
    by_name: dict[tuple[str, str], Place] = {}
    for p in g.places.values():
        if p.level in (CITY, DISTRICT) and p.parent:
            by_name[(g.places[p.code[:2]].name, p.name)] = p
    with _data("division_renames_jionlp.txt").open(encoding="utf-8") as fh:
        for line in fh:
            if "=>" not in line:
                continue
            old, new = line.rstrip("\n").split("=>")
            old_parts, new_parts = old.split("\t")[2:], new.split("\t")
            # (old name, its short form, new name) at city level, then at county level when given
            pairs = [(old_parts[2:4], new_parts[1] if len(new_parts) > 1 else "")]
            if len(old_parts) >= 6 and len(new_parts) >= 3:
                pairs = [(old_parts[4:6], new_parts[2])]
            for (old_name, old_short), new_name in pairs:
                target = by_name.get((new_parts[0], new_name))
                if target is None or old_name == new_name:
                    continue
                # added even where the name is current elsewhere (城区): the chain read before it picks
                g.add_alias(old_name, target)
                if old_short:
                    g.add_alias(old_short, target, bare=True)


@lru_cache(maxsize=1)
def default_gazetteer() -> Gazetteer:
    g = Gazetteer()
    _add_china(g)
    _add_city_detail(g)
    _add_townships(g)
    _add_renames(g)
    return g
