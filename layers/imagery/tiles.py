"""Raster tiles of a stored COG, rendered by rio-tiler in any of the platform's tile matrix sets.

Each call opens the file afresh (plain ``def`` endpoints run it in the threadpool): a COG open is a
header read, GDAL's block cache keeps hot blocks across opens, and a reader per call needs no lock
(rasterio datasets must not be shared between threads). Pixels outside the image are transparent
in PNG and WebP; JPEG has no alpha, so they are black there.
"""

from __future__ import annotations

from pathlib import Path

import rasterio
from morecantile import TileMatrixSet
from rio_tiler.errors import TileOutsideBounds
from rio_tiler.io import Reader

TILE_SIZE = 256
#: URL extension → (GDAL driver, media type)
FORMATS: dict[str, tuple[str, str]] = {
    "png": ("PNG", "image/png"),
    "jpg": ("JPEG", "image/jpeg"),
    "webp": ("WEBP", "image/webp"),
}
# no directory listing on open: the imagery directory may hold many files, and a COG needs no sidecars
_GDAL_ENV = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"}


def _indexes(band_count: int) -> tuple[int, ...]:
    """RGB from the first three bands (a 4th alpha band still masks); one band shows as grey."""
    return (1, 2, 3) if band_count >= 3 else (1,)


def render_tile(
    path: Path,
    tms: TileMatrixSet,
    z: int,
    x: int,
    y: int,
    fmt: str,
    *,
    band_count: int,
    rescale: list[tuple[float, float]] | None = None,
) -> bytes | None:
    """The encoded tile, or None when it does not touch the image."""
    driver, _media_type = FORMATS[fmt]
    with rasterio.Env(**_GDAL_ENV), Reader(str(path), tms=tms) as reader:
        try:
            image = reader.tile(x, y, z, tilesize=TILE_SIZE, indexes=_indexes(band_count))
        except TileOutsideBounds:
            return None
    if rescale:
        image = image.rescale(in_range=rescale[: image.count])
    return image.render(add_mask=driver != "JPEG", img_format=driver)


def zoom_range(path: Path, tms: TileMatrixSet) -> tuple[int, int]:
    """The levels of ``tms`` from the whole image in about one tile to its native resolution."""
    with rasterio.Env(**_GDAL_ENV), Reader(str(path), tms=tms) as reader:
        low, high = int(reader.minzoom), int(reader.maxzoom)
    low = min(max(low, tms.minzoom), tms.maxzoom)
    return low, min(max(high, low), tms.maxzoom)
