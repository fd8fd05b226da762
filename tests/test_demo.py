"""The demo city: generated at a small scale into the test database and checked in PostGIS."""

from __future__ import annotations

import importlib.util

import pytest
from sqlalchemy import Engine, text

from geocode.addressdb.load import replace_address_database
from geoshare.demo.generate.city import City, frames_equal, generate_city
from layers.errors import InvalidInput

SCALE, SEED = 5000, 42


@pytest.fixture(scope="module")
def city() -> City:
    return generate_city(SCALE, SEED)


@pytest.fixture(scope="module")
def loaded(engine: Engine, city: City) -> Engine:
    with engine.begin() as conn:
        replace_address_database(conn, **city.address_tables())
    return engine


def test_nbs_divisions_all_present(loaded: Engine) -> None:
    with loaded.connect() as conn:
        counts = dict(conn.execute(text("SELECT level, count(*) FROM addr.division GROUP BY level")).all())
        assert counts == {1: 1, 2: 1, 3: 16, 4: 349, 5: 7535}
        assert conn.execute(
            text("SELECT full_name FROM addr.division WHERE code = '110101001001'")
        ).scalar() == ("北京市东城区东华门街道多福巷社区")


@pytest.mark.parametrize(("child", "parent"), [(4, 3), (5, 4)])
def test_children_tile_their_parent(loaded: Engine, child: int, parent: int) -> None:
    with loaded.connect() as conn:
        worst = conn.execute(
            text(
                """
            SELECT max(abs(u.union_area / p.area - 1)), max(abs(u.sum_area / u.union_area - 1))
            FROM (SELECT code, ST_Area(geom::geography) AS area FROM addr.division WHERE level = :parent) p
            JOIN (SELECT parent_code, ST_Area(ST_Union(geom)::geography) AS union_area,
                         sum(ST_Area(geom::geography)) AS sum_area
                  FROM addr.division WHERE level = :child GROUP BY parent_code) u ON u.parent_code = p.code
            """
            ),
            {"child": child, "parent": parent},
        ).one()
    assert worst[0] < 0.001, "children do not cover their parent"
    assert worst[1] < 0.001, "children overlap"


def test_address_codes_unique_and_stable(loaded: Engine, city: City) -> None:
    again = generate_city(SCALE, SEED)
    assert frames_equal(city.addresses, again.addresses)
    assert frames_equal(city.layers["market_entities"], again.layers["market_entities"])
    with loaded.connect() as conn:
        before = set(conn.execute(text("SELECT address_code FROM addr.address")).scalars())
    with loaded.begin() as conn:
        replace_address_database(conn, **again.address_tables())
    with loaded.connect() as conn:
        after = conn.execute(text("SELECT address_code FROM addr.address")).scalars().all()
    assert len(after) == len(set(after)) == len(before)
    assert set(after) == before
    assert all(len(c) == 25 and c.startswith("11") for c in list(before)[:100])


def test_other_seed_gives_other_city(city: City) -> None:
    other = generate_city(SCALE, SEED + 1)
    assert not frames_equal(city.addresses, other.addresses)


def test_messy_names(loaded: Engine) -> None:
    with loaded.connect() as conn:
        shared = conn.execute(
            text(
                "SELECT count(*) FROM (SELECT name FROM addr.road GROUP BY name"
                " HAVING count(DISTINCT district_code) >= 2) s"
            )
        ).scalar()
        assert shared > 0
        assert (
            conn.execute(
                text("SELECT count(*) FROM addr.road WHERE name = '朝阳路' AND district_code <> '110105'")
            ).scalar()
            > 0
        )
        hutong = dict(
            conn.execute(
                text(
                    "SELECT district_code IN ('110101', '110102'), count(*) FROM addr.road"
                    " WHERE name LIKE '%胡同' GROUP BY 1"
                )
            ).all()
        )
        assert hutong.get(True, 0) > 0 and hutong.get(False, 0) == 0
        assert (
            conn.execute(
                text(
                    "SELECT count(*) FROM addr.address WHERE level = 'building' AND full_address LIKE '%号楼'"
                )
            ).scalar()
            > 0
        )


def test_odd_and_even_doors_on_opposite_sides(loaded: Engine) -> None:
    with loaded.connect() as conn:
        rows = conn.execute(
            text(
                """
            WITH e AS (
                SELECT a.door_number % 2 = 1 AS odd, a.side, ST_X(a.geom) AS px, ST_Y(a.geom) AS py,
                       ST_X(ST_StartPoint(r.geom)) AS x0, ST_Y(ST_StartPoint(r.geom)) AS y0,
                       ST_X(ST_EndPoint(r.geom)) AS x1, ST_Y(ST_EndPoint(r.geom)) AS y1
                FROM addr.address a JOIN addr.road r ON r.id = a.road_id
                WHERE a.level = 'door'),
            d AS (SELECT odd, side, (x1 - x0) * (py - y0) - (y1 - y0) * (px - x0) AS xprod FROM e)
            SELECT odd, side, bool_and(xprod > 0), bool_and(xprod < 0), count(*) FROM d GROUP BY odd, side
            """
            )
        ).all()
    by_parity = {r[0]: r for r in rows}
    assert set(by_parity) == {True, False} and len(rows) == 2
    assert by_parity[True][1] == "L" and by_parity[True][2]  # odd: left of the road's direction
    assert by_parity[False][1] == "R" and by_parity[False][3]  # even: right


def test_door_numbers_grow_along_the_road(loaded: Engine) -> None:
    with loaded.connect() as conn:
        backwards = conn.execute(
            text(
                """
            SELECT count(*) FROM (
                SELECT road_position < lag(road_position) OVER w AS back
                FROM addr.address WHERE level = 'door' AND door_suffix = ''
                WINDOW w AS (PARTITION BY road_id, side ORDER BY door_number)) s
            WHERE back
            """
            )
        ).scalar()
    assert backwards == 0


def test_counts_scale_with_scale(city: City) -> None:
    bigger = generate_city(SCALE * 3, SEED)
    ratio = len(bigger.addresses) / len(city.addresses)
    assert 2.4 < ratio < 3.6
    assert 0.75 * SCALE < len(city.addresses) < 1.25 * SCALE
    assert len(bigger.layers["market_entities"]) == SCALE * 3 // 5


def test_market_entities_fields(city: City) -> None:
    me = city.layers["market_entities"]
    assert me["统一社会信用代码"].is_unique
    assert me["统一社会信用代码"].str.len().eq(18).all()
    assert me["法定代表人身份证号"].str.match(r"^11\d{15}[\dX]$").all()
    assert set(city.layers["pipelines"]["管线类型"]) <= {"给水", "排水", "燃气", "热力", "电力", "通信"}


def test_bad_address_rows_are_rejected_and_nothing_changes(loaded: Engine, city: City) -> None:
    broken = city.addresses.copy()
    broken.loc[broken.index[3], "address_code"] = broken["address_code"].iloc[2]
    with loaded.connect() as conn:
        before = conn.execute(text("SELECT count(*) FROM addr.address")).scalar()
    with pytest.raises(InvalidInput) as err, loaded.begin() as conn:
        replace_address_database(conn, **{**city.address_tables(), "addresses": broken})
    assert err.value.field == "address_code" and err.value.line == 4
    with loaded.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM addr.address")).scalar() == before


@pytest.mark.skipif(importlib.util.find_spec("layers.publish") is None, reason="layer engine not there yet")
def test_full_load_publishes_layers_and_marks_it(db: Engine) -> None:
    from geoshare.demo.load import is_loaded, load_demo

    timings = load_demo(db, SCALE, SEED)
    assert "layer market_entities" in timings
    with db.connect() as conn:
        assert is_loaded(conn, SCALE, SEED)
        assert not is_loaded(conn, SCALE + 1, SEED)
        layers = dict(conn.execute(text("SELECT id, sharing_class FROM gs.layer")).all())
        restricted = conn.execute(
            text("SELECT restricted_fields FROM gs.layer WHERE id = 'market_entities'")
        ).scalar()
    assert layers["emergency_shelters"] == "public"
    assert layers["market_entities"] == "shared" and restricted == ["法定代表人身份证号"]
    assert layers["hazard_sources"] == layers["pipelines"] == "restricted"
    assert {"districts", "streets", "communities", "roads", "buildings"} <= set(layers)
    with db.connect() as conn:
        count, report, note = conn.execute(
            text(
                "SELECT feature_count, report->'geocoding', note FROM gs.layer_version "
                "WHERE layer_id = 'market_entities' ORDER BY version DESC LIMIT 1"
            )
        ).one()
        near = conn.execute(
            text(
                """
                SELECT avg((ST_DWithin(m.geom::geography, a.geom::geography, 5))::int)
                FROM layerdata.{table} m JOIN addr.address a ON a.address_code = m.{column}
                """.replace("{table}", _table(conn, "market_entities")).replace(
                    "{column}", _column(conn, "market_entities", "地址编码")
                )
            )
        ).scalar()
    assert report["rows"] == SCALE // 5 and count == report["matched"]
    assert report["match_rate"] > 0.85, report["by_status"]
    assert len(report["unmatched_rows"]) == report["unmatched"] > 0
    assert all(r["line"] >= 2 and r["address"] for r in report["unmatched_rows"])
    assert "geocoded" in note

    # the demo agreement: scjgj reads yjglj's hazard sources, listed fields only, inside 大兴区 only
    from geoshare.access import policy
    from geoshare.access.identity import authenticate
    from geoshare.access.store import create_key
    from geoshare.demo.load import DEMO_AGREEMENT
    from layers.query import ItemsQuery, fetch_page
    from layers.registry import get_layer

    with db.begin() as conn:
        who = authenticate(conn, create_key(conn, "scjgj", "consumer").key)
        layer = get_layer(conn, "hazard_sources", policy.visibility(who))
        hidden, area = policy.hidden_fields(who, layer), policy.area(who, layer)
        page = fetch_page(conn, layer, ItemsQuery(limit=10_000), hidden, area)
        inside = conn.execute(
            text(
                f"SELECT count(*) FROM {layer.qualified_table} t JOIN addr.division d ON d.code = :c"
                " WHERE ST_Intersects(t.geom, d.geom)"
            ),
            {"c": DEMO_AGREEMENT["area_code"]},
        ).scalar_one()
    assert {a.name for a in layer.attributes} - hidden == set(DEMO_AGREEMENT["fields"])
    assert area is not None and 0 < page.number_returned == inside < layer.feature_count
    assert near > 0.99  # each entity sits on the address the geocoder reported for it


def _table(conn, layer_id: str) -> str:  # noqa: ANN001
    return conn.execute(
        text("SELECT table_name FROM gs.layer_version WHERE layer_id = :l ORDER BY version DESC LIMIT 1"),
        {"l": layer_id},
    ).scalar()


def _column(conn, layer_id: str, name: str) -> str:  # noqa: ANN001
    attributes = conn.execute(text("SELECT attributes FROM gs.layer WHERE id = :l"), {"l": layer_id}).scalar()
    return next(a["column"] for a in attributes if a["name"] == name)
