"""Check a raster file and make it a Cloud-Optimized GeoTIFF, and describe it for the registry.

A COG (internal tiles and overviews) is what lets a tile be read from a few blocks of a large file
instead of the whole image. Files that already are one are stored byte for byte; others are
rewritten by rio-cogeo in their own CRS (no web-optimized resampling: the source pixels stay as
they were). Compression is DEFLATE for every image: JPEG would be smaller for RGB but is lossy at
nodata edges, where it turns the transparent border into a grey fringe.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import RasterioError
from rasterio.warp import transform_bounds
from rio_cogeo.cogeo import cog_translate, cog_validate
from rio_cogeo.profiles import cog_profiles

from layers.errors import InvalidInput

SUPPORTED_DTYPES = frozenset({"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64"})
_STATS_PIXELS = 1024  # rescale statistics come from a read at most this wide: an overview, not the image


@dataclass(frozen=True)
class RasterInfo:
    """What the registry records about a stored image."""

    crs: str
    bounds: tuple[float, float, float, float]  # west, south, east, north in EPSG:4326
    minzoom: int  # WebMercatorQuad levels
    maxzoom: int
    band_count: int
    dtype: str
    resolution: tuple[float, float]  # pixel size in CRS units
    width: int
    height: int
    nodata: float | None
    rescale: list[tuple[float, float]] | None  # per band (min, max) for images that are not 8-bit


def _bad(detail: str) -> InvalidInput:
    return InvalidInput(detail, field="file")


def check(path: Path) -> None:
    """Refuse what cannot be served as imagery, before any conversion work is spent on it."""
    try:
        with rasterio.open(path) as ds:
            if ds.crs is None:
                raise _bad(f"{path.name} has no coordinate reference system")
            if ds.transform.is_identity and not ds.gcps[0]:
                raise _bad(f"{path.name} is not georeferenced (no geotransform)")
            if ds.count < 1:
                raise _bad(f"{path.name} has no bands")
            if ds.dtypes[0] not in SUPPORTED_DTYPES:
                raise _bad(f"{path.name} has pixels of type {ds.dtypes[0]}, which cannot be rendered")
    except RasterioError as exc:
        raise _bad(f"{path.name} is not a readable raster: {exc}") from None


def is_cog(path: Path) -> bool:
    valid, _errors, _warnings = cog_validate(str(path), quiet=True)
    return bool(valid)


def write_cog(source: Path, target: Path) -> None:
    """``target`` becomes a COG of ``source``: a plain copy when it already is one."""
    check(source)
    if is_cog(source):
        shutil.copyfile(source, target)
        return
    profile = dict(cog_profiles.get("deflate"), PREDICTOR=2)
    try:
        with rasterio.open(source) as ds:
            if ds.dtypes[0].startswith("float"):
                profile["PREDICTOR"] = 3
            cog_translate(
                ds,
                str(target),
                profile,
                overview_resampling="average",
                in_memory=False,
                quiet=True,
                config={"GDAL_NUM_THREADS": "2", "GDAL_TIFF_OVR_BLOCKSIZE": "512"},
            )
    except RasterioError as exc:
        raise _bad(f"{source.name} could not be converted to a Cloud-Optimized GeoTIFF: {exc}") from None
    if not is_cog(target):
        raise _bad(f"{source.name} did not convert to a valid Cloud-Optimized GeoTIFF")


def checksum(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _rescale(ds: rasterio.io.DatasetReader) -> list[tuple[float, float]] | None:
    """2nd–98th percentile per band from a small read (served by an overview), so 16-bit or float
    imagery renders with contrast instead of as a black tile; 8-bit images are shown as they are."""
    if ds.dtypes[0] == "uint8":
        return None
    scale = max(1.0, max(ds.width, ds.height) / _STATS_PIXELS)
    shape = (ds.count, max(1, round(ds.height / scale)), max(1, round(ds.width / scale)))
    data = ds.read(out_shape=shape, masked=True)
    out = []
    for band in data:
        values = band.compressed()
        values = values[np.isfinite(values)]
        if values.size == 0:
            out.append((0.0, 1.0))
            continue
        low, high = (float(v) for v in np.percentile(values, [2, 98]))
        out.append((low, high if high > low else low + 1))
    return out


def describe(path: Path) -> RasterInfo:
    """The registry's description of a stored COG."""
    from rio_tiler.io import Reader  # its WebMercatorQuad zoom rule is the one tiles are served by

    with rasterio.open(path) as ds:
        crs = ds.crs.to_string() if ds.crs.to_epsg() else ds.crs.to_wkt()
        bounds = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds, densify_pts=21)
        with Reader(str(path)) as reader:
            minzoom, maxzoom = reader.minzoom, reader.maxzoom
        return RasterInfo(
            crs=crs,
            bounds=tuple(float(v) for v in bounds),  # type: ignore[arg-type]
            minzoom=int(minzoom),
            maxzoom=int(max(minzoom, maxzoom)),
            band_count=ds.count,
            dtype=ds.dtypes[0],
            resolution=(float(ds.res[0]), float(ds.res[1])),
            width=ds.width,
            height=ds.height,
            nodata=None if ds.nodata is None else float(ds.nodata),
            rescale=_rescale(ds),
        )
