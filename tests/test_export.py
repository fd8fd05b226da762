"""Layer exports (``GET /layers/{id}/export``) read back with the tools a user would use.

A shared layer of SCJ with a restricted field (身份证号) is exported in each format by another
department (which must not see that field) and by the owner; every file is opened again with
pyogrio/GDAL, zipfile or csv and compared with the features that went in. Also: bbox and area
limits, CRSs, the Shapefile's 10-byte field names, chunked writing, and the 4xx answers.
"""

from __future__ import annotations

import csv
import io
import json
import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio
import pytest
import shapely
from conftest import _wipe
from fastapi.testclient import TestClient
from layer_factory import make_layer
from pyproj import Transformer
from shapely.geometry import Point, Polygon, box
from sqlalchemy import Engine, text

from geoshare.access.store import create_key
from geoshare.settings import Settings
from layers import export
from layers.crs import wgs84_to_gcj02
from layers.registry import get_layer

OWNER, OTHER, HOLDER = "SCJ", "JT", "AREA"  # HOLDER: an agreement on rfirms, 编号+名称 inside WEST
LAYER = "firms"
SECRET = "身份证号"
ATTRS = [
    ("编号", "string"),
    ("名称", "string"),
    (SECRET, "string"),
    ("人数", "integer"),
    ("资本", "number"),
    ("开业", "date"),
    ("有效", "boolean"),
    ("更新", "datetime"),
    ("企业名称全称", "string"),
    ("企业名称简称", "string"),
]
VISIBLE = [name for name, _ in ATTRS if name != SECRET]
WEST = box(116.29, 39.89, 116.33, 39.91)  # holds features 0-2; 3 and 4 lie far east
POINTS = [(116.30, 39.90), (116.31, 39.90), (116.32, 39.905), (116.50, 39.95), (116.51, 39.96)]


def _feature(n: int) -> tuple[Point, dict[str, Any]]:
    empty = n == 1  # one feature with every optional value missing
    return Point(POINTS[n]), {
        "编号": f"F{n}",
        "名称": f"北京第{n}号企业（朝阳）",
        SECRET: f"11010519900101{n:03d}X",
        "人数": None if empty else n * 10,
        "资本": None if empty else n * 1.25,
        "开业": None if empty else date(2020, 1, n + 1),
        "有效": None if empty else n % 2 == 0,
        "更新": None if empty else datetime(2024, 5, n + 1, 8, 30, tzinfo=UTC),
        "企业名称全称": f"全称{n}",
        "企业名称简称": f"简称{n}",
    }


FEATURES = [_feature(n) for n in range(len(POINTS))]
SECRETS = [props[SECRET] for _, props in FEATURES]


@pytest.fixture(scope="module")
def keys(engine: Engine) -> dict[str, str]:
    _wipe(engine)
    make_layer(engine, LAYER, FEATURES, ATTRS, key_field="编号", sharing_class="shared", department=OWNER)
    make_layer(engine, "secret", FEATURES[:1], ATTRS[:2], sharing_class="restricted", department=OWNER)
    mixed = [(Point(116.3, 39.9), {"名称": "点"}), (Polygon([(116, 39), (116.1, 39), (116.1, 39.1)]), {})]
    make_layer(engine, "mixed", mixed, [("名称", "string")], department=OWNER)
    make_layer(
        engine, "rfirms", FEATURES, ATTRS, key_field="编号", sharing_class="restricted", department=OWNER
    )
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE gs.layer SET restricted_fields = ARRAY[:f] WHERE id = :id"),
            {"f": SECRET, "id": LAYER},
        )
        conn.execute(text("UPDATE gs.layer SET geometry_type = 'Geometry' WHERE id = 'mixed'"))
        for code in (OTHER, HOLDER):
            conn.execute(text("INSERT INTO gs.department (code, name) VALUES (:c, :c)"), {"c": code})
        conn.execute(
            text(
                "INSERT INTO gs.agreement (consumer_code, provider_code, purpose, starts_on, ends_on, status,"
                " area_code, area) VALUES (:c, :p, '测试', current_date - 1, current_date + 30, 'approved',"
                " '999901', ST_Multi(ST_GeomFromText(:wkt, 4326)))"
            ),
            {"c": HOLDER, "p": OWNER, "wkt": WEST.wkt},
        )
        conn.execute(
            text(
                "INSERT INTO gs.agreement_layer SELECT currval(pg_get_serial_sequence('gs.agreement', 'id')),"
                " 'rfirms', ARRAY['编号', '名称']"
            )
        )
        return {
            "owner": create_key(conn, OWNER).key,
            "other": create_key(conn, OTHER).key,
            "holder": create_key(conn, HOLDER).key,
        }


@pytest.fixture(scope="module")
def client(keys: dict[str, str], settings: Settings) -> Iterator[TestClient]:
    from geoshare.api.app import create_app

    with TestClient(create_app(settings)) as c:
        yield c


def _get(client: TestClient, keys: dict[str, str], who: str | None, layer: str = LAYER, **params: Any) -> Any:
    headers = {"X-API-Key": keys[who]} if who else {}
    return client.get(f"/layers/{layer}/export", params=params, headers=headers)


def _ok(response: Any, name: str) -> bytes:
    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"] == f'attachment; filename="{name}"'
    return response.content


def _save(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def _no_secret(content: bytes) -> None:
    assert SECRET.encode() not in content
    assert json.dumps(SECRET).strip('"').encode() not in content
    for value in SECRETS:
        assert value.encode() not in content


def _expected(n: int, name: str) -> Any:
    return FEATURES[n][1][name]


# --- GeoJSON -------------------------------------------------------------------------------


def test_geojson_is_the_layer_without_hidden_fields(
    client: TestClient, keys: dict[str, str], tmp_path: Path
) -> None:
    r = _get(client, keys, "other", format="geojson")
    body = _ok(r, f"{LAYER}-v1.geojson")
    assert r.headers["content-type"].startswith("application/geo+json")
    _no_secret(body)
    doc = json.loads(body)
    assert doc["type"] == "FeatureCollection" and "crs" not in doc
    assert [f["id"] for f in doc["features"]] == [p["编号"] for _, p in FEATURES]
    for n, feature in enumerate(doc["features"]):
        assert list(feature["properties"]) == VISIBLE
        assert feature["properties"]["名称"] == _expected(n, "名称")
        assert feature["properties"]["人数"] == _expected(n, "人数")
        assert feature["geometry"] == {"type": "Point", "coordinates": list(POINTS[n])}

    frame = pyogrio.read_dataframe(_save(tmp_path, "firms.geojson", body))
    assert len(frame) == len(FEATURES) and SECRET not in frame.columns
    assert frame["名称"].tolist() == [p["名称"] for _, p in FEATURES]


def test_geojson_in_epsg4326_keeps_longitude_first(client: TestClient, keys: dict[str, str]) -> None:
    doc = json.loads(
        _ok(_get(client, keys, "other", format="geojson", crs="EPSG:4326"), f"{LAYER}-v1.geojson")
    )
    assert doc["crs"]["properties"]["name"] == "urn:ogc:def:crs:EPSG::4326"
    assert doc["features"][0]["geometry"]["coordinates"] == list(POINTS[0])


# --- CSV -----------------------------------------------------------------------------------


def test_csv_opens_in_excel_and_gdal(client: TestClient, keys: dict[str, str], tmp_path: Path) -> None:
    r = _get(client, keys, "other", format="csv")
    body = _ok(r, f"{LAYER}-v1.csv")
    assert r.headers["content-type"].startswith("text/csv")
    assert body.startswith(b"\xef\xbb\xbf")
    _no_secret(body)
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    assert list(rows[0]) == [*VISIBLE, "lon", "lat", "wkt"]
    assert len(rows) == len(FEATURES)
    for n, row in enumerate(rows):
        assert row["名称"] == _expected(n, "名称")
        assert (float(row["lon"]), float(row["lat"])) == POINTS[n]
        assert shapely.from_wkt(row["wkt"]).equals(Point(POINTS[n]))
        if n == 1:
            assert row["人数"] == row["开业"] == row["有效"] == row["更新"] == ""
        else:
            assert int(row["人数"]) == _expected(n, "人数")
            assert float(row["资本"]) == _expected(n, "资本")
            assert date.fromisoformat(row["开业"]) == _expected(n, "开业")
            assert row["有效"] == ("true" if _expected(n, "有效") else "false")
            assert datetime.fromisoformat(row["更新"]) == _expected(n, "更新")

    frame = pyogrio.read_dataframe(_save(tmp_path, "firms.csv", body))  # GDAL takes the wkt column
    assert len(frame) == len(FEATURES)
    assert frame.geometry.iloc[3].equals(Point(POINTS[3]))


def test_csv_in_web_mercator_has_x_and_y(client: TestClient, keys: dict[str, str]) -> None:
    body = _ok(_get(client, keys, "other", format="csv", crs="EPSG:3857"), f"{LAYER}-v1.csv")
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    x, y = Transformer.from_crs(4326, 3857, always_xy=True).transform(*POINTS[0])
    assert float(rows[0]["x"]) == pytest.approx(x, abs=0.01)
    assert float(rows[0]["y"]) == pytest.approx(y, abs=0.01)


# --- GeoPackage ----------------------------------------------------------------------------


def test_gpkg_has_typed_fields_and_no_hidden_field(
    client: TestClient, keys: dict[str, str], tmp_path: Path
) -> None:
    body = _ok(_get(client, keys, "other", format="gpkg"), f"{LAYER}-v1.gpkg")
    _no_secret(body)
    path = _save(tmp_path, "firms.gpkg", body)
    info = pyogrio.read_info(path)
    assert info["layer_name"] == LAYER and info["crs"] == "EPSG:4326" and info["geometry_type"] == "Point"
    assert info["features"] == len(FEATURES)
    types = dict(zip(info["fields"], zip(info["ogr_types"], info["ogr_subtypes"], strict=True), strict=True))
    assert list(types) == VISIBLE
    assert types["人数"][0] == "OFTInteger64" and types["资本"][0] == "OFTReal"
    assert types["开业"][0] == "OFTDate" and types["更新"][0] == "OFTDateTime"
    assert types["有效"] == ("OFTInteger", "OFSTBoolean") and types["名称"][0] == "OFTString"

    frame = pyogrio.read_dataframe(path)
    for n in range(len(FEATURES)):
        assert frame["名称"][n] == _expected(n, "名称")
        assert frame.geometry[n].equals(Point(POINTS[n]))
    assert frame["人数"].isna().tolist() == [n == 1 for n in range(len(FEATURES))]
    assert frame["人数"][4] == _expected(4, "人数")
    assert frame["开业"][2].date() == _expected(2, "开业")
    assert frame["更新"][3] == _expected(3, "更新")


def test_owner_gets_the_restricted_field(client: TestClient, keys: dict[str, str], tmp_path: Path) -> None:
    body = _ok(_get(client, keys, "owner", format="gpkg"), f"{LAYER}-v1.gpkg")
    frame = pyogrio.read_dataframe(_save(tmp_path, "own.gpkg", body))
    assert frame[SECRET].tolist() == SECRETS


@pytest.mark.parametrize(
    ("crs", "label", "convert"),
    [
        (
            "EPSG:3857",
            "EPSG:3857",
            lambda xy: np.column_stack(
                Transformer.from_crs(4326, 3857, always_xy=True).transform(xy[:, 0], xy[:, 1])
            ),
        ),
        ("EPSG:4490", "EPSG:4490", lambda xy: xy),
        ("GCJ-02", None, wgs84_to_gcj02),
    ],
)
def test_gpkg_in_another_crs(
    client: TestClient, keys: dict[str, str], tmp_path: Path, crs: str, label: str | None, convert: Any
) -> None:
    body = _ok(_get(client, keys, "other", format="gpkg", crs=crs), f"{LAYER}-v1.gpkg")
    path = _save(tmp_path, "crs.gpkg", body)
    info = pyogrio.read_info(path)
    if label is not None:
        assert info["crs"] == label
    else:
        assert "GCJ-02" in pyogrio.read_dataframe(path).crs.to_wkt()
    xy = shapely.get_coordinates(pyogrio.read_dataframe(path).geometry.values)
    np.testing.assert_allclose(xy, convert(np.array(POINTS)), atol=1e-6)


def test_gpkg_holds_a_mixed_layer(client: TestClient, keys: dict[str, str], tmp_path: Path) -> None:
    body = _ok(_get(client, keys, "other", layer="mixed", format="gpkg"), "mixed-v1.gpkg")
    frame = pyogrio.read_dataframe(_save(tmp_path, "mixed.gpkg", body))
    assert sorted(frame.geometry.geom_type) == ["Point", "Polygon"]


# --- Shapefile -----------------------------------------------------------------------------


def test_shapefile_zip_with_short_field_names(
    client: TestClient, keys: dict[str, str], tmp_path: Path
) -> None:
    r = _get(client, keys, "other", format="shp")
    body = _ok(r, f"{LAYER}-v1.zip")
    assert r.headers["content-type"] == "application/zip"
    path = _save(tmp_path, "firms.zip", body)
    with zipfile.ZipFile(path) as archive:
        names = sorted(archive.namelist())
        assert names == sorted(
            [*(f"{LAYER}-v1{s}" for s in (".shp", ".shx", ".dbf", ".prj", ".cpg")), "fields.csv"]
        )
        assert archive.read(f"{LAYER}-v1.cpg").decode().strip().upper() in ("UTF-8", "UTF8")
        for member in names:
            _no_secret(archive.read(member))
        mapping = list(csv.DictReader(io.StringIO(archive.read("fields.csv").decode("utf-8-sig"))))
    short = {m["shapefile_field"]: m["property"] for m in mapping}
    assert list(short.values()) == VISIBLE
    assert all(len(s.encode()) <= 10 for s in short)
    assert len({s.lower() for s in short}) == len(short)

    frame = pyogrio.read_dataframe(f"/vsizip/{path}/{LAYER}-v1.shp")
    assert list(frame.columns[:-1]) == list(short)
    assert len(frame) == len(FEATURES) and frame.crs.to_epsg() == 4326
    for s, name in short.items():
        for n in (0, 3):
            value, expected = frame[s][n], _expected(n, name)
            if isinstance(expected, datetime):
                assert datetime.fromisoformat(value) == expected
            elif isinstance(expected, date):
                assert value.date() == expected
            else:
                assert value == expected, name
    assert frame.geometry[4].equals(Point(POINTS[4]))


def test_shapefile_of_a_mixed_layer_is_refused(client: TestClient, keys: dict[str, str]) -> None:
    r = _get(client, keys, "other", layer="mixed", format="shp")
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["field"] == "format" and "gpkg" in r.json()["detail"]


def test_shapefile_names_stay_unique_and_short() -> None:
    names = ["统一社会信用代码", "统一社会信用编号", "Name", "NAME", "名称", "a_very_long_field"]
    short = export.unique_names(names, 10)
    assert all(len(s.encode()) <= 10 for s in short)
    assert len({s.lower() for s in short}) == len(names)
    assert short == ["统一社", "统一_1", "Name", "NAME_1", "名称", "a_very_lon"]  # cut on characters


# --- every format --------------------------------------------------------------------------


def _read_back(fmt: str, content: bytes, tmp_path: Path) -> list[Point]:
    """The geometries of an exported file, in order."""
    if fmt == "geojson":
        return [shapely.geometry.shape(f["geometry"]) for f in json.loads(content)["features"]]
    if fmt == "csv":
        return [shapely.from_wkt(r["wkt"]) for r in csv.DictReader(io.StringIO(content.decode("utf-8-sig")))]
    path = _save(tmp_path, f"back.{'zip' if fmt == 'shp' else fmt}", content)
    source = f"/vsizip/{path}/{LAYER}-v1.shp" if fmt == "shp" else path
    return list(pyogrio.read_dataframe(source).geometry)


FORMATS = ["geojson", "csv", "gpkg", "shp"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_bbox_limits_the_rows(client: TestClient, keys: dict[str, str], tmp_path: Path, fmt: str) -> None:
    r = _get(client, keys, "other", format=fmt, bbox=",".join(map(str, WEST.bounds)))
    inside = [Point(p) for p in POINTS if WEST.contains(Point(p))]
    assert 0 < len(inside) < len(POINTS)
    assert _read_back(fmt, _ok(r, f"{LAYER}-v1.{'zip' if fmt == 'shp' else fmt}"), tmp_path) == inside


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_empty_result_is_still_a_valid_file(
    client: TestClient, keys: dict[str, str], tmp_path: Path, fmt: str
) -> None:
    r = _get(client, keys, "other", format=fmt, bbox="100,20,100.1,20.1", properties="名称,人数")
    assert _read_back(fmt, _ok(r, f"{LAYER}-v1.{'zip' if fmt == 'shp' else fmt}"), tmp_path) == []
    if fmt == "gpkg":
        assert list(pyogrio.read_info(tmp_path / "back.gpkg")["fields"]) == ["名称", "人数"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_small_chunks_write_every_row(
    client: TestClient, keys: dict[str, str], tmp_path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "CHUNK_ROWS", 2)
    monkeypatch.setattr(export, "STREAM_ROWS", 2)
    r = _get(client, keys, "other", format=fmt, properties="名称")
    geometries = _read_back(fmt, _ok(r, f"{LAYER}-v1.{'zip' if fmt == 'shp' else fmt}"), tmp_path)
    assert geometries == [Point(p) for p in POINTS]


@pytest.mark.parametrize("fmt", FORMATS)
def test_area_limit_of_an_agreement(engine: Engine, keys: dict[str, str], tmp_path: Path, fmt: str) -> None:
    """``area_wkb`` (what a sharing agreement's division gives) leaves out every row outside it."""
    with engine.connect() as conn:
        layer = get_layer(conn, LAYER)
        request = export.ExportRequest(format=export.parse_format(fmt))
        plan = export.plan_export(layer, request, frozenset({SECRET}), WEST.wkb)
        path = tmp_path / plan.file_name
        export.write_export(conn, plan, path)
    geometries = _read_back(fmt, path.read_bytes(), tmp_path)
    assert geometries == [Point(p) for p in POINTS if WEST.contains(Point(p))]


@pytest.mark.parametrize("fmt", ["geojson", "gpkg"])
def test_agreement_holder_gets_its_fields_inside_its_area(
    client: TestClient, keys: dict[str, str], tmp_path: Path, fmt: str
) -> None:
    body = _ok(_get(client, keys, "holder", layer="rfirms", format=fmt), f"rfirms-v1.{fmt}")
    _no_secret(body)
    frame = pyogrio.read_dataframe(_save(tmp_path, f"held.{fmt}", body))
    assert [c for c in frame.columns if c not in ("geometry", "id")] == ["编号", "名称"]
    assert list(frame.geometry) == [Point(p) for p in POINTS if WEST.contains(Point(p))]
    assert _get(client, keys, "other", layer="rfirms", format=fmt).status_code == 404


# --- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(("who", "layer"), [(None, LAYER), ("other", "secret"), ("owner", "no-such-layer")])
def test_unreadable_layer_is_not_found(
    client: TestClient, keys: dict[str, str], who: str | None, layer: str
) -> None:
    r = _get(client, keys, who, layer=layer, format="gpkg")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["field"] == "layer_id" and "content-disposition" not in r.headers
    assert r.json()["detail"] == f"layer {layer!r} does not exist"  # as for an unknown id


def test_owner_reads_the_restricted_layer(client: TestClient, keys: dict[str, str]) -> None:
    doc = json.loads(_ok(_get(client, keys, "owner", layer="secret", format="geojson"), "secret-v1.geojson"))
    assert len(doc["features"]) == 1


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "format"),
        ({"format": "kml"}, "format"),
        ({"format": "gpkg", "bbox": "1,2,3"}, "bbox"),
        ({"format": "csv", "bbox": "a,b,c,d"}, "bbox"),
        ({"format": "csv", "bbox": "3,2,1,4"}, "bbox"),
        ({"format": "gpkg", "properties": "不存在"}, "properties"),
        ({"format": "shp", "properties": f"名称,{SECRET}"}, "properties"),  # hidden is unknown
        ({"format": "geojson", "crs": "EPSG:9999"}, "crs"),
        ({"format": "gpkg", "version": "2"}, "version"),
        ({"format": "gpkg", "version": "x"}, "version"),
        ({"format": "gpkg", "limit": "5"}, "limit"),
    ],
)
def test_bad_parameters_are_400(
    client: TestClient, keys: dict[str, str], params: dict[str, str], field: str
) -> None:
    r = _get(client, keys, "other", **params)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["field"] == field
    assert not any(value.encode() in r.content for value in SECRETS)  # the name is the caller's own


def test_current_version_may_be_named(client: TestClient, keys: dict[str, str]) -> None:
    body = _ok(_get(client, keys, "other", format="geojson", version="1"), f"{LAYER}-v1.geojson")
    assert len(json.loads(body)["features"]) == len(FEATURES)


def test_streams_give_their_connection_back(client: TestClient, keys: dict[str, str]) -> None:
    pool = client.app.state.engine.pool
    for fmt in ("geojson", "csv", "gpkg"):
        _ok(_get(client, keys, "other", format=fmt), f"{LAYER}-v1.{fmt}")
        # the audit writer borrows a connection for a moment once a second: wait it out
        deadline = time.monotonic() + 3
        while pool.checkedout() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert pool.checkedout() == 0


def test_cli_export(keys: dict[str, str], tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from geoshare.cli.export import export_cmd
    from geoshare.db.engine import get_engine
    from geoshare.settings import get_settings

    get_settings.cache_clear()  # the test database's URL is in the environment now
    get_engine.cache_clear()
    cli = typer.Typer()
    cli.command("export")(export_cmd)
    cli.command("other")(lambda: None)  # a group, so "export" is a subcommand as under "geoshare layer"
    out = tmp_path / "企业.gpkg"
    r = CliRunner().invoke(
        cli, ["export", LAYER, "-f", "gpkg", "-o", str(out), "--bbox", ",".join(map(str, WEST.bounds))]
    )
    assert r.exit_code == 0, r.output
    frame = pyogrio.read_dataframe(out)
    assert frame[SECRET].tolist() == [
        s for (p, _), s in zip(FEATURES, SECRETS, strict=True) if WEST.contains(p)
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["企业.gpkg"]
    bad = CliRunner().invoke(cli, ["export", LAYER, "-f", "kml", "-o", str(tmp_path / "x.kml")])
    assert bad.exit_code == 2 and "format" in bad.output
    assert not (tmp_path / "x.kml").exists()
