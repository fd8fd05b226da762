"""Layer exports: a layer's features as a GeoJSON, CSV, GeoPackage or zipped Shapefile file.

GeoJSON and CSV are streamed: a server-side cursor hands over a few thousand rows at a time, and for
GeoJSON PostgreSQL renders each Feature itself (``layers.query.feature_text``), so Python only joins
bytes. GeoPackage and Shapefile need a real file: pyogrio writes it ``CHUNK_ROWS`` rows at a time
(``append=True``), so a large layer never sits in memory whole.

Every statement is built on ``LayerTable``: hidden fields do not exist for it and the reader's area
limits the rows, so neither can reach a file. Files use the traditional GIS axis order (x = longitude
or easting) whatever the CRS, as GIS tools expect; ``crs`` only chooses datum and projection.
"""

from __future__ import annotations

import csv
import io
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import shapely
from pyogrio.raw import write as ogr_write
from sqlalchemy import ColumnElement, Connection, Select, and_, func, select, true

from layers.crs import CRS84, GCJ02, CrsDef, from_crs84_fn, resolve_crs, transform_geometries
from layers.errors import BadParameter, InvalidInput
from layers.model import Attribute, LayerInfo
from layers.query import ItemsQuery, LayerTable, feature_text, properties_json, render_offset_features

CHUNK_ROWS = 50_000  # rows per pyogrio append (GeoPackage, Shapefile)
STREAM_ROWS = 2_000  # rows per streamed piece (GeoJSON, CSV)
BOM = b"\xef\xbb\xbf"  # lets Excel recognise UTF-8 (Chinese text) in a CSV
SHP_FIELD_BYTES = 10
SHP_TYPES = ("Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon")
_SHP_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg")
_GDAL_UTC = 100  # GDAL's time zone flag for UTC


@dataclass(frozen=True)
class ExportFormat:
    name: str
    extension: str
    media_type: str
    streamed: bool


FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat("geojson", "geojson", "application/geo+json", True),
        ExportFormat("csv", "csv", "text/csv; charset=utf-8", True),
        ExportFormat("gpkg", "gpkg", "application/geopackage+sqlite3", False),
        ExportFormat("shp", "zip", "application/zip", False),
    )
}


def parse_format(raw: str | None) -> ExportFormat:
    if raw is None or not raw.strip():
        raise BadParameter(f"format is required: one of {', '.join(FORMATS)}", field="format")
    found = FORMATS.get(raw.strip().lower())
    if found is None:
        raise BadParameter(f"unsupported format {raw!r}; use one of {', '.join(FORMATS)}", field="format")
    return found


@dataclass(frozen=True)
class ExportRequest:
    format: ExportFormat
    crs: CrsDef = field(default_factory=lambda: resolve_crs(CRS84, "crs"))
    bbox: tuple[float, float, float, float] | None = None  # CRS84
    properties: list[str] | None = None  # None: every attribute the reader may see
    version: int | None = None  # None: the current version


@dataclass(frozen=True)
class ExportPlan:
    """A checked export: what to read (statement parts) and how to write it."""

    request: ExportRequest
    table: LayerTable
    attributes: list[Attribute]
    clauses: list[ColumnElement[bool]]
    read: list[int] = field(default_factory=lambda: [0])  # features read so far (for the audit log)

    @property
    def layer(self) -> LayerInfo:
        return self.table.layer

    @property
    def features_read(self) -> int:
        return self.read[0]

    @property
    def file_name(self) -> str:
        return f"{self.layer.id}-v{self.layer.current_version}.{self.request.format.extension}"


def check_version(layer: LayerInfo, version: int | None) -> None:
    """Only the current version can be exported: the registry keeps the field list (names, types,
    restricted fields) of the current version alone, and an old table read with today's list could
    put a value under the wrong name."""
    if version is None or version == layer.current_version:
        return
    raise BadParameter(
        f"version {version} cannot be exported: only the current version {layer.current_version} can",
        field="version",
    )


def plan_export(
    layer: LayerInfo,
    request: ExportRequest,
    hidden: frozenset[str] = frozenset(),
    area_wkb: bytes | None = None,
) -> ExportPlan:
    """Everything a request can get wrong is found here, before a byte is sent."""
    check_version(layer, request.version)
    lt = LayerTable(layer, hidden, area_wkb)
    names = request.properties
    attributes = lt.layer.attributes if names is None else [lt.attribute(n, "properties") for n in names]
    attributes = list(dict.fromkeys(attributes))  # a name asked for twice is one column
    clauses = lt.scope_clauses(bbox=request.bbox)
    if request.bbox is not None:
        clauses.append(func.ST_Intersects(lt.c.geom, func.ST_MakeEnvelope(*request.bbox, 4326)))
    if request.format.name == "shp":
        shapefile_geometry_type(lt.layer.geometry_type)
    return ExportPlan(request, lt, attributes, clauses)


def stream_export(conn: Connection, plan: ExportPlan) -> Iterator[bytes]:
    """GeoJSON or CSV bytes, piece by piece. ``conn`` must not be in autocommit (a server-side
    cursor lives in a transaction) and must stay open until the iterator is exhausted."""
    if plan.request.format.name == "geojson":
        return _geojson(conn, plan)
    if plan.request.format.name == "csv":
        return _csv(conn, plan)
    raise ValueError(f"{plan.request.format.name} is written to a file, not streamed")


def write_export(conn: Connection, plan: ExportPlan, path: Path) -> None:
    """The export as the file ``path`` (for the streamed formats too, e.g. for the CLI)."""
    name = plan.request.format.name
    if name == "gpkg":
        _write_gpkg(conn, plan, path)
    elif name == "shp":
        _write_shapefile_zip(conn, plan, path)
    else:
        with path.open("wb") as out:
            for piece in stream_export(conn, plan):
                out.write(piece)


# --- reading -------------------------------------------------------------------------------


def _ordered(plan: ExportPlan, *columns: ColumnElement[Any]) -> Select[Any]:
    lt = plan.table
    return select(*columns).select_from(lt.table).where(and_(true(), *plan.clauses)).order_by(lt.c.fid)


def _partitions(
    conn: Connection, plan: ExportPlan, stmt: Select[Any], size: int
) -> Iterator[Sequence[Any]]:
    """Rows ``size`` at a time from a server-side cursor, counted on ``plan``."""
    result = conn.execute(stmt, execution_options={"stream_results": True, "max_row_buffer": size})
    try:
        for rows in result.partitions(size):
            plan.read[0] += len(rows)
            yield rows
    finally:
        result.close()


def _file_crs(crs: CrsDef) -> CrsDef:
    """The CRS with the axis order files use (longitude first)."""
    return replace(crs, lat_first=False)


def _geometry_wkb(plan: ExportPlan) -> ColumnElement[Any]:
    geom = plan.table.c.geom
    if plan.request.crs.srid == 3857:
        geom = func.ST_Transform(geom, 3857)
    return func.ST_AsBinary(geom)


def _attribute_value(plan: ExportPlan, attr: Attribute) -> ColumnElement[Any]:
    column = plan.table.c[attr.column]
    return func.timezone("UTC", column) if attr.type == "datetime" else column  # naive UTC


@dataclass(frozen=True)
class Chunk:
    geometries: np.ndarray  # shapely geometries in the requested CRS
    columns: list[tuple[Any, ...]]  # one per attribute of the plan, in order


def _chunks(conn: Connection, plan: ExportPlan, size: int) -> Iterator[Chunk]:
    stmt = _ordered(plan, _geometry_wkb(plan), *[_attribute_value(plan, a) for a in plan.attributes])
    crs = plan.request.crs
    for rows in _partitions(conn, plan, stmt, size):
        columns = list(zip(*rows, strict=True))
        geometries = shapely.from_wkb(np.array([bytes(w) for w in columns[0]], dtype=object))
        if not crs.in_database:
            geometries = transform_geometries(geometries, from_crs84_fn(crs))
        yield Chunk(geometries, columns[1:])


# --- GeoJSON -------------------------------------------------------------------------------


def _geojson_head(plan: ExportPlan) -> bytes:
    head: dict[str, Any] = {"type": "FeatureCollection", "name": plan.layer.id}
    crs = plan.request.crs
    if crs.uri != CRS84 and crs.srid is not None:  # the 2008 "crs" member, which GDAL still reads
        head["crs"] = {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{crs.srid}"}}
    return orjson.dumps(head)[:-1] + b',"features":['


def _geojson(conn: Connection, plan: ExportPlan) -> Iterator[bytes]:
    crs = _file_crs(plan.request.crs)
    lt = plan.table
    names = [a.name for a in plan.attributes]
    yield _geojson_head(plan)
    separator = b""
    if crs.in_database:  # PostgreSQL renders every Feature
        q = ItemsQuery(limit=0, crs=crs, properties=names)
        stmt = _ordered(plan, feature_text(lt, q).label("feature"))
        for rows in _partitions(conn, plan, stmt, STREAM_ROWS):
            yield separator + ",".join(r.feature for r in rows).encode()
            separator = b","
    else:  # GCJ-02 and BD-09 are computed here
        wkb = func.ST_AsBinary(lt.c.geom).label("wkb")
        stmt = _ordered(plan, lt.c.fkey, wkb, properties_json(lt, names).label("props"))
        for rows in _partitions(conn, plan, stmt, STREAM_ROWS):
            yield separator + render_offset_features(list(rows), crs)
            separator = b","
    yield b"]}\n"


# --- CSV -----------------------------------------------------------------------------------


def _is_point_layer(plan: ExportPlan) -> bool:
    return (plan.layer.geometry_type or "").lower() == "point"


def _csv_geometry_columns(plan: ExportPlan) -> list[str]:
    """``lon, lat`` (``x, y`` when projected) for point layers, then ``wkt``; never an attribute's name."""
    axes = ("x", "y") if plan.request.crs.srid == 3857 else ("lon", "lat")
    wanted = [*(axes if _is_point_layer(plan) else ()), "wkt"]
    attributes = [a.name for a in plan.attributes]
    return unique_names([*attributes, *wanted])[len(attributes) :]


def _csv_text(value: Any, kind: str) -> str:
    if value is None:
        return ""
    if kind == "boolean":
        return "true" if value else "false"
    if kind == "number":
        return "" if value != value else repr(value)  # NaN is no number a spreadsheet reads
    if kind == "datetime":
        return value.isoformat() + "Z"
    if kind == "date":
        return value.isoformat()
    return str(value)


def _csv(conn: Connection, plan: ExportPlan) -> Iterator[bytes]:
    geometry_columns = _csv_geometry_columns(plan)
    point = _is_point_layer(plan)
    decimals = plan.request.crs.decimals
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([a.name for a in plan.attributes] + geometry_columns)
    yield BOM + buffer.getvalue().encode()
    for chunk in _chunks(conn, plan, STREAM_ROWS):
        buffer.seek(0)
        buffer.truncate()
        texts = [
            [_csv_text(v, a.type) for v in col] for a, col in zip(plan.attributes, chunk.columns, strict=True)
        ]
        wkt = shapely.to_wkt(chunk.geometries, rounding_precision=decimals, trim=True).tolist()
        if point:
            for axis in (shapely.get_x(chunk.geometries), shapely.get_y(chunk.geometries)):
                texts.append(["" if v != v else repr(v) for v in np.round(axis, decimals).tolist()])
        writer.writerows(zip(*texts, wkt, strict=True))
        yield buffer.getvalue().encode()


# --- GeoPackage and Shapefile --------------------------------------------------------------

_GCJ_WKT = (
    'GEOGCS["{name} (offset WGS 84)",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563]],'
    'PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433],AXIS["Longitude",EAST],AXIS["Latitude",NORTH]]'
)


def file_crs(crs: CrsDef) -> str:
    """The CRS a file is labelled with. GCJ-02 and BD-09 have no EPSG code: their label is a
    WGS 84 copy named after them, so tools place the data but nobody mistakes it for WGS 84."""
    if crs.srid is None:
        return _GCJ_WKT.format(name="GCJ-02" if crs.uri == GCJ02 else "BD-09")
    return f"EPSG:{4326 if crs.uri == CRS84 else crs.srid}"


def _ogr_geometry_type(geometry_type: str | None) -> str:
    known = {t.lower(): t for t in (*SHP_TYPES, "GeometryCollection")}
    return known.get((geometry_type or "").lower(), "Unknown")


def shapefile_geometry_type(geometry_type: str | None) -> str:
    """The layer's one geometry type; a layer mixing types cannot be a Shapefile (422)."""
    found = _ogr_geometry_type(geometry_type)
    if found not in SHP_TYPES:
        raise InvalidInput(
            "this layer mixes geometry types (or holds geometry collections) and a Shapefile holds "
            "one type only: use format=gpkg",
            field="format",
        )
    return found


_SHP_FAMILIES = {  # shapely type ids a Shapefile of each type takes
    "Point": {0},
    "MultiPoint": {0, 4},
    "LineString": {1, 5},
    "MultiLineString": {1, 5},
    "Polygon": {3, 6},
    "MultiPolygon": {3, 6},
}


def _field_array(values: tuple[Any, ...], kind: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Values as the numpy array pyogrio types the field by, and the null mask where needed."""
    if kind in ("integer", "boolean"):
        nulls = np.array([v is None for v in values], dtype=bool)
        dtype = np.int64 if kind == "integer" else bool
        return np.array([0 if v is None else v for v in values], dtype=dtype), nulls
    if kind == "number":
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64), None
    if kind == "date":
        return np.array(values, dtype="datetime64[D]"), None
    if kind == "datetime":
        return np.array(values, dtype="datetime64[ms]"), None
    if kind == "datetime_text":  # a DBF has no date-time type
        return np.array([None if v is None else v.isoformat() + "Z" for v in values], dtype=object), None
    return np.array(values, dtype=object), None


@dataclass(frozen=True)
class OgrTarget:
    """How one file is written: field names and kinds (parallel to the plan's attributes), pyogrio
    options, and the shapely type ids its geometry column takes (None: any)."""

    names: list[str]
    kinds: list[str]
    options: dict[str, Any]
    geometry_ids: set[int] | None = None


def _write_chunks(conn: Connection, plan: ExportPlan, path: Path, target: OgrTarget) -> None:
    """The plan's rows ``CHUNK_ROWS`` at a time, appended after the first chunk; a result without
    rows still makes a file with the layer's fields."""
    written = False
    for chunk in _chunks(conn, plan, CHUNK_ROWS):
        if target.geometry_ids is not None:
            _check_geometry_ids(chunk.geometries, target.geometry_ids)
        arrays = [_field_array(col, k) for col, k in zip(chunk.columns, target.kinds, strict=True)]
        utc = np.full(len(chunk.geometries), _GDAL_UTC)
        ogr_write(
            str(path),
            shapely.to_wkb(chunk.geometries),
            [a for a, _ in arrays],
            target.names,
            field_mask=[m for _, m in arrays],
            append=written,
            gdal_tz_offsets={
                n: utc for n, k in zip(target.names, target.kinds, strict=True) if k == "datetime"
            },
            **target.options,
        )
        written = True
    if not written:
        empty = [_field_array((), k)[0] for k in target.kinds]
        ogr_write(str(path), np.array([], dtype=object), empty, target.names, **target.options)


def _check_geometry_ids(geometries: np.ndarray, allowed: set[int]) -> None:
    if not set(np.unique(shapely.get_type_id(geometries)).tolist()) <= allowed:
        shapefile_geometry_type("Geometry")  # the registry said one type, the rows say several


def unique_names(names: list[str], max_bytes: int | None = None, reserved: tuple[str, ...] = ()) -> list[str]:
    """Field names a file format accepts: unique ignoring case (SQLite and DBF compare them so), at
    most ``max_bytes`` of UTF-8 (cut on a character boundary), a clash numbered ``_1``, ``_2``…"""
    taken = {r.lower() for r in reserved}
    out = []
    for name in names:
        candidate = _cut(name, max_bytes)
        n = 0
        while candidate.lower() in taken:
            n += 1
            candidate = _cut(name, None if max_bytes is None else max_bytes - len(f"_{n}")) + f"_{n}"
        taken.add(candidate.lower())
        out.append(candidate)
    return out


def _cut(name: str, max_bytes: int | None) -> str:
    if max_bytes is None:
        return name
    return name.encode()[:max_bytes].decode(errors="ignore")


def _write_gpkg(conn: Connection, plan: ExportPlan, path: Path) -> None:
    names = unique_names([a.name for a in plan.attributes], reserved=("fid", "geom"))
    geometry_type = _ogr_geometry_type(plan.layer.geometry_type)
    options = {
        "layer": plan.layer.id,
        "driver": "GPKG",
        "geometry_type": geometry_type,
        "promote_to_multi": geometry_type.startswith("Multi"),
        "crs": file_crs(plan.request.crs),
        "layer_options": {"IDENTIFIER": plan.layer.title, "DESCRIPTION": plan.layer.description},
        "dataset_options": {"VERSION": "1.2"},  # the version older GIS desktops read without warnings
    }
    _write_chunks(conn, plan, path, OgrTarget(names, [a.type for a in plan.attributes], options))


def _write_shapefile_zip(conn: Connection, plan: ExportPlan, path: Path) -> None:
    """``.shp .shx .dbf .prj .cpg`` plus ``fields.csv`` (short name → API name) in one zip."""
    geometry_type = shapefile_geometry_type(plan.layer.geometry_type)
    names = unique_names([a.name for a in plan.attributes], SHP_FIELD_BYTES)
    kinds = ["datetime_text" if a.type == "datetime" else a.type for a in plan.attributes]
    stem = path.name.removesuffix(".zip")
    options = {
        "layer": stem,
        "driver": "ESRI Shapefile",
        "geometry_type": geometry_type,
        "promote_to_multi": geometry_type.startswith("Multi"),
        "crs": file_crs(plan.request.crs),
        "encoding": "UTF-8",
    }
    folder = Path(tempfile.mkdtemp(prefix="shp-", dir=path.parent))
    try:
        target = OgrTarget(names, kinds, options, _SHP_FAMILIES[geometry_type])
        _write_chunks(conn, plan, folder / f"{stem}.shp", target)
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for suffix in _SHP_PARTS:
                part = folder / f"{stem}{suffix}"
                if part.exists():
                    archive.write(part, part.name)
            archive.writestr("fields.csv", _fields_csv(names, plan.attributes))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _fields_csv(names: list[str], attributes: list[Attribute]) -> bytes:
    """Which Shapefile field holds which API property (DBF names are cut to 10 bytes)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["shapefile_field", "property", "type"])
    kinds = {"datetime": "datetime (text, UTC)"}
    writer.writerows([n, a.name, kinds.get(a.type, a.type)] for n, a in zip(names, attributes, strict=True))
    return BOM + buffer.getvalue().encode()
