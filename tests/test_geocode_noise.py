"""The noisy query generator (geocode.evaluation.noise) on the small demo city: no geocoder needed."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from rapidfuzz.distance import OSA
from sqlalchemy import Engine, text

from geocode.evaluation.noise import (
    ABSENT_KINDS,
    CONFUSABLE,
    FORMER_DISTRICTS,
    GENERIC_SUFFIXES,
    HELD_OUT,
    NOISE_KINDS,
    REAL_FORMS,
    Case,
    Known,
    Shares,
    cn_count,
    cn_digits,
    generic_suffix,
    make_cases,
    read_known,
    read_rows,
    typo,
)
from geocode.normalize import cn_to_int

N = 1500
_HALFWIDTH = str.maketrans(
    {chr(ord(c) + 0xFEE0): c for c in "0123456789-ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"}
)


@pytest.fixture(scope="module")
def source(address_db: Engine) -> tuple[pd.DataFrame, Known]:
    with address_db.connect() as conn:
        return read_rows(conn), read_known(conn)


@pytest.fixture(scope="module")
def cases(source: tuple[pd.DataFrame, Known]) -> list[Case]:
    rows, known = source
    return make_cases(rows, np.random.default_rng(2024), N, known=known)


def _scalar(engine: Engine, sql: str, **params: object) -> object:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


def test_same_seed_same_cases(source: tuple[pd.DataFrame, Known]) -> None:
    rows, known = source
    a = [c.as_dict() for c in make_cases(rows, np.random.default_rng(5), 300, known=known)]
    b = [c.as_dict() for c in make_cases(rows, np.random.default_rng(5), 300, known=known)]
    c = [c.as_dict() for c in make_cases(rows, np.random.default_rng(6), 300, known=known)]
    assert a == b
    assert a != c


def test_every_kind_appears_with_default_shares(cases: list[Case]) -> None:
    seen = {k for c in cases for k in c.noise}
    assert seen >= set(NOISE_KINDS), set(NOISE_KINDS) - seen
    assert {c.kind for c in cases} == {"door", "building", *ABSENT_KINDS}
    assert sum(c.exists for c in cases) == round(N * Shares().exists)
    assert len({c.query for c in cases}) > 0.95 * N
    clean = [c for c in cases if c.exists and not c.noise]
    assert clean and all(c.query.startswith(c.province + c.district) for c in clean)


def test_shares_are_configurable(source: tuple[pd.DataFrame, Known]) -> None:
    rows, known = source
    only_doors = Shares(exists=0.5, absent={"absent_door": 1.0}, noise={"fullwidth": 1.0})
    made = make_cases(rows, np.random.default_rng(1), 200, shares=only_doors, known=known)
    assert {c.kind for c in made if not c.exists} == {"absent_door"}
    assert sum(not c.exists for c in made) == 100
    assert all(
        "fullwidth" in c.noise and not any(ch.isascii() and ch.isdigit() for ch in c.query) for c in made
    )
    with pytest.raises(ValueError, match="unknown noise"):
        Shares(noise={"sneeze": 0.1})


def test_nonexistent_cases_do_not_exist(cases: list[Case], address_db: Engine) -> None:
    absent = [c for c in cases if not c.exists]
    assert absent and all(c.lon is None and c.address_code is None for c in absent)
    for c in absent:
        d = c.detail
        if c.kind == "absent_door":
            largest = _scalar(
                address_db,
                "SELECT max(door_number) FROM addr.address WHERE road = :r AND district_code = :d",
                r=d["road"],
                d=d["district_code"],
            )
            assert largest is not None and d["door"] >= largest + 30, c
        elif c.kind == "absent_road":
            assert _scalar(address_db, "SELECT count(*) FROM addr.road WHERE name = :r", r=d["road"]) == 0, c
            assert d["road"] in c.query
        elif c.kind == "absent_road_in_district":
            sql = (
                "SELECT count(*) FROM addr.road WHERE name = :r "
                "AND (CAST(:d AS text) IS NULL OR district_code = :d)"
            )
            assert _scalar(address_db, sql, r=d["road"], d=d["district_code"]) == 0, c
            assert _scalar(address_db, sql, r=d["road"], d=None) > 0
        elif c.kind == "absent_building":
            assert (
                _scalar(
                    address_db,
                    "SELECT count(*) FROM addr.address WHERE compound_id = :c AND building_number = :b",
                    c=d["compound_id"],
                    b=d["building"],
                )
                == 0
            ), c
            assert (
                _scalar(
                    address_db, "SELECT count(*) FROM addr.address WHERE compound_id = :c", c=d["compound_id"]
                )
                > 0
            )
        elif c.kind in ("absent_road_added", "absent_road_inserted"):
            # one character added to a real road name, in front or inside: no road, compound or
            # division is called that, so the address does not exist as written
            assert len(d["road"]) == len(d["real_road"]) + 1 and d["road"] in c.query, c
            if c.kind == "absent_road_added":
                assert d["road"][1:] == d["real_road"], c
            for table in ("addr.road", "addr.compound"):
                assert _scalar(address_db, f"SELECT count(*) FROM {table} WHERE name = :r", r=d["road"]) == 0
            assert _scalar(address_db, "SELECT count(*) FROM addr.road WHERE name = :r", r=d["real_road"]) > 0
        else:
            assert c.kind == "absent_compound"
            assert (
                _scalar(address_db, "SELECT count(*) FROM addr.compound WHERE name = :n", n=d["compound"])
                == 0
            )
            assert d["compound"] in c.query
            ends_in_a_division = (
                "SELECT count(*) FROM addr.division WHERE level >= 4 AND "
                "(right(:n, length(short_name)) = short_name OR right(:n, length(name)) = name)"
            )
            assert _scalar(address_db, ends_in_a_division, n=d["compound"]) == 0, c


def test_old_names_only_for_the_former_districts_area(cases: list[Case]) -> None:
    old = [c for c in cases if "old_district" in c.noise]
    assert old
    for c in old:
        name = next(
            n for n, (code, streets) in FORMER_DISTRICTS.items() if c.written["district"] in (n, n[:-1])
        )
        code, streets = FORMER_DISTRICTS[name]
        assert c.district_code == code and c.district in ("东城区", "西城区") and c.street in streets
    assert not any(
        ("崇文" in c.query or "宣武" in c.query)
        for c in cases
        if "old_district" not in c.noise and not any(n in (c.road or "") for n in ("崇文", "宣武"))
    )  # 崇文门外东路 keeps its name


def test_typos_are_one_edit_of_the_true_name(cases: list[Case]) -> None:
    typos = [c for c in cases if any(k.startswith("typo_") for k in c.noise)]
    assert {k for c in typos for k in c.noise if k.startswith("typo_")} == {
        "typo_substitute",
        "typo_drop",
        "typo_swap",
    }
    for c in typos:
        true, wrong = c.road, c.written["road"]
        assert true is not None and wrong != true and wrong in c.query
        assert OSA.distance(true, wrong) == 1, (true, wrong)
        assert len(true) >= 3 and generic_suffix(true) and wrong.endswith(generic_suffix(true))
        if "typo_drop" in c.noise:
            assert len(wrong) == len(true) - 1
        else:
            assert len(wrong) == len(true)
        if "typo_swap" in c.noise:
            assert sorted(wrong) == sorted(true)


def test_typo_never_touches_the_generic_suffix() -> None:
    rng = np.random.default_rng(0)
    for name in ("帽儿胡同", "东四十条", "将台东路", "朝阳门北大街", "马坡三街", "西板厂东巷"):
        for kind in ("typo_substitute", "typo_drop", "typo_swap"):
            for _ in range(20):
                wrong = typo(name, kind, rng)
                if wrong is not None:
                    suffix = generic_suffix(name)
                    assert wrong.endswith(suffix) and OSA.distance(name, wrong) == 1
    assert typo("和路", "typo_swap", rng) is None  # names under 3 characters keep their spelling


def test_expected_points_are_the_true_points(cases: list[Case], address_db: Engine) -> None:
    existing = [c for c in cases if c.exists]
    with address_db.connect() as conn:
        truth = {
            r.address_code: r
            for r in conn.execute(
                text(
                    "SELECT address_code, level, district_code, street_code, ST_X(geom) AS x, "
                    "ST_Y(geom) AS y, building_number FROM addr.address WHERE address_code = ANY(:codes)"
                ),
                {"codes": [c.address_code for c in existing]},
            )
        }
    for c in existing:
        t = truth[c.address_code]
        assert (c.lon, c.lat) == pytest.approx((t.x, t.y), abs=1e-9)
        assert c.kind == t.level and (t.building_number is not None) == (c.kind == "building")
        assert (c.district_code, c.street_code) == (t.district_code, t.street_code)


def test_dropped_districts_and_compound_only_forms_stay_unambiguous(
    cases: list[Case], address_db: Engine
) -> None:
    dropped = [c for c in cases if "no_district" in c.noise]
    only = [c for c in cases if "compound_only" in c.noise]
    assert dropped and only
    for c in dropped:
        assert "district" not in c.written
        districts = _scalar(
            address_db, "SELECT count(DISTINCT district_code) FROM addr.road WHERE name = :r", r=c.road
        )
        assert districts == 1 or "street" in c.noise, c
    for c in only:
        assert c.kind == "building" and "district" in c.written and "road" not in c.written
        same = _scalar(
            address_db,
            "SELECT count(*) FROM addr.compound WHERE name = :n AND district_code = :d AND kind = '小区'",
            n=c.written["compound"],
            d=c.district_code,
        )
        assert same == 1 and c.written["compound"] in c.query


@pytest.mark.parametrize("n", [1, 9, 10, 11, 20, 27, 100, 101, 108, 110, 1001, 1010, 2000, 9999])
def test_chinese_numerals_read_back(n: int) -> None:
    assert cn_to_int(cn_count(n)) == n
    assert cn_to_int(cn_digits(n)) == n


def test_chinese_numeral_forms() -> None:
    assert [cn_count(n) for n in (27, 108, 10, 110)] == ["二十七", "一百零八", "十", "一百一十"]
    assert cn_digits(108) == "一〇八"


def test_confusables_never_make_a_road_suffix() -> None:
    suffix_chars = set("".join(GENERIC_SUFFIXES))
    assert CONFUSABLE and all(a != b and b not in suffix_chars for a, b in CONFUSABLE.items())


def test_real_forms_are_written_as_real_addresses_are(cases: list[Case]) -> None:
    """Each form seen in the real corpora shows in the query the way it was seen there."""
    by_kind = {k: [c for c in cases if k in c.noise] for k in REAL_FORMS}
    assert all(by_kind.values()), [k for k, v in by_kind.items() if not v]
    assert all(re.match(r"^10\d{4}", c.query.translate(_HALFWIDTH)) for c in by_kind["postcode"] if
               "label" not in c.noise)  # fmt: skip
    assert all(re.search(r"(地址|住所|场所)", c.query) for c in by_kind["label"])
    assert all(re.search(r"null", c.query.translate(_HALFWIDTH), re.IGNORECASE) for c in by_kind["null_junk"])
    assert all("懂" in c.query and c.kind == "building" for c in by_kind["building_typo"])
    assert all(re.search(r"1\d{10}", c.query.translate(_HALFWIDTH)) for c in by_kind["phone"])
    for c in by_kind["repeat_prefix"]:
        first = c.written.get("province") or c.written["district"]
        assert c.query.count(first.removesuffix("市").removesuffix("区")) >= 2, c.query
    for c in by_kind["division_dash"]:
        assert re.search(r"[-—]", c.query.translate(_HALFWIDTH)), c.query
    # the true answer is untouched by junk: same point and codes as the address itself
    assert all(c.exists for c in by_kind["note"] if c.kind in ("door", "building"))
    assert set(REAL_FORMS) | set(ABSENT_KINDS) >= HELD_OUT
