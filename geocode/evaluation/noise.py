"""Noisy query variants of real addresses, and addresses that do not exist, each with its true answer.

Why: a geocoder is only as good as its worst everyday input. People drop 北京市 or the district,
write 朝阳 for 朝阳区 or the pre-2010 崇文区, add the street office or the residents' committee, put
the district last, type 二十七号, full-width digits, 號, stray punctuation, 3栋 for 3号楼, tails like
2单元301室 or 底商, and mistype road names. :func:`make_cases` writes sampled rows of a city's own
address database that way (each noise kind with a configurable probability, combined freely) and
adds addresses that do not exist, so :mod:`geocode.evaluation.score` can measure hit rate, wrong
districts and confident nonsense on that city's data. Seeded: the same rows, seed and ``n`` give
the same cases.

Only unambiguous variants are generated: the district is dropped only when the road name exists in
one district (or the street is written), compound-only forms only for a 小区 name unique in its
district, and a typo never lands within one edit of another road the query could mean.
"""

from __future__ import annotations

import io
import re
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from rapidfuzz import process
from rapidfuzz.distance import OSA
from sqlalchemy import Connection, text

NOISE_KINDS: tuple[str, ...] = (
    "no_province",  # 北京市 left out
    "short_province",  # 北京
    "no_district",  # only when the query stays unambiguous
    "short_district",  # 朝阳
    "old_district",  # 崇文区 / 宣武区 for addresses in their former area
    "street",  # the address's real street/town, in one of its written forms
    "community",  # the address's real community/village, in one of its written forms
    "order",  # district after the road part, or street before the district
    "cn_numerals",  # 二十七号, 一〇八号, 三号楼, 二单元
    "fullwidth",  # ２７号, Ｂ１层
    "traditional_hao",  # 號
    "punctuation",  # spaces, ，。、, 「」, （东门）
    "suffix_variant",  # 号院 ↔ 院, 号楼 ↔ 栋/座/幢/#, 室 left out, 3-2-301
    "tail",  # 2单元301室 on buildings; 底商, 1层101, B1层 on doors
    "typo_substitute",  # one road-name character replaced by a look-/sound-alike
    "typo_drop",  # one road-name character left out
    "typo_swap",  # two adjacent road-name characters swapped
    "compound_only",  # 朝阳区阳光小区3号楼: no road, no door
    # forms seen in real registered and delivery addresses (see REAL_FORMS)
    "postcode",  # 100010 北京市…: a postcode in front
    "label",  # 注册地址：, 住所:, 收货地址 …
    "repeat_prefix",  # 北京北京市…, 北京市朝阳区北京市朝阳区…
    "division_dash",  # 北京市-朝阳区-将台东路22号
    "null_junk",  # 北京市null朝阳区…: an empty field exported as text
    "building_typo",  # 3懂 for 3栋
    "note",  # （外交学院北门）, _xx大厦, (近地铁站): notes in and after the address
    "phone",  # held out: a phone number after the address
    "letters_tail",  # held out: h楼d门2层, b座: letters for parts nobody keeps
)
REAL_FORMS: tuple[str, ...] = (
    "postcode",
    "label",
    "repeat_prefix",
    "division_dash",
    "null_junk",
    "building_typo",
    "note",
    "phone",
    "letters_tail",
)
HELD_OUT: frozenset[str] = frozenset({"phone", "letters_tail", "absent_road_inserted"})
"""Forms written after the engine was tuned and never tuned to: their figures say how it does on
input it was not fitted to, as the owners' held-out set is built differently."""
ABSENT_KINDS: tuple[str, ...] = (
    "absent_door",  # 30+ beyond the road's largest number
    "absent_road",  # a real stem with a suffix no road has
    "absent_road_in_district",  # a real road name in a district that has no such road
    "absent_building",  # beyond the compound's last building
    "absent_compound",  # a compound name that exists nowhere
    "absent_road_added",  # a real road name with a character added in front (新安贞东路)
    "absent_road_inserted",  # held out: a real road name with a character added inside its stem
)
DEFAULT_NOISE: dict[str, float] = {
    "no_province": 0.35,
    "short_province": 0.15,
    "no_district": 0.2,
    "short_district": 0.15,
    "old_district": 0.35,  # of the addresses in a former district's area
    "street": 0.2,
    "community": 0.1,
    "order": 0.08,
    "cn_numerals": 0.1,
    "fullwidth": 0.08,
    "traditional_hao": 0.06,
    "punctuation": 0.15,
    "suffix_variant": 0.3,
    "tail": 0.3,
    "typo_substitute": 0.05,
    "typo_drop": 0.04,
    "typo_swap": 0.04,
    "compound_only": 0.4,  # of the buildings in uniquely named 小区
    "postcode": 0.04,
    "label": 0.05,
    "repeat_prefix": 0.05,
    "division_dash": 0.04,
    "null_junk": 0.02,
    "building_typo": 0.2,  # of the buildings written with 栋
    "note": 0.06,
    "phone": 0.03,
    "letters_tail": 0.03,
}

GENERIC_SUFFIXES = ("胡同", "夹道", "大街", "路", "街", "巷", "条", "道")
_STEM_RE = re.compile(
    r"^(.{2,}?)(?:[东西南北中横]|[一二三四五六七八九十]+)*(?:胡同|夹道|大街|路|街|巷|条|道)$"
)
# Beijing's former districts (merged 2010, see geocode/data/beijing_renames.csv) and the streets of
# today's district that lay in them: only addresses there are ever written with the old name.
FORMER_DISTRICTS: dict[str, tuple[str, frozenset[str]]] = {
    "崇文区": (
        "110101",
        frozenset(
            {"前门街道", "崇文门外街道", "东花市街道", "龙潭街道", "体育馆路街道", "天坛街道", "永定门外街道"}
        ),
    ),
    "宣武区": (
        "110102",
        frozenset(
            {
                "大栅栏街道",
                "天桥街道",
                "椿树街道",
                "陶然亭街道",
                "广安门内街道",
                "牛街街道",
                "白纸坊街道",
                "广安门外街道",
            }
        ),
    ),
}
STREET_FORMS: dict[str, tuple[str, ...]] = {
    "街道": ("街道", "街道办事处", "街道办"),
    "地区": ("地区", "地区办事处", "乡"),  # a Beijing 地区办事处 is the street face of a 乡/镇
    "镇": ("镇",),
    "乡": ("乡",),
}
# Look-alike or sound-alike replacements for characters common in road names (one typo each).
_CONFUSABLE_PAIRS = (
    "东冬 西希 北背 南难 庄装 中钟 一衣 三山 营赢 家佳 二儿 园圆 店电 里理 大达 村存 桥侨 门们 "
    "河和 平苹 四泗 山三 横衡 口扣 小晓 八巴 安按 城成 青清 马玛 房方 新心 泉全 龙隆 兴星 石时 "
    "关官 屯吨 太泰 高糕 海每 和河 各格 阳杨 外处 永水 长常 五午 广光 华化 子字 院园 坊方 寿受 "
    "清青 头斗 定订 湖壶 宫官 苑院 地第 香乡 花化 天夭 十什 金今 后候 六陆 运云 前钱 寺市 王玉 "
    "建健 台抬 上尚 云运 坨陀 红虹 万方 潞露 丰风 沟钩 峪裕 区曲 风丰 朝潮 树术 老考 楼搂 洼哇 "
    "国图 光广 玉王 垡伐 机几 场厂 孙逊 通筒 羊洋 辛幸 旺汪 张章 井并 京经 学雪 经京 双爽 林淋 "
    "铁跌 坝霸 宛碗 淀靛 宁宇 谷古 松送 古谷 旗棋 苏酥 镇真 黑墨 管馆 宝保 豆逗 团图 结洁 左佐 "
    "罗萝 堡保 温瘟 民明 坛谈 沙砂 匠将 乡香 榴留 果裹 连莲 济挤 开升 发友 史吏 百白 栏兰 看着 "
    "丹舟 杨阳 亚压 酒洒 仙先 劲径 潘番 来莱 常长 崔催 成城 甘干 燕雁 升开 季李 李季 塔搭 技枝 "
    "育肓 贞真 首手 都部 磨魔 奥澳 户护 义议 紫柴 竹烛 观官 文纹 务雾 胜生 呼乎 碑卑 间问 角脚 "
    "鲁鱼 延廷 田由 源原 乐勒 琉流 璃离 将蒋 卢芦 佐左 九久 下夏 曙署 岭领 善膳 刘留 设没 人入 "
    "牛午 业亚 苹平 邵召 景京 怀坏 方万 佛拂 麦卖 望忘 右石 顶项 县悬 汤烫 椿春 主住 礼理 迎盈 "
    "科棵 什十 月悦 岗刚 柳聊 湾弯 榆愉 儿几 直值 明名 雁燕 渡度 宋送 旧久 福富 厂场 七妻 栅删 "
    "利力 创仓 水永 黄皇 池驰 潭谭 滨宾 康糠 白百 庆青 密蜜 袋代 刹杀 米迷 陶淘 然燃 亭停 星兴 "
    "良粮 周洲 拱共 辰晨 窦豆 窝涡 韩寒 棵颗 邑义 漷郭 顺须 丽力 遂随 彩采 木本 槽曹 赵照 全泉 "
    "霍获 回会 流刘 校效 荣容 贤闲 臧藏 际计 栖西 柔揉 交郊 内肉 仓苍 纸址 蒲浦 临林 坡波 陵凌 "
    "音阴 博搏 幸辛 才材 烟炎 绒戎 线现 不布 春椿 帽冒 福幅 祥详 蓑衰 衣依 板扳 菊鞠 箭剑 府付 "
    "砖专 礼里 演寅 乐东 司私 务物 干千 面免 总综 堂常 灯登 草早 琉硫 铁失 棉绵 取娶 烟咽 袋贷 "
    "鸦鸭 鱼渔 钱浅 粮量 报极 仓沧 剪箭 佛拂 枝技 羊样 拐拐 细系 芝之 麻嘛 圆元 恩思 压亚 织只 "
    "染梁 饵耳 土士 钞抄 辇撵 米来 斜邪 护扩 深探 砂纱 锅过 盛成 肉内 院完 官馆 锦绵 坊防 辟僻 "
    "绒茸 部郁"
)
CONFUSABLE: dict[str, str] = {}
for _pair in _CONFUSABLE_PAIRS.split():
    if _pair[0] != _pair[1]:
        CONFUSABLE.setdefault(_pair[0], _pair[1])
FAKE_ROAD_SUFFIXES = (
    "北二路",
    "南三路",
    "东四街",
    "西五街",
    "中二路",
    "北六巷",
    "南七巷",
    "横三街",
    "新村路",
    "环岛路",
)
FAKE_COMPOUND_FORMS = ("新城", "华府", "公馆", "丽舍", "御府", "尚城", "佳苑", "天地", "水岸", "雅居")
SIDE_NOTES = ("（东门）", "(南门)", "（北门）", "（西侧）", "（近地铁站）")
LABELS = ("注册地址：", "地址:", "住所：", "收货地址 ", "经营场所:", "详细地址：")
NOTE_FORMS = ("（{w}北门）", "({w}东侧)", "_{w}大厦", "（{w}对面）", "（近{w}地铁站）", "{w}公司")
ADDED_CHARS = "新老旧大小上下前后"  # what people (and typos) put in front of a road name
SEPARATORS = (" ", "  ", "，", ",", "、", "。")
_CN_DIGITS = "〇一二三四五六七八九"
_DIVISION_SUFFIX_RE = re.compile(
    r"(社区居委会|社区居民委员会|村民委员会|村委会|居委会|社区|村|街道|地区|镇|乡)$"
)
_FULLWIDTH = str.maketrans(
    {c: chr(ord(c) + 0xFEE0) for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-#"}
)

ROWS_SQL = """
    SELECT a.address_code, a.level, a.province, a.city, a.district_code, a.district, a.street_code, a.street,
           a.community_code, a.community, d.name AS community_official, a.road_id, a.road, a.door_number,
           a.door_suffix, a.compound_id, a.compound, c.kind AS compound_kind, a.building_number, a.units,
           a.floors, a.rooms_per_floor, a.full_address, ST_X(a.geom) AS lon, ST_Y(a.geom) AS lat
    FROM addr.address a
    LEFT JOIN addr.compound c ON c.id = a.compound_id
    LEFT JOIN addr.division d ON d.code = a.community_code
    ORDER BY a.address_code
"""
ROW_TYPES: dict[str, str] = {
    "address_code": "str",
    "level": "str",
    "province": "str",
    "city": "str",
    "district_code": "str",
    "district": "str",
    "street_code": "str",
    "street": "str",
    "community_code": "str",
    "community": "str",
    "community_official": "str",
    "road_id": "int64",
    "road": "str",
    "door_number": "int64",
    "door_suffix": "str",
    "compound_id": "Int64",
    "compound": "str",
    "compound_kind": "str",
    "building_number": "Int64",
    "units": "Int64",
    "floors": "Int64",
    "rooms_per_floor": "Int64",
    "full_address": "str",
    "lon": "float64",
    "lat": "float64",
}
KNOWN_SQL = text(
    """
    SELECT 'road' AS what, name, district_code AS code FROM addr.road
    UNION ALL SELECT 'compound', name, district_code FROM addr.compound
    UNION ALL SELECT 'district', name, code FROM addr.division WHERE level = 3
    UNION ALL SELECT 'division', unnest(ARRAY[name, short_name]), code FROM addr.division WHERE level >= 4
    """
)


@dataclass(slots=True)
class Case:
    """One query and what a perfect geocoder answers for it.

    ``lon``/``lat`` are the true WGS84 point (the building's for building addresses, the door's for
    doors); ``None`` when the address does not exist. ``written`` holds the division and road names
    exactly as they appear in the query, ``detail`` the facts that make a nonexistent case nonexistent.
    """

    query: str
    kind: str  # door | building | one of ABSENT_KINDS
    exists: bool
    noise: list[str]
    lon: float | None
    lat: float | None
    district_code: str | None
    street_code: str | None
    address_code: str | None
    province: str | None
    city: str | None
    district: str | None
    street: str | None
    road: str | None
    source: str  # the address as the database writes it, or what was asked for
    written: dict[str, str] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Shares:
    """How often each kind occurs: ``exists`` of all cases; ``absent`` relative weights of the
    nonexistent kinds; ``noise`` the probability each noise kind is applied where it applies."""

    exists: float = 0.85
    absent: Mapping[str, float] = field(default_factory=lambda: dict.fromkeys(ABSENT_KINDS, 1.0))
    noise: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_NOISE))

    def __post_init__(self) -> None:
        if not 0.0 <= self.exists <= 1.0:
            raise ValueError(f"exists share must be within 0..1, got {self.exists}")
        for name, table, kinds in (("absent", self.absent, ABSENT_KINDS), ("noise", self.noise, NOISE_KINDS)):
            unknown = set(table) - set(kinds)
            if unknown:
                raise ValueError(f"unknown {name} kinds: {sorted(unknown)}")
            if any(v < 0.0 for v in table.values()):
                raise ValueError(f"{name} shares must not be negative")
        if self.exists < 1.0 and not any(self.absent.values()):
            raise ValueError("some cases must be nonexistent but every absent kind has share 0")

    def p(self, kind: str) -> float:
        return float(self.noise.get(kind, 0.0))


@dataclass(frozen=True)
class Known:
    """Every road and compound name with its districts: what "does not exist" is checked against."""

    road_districts: Mapping[str, frozenset[str]]
    compound_districts: Mapping[str, tuple[str, ...]]
    districts: Mapping[str, str]  # code → name
    division_words: frozenset[str] = frozenset()  # street/community names and their stems (新城社区, 新城)

    @classmethod
    def from_rows(cls, rows: pd.DataFrame) -> Known:
        """Only what the address rows show (roads without addresses are missed: prefer :func:`read_known`)."""
        roads = rows.drop_duplicates(["road", "district_code"])
        comps = rows.dropna(subset=["compound_id"]).drop_duplicates("compound_id")
        return cls._build(
            zip(roads["road"], roads["district_code"], strict=True),
            zip(comps["compound"], comps["district_code"], strict=True),
            zip(rows["district_code"], rows["district"], strict=True),
            pd.concat([rows["street"], rows["community"]]).unique(),
        )

    @classmethod
    def _build(cls, roads: Any, compounds: Any, districts: Any, divisions: Any = ()) -> Known:
        """From (road name, district code), (compound name, district code), (district code, name) pairs
        and street/community names."""
        rd: dict[str, set[str]] = defaultdict(set)
        for name, code in roads:
            rd[name].add(code)
        cd: dict[str, list[str]] = defaultdict(list)
        for name, code in compounds:
            cd[name].append(code)
        return cls(
            {k: frozenset(v) for k, v in rd.items()},
            {k: tuple(sorted(v)) for k, v in cd.items()},
            dict(sorted(dict(districts).items())),
            frozenset(
                w for name in divisions for w in (name, _DIVISION_SUFFIX_RE.sub("", name)) if len(w) >= 2
            ),
        )


def read_rows(conn: Connection) -> pd.DataFrame:
    """All addresses with what the generator needs: one query, streamed with COPY (stable order)."""
    buf = io.BytesIO()
    raw = conn.connection.driver_connection
    with raw.cursor() as cur, cur.copy(f"COPY ({ROWS_SQL}) TO STDOUT WITH (FORMAT csv)") as copy:
        for chunk in copy:
            buf.write(chunk)
    buf.seek(0)
    rows = pd.read_csv(
        buf, header=None, names=list(ROW_TYPES), dtype=ROW_TYPES, keep_default_na=False, na_values=[""]
    )
    rows["door_suffix"] = rows["door_suffix"].fillna("")
    return rows


def read_known(conn: Connection) -> Known:
    """Every road, compound and district name of the database, in one query."""
    groups: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for what, name, code in conn.execute(KNOWN_SQL):
        groups[what].append((name, code))
    districts = [(code, name) for name, code in groups["district"]]
    return Known._build(groups["road"], groups["compound"], districts, [n for n, _ in groups["division"]])


# -- small text helpers ------------------------------------------------------------------------------


def cn_count(n: int) -> str:
    """27 → 二十七, 108 → 一百零八, 110 → 一百一十, 10 → 十: numerals as counted (1..9999)."""
    if not 0 < n < 10_000:
        raise ValueError(f"cannot write {n} in counted numerals")
    out, zero = "", False
    for value, unit in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        digit = n // value % 10
        if digit:
            if zero and out:
                out += "零"
            out += ("" if (unit == "十" and digit == 1 and not out) else _CN_DIGITS[digit]) + unit
            zero = False
        elif out:
            zero = True
    return out


def cn_digits(n: int) -> str:
    """108 → 一〇八: numerals read digit by digit, as people write long door numbers."""
    return "".join(_CN_DIGITS[int(d)] for d in str(n))


def generic_suffix(name: str) -> str:
    """The road-kind ending of a name (路, 大街, 胡同 …); '' when it has none."""
    return next((s for s in GENERIC_SUFFIXES if name.endswith(s) and len(name) > len(s)), "")


def road_stem(name: str) -> str:
    """将台东路 → 将台, 帽儿胡同 → 帽儿: the place word a road is named after."""
    m = _STEM_RE.match(name)
    return m.group(1) if m else name[:2]


def typo(name: str, kind: str, rng: np.random.Generator) -> str | None:
    """One edit of the name's stem (never its generic suffix), or None when the kind cannot apply."""
    if len(name) < 3:
        return None
    end = len(name) - len(generic_suffix(name))
    stem, rest = name[:end], name[end:]
    if kind == "typo_substitute":
        spots = [i for i, ch in enumerate(stem) if ch in CONFUSABLE]
        if not spots:
            return None
        i = int(rng.choice(spots))
        return stem[:i] + CONFUSABLE[stem[i]] + stem[i + 1 :] + rest
    if kind == "typo_drop":
        if len(stem) < 3:  # a one-character stem no longer names anything
            return None
        i = int(rng.integers(0, len(stem)))
        return stem[:i] + stem[i + 1 :] + rest
    if kind == "typo_swap":
        spots = [i for i in range(len(stem) - 1) if stem[i] != stem[i + 1]]
        if not spots:
            return None
        i = int(rng.choice(spots))
        return stem[:i] + stem[i + 1] + stem[i] + stem[i + 2 :] + rest
    raise ValueError(f"not a typo kind: {kind}")


def short_name(name: str) -> str:
    """北京市 → 北京, 朝阳区 → 朝阳, 密云县 → 密云 (names of two characters stay)."""
    for suffix in ("特别行政区", "自治区", "省", "市", "区", "县"):
        if name.endswith(suffix) and len(name) - len(suffix) >= 2:
            return name[: -len(suffix)]
    return name


def _street_forms(street: str) -> tuple[str, ...]:
    for form, variants in STREET_FORMS.items():
        if street.endswith(form) and len(street) - len(form) >= 2:
            stem = street[: -len(form)]
            return tuple(stem + v for v in variants)
    return (street,)


def _community_forms(short: str, official: str | None) -> tuple[str, ...]:
    if short.endswith("社区"):
        return (short, short + "居委会", short + "居民委员会")
    village = short if short.endswith("村") else short + "村"
    return tuple(dict.fromkeys((village, official or village + "委会", short + "村民委员会")))


def _largest_remainder(total: int, weights: Mapping[str, float], kinds: tuple[str, ...]) -> dict[str, int]:
    w = np.array([max(0.0, float(weights.get(k, 0.0))) for k in kinds])
    if total == 0 or w.sum() == 0:
        return dict.fromkeys(kinds, 0)
    exact = total * w / w.sum()
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: total - counts.sum()]:
        counts[i] += 1
    return {k: int(c) for k, c in zip(kinds, counts, strict=True)}


def _na(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))


# -- the generator -----------------------------------------------------------------------------------


@dataclass
class _Query:
    """A query as ordered segments (role, text), finished into one string at the end."""

    segments: list[list[str]] = field(default_factory=list)
    noise: list[str] = field(default_factory=list)
    written: dict[str, str] = field(default_factory=dict)

    def add(self, role: str, value: str) -> None:
        if value:
            self.segments.append([role, value])
            if role in ("province", "district", "street", "community", "road", "compound"):
                self.written[role] = value

    def mark(self, kind: str) -> None:
        if kind not in self.noise:
            self.noise.append(kind)


class _Maker:
    def __init__(self, rows: pd.DataFrame, known: Known, shares: Shares, rng: np.random.Generator) -> None:
        self.rows, self.known, self.shares, self.rng = rows, known, shares, rng
        self.max_door = rows.groupby("road_id")["door_number"].max().to_dict()
        buildings = rows.dropna(subset=["building_number"])
        self.max_building = buildings.groupby("compound_id")["building_number"].max().astype(int).to_dict()
        self.names_in_district: dict[str, list[str]] = defaultdict(list)
        for name, codes in known.road_districts.items():
            for code in codes:
                self.names_in_district[code].append(name)
        self.all_names = sorted(known.road_districts)
        self.compound_counts = {k: Counter(v) for k, v in known.compound_districts.items()}
        self.division_stems = {short_name(n) for n in (*known.districts.values(), *FORMER_DISTRICTS)}

    # -- shared pieces ---------------------------------------------------------------------------
    def flip(self, kind: str) -> bool:
        return bool(self.rng.random() < self.shares.p(kind))

    def pick(self, options: tuple[str, ...] | list[str]) -> str:
        return options[int(self.rng.integers(0, len(options)))]

    def province(self, q: _Query, name: str) -> None:
        u = self.rng.random()
        if u < self.shares.p("no_province"):
            q.mark("no_province")
        elif u < self.shares.p("no_province") + self.shares.p("short_province") and short_name(name) != name:
            q.add("province", short_name(name))
            q.mark("short_province")
        else:
            q.add("province", name)

    def number(self, n: int, cn: bool, q: _Query, long_ok: bool = True) -> str:
        if not cn or n <= 0 or n >= 10_000:
            return str(n)
        q.mark("cn_numerals")
        if long_ok and n >= 100 and self.rng.random() < 0.5:
            return cn_digits(n)
        return cn_count(n)

    def door(self, n: int, suffix: str, cn: bool, q: _Query) -> str:
        if suffix.startswith(("-", "之")):
            return f"{n}{suffix}号"  # 12-1号 stays in digits
        return f"{suffix}{self.number(n, cn, q)}号"

    def finish(self, q: _Query) -> str:
        """Join the segments; punctuation, full-width digits and 號 apply to the whole string."""
        self._real_forms(q)
        parts = [text for _, text in q.segments]
        if self.flip("punctuation") and parts:
            q.mark("punctuation")
            roles = [role for role, _ in q.segments]
            style = self.rng.integers(0, 3)
            if style == 0 and len(parts) > 1:
                for _ in range(int(self.rng.integers(1, 3))):
                    i = int(self.rng.integers(1, len(parts)))
                    parts[i] = self.pick(SEPARATORS) + parts[i]
            elif style == 1 and "compound" in roles:
                i = roles.index("compound")
                parts[i] = f"「{parts[i]}」"
            else:
                parts.append(self.pick(SIDE_NOTES))
        out = "".join(parts)
        if self.flip("fullwidth") and re.search(r"[0-9A-Za-z]", out):
            q.mark("fullwidth")
            out = out.translate(_FULLWIDTH)
        if self.flip("traditional_hao") and "号" in out:
            q.mark("traditional_hao")
            out = out.replace("号", "號")
        return out

    def note_word(self) -> str:
        """A place word for a note that names no division (a note must not say another district)."""
        for _ in range(20):
            word = road_stem(self.pick(self.all_names))
            if word not in self.known.division_words and not any(d in word for d in self.division_stems):
                return word
        return "商场"

    def _real_forms(self, q: _Query) -> None:
        """The junk of real registered addresses, as segments of their own (role ``junk``)."""
        segs = q.segments
        roles = [role for role, _ in segs]
        lead = 0
        while lead < len(roles) and roles[lead] in ("province", "district"):
            lead += 1
        if self.flip("note") and segs:
            q.mark("note")
            word = self.note_word()
            note = self.pick(NOTE_FORMS).format(w=word)
            # a bracketed note may sit right after the door (23号（外交学院北门）), a bare one only at the end
            at = roles.index("door") + 1 if "door" in roles and note[0] in "（(" else len(segs)
            segs.insert(at, ["junk", note])
        if self.flip("letters_tail") and segs:
            q.mark("letters_tail")
            segs.append(["junk", self.pick(("h楼d门2层", "b座", "A门", "c区3层", "B1"))])
        if self.flip("phone") and segs:
            q.mark("phone")
            number = "1" + "".join(str(int(d)) for d in self.rng.integers(0, 10, 10))
            segs.append(["junk", self.pick((" ", " 电话", "，联系电话：", "/")) + number])
        if self.flip("division_dash") and 0 < lead < len(segs):
            q.mark("division_dash")
            dash = self.pick(("-", "-", "—", " - "))
            for i in range(1, lead + 1):
                segs[i][1] = dash + segs[i][1]
        if self.flip("repeat_prefix") and lead:
            q.mark("repeat_prefix")
            prefix = "".join(text for _, text in segs[:lead])
            first = segs[0][1]
            if roles[0] == "province" and short_name(first) != first and self.rng.random() < 0.5:
                segs.insert(0, ["junk", short_name(first)])  # 北京北京市
            else:
                segs.insert(0, ["junk", prefix])
        if self.flip("null_junk") and segs:
            q.mark("null_junk")
            segs.insert(
                int(self.rng.integers(0, min(2, len(segs)) + 1)), ["junk", self.pick(("null", "NULL"))]
            )
        if self.flip("postcode"):
            q.mark("postcode")
            code = "10" + "".join(str(int(d)) for d in self.rng.integers(0, 10, 4))
            segs.insert(0, ["junk", code + self.pick(("", " ", "，"))])
        if self.flip("label"):
            q.mark("label")
            segs.insert(0, ["junk", self.pick(LABELS)])

    def typo_for(self, name: str, scope: list[str]) -> tuple[str, str] | None:
        """(kind, misspelt name) for one typo kind drawn by its share, unless it makes the query ambiguous."""
        u, edge, kind = self.rng.random(), 0.0, ""
        for k in ("typo_substitute", "typo_drop", "typo_swap"):
            edge += self.shares.p(k)
            if u < edge:
                kind = k
                break
        if kind:
            for _ in range(3):
                wrong = typo(name, kind, self.rng)
                if wrong is None:
                    break
                if wrong in self.known.road_districts:
                    continue
                near = process.extract(wrong, scope, scorer=OSA.distance, score_cutoff=1, limit=None)
                if all(match == name for match, _, _ in near):
                    return kind, wrong
        return None

    # -- existing addresses ----------------------------------------------------------------------
    def existing(self, r: dict[str, Any]) -> Case:
        q = _Query()
        is_building = r["level"] == "building"
        kind = r["compound_kind"] if not _na(r["compound_kind"]) else None
        cn = self.flip("cn_numerals")
        compound_only = (
            is_building
            and kind == "小区"
            and self.compound_counts.get(r["compound"], Counter())[r["district_code"]] == 1
            and self.flip("compound_only")
        )

        self.province(q, r["province"])
        street = self.pick(_street_forms(r["street"])) if self.flip("street") else ""
        community = (
            self.pick(_community_forms(r["community"], r["community_official"]))
            if self.flip("community")
            else ""
        )
        unique_road = len(self.known.road_districts.get(r["road"], ())) == 1
        district = self._district_form(q, r, may_drop=not compound_only and (unique_road or bool(street)))
        q.add("district", district)
        if street:
            q.add("street", street)
            q.mark("street")
        if community:
            q.add("community", community)
            q.mark("community")

        # road, door and compound
        if compound_only:
            q.mark("compound_only")
            q.add("compound", r["compound"])
        else:
            road = r["road"]
            scope = self.names_in_district[r["district_code"]] if district else self.all_names
            hit = self.typo_for(road, scope)
            if hit:
                q.mark(hit[0])
                road = hit[1]
            q.add("road", road)
            self._door_and_compound(q, r, kind, cn)

        # building and tails
        if is_building:
            self._building_tail(q, r, cn)
        elif kind is None and self.flip("tail"):
            q.mark("tail")
            floor, k = int(self.rng.integers(1, 3)), int(self.rng.integers(1, 9))
            q.add("tail", self.pick(("底商", f"{floor}层{floor * 100 + k}", f"B{floor}层", f"{floor}层")))

        self._wrong_order(q)
        return Case(
            query=self.finish(q),
            kind="building" if is_building else "door",
            exists=True,
            noise=q.noise,
            lon=float(r["lon"]),
            lat=float(r["lat"]),
            district_code=r["district_code"],
            street_code=r["street_code"],
            address_code=r["address_code"],
            province=r["province"],
            city=r["city"],
            district=r["district"],
            street=r["street"],
            road=r["road"],
            source=r["full_address"],
            written=q.written,
        )

    def _district_form(self, q: _Query, r: dict[str, Any], may_drop: bool) -> str:
        name = r["district"]
        old = [
            o
            for o, (code, streets) in FORMER_DISTRICTS.items()
            if code == r["district_code"] and r["street"] in streets
        ]
        u = self.rng.random()
        p_drop, p_short = self.shares.p("no_district"), self.shares.p("short_district")
        if u < p_drop:
            if may_drop:
                q.mark("no_district")
                return ""
        elif u < p_drop + p_short:
            if short_name(name) != name:
                q.mark("short_district")
                return short_name(name)
        elif old and self.flip("old_district"):
            q.mark("old_district")
            return old[0] if self.rng.random() < 0.8 else short_name(old[0])
        return name

    def _door_and_compound(self, q: _Query, r: dict[str, Any], kind: str | None, cn: bool) -> None:
        door = self.door(int(r["door_number"]), r["door_suffix"], cn, q)
        variant = self.flip("suffix_variant")
        if kind == "院":
            if variant:
                q.mark("suffix_variant")
                door = door[:-1] + "院" if self.rng.random() < 0.5 else door  # 22院 | 22号 (院 left out)
            else:
                door += "院"
            q.add("door", door)
        elif kind == "小区":
            q.add("door", door)
            if variant and r["level"] == "building":
                q.mark("suffix_variant")  # 将台路22号3号楼: the compound name left out
            else:
                q.add("compound", r["compound"])
        else:
            q.add("door", door)

    def _building_tail(self, q: _Query, r: dict[str, Any], cn: bool) -> None:
        b = int(r["building_number"])
        unit = room = None
        if self.flip("tail"):
            q.mark("tail")
            units = 4 if _na(r["units"]) else max(1, int(r["units"]))
            floors = 6 if _na(r["floors"]) else max(1, int(r["floors"]))
            per_floor = 4 if _na(r["rooms_per_floor"]) else max(1, int(r["rooms_per_floor"]))
            form = int(self.rng.integers(0, 3))
            if form in (0, 2):
                unit = int(self.rng.integers(1, units + 1))
            if form in (0, 1):
                room = int(self.rng.integers(1, floors + 1)) * 100 + int(self.rng.integers(1, per_floor + 1))
        variant = (
            ""
            if not self.flip("suffix_variant")
            else self.pick(("word", "word", "room", "compact") if room else ("word",))
        )
        if variant == "room" and unit is None:
            variant = "word"
        if variant == "compact" and unit is not None and room is not None:
            q.mark("suffix_variant")
            q.add("building", f"{b}-{unit}-{room}")
            return
        if variant == "word":
            q.mark("suffix_variant")
            word = self.pick(("栋", "号栋", "座", "幢") if cn else ("栋", "号栋", "座", "幢", "#"))
            if word.endswith("栋") and self.flip("building_typo"):
                q.mark("building_typo")
                word = word.replace("栋", "懂")
            q.add("building", self.number(b, cn, q, long_ok=False) + word)
        else:
            q.add("building", self.number(b, cn, q, long_ok=False) + "号楼")
        if unit is not None:
            q.add("unit", self.number(unit, cn, q, long_ok=False) + "单元")
        if room is not None:
            if variant == "room":
                q.mark("suffix_variant")
                q.add("room", str(room))
            else:
                q.add("room", f"{room}室")

    def _wrong_order(self, q: _Query) -> None:
        roles = [role for role, _ in q.segments]
        if "district" not in roles or not self.flip("order"):
            return
        q.mark("order")
        i = roles.index("district")
        if "street" in roles and self.rng.random() < 0.5:  # 将台地区朝阳区将台路22号
            j = roles.index("street")
            q.segments[i], q.segments[j] = q.segments[j], q.segments[i]
            return
        seg = q.segments.pop(i)  # 将台路22号 朝阳区 | 将台路22号（朝阳区）
        style = int(self.rng.integers(0, 3))
        seg[1] = (" ", "，", "")[style] + (f"（{seg[1]}）" if style == 2 else seg[1])
        q.segments.append(seg)

    # -- nonexistent addresses -------------------------------------------------------------------
    def absent(self, kind: str, r: dict[str, Any]) -> Case | None:
        q = _Query()
        cn = self.flip("cn_numerals")
        self.province(q, r["province"])
        district_code, district = r["district_code"], r["district"]
        detail: dict[str, Any] = {}
        if kind == "absent_road_in_district":
            others = [
                c for c in self.known.districts if c not in self.known.road_districts.get(r["road"], ())
            ]
            if not others:
                return None
            district_code = self.pick(sorted(others))
            district = self.known.districts[district_code]
        if self.rng.random() < self.shares.p("short_district") and short_name(district) != district:
            q.mark("short_district")
            q.add("district", short_name(district))
        else:
            q.add("district", district)

        if kind == "absent_door":
            door = int(self.max_door[r["road_id"]]) + 30 + int(self.rng.integers(0, 70))
            q.add("road", r["road"])
            q.add("door", self.door(door, "", cn, q))
            detail = {"road": r["road"], "district_code": district_code, "door": door}
        elif kind == "absent_road":
            name = self._fake_road(r["road"])
            if name is None:
                return None
            door = int(self.rng.integers(1, 150))
            q.add("road", name)
            q.add("door", self.door(door, "", cn, q))
            detail = {"road": name, "door": door}
        elif kind == "absent_road_in_district":
            q.add("road", r["road"])
            q.add("door", self.door(int(r["door_number"]), r["door_suffix"], cn, q))
            detail = {"road": r["road"], "district_code": district_code}
        elif kind == "absent_building":
            b = self.max_building[int(r["compound_id"])] + int(self.rng.integers(1, 6))
            q.add("road", r["road"])
            door = self.door(int(r["door_number"]), r["door_suffix"], cn, q)
            if r["compound_kind"] == "院":
                q.add("door", door + "院")
            else:
                q.add("door", door)
                q.add("compound", r["compound"])
            q.add("building", self.number(b, cn, q, long_ok=False) + "号楼")
            detail = {"compound_id": int(r["compound_id"]), "compound": r["compound"], "building": b}
        elif kind in ("absent_road_added", "absent_road_inserted"):
            name = self._edited_road(r["road"], inside=kind == "absent_road_inserted")
            if name is None:
                return None
            q.add("road", name)
            q.add("door", self.door(int(r["door_number"]), r["door_suffix"], cn, q))
            detail = {"road": name, "real_road": r["road"], "door": int(r["door_number"])}
        elif kind == "absent_compound":
            name = self._fake_compound(r)
            if name is None:
                return None
            b = int(self.rng.integers(1, 9))
            q.add("compound", name)
            q.add("building", self.number(b, cn, q, long_ok=False) + "号楼")
            detail = {"compound": name, "building": b}
        else:
            raise ValueError(f"not an absent kind: {kind}")
        query = self.finish(q)
        return Case(
            query=query,
            kind=kind,
            exists=False,
            noise=q.noise,
            lon=None,
            lat=None,
            district_code=district_code,
            street_code=None,
            address_code=None,
            province=r["province"],
            city=r["city"],
            district=district,
            street=None,
            road=detail.get("road"),
            source="".join(text for _, text in q.segments),
            written=q.written,
            detail=detail,
        )

    def _fake_road(self, real: str) -> str | None:
        stem = road_stem(real)
        for suffix in self.rng.permutation(FAKE_ROAD_SUFFIXES):
            name = stem + str(suffix)
            if name not in self.known.road_districts and name not in self.known.compound_districts:
                return name
        return None

    def _edited_road(self, real: str, inside: bool) -> str | None:
        """A real road name with one character added (in front, or inside its stem) that names nothing."""
        stem_end = len(real) - len(generic_suffix(real))
        for ch in self.rng.permutation(list(ADDED_CHARS)):
            if inside:
                if stem_end < 2:
                    return None
                i = int(self.rng.integers(1, stem_end))
                name = real[:i] + str(ch) + real[i:]
            else:
                name = str(ch) + real
            if name in self.known.road_districts or name in self.known.compound_districts:
                continue
            # 大兴… or 小红门…: a division read off the front would make it a real address again
            if any(name[:k] in self.known.division_words for k in range(2, len(name))):
                continue
            return name
        return None

    def _fake_compound(self, r: dict[str, Any]) -> str | None:
        words = [road_stem(r["road"])]
        if not _na(r["compound"]) and r["compound_kind"] == "小区":
            words.insert(0, r["compound"][:2])
        for word in words:
            for form in self.rng.permutation(FAKE_COMPOUND_FORMS):
                name = word + str(form)
                if name in self.known.compound_districts or name in self.known.road_districts:
                    continue
                # 宛平新城 would read as 宛平 (street) + 新城 (community): a real place, not a made-up one
                if any(name[i:] in self.known.division_words for i in range(len(name) - 1)):
                    continue
                return name
        return None


def make_cases(
    rows: pd.DataFrame,
    rng: np.random.Generator,
    n: int,
    *,
    shares: Shares | None = None,
    known: Known | None = None,
) -> list[Case]:
    """``n`` cases from address rows (:func:`read_rows`), shuffled; see :class:`Shares` for the mix.

    ``known`` (:func:`read_known`) is what nonexistent cases are checked against; without it only
    the names in ``rows`` count, which misses roads that have no address.
    """
    if n < 0:
        raise ValueError("n must not be negative")
    if rows.empty:
        raise ValueError("no address rows: load an address database first")
    shares = shares or Shares()
    known = known or Known.from_rows(rows)
    maker = _Maker(rows, known, shares, rng)
    n_exist = round(n * shares.exists)
    counts = _largest_remainder(n - n_exist, shares.absent, ABSENT_KINDS)

    cases: list[Case] = []
    picks = rng.choice(len(rows), n_exist, replace=n_exist > len(rows))
    for r in rows.iloc[np.sort(picks)].to_dict("records"):
        cases.append(maker.existing(r))

    building_rows = np.flatnonzero(rows["level"].to_numpy() == "building")
    for kind in ABSENT_KINDS:
        pool = building_rows if kind == "absent_building" else np.arange(len(rows))
        made, tries = 0, 0
        while made < counts[kind] and len(pool) and tries < 20 * counts[kind] + 20:
            tries += 1
            case = maker.absent(kind, rows.iloc[int(pool[int(rng.integers(0, len(pool)))])].to_dict())
            if case is not None:
                cases.append(case)
                made += 1
    order = rng.permutation(len(cases))
    return [cases[i] for i in order]
