"""Coordinate systems of the geocoding endpoints (forward, reverse, admin areas, compat).

Geocoding always speaks longitude, latitude in that order, whatever the CRS's EPSG axis order:
clients of geocoders (Amap, Tianditu, Baidu) all do, and a point is two query parameters named
``lon`` and ``lat``, not a coordinate tuple to be flipped.

* ``EPSG:4326`` (default; also ``4326``, ``WGS84``, ``CRS84`` and the OGC URI/URN forms).
* ``EPSG:4490`` (CGCS2000, China's national datum, used by Tianditu): it differs from WGS84 by a
  few centimetres, below the precision of any address point, so it is passed through unchanged.
* ``GCJ-02`` (Amap, Tencent; also ``gcj02`` and ``urn:geoshare:def:crs:GCJ-02``) and ``BD-09``
  (Baidu): the nonlinear offsets of ``layers.crs``, converted here in numpy.

Projected CRSs (EPSG:3857) are refused: a geocoding answer is a point, not a map tile.
"""

from __future__ import annotations

import numpy as np

from layers.crs import (
    BD09,
    CRS84,
    EPSG4326,
    EPSG4490,
    GCJ02,
    bd09_to_wgs84,
    gcj02_to_wgs84,
    resolve_crs,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)
from layers.errors import BadParameter

WGS84 = "EPSG:4326"
CGCS2000 = "EPSG:4490"
GCJ = "GCJ-02"
BD = "BD-09"
GEOCODE_CRS: tuple[str, ...] = (WGS84, CGCS2000, GCJ, BD)

_BY_URI = {CRS84: WGS84, EPSG4326: WGS84, EPSG4490: CGCS2000, GCJ02: GCJ, BD09: BD}
_EXTRA_ALIASES = {
    "4326": WGS84,
    "wgs84": WGS84,
    "wgs-84": WGS84,
    "4490": CGCS2000,
    "cgcs2000": CGCS2000,
    "epsg:4490": CGCS2000,
}


def geocode_crs(value: str | None, field: str = "crs") -> str:
    """The canonical name (one of ``GEOCODE_CRS``) of the CRS a geocoding request names."""
    if value is None or not value.strip():
        return WGS84
    raw = value.strip()
    short = _EXTRA_ALIASES.get(raw.lower())
    if short:
        return short
    if raw in GEOCODE_CRS:
        return raw
    try:
        uri = resolve_crs(raw, field).uri
    except BadParameter:
        uri = None
    if uri not in _BY_URI:
        shown = raw if len(raw) <= 60 else raw[:60] + "…"
        raise BadParameter(
            f"unsupported {field} {shown!r}; geocoding supports {', '.join(GEOCODE_CRS)} "
            "(coordinates always longitude, latitude)",
            field=field,
        )
    return _BY_URI[uri]


def _shifted(crs: str) -> bool:
    if crs in (WGS84, CGCS2000):
        return False
    if crs in (GCJ, BD):
        return True
    raise ValueError(f"not a canonical geocoding CRS: {crs!r} (use geocode_crs first)")


def to_wgs84(lon: float, lat: float, crs: str) -> tuple[float, float]:
    """A client's point in WGS84 (for the database)."""
    if not _shifted(crs):
        return lon, lat
    fn = gcj02_to_wgs84 if crs == GCJ else bd09_to_wgs84
    out = fn(np.array([[lon, lat]], dtype=float))[0]
    return float(out[0]), float(out[1])


def from_wgs84_many(xy: np.ndarray, crs: str) -> np.ndarray:
    """An (n, 2) lon/lat array of WGS84 points in ``crs`` (a new array; the input is left alone)."""
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    if not _shifted(crs) or len(xy) == 0:
        return xy.copy()
    return wgs84_to_gcj02(xy) if crs == GCJ else wgs84_to_bd09(xy)


def from_wgs84(lon: float, lat: float, crs: str) -> tuple[float, float]:
    """A WGS84 point from the database in the client's CRS."""
    if not _shifted(crs):
        return lon, lat
    out = from_wgs84_many(np.array([[lon, lat]]), crs)[0]
    return float(out[0]), float(out[1])


CHINA_EXTENT = (73.0, 3.0, 136.0, 54.0)
#: the same, as the API definition documents the lon and lat parameters it refuses outside it
LON_RANGE = {"minimum": CHINA_EXTENT[0], "maximum": CHINA_EXTENT[2]}
LAT_RANGE = {"minimum": CHINA_EXTENT[1], "maximum": CHINA_EXTENT[3]}
"""Longitude and latitude bounds of China (with its seas) in every geocoding CRS: the offsets of
GCJ-02 and BD-09 are under a kilometre, far inside this rounding."""


def check_in_china(lon: float, lat: float, lon_field: str = "lon", lat_field: str = "lat") -> None:
    """Refuse points outside China's extent (and NaN/inf), naming the parameter at fault; the usual
    cause is swapped longitude and latitude.
    """
    min_lon, min_lat, max_lon, max_lat = CHINA_EXTENT
    if not min_lon <= lon <= max_lon:  # also False for NaN
        raise BadParameter(
            f"{lon_field}={lon} is outside China (longitude {min_lon:g}..{max_lon:g}); "
            "coordinates are longitude, latitude",
            field=lon_field,
        )
    if not min_lat <= lat <= max_lat:
        raise BadParameter(
            f"{lat_field}={lat} is outside China (latitude {min_lat:g}..{max_lat:g}); "
            "coordinates are longitude, latitude",
            field=lat_field,
        )
