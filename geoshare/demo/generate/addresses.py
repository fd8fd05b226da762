"""Door addresses (门址) along the roads, compounds (院/小区) behind some doors, and their buildings (楼栋).

Odd numbers on the left of a road, even on the right, growing along the road's direction with
gaps (numbers a geocoder has to interpolate); some doors carry a suffix (甲12号, 12-1号). Each
address knows its position along the road (0..1) and its side.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geocode.addressdb.codes import address_codes
from geoshare.demo.generate.divisions import CITY_CODE, CITY_NAME, PROVINCE_CODE, PROVINCE_NAME, Divisions
from geoshare.demo.generate.geo import UTM_CRS, rectangles
from geoshare.demo.generate.names import COMPOUND_FORMS, COMPOUND_WORDS

DOOR_SPACING_M = {"core": 18.0, "inner": 40.0, "outer": 70.0, "far": 110.0}
SETBACK_M = {"core": 5.0, "inner": 14.0, "outer": 12.0, "far": 10.0}
COMPOUND_SHARE = {"core": 0.10, "inner": 0.18, "outer": 0.12, "far": 0.06}
BUILDINGS = {"core": (2, 6), "inner": (3, 12), "outer": (2, 8), "far": (1, 3)}
FLOORS = {"core": (4, 10), "inner": (6, 28), "outer": (3, 18), "far": (2, 6)}
SUFFIXES = np.array(["甲", "乙", "-1", "-2"])
SUFFIX_SHARE = 0.03


@dataclass
class AddressBook:
    """UTM frames; ``addresses`` holds doors and buildings (``level``), with x, y for reuse."""

    addresses: gpd.GeoDataFrame
    compounds: gpd.GeoDataFrame
    buildings: gpd.GeoDataFrame


def _ring_table(roads: pd.DataFrame, table: dict[str, float | tuple[int, int]]) -> np.ndarray:
    return roads["ring"].map(table).to_numpy()


def _side_doors(roads: pd.DataFrame, per_m: np.ndarray, odd: bool, rng: np.random.Generator) -> pd.DataFrame:
    counts = rng.poisson(roads["length_m"].to_numpy() * per_m)
    road_ix = np.repeat(np.arange(len(roads)), counts)
    gaps = 1 + (rng.random(len(road_ix)) < 0.15) * rng.integers(1, 3, len(road_ix))
    total = np.cumsum(gaps)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    before = (
        np.repeat(
            np.where(
                counts > 0,
                total[np.minimum(first, len(total) - 1)] - gaps[np.minimum(first, len(total) - 1)],
                0,
            ),
            counts,
        )
        if len(total)
        else np.zeros(0, dtype=np.int64)
    )
    slot = total - before - 1
    slots = np.zeros(len(roads), dtype=np.int64)
    np.maximum.at(slots, road_ix, slot + 1)
    position = (slot + 0.5 + rng.uniform(-0.3, 0.3, len(slot))) / slots[road_ix]
    return pd.DataFrame(
        {
            "road_ix": road_ix,
            "door_number": 2 * slot + (1 if odd else 2),
            "side": "L" if odd else "R",
            "road_position": np.clip(position, 0.0005, 0.9995),
        }
    )


def _add_suffixed(doors: pd.DataFrame, roads: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    pick = rng.random(len(doors)) < SUFFIX_SHARE
    extra = doors[pick].copy()
    extra["door_suffix"] = rng.choice(SUFFIXES, len(extra), p=[0.4, 0.2, 0.3, 0.1])
    step = 4.0 / roads["length_m"].to_numpy()[extra["road_ix"].to_numpy()]
    extra["road_position"] = np.clip(extra["road_position"] + step, 0.0005, 0.9995)
    doors["door_suffix"] = ""
    return pd.concat([doors, extra], ignore_index=True)


def _door_text(number: pd.Series, suffix: pd.Series) -> pd.Series:
    n = number.astype(str)
    text = n + "号"
    dash = suffix.str.startswith("-")
    text[dash] = n[dash] + suffix[dash] + "号"
    stem = suffix.isin(["甲", "乙"])
    text[stem] = suffix[stem] + n[stem] + "号"
    return text


def _locate(doors: pd.DataFrame, roads: pd.DataFrame) -> None:
    r = roads.iloc[doors["road_ix"].to_numpy()]
    length = r["length_m"].to_numpy()
    tx, ty = (
        (r["x1"].to_numpy() - r["x0"].to_numpy()) / length,
        (r["y1"].to_numpy() - r["y0"].to_numpy()) / length,
    )
    sign = np.where(doors["side"].to_numpy() == "L", 1.0, -1.0)
    setback = r["ring"].map(SETBACK_M).to_numpy()
    pos = doors["road_position"].to_numpy() * length
    doors["tx"], doors["ty"] = tx, ty
    doors["nx"], doors["ny"] = -ty * sign, tx * sign  # away from the road, on the door's side
    doors["x"] = r["x0"].to_numpy() + pos * tx + doors["nx"] * setback
    doors["y"] = r["y0"].to_numpy() + pos * ty + doors["ny"] * setback


def _assign_communities(doors: pd.DataFrame, roads: pd.DataFrame, divisions: Divisions) -> None:
    """The community a door stands in; always one of its road's street, so the admin path agrees."""
    comms = divisions.communities
    road_street = roads["street_code"].to_numpy()[doors["road_ix"].to_numpy()]
    points = shapely.points(doors["x"].to_numpy(), doors["y"].to_numpy())
    tree = shapely.STRtree(comms.geometry.to_numpy())
    hit_door, hit_comm = tree.query(points, predicate="intersects")
    community = np.full(len(doors), -1)
    community[hit_door[::-1]] = hit_comm[::-1]  # the first hit wins
    comm_street = comms["street_code"].to_numpy()
    wrong = (community < 0) | (comm_street[np.maximum(community, 0)] != road_street)
    for street in np.unique(road_street[wrong]):
        members = np.flatnonzero(comm_street == street)
        these = np.flatnonzero(wrong & (road_street == street))
        near = shapely.STRtree(comms.geometry.to_numpy()[members]).query_nearest(
            points[these], all_matches=False
        )
        community[these[near[0]]] = members[near[1]]
    doors["community_ix"] = community


def _compounds(doors: pd.DataFrame, roads: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    road_class = roads["road_class"].to_numpy()[doors["road_ix"].to_numpy()]
    ring = doors["ring"].to_numpy()
    share = pd.Series(ring).map(COMPOUND_SHARE).to_numpy()
    chosen = (
        (rng.random(len(doors)) < share) & (road_class != "胡同") & (doors["door_suffix"].to_numpy() == "")
    )
    c = doors[chosen].copy()
    n = len(c)
    c["compound_id"] = np.arange(1, n + 1)
    named = rng.random(n) < 0.6
    words = np.array(COMPOUND_WORDS)[rng.integers(0, len(COMPOUND_WORDS), n)]
    forms = np.array(COMPOUND_FORMS)[rng.integers(0, len(COMPOUND_FORMS), n)]
    c["kind"] = np.where(named, "小区", "院")
    c["compound"] = np.where(
        named, words.astype(object) + forms.astype(object), (c["road"] + c["door_text"] + "院").to_numpy()
    )
    spacing = (
        pd.Series(ring[chosen]).map({"core": 230.0, "inner": 420.0, "outer": 650.0, "far": 800.0}).to_numpy()
    )
    c["width"] = rng.uniform(70, 180, n)
    c["depth"] = np.minimum(rng.uniform(70, 170, n), 0.45 * spacing)
    lo_hi = np.array([BUILDINGS[r] for r in ring[chosen]]).reshape(-1, 2)
    c["n_buildings"] = rng.integers(lo_hi[:, 0], lo_hi[:, 1] + 1) if n else np.zeros(0, dtype=int)
    return c


def _buildings(c: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    counts = c["n_buildings"].to_numpy()
    ix = np.repeat(np.arange(len(c)), counts)
    number = np.arange(len(ix)) - np.repeat(np.cumsum(counts) - counts, counts)
    cols = np.ceil(np.sqrt(counts)).astype(int)[ix]
    rows = np.ceil(counts[ix] / cols).astype(int)
    col, row = number % cols, number // cols
    width, depth = c["width"].to_numpy()[ix], c["depth"].to_numpy()[ix]
    u = -width / 2 + (col + 0.5) * width / cols
    v = (row + 0.5) * depth / rows
    b = c.iloc[ix].reset_index(drop=True)
    b["x"] = b["x"] + u * b["tx"] + v * b["nx"]
    b["y"] = b["y"] + u * b["ty"] + v * b["ny"]
    b["building_number"] = number + 1
    b["b_len"], b["b_wid"] = 0.7 * width / cols, np.minimum(14.0, 0.5 * depth / rows)
    floors = np.array([FLOORS[r] for r in b["ring"]]).reshape(-1, 2)
    b["floors"] = rng.integers(floors[:, 0], floors[:, 1] + 1) if len(b) else np.zeros(0, dtype=int)
    b["units"] = rng.integers(1, 7, len(b))
    b["rooms_per_floor"] = rng.integers(2, 5, len(b))
    return b


def generate_addresses(
    divisions: Divisions, roads: gpd.GeoDataFrame, scale: int, rng: np.random.Generator
) -> AddressBook:
    """About ``scale`` address points (doors plus buildings)."""
    ring = roads["ring"]
    per_m = 1 / _ring_table(roads, DOOR_SPACING_M)
    mean_b = ring.map({k: (lo + hi) / 2 for k, (lo, hi) in BUILDINGS.items()}).to_numpy()
    points_per_door = 1 + _ring_table(roads, COMPOUND_SHARE) * mean_b
    expected = 2 * (roads["length_m"].to_numpy() * per_m * points_per_door).sum() * (1 + SUFFIX_SHARE)
    per_m = per_m * scale / expected
    doors = pd.concat(
        [_side_doors(roads, per_m, True, rng), _side_doors(roads, per_m, False, rng)], ignore_index=True
    )
    doors = _add_suffixed(doors, roads, rng)
    doors = doors.sort_values(["road_ix", "road_position"], kind="stable").reset_index(drop=True)
    r = roads.iloc[doors["road_ix"].to_numpy()]
    for col, src in (
        ("road_id", "id"),
        ("road", "name"),
        ("road_code", "road_code"),
        ("ring", "ring"),
        ("district_code", "district_code"),
        ("district", "district"),
        ("street_code", "street_code"),
        ("street", "street_name"),
    ):
        doors[col] = r[src].to_numpy()
    doors["door_text"] = _door_text(doors["door_number"], doors["door_suffix"])
    _locate(doors, roads)
    _assign_communities(doors, roads, divisions)
    comms = divisions.communities
    doors["community_code"] = comms["code"].to_numpy()[doors["community_ix"].to_numpy()]
    doors["community"] = comms["short_name"].to_numpy()[doors["community_ix"].to_numpy()]

    compounds = _compounds(doors, roads, rng)
    buildings = _buildings(compounds, rng)
    doors = doors.merge(
        compounds[["road_id", "door_number", "door_suffix", "compound_id", "compound", "kind"]],
        on=["road_id", "door_number", "door_suffix"],
        how="left",
    )
    door_full = PROVINCE_NAME + doors["district"] + doors["street"] + doors["road"] + doors["door_text"]
    doors["full_address"] = door_full + np.where(
        doors["kind"] == "院", "院", np.where(doors["kind"] == "小区", doors["compound"], "")
    )
    doors["level"] = "door"
    b_full = (
        PROVINCE_NAME
        + buildings["district"]
        + buildings["street"]
        + buildings["road"]
        + buildings["door_text"]
        + np.where(buildings["kind"] == "院", "院", buildings["compound"])
        + buildings["building_number"].astype(str)
        + "号楼"
    )
    buildings["full_address"] = b_full
    buildings["level"] = "building"
    buildings["building_id"] = buildings["compound_id"] * 1000 + buildings["building_number"]
    points = pd.concat([doors, buildings], ignore_index=True)
    points["address_code"] = address_codes(
        points["community_code"],
        points["road_code"],
        points["door_number"],
        points["door_suffix"],
        points["building_number"],
    )
    points["province_code"], points["province"] = PROVINCE_CODE, PROVINCE_NAME
    points["city_code"], points["city"] = CITY_CODE, CITY_NAME
    for col in ("compound_id", "building_id", "building_number", "floors", "units", "rooms_per_floor"):
        points[col] = points[col].astype("Int64")
    addresses = gpd.GeoDataFrame(points, geometry=shapely.points(points["x"], points["y"]), crs=UTM_CRS)

    compound_frame = gpd.GeoDataFrame(
        compounds[
            [
                "compound_id",
                "compound",
                "kind",
                "road_id",
                "door_number",
                "district_code",
                "street_code",
                "community_code",
                "district",
                "street",
                "road",
                "door_text",
            ]
        ].rename(columns={"compound_id": "id", "compound": "name"}),
        geometry=rectangles(
            compounds["x"].to_numpy() + compounds["nx"].to_numpy() * compounds["depth"].to_numpy() / 2,
            compounds["y"].to_numpy() + compounds["ny"].to_numpy() * compounds["depth"].to_numpy() / 2,
            compounds["tx"].to_numpy(),
            compounds["ty"].to_numpy(),
            compounds["width"].to_numpy(),
            compounds["depth"].to_numpy(),
        ),
        crs=UTM_CRS,
    )
    building_frame = gpd.GeoDataFrame(
        buildings[
            [
                "building_id",
                "compound_id",
                "building_number",
                "floors",
                "units",
                "rooms_per_floor",
                "compound",
                "full_address",
                "district",
            ]
        ]
        .rename(columns={"building_id": "id", "building_number": "number"})
        .assign(name=buildings["building_number"].astype(str) + "号楼"),
        geometry=rectangles(
            buildings["x"].to_numpy(),
            buildings["y"].to_numpy(),
            buildings["tx"].to_numpy(),
            buildings["ty"].to_numpy(),
            buildings["b_len"].to_numpy(),
            buildings["b_wid"].to_numpy(),
        ),
        crs=UTM_CRS,
    )
    return AddressBook(addresses, compound_frame, building_frame)
