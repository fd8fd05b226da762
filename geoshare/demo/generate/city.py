"""The whole demo city from (scale, seed): address-database frames and layer frames, all WGS84."""

from __future__ import annotations

from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd

from geocode.addressdb.load import ADDRESSES, ROADS
from geoshare.demo.generate.addresses import generate_addresses
from geoshare.demo.generate.divisions import (
    CITY_CODE,
    CITY_NAME,
    PROVINCE_CODE,
    PROVINCE_NAME,
    Divisions,
    generate_divisions,
)
from geoshare.demo.generate.geo import to_wgs84
from geoshare.demo.generate.layers import (
    base_layers,
    emergency_shelters,
    hazard_sources,
    market_entities,
    pipelines,
)
from geoshare.demo.generate.roads import generate_roads
from geoshare.demo.generate.seed import MAX_SCALE, MIN_SCALE, density_factor, make_rng
from layers.errors import BadParameter


@dataclass
class City:
    divisions: gpd.GeoDataFrame
    roads: gpd.GeoDataFrame
    compounds: gpd.GeoDataFrame
    buildings: gpd.GeoDataFrame
    addresses: gpd.GeoDataFrame
    layers: dict[str, gpd.GeoDataFrame] = field(default_factory=dict)

    def address_tables(self) -> dict[str, gpd.GeoDataFrame]:
        return {
            "divisions": self.divisions,
            "roads": self.roads,
            "compounds": self.compounds,
            "buildings": self.buildings,
            "addresses": self.addresses,
        }


def _wgs84(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    out = gpd.GeoDataFrame(
        frame.drop(columns=frame.geometry.name), geometry=to_wgs84(frame.geometry.to_numpy()), crs=4326
    )
    return out.rename_geometry("geom")


def division_table(divisions: Divisions) -> gpd.GeoDataFrame:
    """Levels 1..5 with their full path, ready for ``addr.division``."""
    d, s, c = divisions.districts, divisions.streets, divisions.communities
    rows: list[dict] = [
        {
            "code": PROVINCE_CODE,
            "level": 1,
            "name": PROVINCE_NAME,
            "short_name": PROVINCE_NAME,
            "parent_code": None,
            "path_codes": [PROVINCE_CODE],
            "path_names": [PROVINCE_NAME],
            "geometry": divisions.boundary,
        },
        {
            "code": CITY_CODE,
            "level": 2,
            "name": CITY_NAME,
            "short_name": CITY_NAME,
            "parent_code": PROVINCE_CODE,
            "path_codes": [PROVINCE_CODE, CITY_CODE],
            "path_names": [PROVINCE_NAME, CITY_NAME],
            "geometry": divisions.boundary,
        },
    ]
    top_codes, top_names = [PROVINCE_CODE, CITY_CODE], [PROVINCE_NAME, CITY_NAME]
    for r in d.itertuples():
        rows.append(
            {
                "code": r.code,
                "level": 3,
                "name": r.name,
                "short_name": r.name,
                "parent_code": CITY_CODE,
                "path_codes": [*top_codes, r.code],
                "path_names": [*top_names, r.name],
                "geometry": r.geometry,
            }
        )
    for r in s.itertuples():
        rows.append(
            {
                "code": r.code,
                "level": 4,
                "name": r.name,
                "short_name": r.name,
                "parent_code": r.district_code,
                "path_codes": [*top_codes, r.district_code, r.code],
                "path_names": [*top_names, r.district, r.name],
                "geometry": r.geometry,
            }
        )
    for r in c.itertuples():
        rows.append(
            {
                "code": r.code,
                "level": 5,
                "name": r.name,
                "short_name": r.short_name,
                "parent_code": r.street_code,
                "path_codes": [*top_codes, r.district_code, r.street_code, r.code],
                "path_names": [*top_names, r.district, r.street, r.short_name],
                "geometry": r.geometry,
            }
        )
    frame = gpd.GeoDataFrame(rows, geometry="geometry", crs=d.crs)
    # 北京市 once, not twice: the municipality is its own city
    frame["full_name"] = frame["path_names"].map(lambda p: "".join(p[1:]) if len(p) > 1 else p[0])
    return _wgs84(frame)


def generate_city(scale: int, seed: int) -> City:
    if not MIN_SCALE <= scale <= MAX_SCALE:
        raise BadParameter(f"scale must be within {MIN_SCALE}..{MAX_SCALE}", field="scale")
    rng = make_rng(seed)
    divisions = generate_divisions(rng)
    roads = generate_roads(divisions, density_factor(scale), rng)
    book = generate_addresses(divisions, roads, scale, rng)
    layers = {
        "market_entities": market_entities(book, max(scale // 5, 100), rng),  # ≥ 50,000 geocoded
        "emergency_shelters": emergency_shelters(book, max(scale // 1000, 20), rng),
        "hazard_sources": hazard_sources(book, max(scale // 2000, 20), rng),
        "pipelines": pipelines(roads, max(scale // 8, 200), rng),
        **base_layers(divisions, roads, book),
    }
    road_table = roads.rename(columns={"street_name": "street"})
    # the loader's own column list: the demo cannot drift from what the address database takes
    addresses = book.addresses[[*ADDRESSES.required, *ADDRESSES.optional, "geometry"]]
    return City(
        divisions=division_table(divisions),
        roads=_wgs84(road_table[[*ROADS.required, "geometry"]]),
        compounds=_wgs84(
            book.compounds[
                [
                    "id",
                    "name",
                    "kind",
                    "road_id",
                    "door_number",
                    "district_code",
                    "street_code",
                    "community_code",
                    "geometry",
                ]
            ]
        ),
        buildings=_wgs84(
            book.buildings[
                ["id", "compound_id", "number", "name", "floors", "units", "rooms_per_floor", "geometry"]
            ]
        ),
        addresses=_wgs84(addresses),
        layers=layers,
    )


def frames_equal(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """Same columns, values and geometries (bitwise): the determinism check."""
    return a.shape == b.shape and bool(np.all(a.columns == b.columns)) and a.equals(b)
