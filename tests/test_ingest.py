"""Reading sources: formats, encodings, CRSs, and clear errors for bad files (no database needed)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
from pyproj import CRS
from shapely.geometry import Point, Polygon

from layers.errors import InvalidInput
from layers.ingest import read_source
from layers.model import LayerMetadata
from layers.validate import prepare

FIXTURES = Path(__file__).parent / "fixtures"


def test_gbk_shapefile_without_cpg_is_detected_and_cgcs2000_resolves() -> None:
    dbf = zipfile.ZipFile(FIXTURES / "schools_gbk_4490.zip").read("schools.dbf")
    assert "西湖区实验小学".encode("gbk") in dbf  # the fixture really is GBK
    source = read_source(FIXTURES / "schools_gbk_4490.zip")
    assert source.report["encoding"] == "gbk" and source.report["encoding_from"] == "detected"
    assert source.source_crs == "EPSG:4490"
    assert list(source.frame.columns[:4]) == ["编号", "名称", "学生数", "评分"]
    assert source.frame["名称"].tolist()[0] == "西湖区实验小学"


def test_utf8_shapefile_uses_its_cpg() -> None:
    source = read_source(FIXTURES / "parks_utf8.zip")
    assert source.report["encoding_from"] == "cpg"
    assert "太子湾公园" in source.frame["名称"].tolist()


def test_forced_wrong_encoding_names_the_record() -> None:
    with pytest.raises(InvalidInput) as err:
        read_source(FIXTURES / "schools_gbk_4490.zip", encoding="utf-8")
    assert err.value.field == "encoding"


def test_forced_encoding_is_used() -> None:
    source = read_source(FIXTURES / "schools_gbk_4490.zip", encoding="GB18030")
    assert source.frame["名称"].tolist()[1] == "拱墅区文澜中学"


def test_missing_prj_is_an_error_unless_source_crs_given() -> None:
    with pytest.raises(InvalidInput) as err:
        read_source(FIXTURES / "schools_no_prj.zip")
    assert err.value.field == "source_crs" and ".prj" in err.value.detail
    assert read_source(FIXTURES / "schools_no_prj.zip", source_crs="EPSG:4490").source_crs == "EPSG:4490"


def test_geopackage_in_web_mercator() -> None:
    source = read_source(FIXTURES / "roads_3857.gpkg")
    assert source.source_crs == "EPSG:3857" and len(source.frame) == 2


def test_geojson_dates_stay_dates() -> None:
    frame = read_source(FIXTURES / "bus_stops.geojson").frame
    meta = LayerMetadata(title="t", department="d")
    layer = prepare(frame, meta, CRS.from_epsg(4326))
    assert {a.name: a.type for a in layer.attributes} == {
        "stop_id": "string", "name": "string", "routes": "integer", "opened": "date",
    }  # fmt: skip


@pytest.mark.parametrize("name", ["hospitals_utf8_bom.csv", "hospitals_gbk.csv"])
def test_csv_with_chinese_lon_lat_columns(name: str) -> None:
    source = read_source(FIXTURES / name)
    assert source.source_crs == "EPSG:4326"
    assert source.frame["医院名称"].iloc[1] == "浙江省人民医院"
    assert source.frame.geometry.iloc[0].equals(Point(120.176, 30.257))
    assert str(source.frame["床位数"].dtype) == "Int64"


def test_csv_bad_latitude_names_line_7() -> None:
    with pytest.raises(InvalidInput) as err:
        read_source(FIXTURES / "hospitals_bad_lat_line7.csv")
    assert err.value.line == 7 and "line 7" in err.value.detail


def test_csv_explicit_columns_and_codes_with_leading_zeros(tmp_path: Path) -> None:
    path = tmp_path / "wells.csv"
    path.write_text("code,east,north\n0571,120.1,30.2\n0572,120.2,30.3\n", encoding="utf-8")
    with pytest.raises(InvalidInput) as err:
        read_source(path)
    assert err.value.field == "lon_column"
    frame = read_source(path, lon_column="east", lat_column="north").frame
    assert frame["code"].tolist() == ["0571", "0572"]


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.geojson"
    path.write_bytes(b"")
    with pytest.raises(InvalidInput, match="empty"):
        read_source(path)


def test_truncated_zip(tmp_path: Path) -> None:
    data = (FIXTURES / "parks_utf8.zip").read_bytes()
    path = tmp_path / "parks.zip"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidInput, match="zip"):
        read_source(path)


def test_zip_path_traversal_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("../../etc/evil.shp", b"x")
    with pytest.raises(InvalidInput, match="unsafe"):
        read_source(path)


def test_garbage_geojson(tmp_path: Path) -> None:
    path = tmp_path / "broken.geojson"
    path.write_text('{"type": "FeatureCollection", "features": [', encoding="utf-8")
    with pytest.raises(InvalidInput) as err:
        read_source(path)
    assert err.value.field == "file"


def _prepare(geoms: list, crs: int = 4326, **meta: object):  # type: ignore[no-untyped-def]
    frame = gpd.GeoDataFrame({"k": list(range(1, len(geoms) + 1))}, geometry=geoms, crs=crs)
    return prepare(frame, LayerMetadata(title="t", department="d", **meta), CRS.from_epsg(crs))  # type: ignore[arg-type]


def test_bowtie_is_repaired_and_counted() -> None:
    frame = read_source(FIXTURES / "bowtie.geojson").frame
    layer = prepare(frame, LayerMetadata(title="t", department="d"), CRS.from_epsg(4326))
    assert layer.repaired == [2]
    assert shapely.is_valid(layer.geometries).all()
    assert layer.geometry_type == "MultiPolygon"


def test_unrepairable_polygon_names_feature_and_reason() -> None:
    square = Polygon([(120, 30), (120.1, 30), (120.1, 30.1), (120, 30.1)])
    flat = shapely.from_wkt("POLYGON ((120 30, 121 31, 122 32, 120 30))")
    with pytest.raises(InvalidInput) as err:
        _prepare([square, square, flat])
    assert err.value.line == 3 and "cannot be repaired" in err.value.detail


def test_null_geometry_and_out_of_range() -> None:
    with pytest.raises(InvalidInput) as err:
        _prepare([Point(120, 30), None])
    assert err.value.line == 2
    with pytest.raises(InvalidInput) as err:
        _prepare([Point(120, 30), Point(13_376_483, 3_535_725)])
    assert err.value.line == 2 and "out of range" in err.value.detail


def test_key_field_must_be_unique_and_present() -> None:
    frame = gpd.GeoDataFrame({"code": ["a", "b", "a"]}, geometry=[Point(1, 1)] * 3, crs=4326)
    with pytest.raises(InvalidInput) as err:
        prepare(frame, LayerMetadata(title="t", department="d", key_field="code"), CRS.from_epsg(4326))
    assert err.value.field == "key_field" and err.value.line == 3
    with pytest.raises(InvalidInput) as err:
        prepare(frame, LayerMetadata(title="t", department="d", key_field="nope"), CRS.from_epsg(4326))
    assert err.value.field == "key_field"


# ---------------------------------------------------------------- what a publisher must be told


def _geojson(
    path: Path, properties: dict, crs: str | None = None, coordinates: tuple = (116.4, 39.9)
) -> Path:
    collection: dict = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": properties,
                "geometry": {"type": "Point", "coordinates": coordinates},
            }
        ],
    }
    if crs is not None:
        collection["crs"] = {"type": "name", "properties": {"name": crs}}
    path.write_text(json.dumps(collection), encoding="utf-8")
    return path


@pytest.mark.parametrize("name", ["EPSG:999999", "urn:ogc:def:crs:EPSG::999999"])
def test_unknown_crs_in_geojson_is_refused_not_taken_as_wgs84(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidInput) as err:
        read_source(_geojson(tmp_path / "a.geojson", {"n": 1}, crs=name))
    assert err.value.field == "crs" and "999999" in err.value.detail
    assert read_source(_geojson(tmp_path / "b.geojson", {"n": 1}, crs="EPSG:4490")).source_crs == "EPSG:4490"


def test_unreadable_prj_is_named(tmp_path: Path) -> None:
    src = zipfile.ZipFile(FIXTURES / "schools_no_prj.zip")
    path = tmp_path / "schools.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for name in src.namelist():
            zf.writestr(name, src.read(name))
        zf.writestr("schools.prj", 'PROJCS["nonsense", GEOGCS[')
    with pytest.raises(InvalidInput) as err:
        read_source(path, label="学校.zip")
    assert err.value.field == "source_crs" and "the .prj file of 学校.zip" in err.value.detail


def test_degrees_declared_as_metres_and_data_outside_the_crs_area_are_warned() -> None:
    """Implausible, not impossible: a warning in the report; impossible coordinates stay refused."""
    meta = LayerMetadata(title="t", department="d")
    degrees = gpd.GeoDataFrame({"k": [1, 2]}, geometry=[Point(116.3, 39.8), Point(116.5, 40.0)], crs=3857)
    layer = prepare(degrees, meta, CRS.from_epsg(3857))
    assert [w["code"] for w in layer.warnings] == ["degrees_in_projected_crs"]
    assert (
        "EPSG:3857" in layer.warnings[0]["detail"] and "source_crs=EPSG:4326" in layer.warnings[0]["detail"]
    )
    europe = gpd.GeoDataFrame({"k": [1]}, geometry=[Point(10.0, 50.0)], crs=4490)  # CGCS2000 is China's
    warning = prepare(europe, meta, CRS.from_epsg(4490)).warnings[0]
    assert warning["code"] == "outside_area_of_use" and "entirely" in warning["detail"]
    beijing = gpd.GeoDataFrame({"k": [1]}, geometry=[Point(116.4, 39.9)], crs=4490)
    assert prepare(beijing, meta, CRS.from_epsg(4490)).warnings == []
    metres = gpd.GeoDataFrame({"k": [1]}, geometry=[Point(12_958_000, 4_852_000)], crs=3857)
    assert prepare(metres, meta, CRS.from_epsg(3857)).warnings == []


@pytest.mark.parametrize(
    ("body", "line"),
    [
        ("name,lon,lat\na,116,40\n\nb,116,40\nc,116\nd,116,40\n", 5),  # a short row after a blank line
        ('name,lon,lat\n"two\nlines",116,40\nb,116,40,9\n', 4),  # a long row after a multi-line cell
        ("name,lon,lat\r\na,116,40\r\n\r\nb,116,40,9\r\n", 4),
    ],
)
def test_ragged_csv_row_names_its_real_line(tmp_path: Path, body: str, line: int) -> None:
    path = tmp_path / "points.csv"
    path.write_bytes(body.encode())
    with pytest.raises(InvalidInput) as err:
        read_source(path)
    assert err.value.line == line and f"line {line} " in err.value.detail, err.value.detail


def test_bad_coordinate_counts_blank_and_multiline_lines(tmp_path: Path) -> None:
    path = tmp_path / "points.csv"
    path.write_text('name,lon,lat\n"a\nb",116,40\n\nc,116,north\n', encoding="utf-8")
    with pytest.raises(InvalidInput) as err:
        read_source(path)
    assert err.value.line == 5 and err.value.field == "lat"


def test_csv_duplicate_column_names_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "points.csv"
    path.write_text("名称,lon,lat,名称\na,116,40,b\n", encoding="utf-8")
    with pytest.raises(InvalidInput) as err:
        read_source(path)
    assert err.value.field == "名称" and err.value.line == 1 and "columns 1, 4" in err.value.detail


def test_csv_integers_stay_exact(tmp_path: Path) -> None:
    """2^62 is a bigint, exactly (it was a float); 2^70 is no bigint: kept as text, with a warning."""
    path = tmp_path / "points.csv"
    path.write_text(f"lon,lat,big,huge\n116,40,{2**62},{2**70}\n116,40,1,-1\n", encoding="utf-8")
    source = read_source(path)
    assert source.frame["big"].tolist() == [2**62, 1] and str(source.frame["big"].dtype) == "Int64"
    assert source.frame["huge"].tolist() == [str(2**70), "-1"]
    assert source.report["warnings"][0]["code"] == "integers_kept_as_text"
    assert source.report["warnings"][0]["fields"] == ["huge"]


def test_geojson_integers_beyond_64_bits_are_warned(tmp_path: Path) -> None:
    source = read_source(_geojson(tmp_path / "a.geojson", {"huge": 2**70, "small": 5}))
    assert [(w["code"], w["fields"]) for w in source.report["warnings"]] == [("integers_rounded", ["huge"])]


def test_messages_name_the_upload_not_server_paths(tmp_path: Path) -> None:
    path = tmp_path / "upload.geojson"
    path.write_text("no GeoJSON at all", "utf-8")  # GDAL: '<its path>' not recognized as … a supported format
    for target in (path, _zip_of(tmp_path / "upload.zip", "inner/stops.geojson", path.read_bytes())):
        with pytest.raises(InvalidInput) as err:
            read_source(target, label="站点.zip")
        assert "站点.zip" in err.value.detail and str(tmp_path) not in err.value.detail, err.value.detail
        assert "/vsizip/" not in err.value.detail


def _zip_of(path: Path, name: str, data: bytes) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(name, data)
    return path
