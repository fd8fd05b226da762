"""The write path on a real PostGIS: formats, failures leave nothing, versions, changes, concurrency."""

from __future__ import annotations

import getpass
import threading
from pathlib import Path

import geopandas as gpd
import pytest
from shapely.geometry import Point
from sqlalchemy import Engine, text

from geoshare.services.departments import ensure_department
from layers.changes import changes_since
from layers.errors import BadParameter, InvalidInput, NotFound
from layers.model import LayerMetadata
from layers.publish import delete_layer, prune_versions, publish_file, publish_frame
from layers.registry import get_layer
from layers.versions import list_versions

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def dept(db: Engine) -> Engine:
    with db.begin() as conn:
        ensure_department(conn, "edu", "Education Bureau", "edu@city.example")
    return db


def meta(**kw: object) -> LayerMetadata:
    return LayerMetadata(title=str(kw.pop("title", "Test layer")), department="edu", **kw)  # type: ignore[arg-type]


def data_tables(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(
            conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'layerdata'")).scalars()
        )


@pytest.mark.parametrize(
    ("name", "count", "crs", "gtype"),
    [
        ("schools_gbk_4490.zip", 5, "EPSG:4490", "Point"),
        ("parks_utf8.zip", 3, "EPSG:4326", "Polygon"),
        ("bus_stops.geojson", 4, "EPSG:4326", "Point"),
        ("roads_3857.gpkg", 2, "EPSG:3857", "LineString"),
        ("hospitals_gbk.csv", 5, "EPSG:4326", "Point"),
        ("hospitals_utf8_bom.csv", 5, "EPSG:4326", "Point"),
    ],
)
def test_publish_each_format(dept: Engine, name: str, count: int, crs: str, gtype: str) -> None:
    with dept.begin() as conn:
        result = publish_file(
            conn, "layer1", FIXTURES / name, meta(keywords=["a", "b"], sharing_class="public")
        )
    assert (result.version, result.feature_count, result.added) == (1, count, count)
    with dept.connect() as conn:
        layer = get_layer(conn, "layer1")
        assert layer.source_crs == crs and layer.geometry_type == gtype and layer.feature_count == count
        assert layer.keywords == ["a", "b"] and layer.sharing_class == "public"
        west, south, east, north = layer.extent  # type: ignore[misc]
        assert 119.9 < west <= east < 120.3 and 30.1 < south <= north < 30.4  # lon/lat, even from 3857
        stored = conn.execute(
            text(f"SELECT count(*), bool_and(ST_IsValid(geom)) FROM {layer.qualified_table}")
        ).one()
        assert tuple(stored) == (count, True)
        indexes = (
            conn.execute(
                text("SELECT indexdef FROM pg_indexes WHERE schemaname = 'layerdata' AND tablename = :t"),
                {"t": layer.table_name},
            )
            .scalars()
            .all()
        )
        assert any("gist (geom)" in i for i in indexes) and any("(fkey)" in i for i in indexes)


def test_gbk_values_are_stored_as_text(dept: Engine) -> None:
    with dept.begin() as conn:
        publish_file(conn, "schools", FIXTURES / "schools_gbk_4490.zip", meta(key_field="编号"))
    with dept.connect() as conn:
        layer = get_layer(conn, "schools")
        name = layer.attribute("名称")
        assert name is not None and name.type == "string"
        row = conn.execute(
            text(f"SELECT fkey, {name.column} FROM {layer.qualified_table} WHERE fid = 1")
        ).one()
        assert tuple(row) == ("101", "西湖区实验小学")


BAD_FILES = {
    "truncated.zip": lambda: (FIXTURES / "parks_utf8.zip").read_bytes()[:500],
    "empty.geojson": lambda: b"",
    "no_prj.zip": lambda: (FIXTURES / "schools_no_prj.zip").read_bytes(),
    "bad_lat.csv": lambda: (FIXTURES / "hospitals_bad_lat_line7.csv").read_bytes(),
    "null_geom.geojson": lambda: (
        b'{"type":"FeatureCollection","features":[{"type":"Feature","properties":{},"geometry":null}]}'
    ),
    "no_features.geojson": lambda: b'{"type":"FeatureCollection","features":[]}',
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_file_leaves_no_layer_and_no_table(dept: Engine, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(BAD_FILES[name]())
    with pytest.raises(InvalidInput), dept.begin() as conn:
        publish_file(conn, "broken", path, meta())
    with dept.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM gs.layer")).scalar() == 0
    assert data_tables(dept) == []


def test_failed_republish_keeps_previous_version(dept: Engine) -> None:
    with dept.begin() as conn:
        publish_file(conn, "schools", FIXTURES / "schools_gbk_4490.zip", meta())
    before = data_tables(dept)
    with pytest.raises(InvalidInput) as err, dept.begin() as conn:
        publish_file(conn, "schools", FIXTURES / "schools_gbk_4490.zip", meta(), encoding="utf-8")
    assert err.value.field == "encoding"
    with dept.connect() as conn:
        layer = get_layer(conn, "schools")
        assert layer.current_version == 1 and layer.feature_count == 5
    assert data_tables(dept) == before
    with dept.connect() as conn:
        assert [v.version for v in list_versions(conn, "schools")] == [1]


def test_identity_and_metadata_checks(dept: Engine) -> None:
    frame = gpd.GeoDataFrame({"a": [1]}, geometry=[Point(120, 30)], crs=4326)
    with pytest.raises(BadParameter) as bad, dept.begin() as conn:
        publish_frame(conn, "Bad Id", frame, meta())
    assert bad.value.field == "id"
    with pytest.raises(InvalidInput) as err, dept.begin() as conn:
        publish_frame(conn, "ok", frame, LayerMetadata(title="t", department="nope"))
    assert err.value.field == "department"
    with pytest.raises(InvalidInput) as err, dept.begin() as conn:
        publish_frame(conn, "ok", frame.set_crs(None, allow_override=True), meta())
    assert err.value.field == "source_crs"
    with pytest.raises(InvalidInput) as err, dept.begin() as conn:  # the key is the public feature id
        publish_frame(conn, "ok", frame, meta(key_field="a", restricted_fields=["a"]))
    assert err.value.field == "restricted_fields"


def _frame(rows: dict[str, tuple[str, float]]) -> gpd.GeoDataFrame:
    keys = list(rows)
    return gpd.GeoDataFrame(
        {"code": keys, "name": [rows[k][0] for k in keys]},
        geometry=[Point(120 + rows[k][1], 30) for k in keys],
        crs=4326,
    )


V1 = {"a": ("甲", 0.01), "b": ("乙", 0.02), "c": ("丙", 0.03), "d": ("丁", 0.04)}
# add e, f; remove c; modify b (name); a and d unchanged
V2 = {"a": ("甲", 0.01), "b": ("乙改", 0.02), "d": ("丁", 0.04), "e": ("戊", 0.05), "f": ("己", 0.06)}
# remove e (added in v2 → disappears from since=1), modify a
V3 = {"a": ("甲", 0.011), "b": ("乙改", 0.02), "d": ("丁", 0.04), "f": ("己", 0.06)}


def test_versions_change_summary_and_feed_with_key(dept: Engine) -> None:
    with dept.begin() as conn:
        first = publish_frame(
            conn, "shops", _frame(V1), meta(key_field="code"), actor="alice", source_name="v1"
        )
    with dept.begin() as conn:
        second = publish_frame(conn, "shops", _frame(V2), meta(key_field="code"), actor="bob", note="spring")
    assert (first.version, first.added) == (1, 4)
    assert (second.version, second.added, second.removed, second.modified) == (2, 2, 1, 1)
    with dept.begin() as conn:
        third = publish_frame(conn, "shops", _frame(V3), meta(key_field="code"))
    assert (third.added, third.removed, third.modified) == (0, 1, 1)

    with dept.connect() as conn:
        history = list_versions(conn, "shops")
        assert [(v.version, v.created_by, v.feature_count, v.current) for v in history] == [
            (3, None, 4, True), (2, "bob", 5, False), (1, "alice", 4, False),
        ]  # fmt: skip
        layer = get_layer(conn, "shops")
        feed = changes_since(conn, layer, 1)
        assert [(c.id, c.change) for c in feed.changes] == [
            ("a", "modified"), ("b", "modified"), ("c", "removed"), ("f", "added"),
        ]  # fmt: skip
        by_id = {c.id: c for c in feed.changes}
        assert by_id["c"].feature is None
        assert by_id["b"].feature["properties"] == {"code": "b", "name": "乙改"}  # type: ignore[index]
        assert by_id["a"].feature["geometry"]["coordinates"] == [120.011, 30]  # type: ignore[index]
        assert [c.id for c in changes_since(conn, layer, 2).changes] == ["a", "e"]
        assert changes_since(conn, layer, 3).changes == []
        everything = changes_since(conn, layer, 0)
        assert [(c.id, c.change) for c in everything.changes] == [(k, "added") for k in sorted(V3)]
        page = changes_since(conn, layer, 1, limit=3)
        assert len(page.changes) == 3 and page.next_after == "c"
        rest = changes_since(conn, layer, 1, limit=3, after=page.next_after)
        assert [c.id for c in rest.changes] == ["f"] and rest.next_after is None
        for bad in (-1, 4):
            with pytest.raises(BadParameter) as err:
                changes_since(conn, layer, bad)
            assert err.value.field == "since"


def test_unkeyed_changes_by_content(dept: Engine) -> None:
    with dept.begin() as conn:
        publish_frame(conn, "trees", _frame(V1), meta())
    with dept.begin() as conn:
        result = publish_frame(conn, "trees", _frame(V2), meta())
    # content identity: b's new name counts as one removed + one added
    assert (result.added, result.removed, result.modified) == (3, 2, 0)
    with dept.connect() as conn:
        changes = changes_since(conn, get_layer(conn, "trees"), 1).changes
        assert sorted(c.change for c in changes) == ["added"] * 3 + ["removed"] * 2
        added = sorted(c.feature["properties"]["name"] for c in changes if c.feature)  # type: ignore[index]
        assert added == sorted(["乙改", "戊", "己"])


def test_prune_keeps_history_and_feed(dept: Engine) -> None:
    for rows in (V1, V2, V3):
        with dept.begin() as conn:
            publish_frame(conn, "shops", _frame(rows), meta(key_field="code"))
    with dept.begin() as conn:
        assert prune_versions(conn, "shops", keep=1) == [2, 1]
    assert len(data_tables(dept)) == 1
    with dept.connect() as conn:
        history = list_versions(conn, "shops")
        assert [(v.version, v.data_kept) for v in history] == [(3, True), (2, False), (1, False)]
        assert len(changes_since(conn, get_layer(conn, "shops"), 1).changes) == 4


def test_delete_layer(dept: Engine) -> None:
    for rows in (V1, V2):
        with dept.begin() as conn:
            publish_frame(conn, "shops", _frame(rows), meta(key_field="code"))
    with dept.begin() as conn:
        delete_layer(conn, "shops")
    assert data_tables(dept) == []
    with dept.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM gs.layer_change")).scalar() == 0
        with pytest.raises(NotFound):
            list_versions(conn, "shops")
    with pytest.raises(NotFound), dept.begin() as conn:
        delete_layer(conn, "shops")


def test_time_field_sets_time_extent(dept: Engine) -> None:
    with dept.begin() as conn:
        publish_file(
            conn, "stops", FIXTURES / "bus_stops.geojson", meta(time_field="opened", key_field="stop_id")
        )
    with dept.connect() as conn:
        layer = get_layer(conn, "stops")
        assert [t.date().isoformat() for t in layer.time_extent] == ["2010-10-01", "2015-01-15"]  # type: ignore[union-attr]


def _points(n: int, offset: float) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"n": range(n)}, geometry=gpd.points_from_xy([120 + offset] * n, [30.0] * n), crs=4326
    )


def test_readers_see_one_complete_version_during_publish(dept: Engine) -> None:
    with dept.begin() as conn:
        publish_frame(conn, "busy", _points(3_000, 0.0), meta())
    seen: set[tuple[int, float]] = set()
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        try:
            while not stop.is_set():
                with dept.connect() as conn, conn.begin():
                    conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                    table = conn.execute(
                        text("SELECT table_name FROM gs.layer WHERE id = 'busy'")
                    ).scalar_one()
                    count = conn.execute(text(f'SELECT count(*) FROM layerdata."{table}"')).scalar_one()
                    sample = conn.execute(
                        text(f'SELECT ST_X(geom) FROM layerdata."{table}" LIMIT 1')
                    ).scalar_one()
                    seen.add((count, round(sample, 3)))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(3):
            with dept.begin() as conn:
                publish_frame(conn, "busy", _points(5_000, 0.1), meta())
            with dept.begin() as conn:
                publish_frame(conn, "busy", _points(3_000, 0.0), meta())
    finally:
        stop.set()
        reader.join()
    assert not errors
    assert seen <= {(3_000, 120.0), (5_000, 120.1)} and (3_000, 120.0) in seen


def test_cli_publish_versions_and_one_line_errors(dept: Engine) -> None:
    from typer.testing import CliRunner

    from geoshare.cli.main import app
    from geoshare.db.engine import get_engine
    from geoshare.settings import get_settings

    get_settings.cache_clear()
    get_engine.cache_clear()
    runner = CliRunner()
    with get_engine().connect() as conn:
        mark = conn.execute(text("SELECT coalesce(max(id), 0) FROM gs.audit_log")).scalar_one()
    args = ["layer", "publish", str(FIXTURES / "hospitals_gbk.csv"), "--id", "hospitals", "--title", "医院"]
    ok = runner.invoke(app, [*args, "--department", "edu", "--class", "public", "--keywords", "医疗,health"])
    assert ok.exit_code == 0, ok.output
    assert "version 1: 5 features" in ok.output
    bad = runner.invoke(app, [*args, "--department", "edu", "--encoding", "utf-8"])
    assert bad.exit_code == 2 and "error:" in bad.output and "Traceback" not in bad.output
    history = runner.invoke(app, ["layer", "versions", "hospitals"])
    assert history.exit_code == 0 and "v1" in history.output
    with get_engine().connect() as conn:  # the version history names who published (issue 15.14)
        by = (
            conn.execute(text("SELECT created_by FROM gs.layer_version WHERE layer_id = 'hospitals'"))
            .scalars()
            .all()
        )
    assert by == [f"cli:{getpass.getuser()}"]
    assert runner.invoke(app, ["layer", "delete", "hospitals"]).exit_code == 0
    assert runner.invoke(app, ["layer", "delete", "hospitals"]).exit_code == 2
    with get_engine().connect() as conn:
        changes = conn.execute(
            text("SELECT action, actor FROM gs.audit_log WHERE target = 'layer:hospitals' AND id > :m"),
            {"m": mark},
        ).all()
    actor = f"cli:{getpass.getuser()}"
    assert sorted(tuple(c) for c in changes) == [("layer.delete", actor), ("layer.publish", actor)]
    get_engine().dispose()


def test_postgresql_limits_refused_before_a_failed_republish_could_touch_anything(dept: Engine) -> None:
    """Past a PostgreSQL limit is the publisher's 422 (it was an error mid-load, taken as an outage)."""
    with dept.begin() as conn:
        publish_file(conn, "schools", FIXTURES / "schools_gbk_4490.zip", meta())
    before = data_tables(dept)
    wide = gpd.GeoDataFrame({f"c{i}": [1] for i in range(1_597)}, geometry=[Point(120, 30)], crs=4326)
    long_key = gpd.GeoDataFrame({"k": ["碑" * 900]}, geometry=[Point(120, 30)], crs=4326)  # 2,700 bytes
    for frame, metadata, field, line in (
        (wide, meta(), "file", None),
        (long_key, meta(key_field="k"), "key_field", 1),
    ):
        with pytest.raises(InvalidInput) as err, dept.begin() as conn:
            publish_frame(conn, "schools", frame, metadata)
        assert (err.value.field, err.value.line) == (field, line), err.value.detail
    assert data_tables(dept) == before
    with dept.connect() as conn:
        assert get_layer(conn, "schools").current_version == 1


def test_long_chinese_text_in_a_large_layer_is_stored_unindexed(dept: Engine) -> None:
    """1,000 Chinese characters are 3,000 bytes: counted as characters, the column got a btree index
    whose entry did not fit (a failed publish, answered 503)."""
    n = 10_000
    notes = ["短"] * n
    notes[7] = "".join(chr(0x4E00 + (i * 7919) % 20_000) for i in range(1_000))  # no repeats to compress
    frame = gpd.GeoDataFrame(
        {"note": notes}, geometry=[Point(120 + i * 1e-5, 30) for i in range(n)], crs=4326
    )
    with dept.begin() as conn:
        assert publish_frame(conn, "notes", frame, meta()).feature_count == n
        layer = get_layer(conn, "notes")
        stored = conn.execute(text(f"SELECT a1 FROM {layer.qualified_table} WHERE fid = 8")).scalar_one()
    assert stored == notes[7]


def test_crs_and_integer_warnings_are_in_the_version_report(dept: Engine, tmp_path: Path) -> None:
    path = tmp_path / "shops.csv"
    path.write_text(f"x,y,licence\n116.40,39.90,{2**70}\n116.41,39.91,7\n", encoding="utf-8")
    with dept.begin() as conn:
        result = publish_file(conn, "shops", path, meta(), source_crs="EPSG:3857")
    assert [w["code"] for w in result.warnings] == ["integers_kept_as_text", "degrees_in_projected_crs"]
    with dept.connect() as conn:
        report = list_versions(conn, "shops")[0].report
        layer = get_layer(conn, "shops")
        licence = conn.execute(text(f"SELECT a3 FROM {layer.qualified_table} WHERE fid = 1")).scalar_one()
    assert [w["code"] for w in report["warnings"]] == ["integers_kept_as_text", "degrees_in_projected_crs"]
    assert licence == str(2**70)


def test_single_and_multi_parts_are_served_as_the_type_declared(dept: Engine) -> None:
    """``districts`` declared MultiPolygon but served 15 of 16 as Polygon (issue 15.17)."""
    from shapely.geometry import MultiPolygon, box

    frame = gpd.GeoDataFrame(
        {"名称": ["甲", "乙"]},
        geometry=[box(116.0, 39.0, 116.1, 39.1), MultiPolygon([box(116.2, 39.0, 116.3, 39.1)])],
        crs="EPSG:4326",
    )
    with dept.begin() as conn:
        publish_frame(conn, "mixed", frame, meta())
        layer = get_layer(conn, "mixed")
        served = conn.execute(
            text(f'SELECT DISTINCT GeometryType(geom) FROM layerdata."{layer.table_name}"')
        ).scalars().all()
    assert layer.geometry_type == "MultiPolygon" and served == ["MULTIPOLYGON"]
