"""Forward geocoding against the small demo city's address database (real PostGIS, real index)."""

from __future__ import annotations

import math
import re

import pytest
from sqlalchemy import Engine, text

from geocode.index import AddressIndex, load_index
from geocode.match import geocode
from geocode.model import CONFIDENT, Level, Status
from geocode.normalize import cn_to_int, normalize
from geocode.parse import parse, parse_divisions


@pytest.fixture(scope="module")
def index(address_db: Engine) -> AddressIndex:
    with address_db.connect() as conn:
        return load_index(conn)


def _metres(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    dx = math.radians(lon2 - lon1) * math.cos(math.radians((lat1 + lat2) / 2))
    return 6_371_000 * math.hypot(dx, math.radians(lat2 - lat1))


def _sample(engine: Engine, sql: str, **params: object) -> list:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).all()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("二十七号", "27号"),
        ("一〇八号", "108号"),
        ("三号楼二单元", "3号楼2单元"),
        ("１２號", "12号"),
        ("東城區", "东城区"),
        ("3栋 ， 2单元", "3号楼2单元"),
        ("三里屯路", "三里屯路"),  # numerals inside names stay
        ("12之1号", "12-1号"),
        ("\x00\x07😀", ""),
    ],
)
def test_normalize(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


def test_chinese_numerals() -> None:
    assert [cn_to_int(s) for s in ("十", "十二", "二十", "一百零八", "两千", "九九")] == [
        10,
        12,
        20,
        108,
        2000,
        99,
    ]


def test_parse_divisions_all_china_and_renames() -> None:
    c = parse_divisions("广东深圳南山区科技园路1号")
    assert (c.province, c.city, c.district) == ("广东省", "深圳市", "南山区")
    c = parse_divisions("崇文区某某胡同5号")
    assert (c.province, c.district) == ("北京市", "东城区")
    c = parse_divisions("延庆县八达岭镇")
    assert (c.district, c.township) == ("延庆区", "八达岭镇")
    assert parse_divisions("hello world").district is None


def test_bare_stem_is_given_back_to_the_road() -> None:
    readings = parse("朝阳门北街5号")
    assert any(r.head == "朝阳门北街" and r.door == 5 for r in readings)


def test_tail_forms() -> None:
    r = parse("北京市朝阳区某路22号院3号楼2单元301室")[0]
    assert (r.door, r.yard, r.building, r.unit, r.room) == (22, True, 3, 2, 301)
    r = parse("某路7号3-2-301")[-1]
    assert (r.door, r.building, r.unit, r.room) == (7, 3, 2, 301)
    r = parse("某路甲12号")[-1]
    assert (r.door, r.suffix) == (12, "甲")
    r = parse("某路12-1号1层101")[-1]
    assert (r.door, r.suffix, r.floor, r.room) == (12, "-1", 1, 101)


def test_every_sampled_address_finds_itself(address_db: Engine, index: AddressIndex) -> None:
    rows = _sample(
        address_db,
        "SELECT full_address, address_code, ST_X(geom), ST_Y(geom) FROM addr.address ORDER BY address_code "
        "LIMIT 400 OFFSET 7",
    )
    assert len(rows) == 400
    for full, code, lon, lat in rows:
        r = geocode(index, full)
        assert r.status is Status.ok, (full, r.message)
        best = r.best
        assert best is not None and best.address_code == code, full
        assert best.formatted_address == full
        assert best.score >= CONFIDENT and _metres(best.lon, best.lat, lon, lat) < 0.5


def test_same_road_name_in_several_districts(address_db: Engine, index: AddressIndex) -> None:
    rows = _sample(
        address_db,
        """
        SELECT a.road, a.door_number, a.district, a.district_code FROM addr.address a
        JOIN (SELECT name FROM addr.road GROUP BY name HAVING count(DISTINCT district_code) > 1) s
          ON s.name = a.road
        WHERE a.level = 'door' AND a.door_suffix = '' AND a.compound IS NULL
          AND (SELECT count(DISTINCT a2.district_code) FROM addr.address a2
               WHERE a2.road = a.road AND a2.door_number = a.door_number AND a2.door_suffix = '') > 1
        ORDER BY a.address_code LIMIT 5
        """,
    )
    assert rows, "the demo city should have the same road and door in several districts"
    for road, door, district, district_code in rows:
        bare = geocode(index, f"{road}{door}号")
        assert bare.status is Status.ambiguous
        assert bare.best is not None and bare.best.score < CONFIDENT
        assert len({c.adcode for c in bare.candidates}) > 1
        told = geocode(index, f"{district}{road}{door}号")
        assert told.status is Status.ok and told.best is not None and told.best.adcode == district_code


def test_missing_door_is_interpolated_between_neighbours(address_db: Engine, index: AddressIndex) -> None:
    rows = _sample(
        address_db,
        """
        SELECT a.district, a.road, a.door_number + 2, ST_X(a.geom), ST_Y(a.geom), ST_X(b.geom), ST_Y(b.geom)
        FROM addr.address a JOIN addr.address b
          ON b.road_id = a.road_id AND b.door_number = a.door_number + 4
         AND b.level = 'door' AND b.door_suffix = ''
        WHERE a.level = 'door' AND a.door_suffix = ''
          AND NOT EXISTS (SELECT 1 FROM addr.address m
                          WHERE m.road_id = a.road_id AND m.door_number = a.door_number + 2)
        ORDER BY a.address_code LIMIT 5
        """,
    )
    assert rows
    for district, road, door, x1, y1, x2, y2 in rows:
        r = geocode(index, f"{district}{road}{door}号")
        best = r.best
        assert best is not None and best.level is Level.interpolated, (road, door, best)
        assert r.status is Status.partial and best.score < CONFIDENT
        mid = ((x1 + x2) / 2, (y1 + y2) / 2)
        assert _metres(best.lon, best.lat, *mid) < 0.25 * _metres(x1, y1, x2, y2) + 1


def test_nonexistent_addresses_are_not_confident(address_db: Engine, index: AddressIndex) -> None:
    ((district, road, top),) = _sample(
        address_db,
        "SELECT district, road, max(door_number) FROM addr.address GROUP BY district, road "
        "ORDER BY district, road LIMIT 1",
    )
    beyond = geocode(index, f"{district}{road}{top + 40}号")
    assert beyond.best is not None and beyond.best.level is Level.road and beyond.best.score < CONFIDENT
    nowhere = geocode(index, f"{district}琉璃星光大道8号")
    assert nowhere.best is None or nowhere.best.score < CONFIDENT
    ((building_address, buildings),) = _sample(
        address_db,
        "SELECT min(full_address), max(building_number) FROM addr.address WHERE level = 'building' "
        "GROUP BY compound_id ORDER BY compound_id LIMIT 1",
    )
    stem = re.sub(r"\d+号楼$", "", building_address)
    too_far = geocode(index, f"{stem}{buildings + 5}号楼")
    assert too_far.best is not None and too_far.best.level is Level.door and too_far.best.score < CONFIDENT


def test_road_in_another_district_is_not_confident(address_db: Engine, index: AddressIndex) -> None:
    ((road, door, other),) = _sample(
        address_db,
        """
        SELECT a.road, a.door_number, d.name FROM addr.address a, addr.division d
        WHERE a.level = 'door' AND d.level = 3
          AND NOT EXISTS (SELECT 1 FROM addr.road r WHERE r.name = a.road AND r.district_code = d.code)
        ORDER BY a.address_code, d.code LIMIT 1
        """,
    )
    r = geocode(index, f"{other}{road}{door}号")
    assert r.best is None or r.best.score < CONFIDENT


def test_typo_in_road_name_still_lands(address_db: Engine, index: AddressIndex) -> None:
    rows = _sample(
        address_db,
        "SELECT district, road, door_number, ST_X(geom), ST_Y(geom) FROM addr.address "
        "WHERE level = 'door' AND door_suffix = '' AND char_length(road) >= 4 ORDER BY address_code LIMIT 20",
    )
    hits = 0
    for district, road, door, lon, lat in rows:
        typo = road[0] + "璐" + road[2:] if road[1] != "璐" else road
        r = geocode(index, f"{district}{typo}{door}号")
        if r.best and _metres(r.best.lon, r.best.lat, lon, lat) < 50:
            hits += 1
            assert r.best.score < CONFIDENT  # a corrected spelling is never a confident answer
    assert hits >= 18


def test_division_only_queries(index: AddressIndex) -> None:
    r = geocode(index, "北京市朝阳区")
    assert r.status is Status.ok and r.best is not None and r.best.level is Level.district
    assert r.best.adcode == "110105"
    r = geocode(index, "朝阳区将台地区")
    assert r.best is not None and r.best.level is Level.township and r.best.towncode == "110105023"


@pytest.mark.parametrize("query", ["😀😀😀", "hello world", "\x00\x01\x02", "12345", "号号号", "-"])
def test_junk_gives_no_confident_answer(index: AddressIndex, query: str) -> None:
    r = geocode(index, query)
    assert r.best is None or r.best.score < CONFIDENT
    assert r.status in (Status.empty, Status.not_found, Status.partial)


def test_a_street_name_without_district_names_every_street_so_called(
    address_db: Engine, index: AddressIndex
) -> None:
    """八里庄街道 is in 朝阳区 and 海淀区: without a district the query contradicts neither."""
    rows = _sample(
        address_db,
        """
        SELECT t.name, a.road, a.door_number, a.street_code FROM addr.address a
        JOIN addr.division t ON t.code = a.street_code
        WHERE a.level = 'door' AND a.door_suffix = '' AND a.compound_id IS NULL
          AND (SELECT count(*) FROM addr.division t2 WHERE t2.level = 4 AND t2.name = t.name) > 1
          AND (SELECT count(DISTINCT r.district_code) FROM addr.road r WHERE r.name = a.road) = 1
        ORDER BY a.address_code LIMIT 10
        """,
    )
    assert rows, "the demo city has street names shared by two districts"
    for street, road, door, street_code in rows:
        r = geocode(index, f"北京市{street}{road}{door}号")
        assert r.status is Status.ok and r.best is not None and r.best.towncode == street_code, (
            street,
            r.best,
        )


def test_division_names_before_a_name_count_as_written(address_db: Engine, index: AddressIndex) -> None:
    """Text before a road or compound name is explained only by divisions, which then must agree:
    富阳金色家园 (富阳区, Zhejiang) is not Beijing's 金色家园."""
    ((district, compound, building),) = _sample(
        address_db,
        "SELECT district, compound, building_number FROM addr.address WHERE level = 'building' "
        "AND compound IS NOT NULL ORDER BY address_code LIMIT 1",
    )
    assert geocode(index, f"{district}{compound}{building}号楼").status is Status.ok
    elsewhere = geocode(index, f"富阳{compound}{building}号楼")
    assert elsewhere.best is None or elsewhere.best.score < 0.5, elsewhere.best
    repeated = geocode(index, f"北京市{district}北京市{district}{compound}{building}号楼")
    assert repeated.best is not None and repeated.best.adcode is not None
