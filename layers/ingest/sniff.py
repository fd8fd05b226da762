"""Telling formats apart by their first bytes, since upload file names are often wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from layers.errors import InvalidInput

Format = Literal["zip", "gpkg", "geojson", "shapefile", "csv", "osm"]


def sniff(path: Path, label: str | None = None) -> Format:
    """The format of ``path``; messages name ``label`` (the uploaded file's own name), not the path."""
    label = label or path.name
    try:
        with path.open("rb") as f:
            head = f.read(64)
    except OSError as exc:
        raise InvalidInput(f"cannot open {label}: {exc.strerror}", field="file") from exc
    if not head.strip(b" \t\r\n\xef\xbb\xbf"):
        raise InvalidInput(f"{label} is empty", field="file")
    suffix = path.suffix.lower()
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")) or suffix == ".zip":
        return "zip"
    if head.startswith(b"SQLite format 3\x00"):
        return "gpkg"
    if head.startswith(b"\x00\x00\x27\x0a") or suffix == ".shp":
        return "shapefile"
    if b"OSMHeader" in head or suffix in (".pbf", ".osm"):
        return "osm"  # OpenStreetMap PBF/XML: GDAL's OSM driver, one layer per geometry kind
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text[:1] in (b"{", b"[") or suffix in (".geojson", ".json"):
        return "geojson"
    if suffix in (".csv", ".txt", ".tsv", ""):
        return "csv"
    if suffix == ".gpkg":
        raise InvalidInput(f"{label} is not a GeoPackage (not an SQLite file)", field="file")
    raise InvalidInput(
        f"unsupported file type {suffix!r}: publish GeoJSON, a zipped Shapefile, a GeoPackage or a CSV",
        field="file",
    )
