"""Benchmark data for the tile and access benchmarks: points, streets and buildings over Beijing.

Generated with vectorised numpy/shapely (seconds, not minutes) and published through the real
publish path once; a later run reuses the layers when their sizes match. Rows are stored in the
order generated, which is spatially random (as an upload of a departmental register would be), so
neither server gets a table clustered for it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import Engine, create_engine, text

from benchmarks.features import BEIJING, make_points

DEPARTMENT = "bench"
#: full-size feature counts per kind (the issue's 1,000,000 / 200,000 / 300,000)
FULL_COUNTS = {"points": 1_000_000, "lines": 200_000, "polygons": 300_000}
_M_PER_DEG_LAT = 111_320.0
_M_PER_DEG_LON = 85_390.0  # at 40°N
_ROW = text(
    "SELECT table_name, feature_count, attributes, sharing_class, tile_pyramid FROM gs.layer WHERE id = :id"
)


@dataclass(frozen=True)
class BenchLayer:
    kind: str  # points | lines | polygons
    id: str  # layer id (the OGC collection id)
    table: str  # layerdata table (tipg's collection is layerdata.<table>)
    columns: dict[str, str]  # API attribute name -> stored column
    count: int


def _centres(rng: np.random.Generator, n: int) -> np.ndarray:
    """Start points clustered like a city (80% near 40 centres), as ``make_points`` draws them."""
    centres = rng.uniform([116.2, 39.8], [116.6, 40.1], size=(40, 2))
    k = int(n * 0.8)
    clustered = centres[rng.integers(0, len(centres), k)] + rng.normal(0, 0.03, size=(k, 2))
    uniform = rng.uniform(BEIJING[:2], BEIJING[2:], size=(n - k, 2))
    xy = np.vstack([clustered, uniform])
    rng.shuffle(xy)
    return np.clip(xy, np.add(BEIJING[:2], 0.01), np.subtract(BEIJING[2:], 0.01))


def make_lines(n: int, seed: int = 17) -> gpd.GeoDataFrame:
    """Street-like polylines: 5–20 vertices, 30–150 m segments, gently turning, sometimes at right angles."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(5, 21, n)
    total = int(counts.sum())
    line_of = np.repeat(np.arange(n), counts)
    first = np.r_[0, np.cumsum(counts)[:-1]]
    heading = rng.uniform(0, 2 * np.pi, n)[line_of]
    turns = rng.normal(0, 0.15, total) + np.where(
        rng.random(total) < 0.08, rng.choice([-1, 1], total) * np.pi / 2, 0
    )
    turns[first] = 0
    # a turn applies from its vertex on: cumulative within each line
    cum = np.cumsum(turns)
    cum -= np.repeat(cum[first], counts)
    heading = heading + cum
    step = rng.uniform(30, 150, total)
    dx = np.cos(heading) * step / _M_PER_DEG_LON
    dy = np.sin(heading) * step / _M_PER_DEG_LAT
    dx[first], dy[first] = 0, 0
    x, y = np.cumsum(dx), np.cumsum(dy)
    x -= np.repeat(x[first], counts)
    y -= np.repeat(y[first], counts)
    start = _centres(rng, n)
    coords = np.column_stack([x + start[line_of, 0], y + start[line_of, 1]])
    geoms = shapely.linestrings(coords, indices=line_of)
    grades = np.array(["快速路", "主干路", "次干路", "支路"])
    frame = pd.DataFrame(
        {
            "编号": np.arange(1, n + 1),
            "名称": [f"道路{i:06d}" for i in range(1, n + 1)],
            "等级": grades[rng.choice(4, n, p=[0.05, 0.15, 0.3, 0.5])],
            "车道数": rng.integers(1, 9, n),
            "长度": np.round(np.bincount(line_of, weights=step) - step[first], 1),
        }
    )
    return gpd.GeoDataFrame(frame, geometry=geoms, crs="EPSG:4326")


def make_polygons(n: int, seed: int = 23) -> gpd.GeoDataFrame:
    """Building-like footprints: rotated rectangles 8–60 m a side."""
    rng = np.random.default_rng(seed)
    centre = _centres(rng, n)
    w = rng.uniform(8, 60, n)
    h = rng.uniform(8, 60, n)
    angle = rng.uniform(0, np.pi / 2, n)
    corners = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5], [-0.5, -0.5]])
    local = corners[None, :, :] * np.stack([w, h], axis=1)[:, None, :]  # (n, 5, 2) metres
    cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
    ex = local[:, :, 0] * cos - local[:, :, 1] * sin
    ny = local[:, :, 0] * sin + local[:, :, 1] * cos
    coords = np.stack([centre[:, :1] + ex / _M_PER_DEG_LON, centre[:, 1:] + ny / _M_PER_DEG_LAT], axis=2)
    uses = np.array(["住宅", "办公", "商业", "工业", "教育", "医疗", "公共"])
    frame = pd.DataFrame(
        {
            "编号": np.arange(1, n + 1),
            "名称": [f"建筑{i:06d}" for i in range(1, n + 1)],
            "用途": uses[rng.integers(0, len(uses), n)],
            "层数": rng.integers(1, 40, n),
            "面积": np.round(w * h, 1),
        }
    )
    return gpd.GeoDataFrame(frame, geometry=shapely.polygons(coords), crs="EPSG:4326")


def _frame(kind: str, n: int) -> gpd.GeoDataFrame:
    if kind == "points":
        return make_points(n, seed=31)
    if kind == "lines":
        return make_lines(n)
    return make_polygons(n)


_TITLES = {"points": "基准企业点", "lines": "基准道路线", "polygons": "基准建筑面"}


def layer_id(kind: str, suffix: str = "") -> str:
    return f"bench_tiles_{kind}{suffix}"


def ensure_layers(url: str, scale: float = 1.0, suffix: str = "") -> dict[str, BenchLayer]:
    """Publish the three layers (``scale`` x the full counts) unless already there at that size;
    the points layer is (re)set public, as an access benchmark may have reclassified it."""
    from geoshare.services.departments import ensure_department
    from layers.model import LayerMetadata
    from layers.publish import delete_layer, publish_frame

    eng = create_engine(url)
    out: dict[str, BenchLayer] = {}
    for kind, full in FULL_COUNTS.items():
        lid, n = layer_id(kind, suffix), max(1000, int(full * scale))
        with eng.connect() as conn:
            row = conn.execute(_ROW, {"id": lid}).first()
        if row is None or row.feature_count != n:
            t0 = time.perf_counter()
            frame = _frame(kind, n)
            with eng.begin() as conn:
                ensure_department(conn, DEPARTMENT, "基准测试")
                if row is not None:
                    delete_layer(conn, lid)
                publish_frame(
                    conn,
                    lid,
                    frame,
                    LayerMetadata(
                        title=_TITLES[kind], department=DEPARTMENT, sharing_class="public", key_field="编号"
                    ),
                    actor="benchmark",
                )
            with eng.connect() as conn:
                row = conn.execute(_ROW, {"id": lid}).first()
            with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text(f'VACUUM ANALYZE layerdata."{row.table_name}"'))
            print(f"published {lid}: {n} features in {time.perf_counter() - t0:.1f}s", flush=True)
        elif row.sharing_class != "public":
            set_sharing_class(eng, lid, "public")
        if row.tile_pyramid is None:
            build_pyramid(url, lid)
        columns = {a["name"]: a["column"] for a in row.attributes}
        out[kind] = BenchLayer(kind, lid, row.table_name, columns, n)
    eng.dispose()
    return out


def build_pyramid(url: str, lid: str) -> None:
    """Render the layer's dense tiles as a publish does (the service's default settings)."""
    from geoshare.services import tile_pyramids
    from geoshare.settings import Settings

    eng = create_engine(url)
    t0 = time.perf_counter()
    pyramid = tile_pyramids.build(eng, Settings(database_url=url), lid)
    eng.dispose()
    if pyramid is not None:
        print(
            f"{lid}: {pyramid.tiles} dense tiles ({pyramid.bytes / 1e6:.0f} MB) rendered in "
            f"{time.perf_counter() - t0:.1f}s",
            flush=True,
        )


def set_sharing_class(eng: Engine, lid: str, sharing_class: str) -> None:
    """Reclassify a layer in place (same table, same version); workers' layer caches hear of it."""
    with eng.begin() as conn:
        conn.execute(
            text("UPDATE gs.layer SET sharing_class = :c WHERE id = :id"), {"c": sharing_class, "id": lid}
        )


def audit_log_rows(eng: Engine) -> int:
    """Rows in the audit log (append-only): the difference over a run shows auditing was at work."""
    with eng.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM gs.audit_log")).scalar_one())
