"""Roads derived from address points: stable codes and the principal axis through the doors."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely

from geocode.addressdb.importing.reading import MIN_ROAD_M
from layers.errors import InvalidInput


def _name_slot(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest(), "big") % 9999 + 1


def road_codes(district: np.ndarray, name: np.ndarray) -> np.ndarray:
    """4-digit road codes, unique per district and stable: the name's hash slot, and on a collision
    the next free slot, taken in (slot, name) order. The same set of roads always gets the same
    codes, whatever the row order. Unique per district (not only per street) so that community
    code + road code names one road."""
    roads = pd.DataFrame({"district": district, "name": name})
    roads["slot"] = [_name_slot(n) for n in roads["name"]]
    codes = np.empty(len(roads), dtype=object)
    for code, group in roads.sort_values(["district", "slot", "name"]).groupby("district", sort=False):
        if len(group) > 9999:
            raise InvalidInput(
                f"district {code} has more than 9,999 roads; road codes have 4 digits", field="road"
            )
        used: set[int] = set()
        for i, slot in zip(group.index, group["slot"], strict=True):
            while slot in used:
                slot = slot % 9999 + 1
            used.add(slot)
            codes[i] = f"{slot:04d}"
    return codes


@dataclass
class RoadAxes:
    lines: np.ndarray  # LineStrings in metres
    length: np.ndarray
    position: np.ndarray  # per address, 0..1 along its road


def road_axes(road: np.ndarray, x: np.ndarray, y: np.ndarray, door: np.ndarray) -> RoadAxes:
    """Each road as the principal axis through its points, spanning their projections, pointing
    the way door numbers grow; roads shorter than ``MIN_ROAD_M`` are stretched to it."""
    count = np.bincount(road).astype(float)
    cx, cy = np.bincount(road, x) / count, np.bincount(road, y) / count
    dx, dy = x - cx[road], y - cy[road]
    sxx, syy, sxy = np.bincount(road, dx * dx), np.bincount(road, dy * dy), np.bincount(road, dx * dy)
    theta = 0.5 * np.arctan2(2 * sxy, sxx - syy)
    ux, uy = np.cos(theta), np.sin(theta)
    t = dx * ux[road] + dy * uy[road]
    growth = np.bincount(road, t * (door - (np.bincount(road, door) / count)[road]))
    sign = np.where(growth < 0, -1.0, 1.0)
    ux, uy, t = ux * sign, uy * sign, t * sign[road]
    grouped = pd.Series(t).groupby(road)
    lo, hi = grouped.min().to_numpy(), grouped.max().to_numpy()
    short = hi - lo < MIN_ROAD_M
    mid = (lo + hi) / 2
    lo, hi = np.where(short, mid - MIN_ROAD_M / 2, lo), np.where(short, mid + MIN_ROAD_M / 2, hi)
    ends = np.stack(
        [np.column_stack([cx + lo * ux, cy + lo * uy]), np.column_stack([cx + hi * ux, cy + hi * uy])], axis=1
    )
    position = np.clip((t - lo[road]) / (hi - lo)[road], 0.0, 1.0)
    return RoadAxes(shapely.linestrings(ends), hi - lo, position)
