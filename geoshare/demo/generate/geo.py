"""Geometry helpers: the demo is built in UTM zone 50N (metres) and published in WGS84."""

from __future__ import annotations

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry.base import BaseGeometry

UTM_CRS = "EPSG:32650"
_TO_UTM = Transformer.from_crs(4326, 32650, always_xy=True)
_TO_WGS84 = Transformer.from_crs(32650, 4326, always_xy=True)


def _apply(transformer: Transformer, geoms: np.ndarray) -> np.ndarray:
    def move(xy: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geoms, move)


def to_utm(geoms: np.ndarray) -> np.ndarray:
    return _apply(_TO_UTM, np.asarray(geoms, dtype=object))


def to_wgs84(geoms: np.ndarray) -> np.ndarray:
    return _apply(_TO_WGS84, np.asarray(geoms, dtype=object))


def xy_to_wgs84(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return _TO_WGS84.transform(x, y)


def random_points_in(polygon: BaseGeometry, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` uniform points inside ``polygon`` by rejection from its bounding box, as an (n, 2) array."""
    shapely.prepare(polygon)
    xmin, ymin, xmax, ymax = polygon.bounds
    fill = max(polygon.area / ((xmax - xmin) * (ymax - ymin)), 0.05)
    found: list[np.ndarray] = []
    total = 0
    while total < n:
        k = int((n - total) / fill * 1.3) + 8
        pts = np.column_stack([rng.uniform(xmin, xmax, k), rng.uniform(ymin, ymax, k)])
        pts = pts[shapely.contains_xy(polygon, pts[:, 0], pts[:, 1])]
        found.append(pts)
        total += len(pts)
    return np.concatenate(found)[:n]


def polygonal(geom: BaseGeometry) -> shapely.MultiPolygon:
    """The polygon parts of an overlay result (which may carry stray lines or points)."""
    parts = shapely.get_parts(geom)
    polys = [p for p in parts if p.geom_type == "Polygon" and not p.is_empty]
    for p in parts:
        if p.geom_type in ("MultiPolygon", "GeometryCollection"):
            polys.extend(polygonal(p).geoms)
    return shapely.MultiPolygon(polys)


def rectangles(
    cx: np.ndarray, cy: np.ndarray, tx: np.ndarray, ty: np.ndarray, length: np.ndarray, width: np.ndarray
) -> np.ndarray:
    """Rectangles centred on (cx, cy), ``length`` along the unit vector (tx, ty), ``width`` across."""
    nx, ny = -ty, tx
    hl, hw = length / 2, width / 2
    corners = np.empty((len(cx), 5, 2))
    for i, (a, b) in enumerate(((-1, -1), (1, -1), (1, 1), (-1, 1), (-1, -1))):
        corners[:, i, 0] = cx + a * hl * tx + b * hw * nx
        corners[:, i, 1] = cy + a * hl * ty + b * hw * ny
    return shapely.polygons(corners)
