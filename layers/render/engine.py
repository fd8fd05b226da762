"""Mapnik, imported so it does not break GDAL and PROJ for the rest of the process.

The ``mapnik`` wheel sets ``PROJ_LIB`` and ``GDAL_DATA`` in ``os.environ`` on import when they are
unset, pointing into its own package, where (in 4.3.2) the PROJ directory holds no ``proj.db``.
rasterio reads those variables when it first needs PROJ, so after ``import mapnik`` every rasterio
CRS lookup fails ("Cannot find proj.db"). We drop the two variables Mapnik added: Mapnik itself only
needs its built-in EPSG:4326 and EPSG:3857 handling, since features reach it already in the map's CRS.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

_before = set(os.environ)
import mapnik  # noqa: E402 - the environment must be captured first

for _name in ("PROJ_LIB", "GDAL_DATA"):
    if _name not in _before:
        os.environ.pop(_name, None)

#: image encodings Mapnik writes: PNG as 8-bit palette with alpha (a quarter of RGBA's size)
ENCODINGS = {"png": "png8:m=h", "webp": "webp:quality=85"}
MEDIA_TYPES = {"png": "image/png", "webp": "image/webp"}
TILE_SIZE = 256
#: pixels drawn beyond each tile edge, so labels and strokes continue across neighbouring tiles
BUFFER_PX = 64
_FIELDS = ("label", "rank")


@dataclass
class DrawLayer:
    """Features of one Mapnik layer, already in the map's CRS, and the styles drawing them in order."""

    name: str
    styles: list[str]
    features: list[tuple[bytes, str | None, str | None]] = field(default_factory=list)  # wkb, label, rank


def _datasource(features: list[tuple[bytes, str | None, str | None]]) -> mapnik.MemoryDatasource:
    ctx = mapnik.Context()
    for name in _FIELDS:
        ctx.push(name)
    ds = mapnik.MemoryDatasource()
    for fid, (wkb, label, rank) in enumerate(features, start=1):
        geometry = mapnik.Geometry.from_wkb(wkb)
        if geometry.is_empty():  # clipped away
            continue
        feature = mapnik.Feature(ctx, fid)
        feature.geometry = geometry
        if label:
            feature["label"] = label
        if rank:
            feature["rank"] = rank
        ds.add_feature(feature)
    return ds


def render(
    style_xml: str,
    layers: list[DrawLayer],
    srs: str,
    bounds: tuple[float, float, float, float],
    fmt: str,
) -> bytes:
    """One tile: ``style_xml`` (a Mapnik ``<Map>`` holding styles, fonts and background) drawing
    ``layers`` over ``bounds`` (minx, miny, maxx, maxy in ``srs``), encoded as ``fmt``."""
    m = mapnik.Map(TILE_SIZE, TILE_SIZE)
    mapnik.load_map_from_string(m, style_xml)
    m.srs = srs
    m.buffer_size = BUFFER_PX
    for draw in layers:
        if not draw.features:
            continue
        layer = mapnik.Layer(draw.name, srs)
        layer.datasource = _datasource(draw.features)
        for style in draw.styles:
            layer.styles.append(style)
        m.layers.append(layer)
    m.zoom_to_box(mapnik.Box2d(*bounds))
    image = mapnik.Image(TILE_SIZE, TILE_SIZE)
    mapnik.render(m, image)
    return bytes(image.to_string(ENCODINGS[fmt]))


def register_fonts(directory: str) -> None:
    """Every font file under ``directory`` (recursively)."""
    mapnik.register_fonts(directory)


def face_names() -> list[str]:
    return list(mapnik.FontEngine.face_names())
