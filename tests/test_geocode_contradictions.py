"""Answers never contradict the query, and a confident score means the address was found as written
(issue 14, items 3 and 4), on the small demo city's address database and the real corpora."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from geocode.evaluation.real import DEFAULT_FOLDER, ROAD_LEVELS, read_corpora
from geocode.index import AddressIndex, load_index
from geocode.match import geocode
from geocode.model import CONFIDENT, Level, Status


@pytest.fixture(scope="module")
def index(address_db: Engine) -> AddressIndex:
    with address_db.connect() as conn:
        return load_index(conn)


def _rows(engine: Engine, sql: str, **params: object) -> list:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).all()


def test_road_only_elsewhere_answers_the_named_district(address_db: Engine, index: AddressIndex) -> None:
    rows = _rows(
        address_db,
        """
        SELECT a.road, a.door_number, a.district_code, d.name, d.code FROM addr.address a, addr.division d
        WHERE a.level = 'door' AND a.door_suffix = '' AND d.level = 3
          AND NOT EXISTS (SELECT 1 FROM addr.road r WHERE r.name = a.road AND r.district_code = d.code)
        ORDER BY md5(a.address_code || d.code) LIMIT 30
        """,
    )
    assert len(rows) == 30
    as_division = 0
    for road, door, home, named, named_code in rows:
        r = geocode(index, f"北京市{named}{road}{door}号")
        best = r.best
        assert best is not None and r.status is not Status.ok, (named, road, r)
        assert best.adcode == named_code, (named, road, best)  # never first outside the named district
        for c in r.candidates:
            if c.adcode != named_code:
                assert c.score < 0.5 and c.score < best.score, (named, road, c)
        if best.level is Level.district:
            as_division += 1
            assert r.message and named in r.message
            assert any(c.adcode == home and c.road == road for c in r.candidates[1:]), r.candidates
    assert as_division >= 20  # most districts have no road spelt like it: the district itself answers


def test_a_road_in_another_street_of_the_district_is_not_first(
    address_db: Engine, index: AddressIndex
) -> None:
    rows = _rows(
        address_db,
        """
        SELECT a.district, a.road, a.door_number, t.name, t.code FROM addr.address a
        JOIN addr.division t ON t.level = 4 AND t.parent_code = a.district_code AND t.code <> a.street_code
        WHERE a.level = 'door' AND a.door_suffix = ''
          AND (SELECT count(*) FROM addr.division t2 WHERE t2.level = 4 AND t2.name = t.name) = 1
          AND NOT EXISTS (SELECT 1 FROM addr.address b WHERE b.road = a.road AND b.street_code = t.code)
        ORDER BY md5(a.address_code || t.code) LIMIT 20
        """,
    )
    assert len(rows) == 20
    for district, road, door, street, street_code in rows:
        r = geocode(index, f"{district}{street}{road}{door}号")
        best = r.best
        assert best is not None and r.status is not Status.ok, (street, road, best)
        for c in r.candidates:
            if c.level in (Level.door, Level.building) and c.towncode != street_code:
                assert c.score < 0.5 and c is not best, (street, road, c)


@pytest.mark.parametrize("elsewhere", ["上海市黄浦区", "浙江省杭州市西湖区", "浙江省慈溪市"])
def test_another_city_is_never_answered_with_a_beijing_address(
    address_db: Engine, index: AddressIndex, elsewhere: str
) -> None:
    rows = _rows(
        address_db,
        "SELECT road, door_number FROM addr.address WHERE level = 'door' AND door_suffix = '' "
        "ORDER BY address_code LIMIT 10",
    )
    for road, door in rows:
        r = geocode(index, f"{elsewhere}{road}{door}号")
        assert r.status is Status.not_found, (elsewhere, road, r.best)
        assert all(c.score < 0.5 for c in r.candidates)
        assert r.message and "outside" in r.message


def test_a_character_added_in_front_of_a_road_is_not_confident(
    address_db: Engine, index: AddressIndex
) -> None:
    rows = _rows(
        address_db,
        """
        SELECT a.district, a.road, a.door_number FROM addr.address a
        WHERE a.level = 'door' AND a.door_suffix = '' AND a.compound_id IS NULL
          AND NOT EXISTS (SELECT 1 FROM addr.road r WHERE r.name = '新' || a.road)
          AND NOT EXISTS (SELECT 1 FROM addr.division d
                          WHERE d.level >= 4 AND '新' || a.road LIKE d.short_name || '%')
        ORDER BY a.address_code LIMIT 20
        """,
    )
    assert len(rows) == 20
    for district, road, door in rows:
        as_written = geocode(index, f"{district}{road}{door}号")
        assert as_written.status is Status.ok
        edited = geocode(index, f"{district}新{road}{door}号")  # 新安贞东路 is not 安贞东路
        best = edited.best
        assert best is not None and best.score < CONFIDENT and edited.status is Status.partial, (road, best)
        assert edited.message and f"新{road}" in edited.message


def test_a_door_number_too_large_for_the_index_is_no_other_roads_address(index: AddressIndex) -> None:
    """Door 100010 on road r packs like door 10 of road r + 10: it must not read as that address."""
    tried = 0
    for road in range(len(index.road_name) - 11):
        other = road + 10
        if (
            index.road_name[other] == index.road_name[road]
            or index.road_district[other] != index.road_district[road]
        ):
            continue
        row = index.find(other, 10, 0, 0)
        if row < 0:
            continue
        district = index.divisions[index.road_district[road]].name
        r = geocode(index, f"{district}{index.road_name[road]}100010号")
        assert r.status is not Status.ok, (index.road_name[road], r.best)
        assert r.best is not None and r.best.level not in (Level.door, Level.building), r.best
        tried += 1
        if tried >= 5:
            break
    assert tried >= 3


def test_a_division_alone_is_confident_only_when_nothing_else_is_written(
    address_db: Engine, index: AddressIndex
) -> None:
    ((district, community),) = _rows(
        address_db,
        "SELECT p.name, c.short_name FROM addr.division c JOIN addr.division p ON p.code = left(c.code, 6) "
        "WHERE c.level = 5 AND c.short_name LIKE '%社区' ORDER BY c.code LIMIT 1",
    )
    alone = geocode(index, f"{district}{community}")
    assert alone.status is Status.ok and alone.best is not None and alone.best.level is Level.community
    more = geocode(index, f"{district}{community}0号院0号楼")  # digits masked, a building asked for
    assert more.best is not None and more.best.score < CONFIDENT and more.status is Status.partial


REAL = read_corpora(DEFAULT_FOLDER)


@pytest.mark.skipif(not REAL, reason=f"the real corpora are not beside the clone ({DEFAULT_FOLDER})")
def test_real_addresses_of_other_provinces_are_never_confident(index: AddressIndex) -> None:
    foreign = [row for row in REAL if not row.home]
    assert len(foreign) > 10_000
    for row in foreign:
        best = geocode(index, row.text).best
        assert best is None or best.score < CONFIDENT, (row.text, best)


@pytest.mark.skipif(not REAL, reason=f"the real corpora are not beside the clone ({DEFAULT_FOLDER})")
def test_real_beijing_addresses_stay_in_the_district_they_name(index: AddressIndex) -> None:
    home = [row for row in REAL if row.home and row.district]
    assert len(home) >= 30
    for row in home:
        r = geocode(index, row.text)
        assert r.best is not None and r.best.district == row.district, (row.text, r.best)
        for c in r.candidates:
            if c.district != row.district:
                assert c.score < 0.5, (row.text, c)
        if r.best.level in ROAD_LEVELS and r.best.score >= CONFIDENT:
            assert r.best.road == row.labels.get("road"), (row.text, r.best)
