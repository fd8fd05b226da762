"""CRS registry and the GCJ-02 / BD-09 transforms against the eviltransform reference."""

from __future__ import annotations

import eviltransform
import numpy as np
import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import Point, Polygon

from layers import crs
from layers.errors import BadParameter

RNG = np.random.default_rng(20240501)
# random points over mainland China plus a few cities
CHINA = np.column_stack((RNG.uniform(75, 134, 2000), RNG.uniform(18, 53, 2000)))
CITIES = np.array([(116.397, 39.909), (121.473, 31.230), (113.264, 23.129), (104.066, 30.572)])


def metres(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Great-circle distance between lon/lat arrays."""
    lon1, lat1, lon2, lat2 = map(np.radians, (a[:, 0], a[:, 1], b[:, 0], b[:, 1]))
    h = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6378137.0 * np.arcsin(np.sqrt(h))


def test_forward_gcj02_matches_eviltransform_within_half_a_metre() -> None:
    pts = np.vstack((CHINA, CITIES))
    ours = crs.wgs84_to_gcj02(pts)
    ref = np.array([eviltransform.wgs2gcj(lat, lon)[::-1] for lon, lat in pts])
    assert metres(ours, ref).max() < 0.5
    # and the offset is real: hundreds of metres, not zero
    assert metres(ours, pts).min() > 50


def test_gcj02_leaves_points_outside_china_alone() -> None:
    outside = np.array([(2.35, 48.85), (-74.0, 40.7), (139.69, 35.69)])
    assert np.array_equal(crs.wgs84_to_gcj02(outside), outside)
    assert np.array_equal(crs.gcj02_to_wgs84(outside), outside)


def test_gcj02_inverse_round_trip() -> None:
    back = crs.gcj02_to_wgs84(crs.wgs84_to_gcj02(CHINA))
    assert metres(back, CHINA).max() < 0.01  # far inside the 0.5 m budget
    ref = np.array([eviltransform.gcj2wgs_exact(lat, lon)[::-1] for lon, lat in crs.wgs84_to_gcj02(CITIES)])
    assert metres(crs.gcj02_to_wgs84(crs.wgs84_to_gcj02(CITIES)), ref).max() < 0.5


def test_bd09_matches_reference_and_round_trips() -> None:
    ours = crs.wgs84_to_bd09(CITIES)
    ref = np.array([eviltransform.wgs2bd(lat, lon)[::-1] for lon, lat in CITIES])
    assert metres(ours, ref).max() < 0.5
    assert metres(crs.bd09_to_wgs84(ours), CITIES).max() < 0.5


def test_round_trip_4326_4490_3857_gcj02() -> None:
    """CRS84 → EPSG:4326 (lat,lon) → EPSG:4490 → EPSG:3857 → GCJ-02 → back to CRS84."""
    start = shapely.points(CITIES)
    as_4326 = shapely.transform(start, lambda xy: xy[:, ::-1])  # lat, lon axis order
    to_4490 = Transformer.from_crs(4326, 4490)  # EPSG axis order on both sides
    lat, lon = to_4490.transform(*shapely.get_coordinates(as_4326).T)
    to_3857 = Transformer.from_crs(4490, 3857)
    x, y = to_3857.transform(lat, lon)
    mercator = shapely.points(np.column_stack((x, y)))
    lonlat = np.array(
        [crs.geometry_to_crs84(g, crs.resolve_crs("EPSG:3857", "t"), "t").coords[0] for g in mercator]
    )
    gcj = crs.wgs84_to_gcj02(lonlat)
    back = np.array(
        [crs.geometry_to_crs84(Point(p), crs.resolve_crs("GCJ-02", "t"), "t").coords[0] for p in gcj]
    )
    assert metres(back, CITIES).max() < 0.5


def test_geometry_to_crs84_handles_axis_order_and_polygons() -> None:
    latlon = crs.resolve_crs("http://www.opengis.net/def/crs/EPSG/0/4490", "filter-crs")
    assert crs.geometry_to_crs84(Point(39.9, 116.4), latlon, "f").coords[0] == (116.4, 39.9)
    square = Polygon([(116.3, 39.8), (116.5, 39.8), (116.5, 40.0), (116.3, 40.0)])
    gcj_square = shapely.transform(square, crs.wgs84_to_gcj02)
    back = crs.geometry_to_crs84(gcj_square, crs.resolve_crs("GCJ-02", "f"), "f")
    assert shapely.hausdorff_distance(back, square) < 1e-7
    with pytest.raises(BadParameter) as err:
        crs.geometry_to_crs84(Point(116.4, 39.9), latlon, "bbox")  # 116 is not a latitude
    assert err.value.field == "bbox"


def test_bbox_to_crs84() -> None:
    merc = crs.resolve_crs("EPSG:3857", "bbox-crs")
    minx, miny, maxx, maxy = crs.bbox_to_crs84((12947569.97, 4852872.33, 12958701.9, 4867396.3), merc, "bbox")
    assert (minx, miny) == pytest.approx((116.31, 39.91), abs=1e-7)
    assert maxx == pytest.approx(116.41, abs=1e-6)
    with pytest.raises(BadParameter):
        crs.bbox_to_crs84((0, 0, 1, 91), crs.resolve_crs(None, "bbox-crs"), "bbox")


@pytest.mark.parametrize(
    ("given", "uri"),
    [
        (None, crs.CRS84),
        ("CRS84", crs.CRS84),
        ("http://www.opengis.net/def/crs/EPSG/0/4326", crs.EPSG4326),
        ("EPSG:4490", crs.EPSG4490),
        ("urn:ogc:def:crs:EPSG::3857", crs.EPSG3857),
        ("GCJ-02", crs.GCJ02),
        ("urn:geoshare:def:crs:GCJ-02", crs.GCJ02),
        ("bd-09", crs.BD09),
    ],
)
def test_resolve_crs(given: str | None, uri: str) -> None:
    assert crs.resolve_crs(given, "crs").uri == uri


def test_unknown_crs_names_the_parameter() -> None:
    with pytest.raises(BadParameter) as err:
        crs.resolve_crs("EPSG:2000", "bbox-crs")
    assert err.value.field == "bbox-crs" and "EPSG:2000" in err.value.detail
