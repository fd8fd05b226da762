"""Coordinate reference systems offered by the read API (OGC API – Features Part 2).

Storage is always CRS84 (lon, lat on WGS84).  EPSG:4326 and EPSG:4490 are the same datum at the
metre level but their EPSG definitions put latitude first, so output flips axes.  GCJ-02 (the
"Mars" coordinates of Chinese commercial maps) and BD-09 are not EPSG CRSs but deliberate
nonlinear offsets; PostGIS cannot do them, so they run here, vectorised with numpy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry.base import BaseGeometry

from layers.errors import BadParameter

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG4326 = "http://www.opengis.net/def/crs/EPSG/0/4326"
EPSG4490 = "http://www.opengis.net/def/crs/EPSG/0/4490"
EPSG3857 = "http://www.opengis.net/def/crs/EPSG/0/3857"
GCJ02 = "urn:geoshare:def:crs:GCJ-02"
BD09 = "urn:geoshare:def:crs:BD-09"


@dataclass(frozen=True)
class CrsDef:
    uri: str
    srid: int | None  # PostGIS SRID when PostGIS can produce it, None for the offset CRSs
    lat_first: bool  # EPSG axis order is latitude, longitude
    decimals: int  # GeoJSON coordinate precision that keeps about a centimetre

    @property
    def in_database(self) -> bool:
        return self.srid is not None


SUPPORTED: tuple[CrsDef, ...] = (
    CrsDef(CRS84, 4326, False, 7),
    CrsDef(EPSG4326, 4326, True, 7),
    CrsDef(EPSG4490, 4490, True, 7),
    CrsDef(EPSG3857, 3857, False, 2),
    CrsDef(GCJ02, None, False, 7),
    CrsDef(BD09, None, False, 7),
)
_BY_URI = {c.uri: c for c in SUPPORTED}
_ALIASES = {
    "crs84": CRS84,
    "ogc:crs84": CRS84,
    "urn:ogc:def:crs:ogc:1.3:crs84": CRS84,
    "[ogc:crs84]": CRS84,
    "epsg:4326": EPSG4326,
    "urn:ogc:def:crs:epsg::4326": EPSG4326,
    "[epsg:4326]": EPSG4326,
    "epsg:4490": EPSG4490,
    "urn:ogc:def:crs:epsg::4490": EPSG4490,
    "[epsg:4490]": EPSG4490,
    "epsg:3857": EPSG3857,
    "urn:ogc:def:crs:epsg::3857": EPSG3857,
    "[epsg:3857]": EPSG3857,
    "gcj-02": GCJ02,
    "gcj02": GCJ02,
    "bd-09": BD09,
    "bd09": BD09,
}
CRS_URIS: list[str] = [c.uri for c in SUPPORTED]


def resolve_crs(value: str | None, field: str) -> CrsDef:
    """The CRS a request names (URI, URN, safe CURIE or short alias); CRS84 when not given."""
    if value is None or value.strip() == "":
        return _BY_URI[CRS84]
    raw = value.strip()
    found = _BY_URI.get(raw) or _BY_URI.get(raw.replace("https://", "http://"))
    if found is None:
        alias = _ALIASES.get(raw.lower())
        found = _BY_URI.get(alias) if alias else None
    if found is None:
        raise BadParameter(f"unsupported {field} {value!r}; supported: {', '.join(CRS_URIS)}", field=field)
    return found


# --- GCJ-02 and BD-09 -----------------------------------------------------------------------

_A = 6378245.0  # Krasovsky 1940 semi-major axis, as in the published GCJ-02 algorithm
_EE = 0.00669342162296594323
_X_PI = np.pi * 3000.0 / 180.0


def _in_china(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    return (lon >= 72.004) & (lon <= 137.8347) & (lat >= 0.8293) & (lat <= 55.8271)


def _gcj_delta(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = lon - 105.0
    y = lat - 35.0
    xpi, ypi = x * np.pi, y * np.pi
    wave = 20.0 * np.sin(6.0 * xpi) + 20.0 * np.sin(2.0 * xpi)
    dlat = wave + 20.0 * np.sin(ypi) + 40.0 * np.sin(ypi / 3.0)
    dlat += 160.0 * np.sin(ypi / 12.0) + 320.0 * np.sin(ypi / 30.0)
    dlon = wave + 20.0 * np.sin(xpi) + 40.0 * np.sin(xpi / 3.0)
    dlon += 150.0 * np.sin(xpi / 12.0) + 300.0 * np.sin(xpi / 30.0)
    dlat = dlat * 2.0 / 3.0 - 100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
    dlon = dlon * 2.0 / 3.0 + 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
    rad = lat / 180.0 * np.pi
    magic = 1.0 - _EE * np.sin(rad) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrt_magic * np.cos(rad) * np.pi)
    return dlon, dlat


def wgs84_to_gcj02(xy: np.ndarray) -> np.ndarray:
    """Forward offset for an (n, 2) lon/lat array; points outside China are returned unchanged."""
    xy = np.asarray(xy, dtype=float)
    lon, lat = xy[:, 0], xy[:, 1]
    dlon, dlat = _gcj_delta(lon, lat)
    inside = _in_china(lon, lat)
    return np.column_stack((np.where(inside, lon + dlon, lon), np.where(inside, lat + dlat, lat)))


def gcj02_to_wgs84(xy: np.ndarray, tolerance: float = 1e-10, max_iter: int = 20) -> np.ndarray:
    """Inverse by fixed-point iteration (the offset varies slowly, so it converges in a few steps)."""
    target = np.asarray(xy, dtype=float)
    guess = target.copy()
    for _ in range(max_iter):
        error = wgs84_to_gcj02(guess) - target
        guess = guess - error
        if not np.isfinite(error).all() or np.abs(error).max(initial=0.0) < tolerance:
            break
    return guess


def gcj02_to_bd09(xy: np.ndarray) -> np.ndarray:
    xy = np.asarray(xy, dtype=float)
    x, y = xy[:, 0], xy[:, 1]
    z = np.hypot(x, y) + 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * _X_PI)
    out = np.column_stack((z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006))
    inside = _in_china(x, y)[:, None]
    return np.where(inside, out, xy)


def bd09_to_gcj02(xy: np.ndarray) -> np.ndarray:
    xy = np.asarray(xy, dtype=float)
    x, y = xy[:, 0] - 0.0065, xy[:, 1] - 0.006
    z = np.hypot(x, y) - 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _X_PI)
    out = np.column_stack((z * np.cos(theta), z * np.sin(theta)))
    inside = _in_china(xy[:, 0], xy[:, 1])[:, None]
    return np.where(inside, out, xy)


def wgs84_to_bd09(xy: np.ndarray) -> np.ndarray:
    return gcj02_to_bd09(wgs84_to_gcj02(xy))


def bd09_to_wgs84(xy: np.ndarray) -> np.ndarray:
    return gcj02_to_wgs84(bd09_to_gcj02(xy))


# --- geometry-level conversions -----------------------------------------------------------

CoordFn = Callable[[np.ndarray], np.ndarray]


def _flip(xy: np.ndarray) -> np.ndarray:
    return np.asarray(xy)[:, ::-1]


@lru_cache(maxsize=4)
def _proj(src: int, dst: int) -> Transformer:
    return Transformer.from_crs(src, dst, always_xy=True)


def _web_mercator_to_lonlat(xy: np.ndarray) -> np.ndarray:
    xy = np.asarray(xy, dtype=float)
    lon, lat = _proj(3857, 4326).transform(xy[:, 0], xy[:, 1])
    return np.column_stack((lon, lat))


def _to_crs84_fn(crs: CrsDef) -> CoordFn | None:
    if crs.uri == GCJ02:
        return gcj02_to_wgs84
    if crs.uri == BD09:
        return bd09_to_wgs84
    if crs.srid == 3857:
        return _web_mercator_to_lonlat
    if crs.lat_first:
        return _flip
    return None


def from_crs84_fn(crs: CrsDef) -> CoordFn:
    """Coordinate function for the offset CRSs, which the database cannot produce."""
    if crs.uri == GCJ02:
        return wgs84_to_gcj02
    if crs.uri == BD09:
        return wgs84_to_bd09
    raise ValueError(f"{crs.uri} is produced by PostGIS, not in Python")


def transform_geometries(geoms: np.ndarray, fn: CoordFn) -> np.ndarray:
    """Apply ``fn`` to every coordinate of an array of shapely geometries in one numpy call."""
    return shapely.transform(geoms, fn)


def geometry_to_crs84(geom: BaseGeometry, crs: CrsDef, field: str) -> BaseGeometry:
    """A geometry given in ``crs`` (axis order as that CRS says) converted to CRS84 lon/lat."""
    fn = _to_crs84_fn(crs)
    out = shapely.transform(geom, fn) if fn else geom
    coords = shapely.get_coordinates(out)
    if not np.isfinite(coords).all():
        raise BadParameter(f"{field} has coordinates outside the valid area of {crs.uri}", field=field)
    if len(coords) and (np.abs(coords[:, 0]).max() > 180.0 or np.abs(coords[:, 1]).max() > 90.0):
        raise BadParameter(
            f"{field} has coordinates outside longitude ±180 / latitude ±90 "
            f"(axis order of {crs.uri} is {'lat,lon' if crs.lat_first else 'x,y'})",
            field=field,
        )
    return out


def bbox_to_crs84(bbox: tuple[float, float, float, float], crs: CrsDef, field: str) -> tuple[float, ...]:
    """A bbox given in ``crs`` as a CRS84 (minlon, minlat, maxlon, maxlat) envelope.

    The corners and edge midpoints are converted, which is exact for the axis-aligned CRSs and
    within centimetres for the small, smooth GCJ-02/BD-09 offsets.
    """
    minx, miny, maxx, maxy = bbox
    if crs.uri == CRS84:
        geometry_to_crs84(shapely.points([(minx, miny), (maxx, maxy)])[0], crs, field)
        geometry_to_crs84(shapely.points([(maxx, maxy)])[0], crs, field)
        return bbox
    xs = np.array([minx, (minx + maxx) / 2, maxx])
    ys = np.array([miny, (miny + maxy) / 2, maxy])
    grid = shapely.multipoints(np.array([(x, y) for x in xs for y in ys]))
    return tuple(float(v) for v in geometry_to_crs84(grid, crs, field).bounds)
