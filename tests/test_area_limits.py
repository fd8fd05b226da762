"""Area-limited reads (sharing agreements with a division area): exactly the rows meeting the area,
whichever shortcut the statement takes.

The area is an L: a horizontal arm and a vertical arm meeting at the south-west corner, with a notch
between them. Features sit inside, on the border, just outside, across it, in the notch, and one
diagonal line whose bounding box reaches into the corner while the line itself stays outside. The
expected rows come from shapely, independently of the SQL.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import shapely
from fastapi.testclient import TestClient
from layer_factory import make_layer
from shapely.geometry import LineString, Point, box
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Engine, bindparam, func, select, text

from geoshare.access.identity import merge_grants
from layers import registry
from layers.crs import CRS84, resolve_crs
from layers.errors import NotFound
from layers.model import LayerInfo
from layers.query import (
    Bounds,
    ItemsQuery,
    LayerTable,
    area_constant,
    area_covers,
    fetch_feature,
    fetch_page,
    page_select,
    where_clauses,
)

ARM_WEST = box(116.0, 39.0, 116.1, 39.4)  # the vertical arm
ARM_SOUTH = box(116.1, 39.0, 116.4, 39.1)  # the horizontal arm, east of the vertical one
AREA = shapely.union(ARM_WEST, ARM_SOUTH)
AREA_WKB = shapely.to_wkb(AREA)
FEATURES: dict[str, BaseGeometry] = {
    "inside": Point(116.05, 39.05),
    "inside_arm": Point(116.3, 39.05),
    "on_border": Point(116.25, 39.1),
    "just_outside": Point(116.25, 39.1 + 1e-6),
    "just_outside_top": Point(116.05, 39.4 + 1e-6),
    "crossing": LineString([(116.2, 39.05), (116.2, 39.2)]),
    "in_notch": LineString([(116.2, 39.2), (116.3, 39.3)]),
    "diagonal": LineString([(116.05, 39.6), (116.6, 39.05)]),
    "around": box(115.9, 38.9, 116.5, 39.5),
}
COVERED = (116.01, 39.01, 116.09, 39.09)  # inside the corner; the diagonal's box reaches into it
STRADDLING = (116.15, 39.05, 116.25, 39.15)  # half in the horizontal arm, half in the notch
NOTCH = (116.15, 39.15, 116.35, 39.35)
ACROSS_ARMS = (116.05, 39.02, 116.15, 39.08)  # covered by the union of the arms, by neither alone
PROVIDER, CONSUMER = "SCJ", "JT"
DIVISIONS = {"999911": ARM_WEST, "999912": ARM_SOUTH}


def expected(area: BaseGeometry, bbox: Bounds | None = None) -> set[str]:
    return {
        key
        for key, geom in FEATURES.items()
        if geom.intersects(area) and (bbox is None or geom.intersects(box(*bbox)))
    }


def in_tile(area: BaseGeometry, envelope: Bounds) -> set[str]:
    """What a tile statement keeps: bounding box overlapping the envelope, geometry meeting the area."""
    env = box(*envelope)
    return {
        key for key, geom in FEATURES.items() if box(*geom.bounds).intersects(env) and geom.intersects(area)
    }


def _ids(features: bytes) -> set[str]:
    return {f["id"] for f in json.loads(b"[" + features + b"]")}


@pytest.fixture
def layer(db: Engine) -> LayerInfo:
    make_layer(
        db,
        "zones",
        [(geom, {"编号": key, "名称": key.upper()}) for key, geom in FEATURES.items()],
        [("编号", "string"), ("名称", "string")],
        key_field="编号",
        sharing_class="restricted",
        department=PROVIDER,
    )
    with db.connect() as conn:
        return registry.get_layer(conn, "zones")


def test_the_fixture_puts_features_where_the_tests_need_them() -> None:
    """The proofs below rely on these: otherwise they could pass for the wrong reason."""
    assert {"inside", "on_border", "crossing", "around"} <= expected(AREA)
    assert not {"just_outside", "just_outside_top", "in_notch", "diagonal"} & expected(AREA)
    assert box(*FEATURES["diagonal"].bounds).intersects(box(*COVERED))


def test_area_covers_boxes_inside_only() -> None:
    assert area_covers(AREA_WKB, COVERED)
    assert area_covers(AREA_WKB, (116.0, 39.0, 116.1, 39.1))  # sharing the area's edges
    assert not area_covers(AREA_WKB, STRADDLING)
    assert not area_covers(AREA_WKB, NOTCH)
    assert not area_covers(AREA_WKB, (116.05, 39.05, 116.05, 39.08))  # degenerate
    bowtie = shapely.to_wkb(shapely.Polygon([(116.0, 39.0), (116.4, 39.4), (116.4, 39.0), (116.0, 39.4)]))
    assert not area_covers(bowtie, (116.01, 39.19, 116.02, 39.21))  # invalid areas never shortcut


@pytest.mark.parametrize("bbox", [None, COVERED, STRADDLING, NOTCH, (115.0, 38.0, 117.0, 40.0)], ids=str)
def test_items_are_exactly_the_rows_meeting_the_area(
    db: Engine, layer: LayerInfo, bbox: Bounds | None
) -> None:
    with db.connect() as conn:
        page = fetch_page(conn, layer, ItemsQuery(limit=100, bbox=bbox), area=AREA_WKB)
        everyone = fetch_page(conn, layer, ItemsQuery(limit=100, bbox=bbox))
    assert _ids(page.features) == expected(AREA, bbox)
    assert _ids(everyone.features) == expected(box(-180, -90, 180, 90), bbox)


def test_a_covered_bbox_drops_the_area_test_and_nothing_else(layer: LayerInfo) -> None:
    def sql(bbox: Bounds, area: bytes | None) -> str:
        lt = LayerTable(layer, frozenset(), area)
        q = ItemsQuery(limit=10, bbox=bbox)
        return str(page_select(lt, q, [lt.c.fkey]).compile())

    assert sql(COVERED, AREA_WKB) == sql(COVERED, None)  # the anonymous statement, same plan
    assert str(area_constant(AREA_WKB)) in sql(STRADDLING, AREA_WKB)


def test_the_area_is_a_constant_not_a_parameter(layer: LayerInfo) -> None:
    """A bound area is parsed again for every row once psycopg's prepared statement goes generic."""
    lt = LayerTable(layer, frozenset(), AREA_WKB)
    compiled = page_select(lt, ItemsQuery(limit=10), [lt.c.fkey]).compile()
    assert not [v for v in compiled.params.values() if isinstance(v, bytes | bytearray)]
    constant = str(area_constant(AREA_WKB))
    assert constant in str(compiled)
    assert set(constant.split("'")[1]) <= set("0123456789ABCDEF")  # nothing to escape, nothing injected
    assert area_constant(AREA_WKB) is area_constant(bytes(AREA_WKB))  # one per area, not per request


@pytest.mark.parametrize("bbox", [None, STRADDLING, COVERED], ids=str)
def test_generic_plans_of_prepared_statements_keep_the_rows(
    db: Engine, layer: LayerInfo, bbox: Bounds | None
) -> None:
    with db.connect() as conn:
        conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
        pages = [fetch_page(conn, layer, ItemsQuery(limit=100, bbox=bbox), area=AREA_WKB) for _ in range(8)]
    assert [_ids(p.features) for p in pages] == [expected(AREA, bbox)] * 8


def test_one_feature_outside_the_area_is_not_found(db: Engine, layer: LayerInfo) -> None:
    crs = resolve_crs(CRS84, "crs")
    with db.connect() as conn:
        crossing = json.loads(fetch_feature(conn, layer, "crossing", crs, area=AREA_WKB))
        assert crossing["id"] == "crossing"
        for key in ("just_outside", "in_notch", "diagonal"):
            with pytest.raises(NotFound):
                fetch_feature(conn, layer, key, crs, area=AREA_WKB)


@pytest.mark.parametrize("own_box", [False, True], ids=["built", "statement's"])
@pytest.mark.parametrize("envelope", [COVERED, STRADDLING, NOTCH, (116.0, 39.0, 116.1, 39.1)], ids=str)
def test_tile_envelopes_keep_exactly_the_rows_meeting_the_area(
    db: Engine, layer: LayerInfo, envelope: Bounds, own_box: bool
) -> None:
    """Tiles find rows with ``geom && envelope`` only: a covered envelope still tests the rows whose
    box leaves it (the diagonal), and lets the others through on a box comparison. The box is the
    statement's own bind parameters when given (a template's), else built from the numbers."""
    lt = LayerTable(layer, frozenset(), AREA_WKB)
    names = ("w", "s", "e", "n")
    box_sql = func.ST_MakeEnvelope(*(bindparam(k, v) for k, v in zip(names, envelope, strict=True)), 4326)
    clauses = where_clauses(lt, ItemsQuery(limit=100), envelope, box_sql if own_box else None)
    stmt = select(lt.c.fkey).select_from(lt.table).where(lt.c.geom.op("&&")(box_sql), *clauses)
    with db.connect() as conn:
        got = set(conn.execute(stmt).scalars())
    assert got == in_tile(AREA, envelope)
    sql = str(stmt.compile())
    assert ("CASE WHEN" in sql) == area_covers(AREA_WKB, envelope)
    assert sql.count(":w") == (2 if own_box and area_covers(AREA_WKB, envelope) else 1)


def test_two_agreements_add_up_to_the_union_of_their_areas() -> None:
    rows = [
        ["zones", ["编号"], n, shapely.to_wkb(geom, hex=True)]
        for n, geom in enumerate(DIVISIONS.values(), start=1)
    ]
    grant = merge_grants(rows)["zones"]
    assert grant.agreements == (1, 2) and grant.area is not None
    assert shapely.equals(shapely.from_wkb(grant.area), AREA)
    # a box only the union covers takes the shortcut
    assert area_covers(grant.area, ACROSS_ARMS)
    assert not any(area_covers(shapely.to_wkb(g), ACROSS_ARMS) for g in DIVISIONS.values())


def _agreement(conn: Any, area_code: str) -> None:
    conn.execute(
        text(
            "INSERT INTO gs.agreement (consumer_code, provider_code, purpose, starts_on, ends_on, status,"
            " area_code, area) VALUES (:c, :p, '测试', current_date - 1, current_date + 30, 'approved', :a,"
            " (SELECT geom FROM addr.division WHERE code = :a))"
        ),
        {"c": CONSUMER, "p": PROVIDER, "a": area_code},
    )
    conn.execute(
        text(
            "INSERT INTO gs.agreement_layer VALUES (currval(pg_get_serial_sequence('gs.agreement', 'id')),"
            " 'zones', ARRAY['编号', '名称'])"
        )
    )


@pytest.mark.parametrize("bbox", [None, ACROSS_ARMS, STRADDLING], ids=str)
def test_a_reader_with_two_area_agreements_sees_rows_in_either(
    client: TestClient,
    db: Engine,
    layer: LayerInfo,
    key_headers: Callable[..., dict[str, str]],
    bbox: Bounds | None,
) -> None:
    reader = key_headers(CONSUMER, "consumer")
    with db.begin() as conn:
        for code, geom in DIVISIONS.items():
            conn.execute(
                text(
                    "INSERT INTO addr.division (code, level, name, short_name, path_codes, path_names,"
                    " full_name, geom) VALUES (:c, 4, '测试街道', '测试', ARRAY[:c], ARRAY['测试街道'],"
                    " '测试街道', ST_Multi(ST_GeomFromText(:wkt, 4326))) ON CONFLICT (code) DO UPDATE"
                    " SET geom = excluded.geom"
                ),
                {"c": code, "wkt": geom.wkt},
            )
        for code in DIVISIONS:
            _agreement(conn, code)
    params = {"limit": 100} | ({"bbox": ",".join(map(str, bbox))} if bbox else {})
    r = client.get("/collections/zones/items", params=params, headers=reader)
    assert r.status_code == 200, r.text
    got = {f["id"] for f in r.json()["features"]}
    assert got == expected(AREA, bbox)
    assert "just_outside" not in got and (bbox is not None or {"inside", "inside_arm", "crossing"} <= got)


def test_tile_statements_compiled_once_keep_covered_and_uncovered_tiles_apart(
    db: Engine, layer: LayerInfo
) -> None:
    """Plain tiles reuse a statement compiled per shape; an area reader's covered tile skips most of
    the area test, so a statement compiled for a covered tile must never serve an uncovered one."""
    import mapbox_vector_tile
    import morecantile

    from layers.tiles.mvt import TileRequest, fetch_tile, search_envelope

    grid = morecantile.tms.get("WebMercatorQuad")
    corner = grid.tile(116.05, 39.05, 13)  # inside the corner of the L
    notch = grid.tile(116.25, 39.1, 13)  # straddling the horizontal arm's northern edge
    tiles = [TileRequest("WebMercatorQuad", 13, t.x, t.y) for t in (corner, notch, corner, notch)]
    assert area_covers(AREA_WKB, search_envelope(tiles[0]))
    assert not area_covers(AREA_WKB, search_envelope(tiles[1]))
    with db.connect() as conn:
        for tile in tiles:
            data = fetch_tile(conn, layer, tile, frozenset(), AREA_WKB)
            decoded = mapbox_vector_tile.decode(data).get("zones", {"features": []})["features"]
            got = {f["properties"]["编号"] for f in decoded}
            assert got == in_tile(AREA, search_envelope(tile)), tile
