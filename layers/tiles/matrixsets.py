"""The tile matrix sets tiles are served in, and the checks on a requested tile's indices.

``WebMercatorQuad`` and ``WorldCRS84Quad`` are the OGC's registered sets (as morecantile defines
them). The two Tianditu (天地图) grids are ours:

* ``CGCS2000Quad`` — EPSG:4490, Tianditu's ``c`` grid: origin top-left at (lon -180, lat 90), 256 px
  tiles, level 1 is 2x1 tiles at 0.703125 °/px, so level z has 2^z x 2^(z-1) tiles and is
  ``WorldCRS84Quad`` level z-1 renumbered. There is no level 0.
* ``TianDiTuWebMercator`` — EPSG:3857, Tianditu's ``w`` grid: ``WebMercatorQuad`` levels 1..18.

Scale denominators follow the OGC rule (cell size in metres over a 0.28 mm pixel), which gives
279541132.01 at CGCS2000Quad level 1. Tianditu's own WMTS capabilities advertise 295829355.45 for the
same level: the same 0.703125 °/px over a 96-dpi pixel (0.0254/96 m). Clients that derive resolutions
from scale denominators (OpenLayers' WMTS reader, GDAL) assume 0.28 mm, so only the OGC values make
our tiles line up with Tianditu's; clients that take resolutions by hand (the usual Tianditu set-up:
0.703125 / 2^(z-1)) line up either way.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import morecantile
from morecantile import TileMatrixSet

from layers.errors import BadParameter, NotFound

CGCS2000_QUAD = "CGCS2000Quad"
TIANDITU_WEB_MERCATOR = "TianDiTuWebMercator"
_CGCS2000_URI = "http://www.opengis.net/def/crs/EPSG/0/4490"
_CGCS2000_LEVELS = range(1, 21)  # Tianditu publishes 1..18; two more for large-scale city data
_TIANDITU_W_LEVELS = range(1, 19)


def _matrices(source: TileMatrixSet, levels: range, shift: int) -> list[dict[str, Any]]:
    """``source``'s matrices for ``levels``, taken from level ``z - shift`` and renumbered ``z``."""
    out = []
    for z in levels:
        matrix = source.matrix(z - shift).model_dump(exclude_none=True)
        matrix["id"] = str(z)
        out.append(matrix)
    return out


def _cgcs2000_quad() -> TileMatrixSet:
    wgs84 = morecantile.tms.get("WGS1984Quad")  # EPSG:4326, lat/lon axes like EPSG:4490
    return TileMatrixSet.model_validate(
        {
            "id": CGCS2000_QUAD,
            "title": "CGCS2000 geographic quadtree (天地图 c grid)",
            "description": "EPSG:4490; level 1 is 2x1 tiles of 256 px at 0.703125 degrees per pixel",
            "crs": _CGCS2000_URI,
            "orderedAxes": ["Lat", "Lon"],
            "tileMatrices": _matrices(wgs84, _CGCS2000_LEVELS, 1),
        }
    )


def _tianditu_web_mercator() -> TileMatrixSet:
    mercator = morecantile.tms.get("WebMercatorQuad")
    doc = mercator.model_dump(exclude_none=True, mode="json")
    doc.update(
        id=TIANDITU_WEB_MERCATOR,
        title="Web Mercator, levels 1 to 18 (天地图 w grid)",
        tileMatrices=_matrices(mercator, _TIANDITU_W_LEVELS, 0),
    )
    doc.pop("uri", None)  # not the registered set: it lacks level 0 and levels above 18
    return TileMatrixSet.model_validate(doc)


_SETS: dict[str, TileMatrixSet] = {
    "WebMercatorQuad": morecantile.tms.get("WebMercatorQuad"),
    "WorldCRS84Quad": morecantile.tms.get("WorldCRS84Quad"),
    CGCS2000_QUAD: _cgcs2000_quad(),
    TIANDITU_WEB_MERCATOR: _tianditu_web_mercator(),
}
TMS_IDS: tuple[str, ...] = tuple(_SETS)
#: sets whose CRS is projected in metres (tiles are cut from geometries transformed to EPSG:3857)
MERCATOR_IDS = frozenset({"WebMercatorQuad", TIANDITU_WEB_MERCATOR})
_EARTH_RADIUS = 6378137.0
_HALF_WORLD = math.pi * _EARTH_RADIUS  # EPSG:3857 x of the antimeridian


def get_tms(tms_id: str) -> TileMatrixSet:
    tms = _SETS.get(tms_id)
    if tms is None:
        raise NotFound(
            f"unknown tile matrix set {tms_id!r}; available: {', '.join(TMS_IDS)}", field="tileMatrixSetId"
        )
    return tms


def parse_index(raw: str, name: str) -> int:
    """A path index; anything but a plain non-negative decimal integer is a 400 naming ``name``."""
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
        raise BadParameter(f"{name} must be a non-negative integer, got {raw!r}", field=name)
    return int(raw)


def check_tile(tms: TileMatrixSet, z: int, row: int, col: int) -> None:
    """OGC API – Tiles (/req/core/tc-error): indices outside the tile matrix set are a 404 naming
    the index at fault (the standard allows 404 or 400; 404 is what tile clients expect)."""
    if not tms.minzoom <= z <= tms.maxzoom:
        raise NotFound(
            f"tileMatrix {z} is not in {tms.id} (levels {tms.minzoom}..{tms.maxzoom})", field="tileMatrix"
        )
    matrix = tms.matrix(z)
    if row >= matrix.matrixHeight:
        raise NotFound(f"tileRow {row} is outside 0..{matrix.matrixHeight - 1} at level {z}", field="tileRow")
    if col >= matrix.matrixWidth:
        raise NotFound(f"tileCol {col} is outside 0..{matrix.matrixWidth - 1} at level {z}", field="tileCol")


def tile_bounds(tms: TileMatrixSet, z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """The tile's (minx, miny, maxx, maxy) in the set's CRS, x east and y north whatever the CRS's
    axis order (degrees for the geographic sets, metres for the Mercator ones)."""
    b = tms.xy_bounds(x, y, z)
    return (b.left, b.bottom, b.right, b.top)


def geographic_bounds(tms: TileMatrixSet, z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """The tile's (west, south, east, north) in degrees: exact for these sets, whose tile edges are
    meridians and parallels."""
    b = tms.bounds(x, y, z)
    return (b.left, b.bottom, b.right, b.top)


@lru_cache(maxsize=256)
def _level_frame(tms_id: str, z: int) -> tuple[float, float, float, float]:
    """(left, top, width, height) of tile (0, 0) at level ``z``, in the set's CRS (x east, y north)."""
    left, bottom, right, top = tile_bounds(get_tms(tms_id), z, 0, 0)
    return left, top, right - left, top - bottom


def fast_tile_bounds(tms_id: str, z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """``tile_bounds`` by arithmetic on the level's first tile: these grids are regular, and
    morecantile's per-call work is a noticeable share of a tile served from memory."""
    left, top, width, height = _level_frame(tms_id, z)
    minx, maxy = left + x * width, top - y * height
    return minx, maxy - height, minx + width, maxy


def mercator_lat(y: float) -> float:
    return math.degrees(math.atan(math.sinh(y / _EARTH_RADIUS)))


def fast_geographic_bounds(tms_id: str, z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """``geographic_bounds`` by arithmetic: Web Mercator's inverse in closed form, identity for the
    geographic sets (their CRS x/y are longitude/latitude)."""
    minx, miny, maxx, maxy = fast_tile_bounds(tms_id, z, x, y)
    if tms_id not in MERCATOR_IDS:
        return minx, miny, maxx, maxy
    scale = 180.0 / _HALF_WORLD
    return minx * scale, mercator_lat(miny), maxx * scale, mercator_lat(maxy)


def tile_limits(tms: TileMatrixSet, extent: list[float] | None) -> list[dict[str, Any]]:
    """``tileMatrixSetLimits`` of a layer's CRS84 extent: per level, the rows and columns with data."""
    if not extent:
        return []
    west, south, east, north = extent[:4]
    out = []
    for z in range(tms.minzoom, tms.maxzoom + 1):
        upper_left = tms.tile(west, north, z, truncate=True)
        lower_right = tms.tile(east, south, z, truncate=True)
        matrix = tms.matrix(z)
        out.append(
            {
                "tileMatrix": str(z),
                "minTileRow": max(0, upper_left.y),
                "maxTileRow": min(matrix.matrixHeight - 1, lower_right.y),
                "minTileCol": max(0, upper_left.x),
                "maxTileCol": min(matrix.matrixWidth - 1, lower_right.x),
            }
        )
    return out


def parse_tile(
    tms_id: str, tile_matrix: str, tile_row: str, tile_col: str
) -> tuple[TileMatrixSet, int, int, int]:
    """A tile address from URL path segments: the set and (z, row, col), each checked against it
    (404 for an unknown set or an index outside it, 400 for a malformed index)."""
    tms = get_tms(tms_id)
    z, row, col = (
        parse_index(tile_matrix, "tileMatrix"),
        parse_index(tile_row, "tileRow"),
        parse_index(tile_col, "tileCol"),
    )
    check_tile(tms, z, row, col)
    return tms, z, row, col
