"""Reading a publisher's file into a GeoDataFrame in its source CRS.

Formats: GeoJSON, zipped (or loose) Shapefile, GeoPackage, CSV with lon/lat columns. Encodings and
CRSs are settled here, so everything downstream works on decoded text and a known EPSG code.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from layers.errors import InvalidInput
from layers.ingest.archive import extract_dataset
from layers.ingest.crs import epsg_code, parse_crs
from layers.ingest.dbf import dbf_encoding
from layers.ingest.encoding import codec_name
from layers.ingest.limits import DEFAULT_LIMITS, ReadLimits, too_large
from layers.ingest.sniff import sniff
from layers.ingest.tabular import read_csv
from layers.ingest.vector import read_vector

__all__ = ["DEFAULT_LIMITS", "ReadLimits", "SourceData", "read_source"]


@dataclass
class SourceData:
    frame: gpd.GeoDataFrame  # geometries in the source CRS, ``frame.crs`` set
    source_crs: str  # "EPSG:4490"
    format: str
    report: dict[str, Any] = field(default_factory=dict)


def _sibling(path: Path, suffix: str) -> Path | None:
    for candidate in path.parent.glob(path.stem + ".*"):
        if candidate.suffix.lower() == suffix:
            return candidate
    return None


def _check_size(paths: list[Path], label: str, limits: ReadLimits) -> None:
    """A loose file (with its sidecars) is read whole into memory: refuse it before, not after."""
    if sum(p.stat().st_size for p in paths) > limits.max_bytes:
        raise too_large(label, "the data", limits)


def _shapefile(
    shp: Path, label: str, encoding: str | None, limits: ReadLimits
) -> tuple[gpd.GeoDataFrame, dict]:
    dbf_path, prj_path, cpg_path = (_sibling(shp, s) for s in (".dbf", ".prj", ".cpg"))
    _check_size([p for p in (shp, _sibling(shp, ".shx"), dbf_path) if p is not None], label, limits)
    if dbf_path is None:
        raise InvalidInput(f"{label}: the shapefile has no .dbf attribute table", field="file")
    if prj_path is not None:  # GDAL's own complaint about a broken one is a bare "missing ]"
        parse_crs(
            prj_path.read_text("utf-8", "replace"), field="source_crs", what=f"the .prj file of {label}"
        )
    cpg = cpg_path.read_text("ascii", "replace") if cpg_path else None
    chosen, how = dbf_encoding(dbf_path.read_bytes(), cpg, encoding)
    frame = read_vector(str(shp), label, encoding=chosen)
    return frame, {"encoding": chosen, "encoding_from": how, "prj": prj_path is not None}


_GEOJSON_CRS = re.compile(rb'"crs"\s*:\s*\{[^{}]*?"properties"\s*:\s*\{[^{}]*?"name"\s*:\s*"([^"]{1,200})"')


def _geojson_crs(path: Path) -> None:
    """GDAL takes a GeoJSON ``crs`` member it does not know for WGS84 without a word: refuse it."""
    with path.open("rb") as f:
        found = _GEOJSON_CRS.search(f.read(64 * 1024))
    if found is not None:
        parse_crs(found.group(1).decode("utf-8", "replace"), field="crs")


def _rounded_integers(frame: gpd.GeoDataFrame) -> dict[str, Any] | None:
    """GDAL reads integers beyond 64 bits as floating point: say which fields lost digits."""
    fields = []
    for name in frame.columns:
        series = frame[name]
        if name != frame.geometry.name and pd.api.types.is_float_dtype(series.dtype):
            values = series.dropna().to_numpy()
            if len(values) and (np.abs(values) >= 2**63).any() and (values % 1 == 0).all():
                fields.append(str(name))
    if not fields:
        return None
    return {
        "code": "integers_rounded",
        "fields": fields,
        "detail": f"{', '.join(fields)} hold integers beyond 64 bits, read as floating-point numbers "
        "(about 15 significant digits kept); quote them in the source to keep every digit as text",
    }


def _read(
    path: Path, kind: str, label: str, forced: str | None, limits: ReadLimits, options: dict[str, Any]
) -> tuple[gpd.GeoDataFrame, dict[str, Any]]:
    """Read a loose (or extracted) file of a known kind; the frame and what the report should say."""
    if kind == "shapefile":
        return _shapefile(path, label, forced, limits)
    _check_size([path], label, limits)
    if kind == "geojson" and not options["crs_given"]:
        _geojson_crs(path)
    frame = read_vector(str(path), label, encoding=forced, layer=options["layer"], where=options["where"])
    return frame, {}


_INNER = {".shp": "shapefile", ".gpkg": "gpkg"}  # extracted members; the rest are GeoJSON


def read_source(
    path: Path,
    *,
    encoding: str | None = None,
    source_crs: str | None = None,
    lon_column: str | None = None,
    lat_column: str | None = None,
    label: str | None = None,
    source_layer: str | None = None,
    where: str | None = None,
    limits: ReadLimits = DEFAULT_LIMITS,
) -> SourceData:
    """Read ``path``; ``source_crs`` overrides or supplies the CRS, ``encoding`` overrides detection;
    ``source_layer`` and ``where`` pick a layer of a multi-layer source and filter its features.
    ``label`` (the uploaded file's own name) is what messages name, never a server path; ``limits``
    bound what reading may cost (see ``ReadLimits``)."""
    label = label or path.name
    forced = codec_name(encoding) if encoding else None
    override = parse_crs(source_crs) if source_crs else None
    kind = sniff(path, label)
    report: dict[str, Any] = {"format": kind}
    warnings: list[dict[str, Any]] = []
    options = {"layer": source_layer, "where": where, "crs_given": override is not None}
    if kind == "zip":
        with tempfile.TemporaryDirectory(prefix="geoshare-zip-") as folder:
            extracted, report["member"] = extract_dataset(path, Path(folder), label, limits)
            inner = _INNER.get(extracted.suffix, "geojson")
            frame, extra = _read(extracted, inner, label, forced, limits, options)
        report.update(extra, **({"format": "shapefile"} if inner == "shapefile" else {}))
    elif kind == "csv":
        _check_size([path], label, limits)
        frame, used, warnings = read_csv(
            path.read_bytes(), label, encoding=forced, lon_column=lon_column, lat_column=lat_column
        )
        report["encoding"] = used
        if override is None:
            frame = frame.set_crs(4326)
    else:
        frame, extra = _read(path, kind, label, forced, limits, options)
        report.update(extra)
    if kind == "osm":
        # an extract cuts ways and relations at its edge; GDAL cannot build those, and they are
        # an artefact of the cut rather than a publisher's mistake: leave them out and say how many
        geoms = frame.geometry.to_numpy()
        broken = shapely.is_missing(geoms) | shapely.is_empty(geoms)
        invalid = ~broken & ~shapely.is_valid(geoms)
        if invalid.any():  # rings or lines with their far nodes cut away collapse to nothing
            repaired = shapely.make_valid(geoms[invalid], method="structure", keep_collapsed=False)
            broken[np.flatnonzero(invalid)[shapely.is_empty(repaired) | shapely.is_missing(repaired)]] = True
        if broken.any():
            frame = frame.loc[~broken].reset_index(drop=True)
            report["dropped_incomplete"] = int(broken.sum())
    if override is not None:
        frame = frame.set_crs(override, allow_override=True)
    if frame.crs is None:
        if report.get("prj"):
            what = f"the .prj file of {label} is not a coordinate reference system GDAL can read"
        elif report["format"] == "shapefile":
            what = "the shapefile has no .prj file"
        else:
            what = f"{label} declares no CRS"
        raise InvalidInput(f"{what}; pass source_crs (e.g. EPSG:4490)", field="source_crs")
    code = epsg_code(frame.crs)
    rounded = _rounded_integers(frame) if kind != "csv" else None
    warnings += [rounded] if rounded else []
    if warnings:
        report["warnings"] = warnings
    return SourceData(frame=frame, source_crs=f"EPSG:{code}", format=report["format"], report=report)
