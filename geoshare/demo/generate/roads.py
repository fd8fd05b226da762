"""The road network: a rotated grid per street/town, clipped to it, with messy real-city names.

Roads run west→east or south→north (door numbers grow that way). Names come from the street's
place word (东华门大街, 马坡三街), and then get messed up as in a real city: common names reused in
many districts (建设路), roads named after other districts (朝阳路 in 通州区), and hutongs
(胡同, 条, 夹道) in the old centre.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geoshare.demo.generate.divisions import Divisions
from geoshare.demo.generate.geo import UTM_CRS
from geoshare.demo.generate.names import (
    COMMON_ROADS,
    EW_SUFFIXES,
    HUTONG_FORMS,
    HUTONG_PREFIXES,
    HUTONG_STEMS,
    NS_SUFFIXES,
    cn_number,
    stem,
)

SPACING_M = {"core": 230.0, "inner": 420.0, "outer": 650.0, "far": 800.0}
GRID_HALF_SIZE_M = {"core": 1e9, "inner": 2600.0, "outer": 1500.0, "far": 1000.0}
TILT_DEG = {"core": 2.0, "inner": 12.0, "outer": 25.0, "far": 35.0}
MIN_ROAD_M = 120.0
CORE_HUTONG_SHARE = 0.6
# Roads named after another district, guaranteed somewhere outside it (朝阳路 in 通州区).
FORCED_FOREIGN = {"110112": "朝阳路", "110101": "朝阳门北街", "110106": "海淀路"}


def _street_grid(polygon: shapely.Geometry, ring: str, factor: float, rng: np.random.Generator) -> list[dict]:
    spacing = SPACING_M[ring] * factor
    centre = shapely.point_on_surface(polygon)
    xmin, ymin, xmax, ymax = polygon.bounds
    half = min(0.5 * max(xmax - xmin, ymax - ymin) * 1.05, GRID_HALF_SIZE_M[ring] * min(factor, 1.5))
    angle = np.deg2rad(rng.uniform(-TILT_DEG[ring], TILT_DEG[ring]))
    ux, uy = np.cos(angle), np.sin(angle)  # west→east axis
    vx, vy = -uy, ux  # south→north axis
    offsets = np.arange(-half + rng.uniform(0, spacing), half, spacing)
    roads: list[dict] = []
    for axis, (ax, ay, bx, by) in (("EW", (ux, uy, vx, vy)), ("NS", (vx, vy, ux, uy))):
        # lines along (ax, ay), stacked along (bx, by)
        sx = centre.x + offsets * bx - half * ax
        sy = centre.y + offsets * by - half * ay
        lines = shapely.linestrings(
            np.stack(
                [np.column_stack([sx, sy]), np.column_stack([sx + 2 * half * ax, sy + 2 * half * ay])], axis=1
            )
        )
        clipped = shapely.intersection(lines, polygon)
        for k, geom in enumerate(clipped):
            parts = [p for p in shapely.get_parts(geom) if p.geom_type == "LineString"]
            if not parts:
                continue
            longest = max(parts, key=lambda p: p.length)
            if longest.length < MIN_ROAD_M:
                continue
            (x0, y0), (x1, y1) = longest.coords[0], longest.coords[-1]
            if (x1 - x0) * ax + (y1 - y0) * ay < 0:
                x0, y0, x1, y1 = x1, y1, x0, y0
            roads.append(
                {"axis": axis, "rank": abs(k - len(offsets) // 2), "x0": x0, "y0": y0, "x1": x1, "y1": y1}
            )
    return roads


def _base_names(frame: pd.DataFrame) -> np.ndarray:
    names = np.empty(len(frame), dtype=object)
    for (_street, axis), group in frame.groupby(["street_name", "axis"], sort=False):
        suffixes = EW_SUFFIXES if axis == "EW" else NS_SUFFIXES
        place = stem(_street)
        order = np.argsort(group["rank"].to_numpy(), kind="stable")
        for i, pos in enumerate(order):
            suffix = suffixes[i] if i < len(suffixes) else f"{cn_number(i % 99 + 1)}号路"
            names[group.index[pos]] = place + suffix
    return names


def _hutong_names(n: int, rng: np.random.Generator) -> list[str]:
    pool = [p + s + f for s in HUTONG_STEMS for p in HUTONG_PREFIXES for f in HUTONG_FORMS]
    return [pool[i] for i in rng.choice(len(pool), size=n, replace=False)]


def _mess_up_names(frame: pd.DataFrame, districts: pd.DataFrame, rng: np.random.Generator) -> None:
    district_names = dict(zip(districts["code"], districts["name"], strict=True))
    rings = dict(zip(districts["code"], districts["ring"], strict=True))
    for code, group in frame.groupby("district_code", sort=True):
        idx = group.index.to_numpy()
        free = rng.permutation(idx[frame.loc[idx, "road_class"].to_numpy() != "主干路"])
        used = 0
        if rings[code] == "core":
            n_hutong = int(len(free) * CORE_HUTONG_SHARE)
            take = free[:n_hutong]
            frame.loc[take, "name"] = _hutong_names(n_hutong, rng)
            frame.loc[take, "road_class"] = "胡同"
            used = n_hutong
        n_common = min(len(COMMON_ROADS), max(3, len(idx) // 25))
        common = ["建设路", "人民路"] + [
            r for r in rng.permutation(COMMON_ROADS).tolist() if r not in ("建设路", "人民路")
        ]
        take = free[used : used + n_common]
        frame.loc[take, "name"] = common[: len(take)]
        used += len(take)
        others = [n for c, n in district_names.items() if c != code]
        foreign = [
            stem(n.removesuffix("区")) + rng.choice(["路", "大街", "北路", "南路"])
            for n in rng.choice(others, size=2, replace=False)
        ]
        if code in FORCED_FOREIGN:
            foreign[0] = FORCED_FOREIGN[code]
        take = free[used : used + len(foreign)]
        frame.loc[take, "name"] = foreign[: len(take)]


def _shorten_hutongs(frame: pd.DataFrame, rng: np.random.Generator) -> None:
    """Hutongs are alleys of a few hundred metres, not avenues: keep a random stretch of the line."""
    h = frame.index[frame["road_class"] == "胡同"]
    x0, y0, x1, y1 = (frame.loc[h, c].to_numpy() for c in ("x0", "y0", "x1", "y1"))
    length = np.hypot(x1 - x0, y1 - y0)
    keep = np.minimum(length, rng.uniform(250, 900, len(h)))
    start = rng.uniform(0, 1, len(h)) * (length - keep) / length
    end = start + keep / length
    frame.loc[h, "x0"], frame.loc[h, "y0"] = x0 + start * (x1 - x0), y0 + start * (y1 - y0)
    frame.loc[h, "x1"], frame.loc[h, "y1"] = x0 + end * (x1 - x0), y0 + end * (y1 - y0)


def _dedupe_within_district(frame: pd.DataFrame) -> None:
    dup_rank = frame.groupby(["district_code", "name"]).cumcount().to_numpy()
    repeat = dup_rank > 0
    frame.loc[repeat, "name"] = [
        f"{n}{cn_number(int(r) + 1)}巷"
        for n, r in zip(frame.loc[repeat, "name"], dup_rank[repeat], strict=True)
    ]


def generate_roads(divisions: Divisions, factor: float, rng: np.random.Generator) -> gpd.GeoDataFrame:
    """Roads in UTM with id, road_code, name, district/street codes, road_class, length_m, ring, ends."""
    rows: list[dict] = []
    for street in divisions.streets.itertuples():
        for road in _street_grid(street.geometry, street.ring, factor, rng):
            road.update(
                street_code=street.code,
                street_name=street.name,
                district_code=street.district_code,
                district=street.district,
                ring=street.ring,
            )
            rows.append(road)
    frame = pd.DataFrame(rows)
    frame["road_code"] = (frame.groupby("street_code").cumcount() + 1).map("{:04d}".format)
    frame["id"] = frame["street_code"].astype(np.int64) * 10_000 + frame["road_code"].astype(np.int64)
    frame["road_class"] = np.select(
        [frame["rank"] % 4 == 0, frame["rank"] % 2 == 0], ["主干路", "次干路"], "支路"
    )
    frame["name"] = _base_names(frame)
    _mess_up_names(frame, divisions.districts, rng)
    _dedupe_within_district(frame)
    _shorten_hutongs(frame, rng)
    dx, dy = frame["x1"] - frame["x0"], frame["y1"] - frame["y0"]
    frame["length_m"] = np.hypot(dx, dy)
    geoms = shapely.linestrings(
        np.stack([frame[["x0", "y0"]].to_numpy(), frame[["x1", "y1"]].to_numpy()], axis=1)
    )
    return gpd.GeoDataFrame(frame.drop(columns=["rank"]), geometry=geoms, crs=UTM_CRS)
