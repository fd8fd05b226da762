"""Reading a publisher's file into a GeoDataFrame in its source CRS.

Formats: GeoJSON, zipped (or loose) Shapefile, GeoPackage, CSV with lon/lat columns. Encodings and
CRSs are settled here, so everything downstream works on decoded text and a known EPSG code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import shapely

from layers.errors import InvalidInput
from layers.ingest.archive import ZipMember, open_archive
from layers.ingest.crs import epsg_code, parse_crs
from layers.ingest.dbf import dbf_encoding
from layers.ingest.encoding import codec_name
from layers.ingest.sniff import sniff
from layers.ingest.tabular import read_csv
from layers.ingest.vector import read_vector

__all__ = ["SourceData", "read_source"]


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


def _shapefile(shp: Path | ZipMember, label: str, encoding: str | None) -> tuple[gpd.GeoDataFrame, dict]:
    if isinstance(shp, ZipMember):
        dbf_name, prj_name, cpg_name = (shp.sibling(s) for s in (".dbf", ".prj", ".cpg"))
        dbf = shp.read(dbf_name) if dbf_name else None
        cpg = shp.read(cpg_name).decode("ascii", "replace") if cpg_name else None
        source, has_prj = shp.vsi_path, prj_name is not None
    else:
        dbf_path, prj_path, cpg_path = (_sibling(shp, s) for s in (".dbf", ".prj", ".cpg"))
        dbf = dbf_path.read_bytes() if dbf_path else None
        cpg = cpg_path.read_text("ascii", "replace") if cpg_path else None
        source, has_prj = str(shp), prj_path is not None
    if dbf is None:
        raise InvalidInput(f"{label}: the shapefile has no .dbf attribute table", field="file")
    chosen, how = dbf_encoding(dbf, cpg, encoding)
    frame = read_vector(source, label, encoding=chosen)
    return frame, {"encoding": chosen, "encoding_from": how, "prj": has_prj}


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
) -> SourceData:
    """Read ``path``; ``source_crs`` overrides or supplies the CRS, ``encoding`` overrides detection;
    ``source_layer`` and ``where`` pick a layer of a multi-layer source and filter its features."""
    label = label or path.name
    forced = codec_name(encoding) if encoding else None
    override = parse_crs(source_crs) if source_crs else None
    kind = sniff(path)
    report: dict[str, Any] = {"format": kind}
    if kind == "zip":
        member = open_archive(path)
        report["member"] = member.name
        if member.name.lower().endswith(".shp"):
            frame, extra = _shapefile(member, label, forced)
            report.update(extra, format="shapefile")
        else:
            frame = read_vector(member.vsi_path, label, encoding=forced, layer=source_layer, where=where)
    elif kind == "shapefile":
        frame, extra = _shapefile(path, label, forced)
        report.update(extra)
    elif kind == "csv":
        frame, used = read_csv(
            path.read_bytes(), label, encoding=forced, lon_column=lon_column, lat_column=lat_column
        )
        report["encoding"] = used
        if override is None:
            frame = frame.set_crs(4326)
    else:
        frame = read_vector(str(path), label, encoding=forced, layer=source_layer, where=where)
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
        what = (
            "the shapefile has no .prj file"
            if report["format"] == "shapefile"
            else f"{label} declares no CRS"
        )
        raise InvalidInput(f"{what}; pass source_crs (e.g. EPSG:4490)", field="source_crs")
    code = epsg_code(frame.crs)
    return SourceData(frame=frame, source_crs=f"EPSG:{code}", format=report["format"], report=report)
