"""The four departmental layers and the base layers, as WGS84 GeoDataFrames with Chinese fields.

All generated demo data (演示数据，程序生成): the names, codes and ID numbers follow the real formats
(check digits included) but belong to nobody.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geoshare.demo.generate.addresses import AddressBook
from geoshare.demo.generate.divisions import Divisions
from geoshare.demo.generate.geo import rectangles, to_wgs84
from geoshare.demo.generate.names import (
    BUSINESS_STATUS,
    BUSINESS_STATUS_P,
    GIVEN_CHARS,
    HAZARD_CHEMICALS,
    HAZARD_FACILITIES,
    HAZARD_LEVELS,
    HAZARD_LEVELS_P,
    INDUSTRIES,
    ORG_FORMS,
    PIPE_TYPES,
    SHELTER_KINDS,
    SURNAMES,
    TRADE_WORDS,
    cn_number,
    stem,
)

CREDIT_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
CREDIT_WEIGHTS = np.array([1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28])
ORG_WEIGHTS = np.array([3, 7, 9, 10, 5, 8, 4, 2])
ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


def _wgs84(frame: pd.DataFrame, geoms: np.ndarray) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(frame.reset_index(drop=True), geometry=to_wgs84(geoms), crs=4326)


def _pick(rng: np.random.Generator, pool: list[str], n: int) -> np.ndarray:
    return np.array(pool, dtype=object)[rng.integers(0, len(pool), n)]


def _person_names(rng: np.random.Generator, n: int) -> np.ndarray:
    given = _pick(rng, GIVEN_CHARS, n) + np.where(rng.random(n) < 0.7, _pick(rng, GIVEN_CHARS, n), "")
    return _pick(rng, SURNAMES, n) + given


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    return (values[:, None] // 10 ** np.arange(width - 1, -1, -1)) % 10


def credit_codes(kind: np.ndarray, district: np.ndarray, serial: np.ndarray) -> np.ndarray:
    """统一社会信用代码 (GB 32100-2015) with valid organisation-code and final check characters."""
    body = _digits(serial, 8)
    org_check = (11 - (body * ORG_WEIGHTS).sum(axis=1) % 11) % 11  # 10 → X, written as 'X' below
    head = np.array([[CREDIT_CHARS.index(ch) for ch in k + d] for k, d in zip(kind, district, strict=True)])
    org = np.concatenate(
        [body, np.where(org_check == 10, CREDIT_CHARS.index("X"), org_check)[:, None]], axis=1
    )
    values = np.concatenate([head, org], axis=1)
    check = (31 - (values * CREDIT_WEIGHTS).sum(axis=1) % 31) % 31
    values = np.concatenate([values, check[:, None]], axis=1)
    return np.array(["".join(CREDIT_CHARS[v] for v in row) for row in values], dtype=object)


def id_numbers(rng: np.random.Generator, district: np.ndarray) -> np.ndarray:
    """18-digit resident ID numbers (GB 11643) with an ISO 7064 MOD 11-2 check character."""
    n = len(district)
    birth = pd.to_datetime("1950-01-01") + pd.to_timedelta(rng.integers(0, 365 * 52, n), unit="D")
    body = (
        district.astype(object)
        + birth.strftime("%Y%m%d").to_numpy().astype(object)
        + np.char.zfill(rng.integers(0, 1000, n).astype(str), 3).astype(object)
    )
    digits = np.array([list(map(int, b)) for b in body])
    check = np.array(list("10X98765432"))[(digits * ID_WEIGHTS).sum(axis=1) % 11]
    return body + check.astype(object)


def _registered_address(a: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """The address as typed into a registration form: mostly right, often not in standard form."""
    n = len(a)
    is_building = (a["level"] == "building").to_numpy()
    unit = rng.integers(1, a["units"].fillna(1).astype(int).to_numpy() + 1)
    floor = rng.integers(1, a["floors"].fillna(1).astype(int).to_numpy() + 1)
    room = floor * 100 + rng.integers(1, a["rooms_per_floor"].fillna(2).astype(int).to_numpy() + 1)
    variant = rng.integers(0, 8, n)
    out = np.empty(n, dtype=object)
    for i, row in enumerate(
        a[["district", "street", "road", "door_text", "compound", "kind", "building_number"]].itertuples(
            index=False
        )
    ):
        district, street, road, door, compound, kind, bnum = row
        place = road + door + ("院" if kind == "院" else "")
        v = variant[i]
        if is_building[i]:
            b = int(bnum)
            named = compound if kind == "小区" else ""
            tail = f"{b}号楼{unit[i]}单元{room[i]}室"
            out[i] = (
                f"北京市{district}{place}{named}{tail}"
                if v in (0, 1)
                else f"{district}{place}{tail}"
                if v == 2
                else f"北京市{district}{street}{place}{tail}"
                if v == 3
                else f"北京市{road}{door}{b}-{unit[i]}-{room[i]}"
                if v == 4
                else f"{district}{compound}{b}号楼{unit[i]}单元{room[i]}"
                if v == 5
                else f"北京市{district}{place}{cn_number(b)}号楼{room[i]}室"
                if v == 6
                else f"北京{district}{place}{tail}".translate(FULLWIDTH)
            )
        else:
            extra = ["", "", "一层", "底商", "1层101", "（东门）", "B1层", "2层"][v]
            out[i] = (
                f"北京市{district}{road}{door}{extra}"
                if v < 4
                else f"{district}{street}{road}{door}{extra}"
                if v < 6
                else f"北京市{district}{road}{door}{extra}".translate(FULLWIDTH)
                if v == 6
                else f"{road}{door}{extra}"
            )
    return out


def market_entities(book: AddressBook, n: int, rng: np.random.Generator) -> gpd.GeoDataFrame:
    """市场主体: companies and sole traders at registered addresses."""
    addrs = book.addresses
    at = rng.choice(len(addrs), n, replace=True)
    a = addrs.iloc[at].reset_index(drop=True)
    industries = list(INDUSTRIES)
    industry_ix = rng.integers(0, len(industries), n)
    sole = rng.random(n) < 0.3
    words = np.array(
        [INDUSTRIES[industries[k]][j] for k, j in zip(industry_ix, rng.integers(0, 3, n), strict=True)],
        dtype=object,
    )
    trade = _pick(rng, TRADE_WORDS, n) + _pick(rng, TRADE_WORDS, n)
    names = np.where(
        sole,
        "北京市" + a["district"].to_numpy() + trade + words + "店",
        "北京" + trade + words + _pick(rng, ORG_FORMS, n),
    )
    serial = rng.choice(100_000_000, n, replace=False)
    codes = credit_codes(np.where(sole, "92", "91"), a["district_code"].to_numpy(), serial)
    # same-name entities exist in real registers; keep names unique enough to read, not enforced
    founded = pd.to_datetime("1992-01-01") + pd.to_timedelta(rng.integers(0, 33 * 365, n), unit="D")
    frame = pd.DataFrame(
        {
            "统一社会信用代码": codes,
            "名称": names,
            "注册地址": _registered_address(a, rng),
            "法定代表人": _person_names(rng, n),
            "法定代表人身份证号": id_numbers(rng, a["district_code"].to_numpy()),
            "行业": np.array(industries, dtype=object)[industry_ix],
            "成立日期": founded.date,  # a calendar date, not a midnight timestamp
            "经营状态": rng.choice(BUSINESS_STATUS, n, p=BUSINESS_STATUS_P),
            "所属区": a["district"].to_numpy(),
        }
    )
    jitter = rng.normal(0, 2.0, (n, 2))
    geoms = shapely.points(a["x"].to_numpy() + jitter[:, 0], a["y"].to_numpy() + jitter[:, 1])
    return _wgs84(frame, geoms)


def emergency_shelters(book: AddressBook, n: int, rng: np.random.Generator) -> gpd.GeoDataFrame:
    """应急避难场所: parks, squares and school grounds beside a road."""
    doors = book.addresses[(book.addresses["level"] == "door") & book.addresses["compound_id"].isna()]
    a = doors.iloc[rng.choice(len(doors), n, replace=False)].reset_index(drop=True)
    length, width = rng.uniform(60, 320, n), rng.uniform(50, 220, n)
    area = length * width
    kind = _pick(rng, SHELTER_KINDS, n)
    klass = np.select([area >= 40_000, area >= 10_000], ["Ⅰ类（长期）", "Ⅱ类（中期）"], "Ⅲ类（紧急）")
    frame = pd.DataFrame(
        {
            "编号": [f"BNCS{d}{i + 1:04d}" for i, d in enumerate(a["district_code"])],
            "名称": a["street"].map(stem).to_numpy() + kind + "应急避难场所",
            "类型": klass,
            "场所类别": kind,
            "面积_平方米": np.round(area, 1),
            "容纳人数": (area / 2).astype(int),
            "地址": a["full_address"].to_numpy(),
            "管理单位": a["street"].to_numpy() + "办事处",
            "所属区": a["district"].to_numpy(),
        }
    )
    geoms = rectangles(
        a["x"].to_numpy() + a["nx"].to_numpy() * (width / 2 + 5),
        a["y"].to_numpy() + a["ny"].to_numpy() * (width / 2 + 5),
        a["tx"].to_numpy(),
        a["ty"].to_numpy(),
        length,
        width,
    )
    return _wgs84(frame, geoms)


def hazard_sources(book: AddressBook, n: int, rng: np.random.Generator) -> gpd.GeoDataFrame:
    """重大危险源: mostly in the outer districts."""
    doors = book.addresses[(book.addresses["level"] == "door") & (book.addresses["ring"] != "core")]
    weight = np.where(doors["ring"] == "inner", 0.3, 1.0)
    a = doors.iloc[rng.choice(len(doors), n, replace=False, p=weight / weight.sum())].reset_index(drop=True)
    trade = _pick(rng, TRADE_WORDS, n) + _pick(rng, TRADE_WORDS, n)
    chemical = _pick(rng, HAZARD_CHEMICALS, n)
    company = (
        "北京"
        + trade
        + np.where(np.isin(chemical, ["天然气", "液化石油气", "丙烷"]), "燃气", "化工")
        + "有限公司"
    )
    frame = pd.DataFrame(
        {
            "编号": [f"WXY{d}{i + 1:04d}" for i, d in enumerate(a["district_code"])],
            "名称": company + _pick(rng, HAZARD_FACILITIES, n),
            "危险化学品": chemical,
            "等级": rng.choice(HAZARD_LEVELS, n, p=HAZARD_LEVELS_P),
            "企业": company,
            "地址": a["full_address"].to_numpy(),
            "所属区": a["district"].to_numpy(),
        }
    )
    geoms = shapely.points(
        a["x"].to_numpy() + a["nx"].to_numpy() * 30, a["y"].to_numpy() + a["ny"].to_numpy() * 30
    )
    return _wgs84(frame, geoms)


def pipelines(roads: gpd.GeoDataFrame, n_target: int, rng: np.random.Generator) -> gpd.GeoDataFrame:
    """地下管线: each road carries several networks, each cut into segments between wells."""
    types = list(PIPE_TYPES)
    has = (
        rng.random((len(roads), len(types)))
        < np.where(roads["ring"].isin(["core", "inner"]), 0.8, 0.45)[:, None]
    )
    has[:, 0] = True  # every road has water
    road_ix, type_ix = np.nonzero(has)
    length = roads["length_m"].to_numpy()[road_ix]
    seg_len = length.sum() / n_target
    pieces = np.maximum(1, np.ceil(length / seg_len)).astype(int)
    r_ix, t_ix = np.repeat(road_ix, pieces), np.repeat(type_ix, pieces)
    k = np.arange(len(r_ix)) - np.repeat(np.cumsum(pieces) - pieces, pieces)
    total = np.repeat(pieces, pieces)
    r = roads.iloc[r_ix]
    x0, y0, x1, y1 = (r[c].to_numpy() for c in ("x0", "y0", "x1", "y1"))
    L = r["length_m"].to_numpy()
    tx, ty = (x1 - x0) / L, (y1 - y0) / L
    offset = (t_ix - 2.5) * 2.5  # each network in its own lane under the road
    a, b = k / total, (k + 1) / total
    coords = np.stack(
        [
            np.column_stack([x0 + a * (x1 - x0) - ty * offset, y0 + a * (y1 - y0) + tx * offset]),
            np.column_stack([x0 + b * (x1 - x0) - ty * offset, y0 + b * (y1 - y0) + tx * offset]),
        ],
        axis=1,
    )
    n = len(r_ix)
    specs = [PIPE_TYPES[types[t]] for t in t_ix]
    frame = pd.DataFrame(
        {
            "管线编号": [f"{s[0]}{rid}-{kk + 1:03d}" for s, rid, kk in zip(specs, r["id"], k, strict=True)],
            "管线类型": np.array(types, dtype=object)[t_ix],
            "材质": [s[1][j % len(s[1])] for s, j in zip(specs, rng.integers(0, 6, n), strict=True)],
            "管径_mm": [s[2][j % len(s[2])] for s, j in zip(specs, rng.integers(0, 8, n), strict=True)],
            "埋深_m": np.round(
                [
                    lo + u * (hi - lo)
                    for (lo, hi), u in zip((s[3] for s in specs), rng.random(n), strict=True)
                ],
                2,
            ),
            "权属单位": [s[4] for s in specs],
            "建设年代": rng.integers(1965, 2024, n),
            "所在道路": r["name"].to_numpy(),
            "所属区": r["district"].to_numpy(),
        }
    )
    return _wgs84(frame, shapely.linestrings(coords))


def base_layers(
    divisions: Divisions, roads: gpd.GeoDataFrame, book: AddressBook
) -> dict[str, gpd.GeoDataFrame]:
    d, s, c = divisions.districts, divisions.streets, divisions.communities
    return {
        "districts": _wgs84(pd.DataFrame({"区划代码": d["code"], "名称": d["name"]}), d.geometry.to_numpy()),
        "streets": _wgs84(
            pd.DataFrame(
                {"区划代码": s["code"], "名称": s["name"], "类型": s["kind"], "所属区": s["district"]}
            ),
            s.geometry.to_numpy(),
        ),
        "communities": _wgs84(
            pd.DataFrame(
                {
                    "区划代码": c["code"],
                    "名称": c["short_name"],
                    "所属街道": c["street"],
                    "所属区": c["district"],
                }
            ),
            c.geometry.to_numpy(),
        ),
        "roads": _wgs84(
            pd.DataFrame(
                {
                    "道路编码": roads["id"].astype(str),
                    "名称": roads["name"],
                    "道路等级": roads["road_class"],
                    "所属区": roads["district"],
                    "所属街道": roads["street_name"],
                    "长度_米": roads["length_m"].round(1),
                }
            ),
            roads.geometry.to_numpy(),
        ),
        "buildings": _wgs84(
            pd.DataFrame(
                {
                    "建筑编码": book.buildings["id"].astype(str),
                    "名称": book.buildings["name"],
                    "小区": book.buildings["compound"],
                    "地址": book.buildings["full_address"],
                    "层数": book.buildings["floors"],
                    "单元数": book.buildings["units"],
                    "所属区": book.buildings["district"],
                }
            ),
            book.buildings.geometry.to_numpy(),
        ),
    }
