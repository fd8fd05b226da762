"""Divisions: real district polygons and NBS codes; generated street and community polygons.

Streets tile their district and communities tile their street exactly: each is a Voronoi cell of
seed points (relaxed twice towards the cell centroids for rounder shapes) clipped to its parent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

import geocode
from geoshare.demo.generate.geo import UTM_CRS, polygonal, random_points_in, to_utm
from geoshare.demo.generate.names import short_community

DEMO_DATA = Path(__file__).resolve().parents[1] / "data"
ADDRESS_DATA = Path(geocode.__file__).resolve().parent / "data"
DISTRICTS_FILE = DEMO_DATA / "beijing_districts_wgs84.geojson"
NBS_FILE = ADDRESS_DATA / "beijing_divisions_nbs2023.csv"

PROVINCE_CODE, PROVINCE_NAME = "11", "北京市"
CITY_CODE, CITY_NAME = "1101", "北京市"  # NBS calls it 市辖区; everyone else says 北京市

# Urban rings drive road spacing and address density.
RINGS: dict[str, str] = {
    "110101": "core",
    "110102": "core",
    "110105": "inner",
    "110106": "inner",
    "110107": "inner",
    "110108": "inner",
    "110111": "outer",
    "110112": "outer",
    "110113": "outer",
    "110114": "outer",
    "110115": "outer",
    "110109": "far",
    "110116": "far",
    "110117": "far",
    "110118": "far",
    "110119": "far",
}


@dataclass
class Divisions:
    """All frames in UTM metres; ``boundary`` is the city outline."""

    boundary: BaseGeometry
    districts: gpd.GeoDataFrame  # code, name, ring, geometry
    streets: gpd.GeoDataFrame  # code, name, kind, district_code, district, ring, geometry
    communities: gpd.GeoDataFrame  # code, name, short_name, street_code, district_code, geometry


def read_nbs() -> pd.DataFrame:
    return pd.read_csv(NBS_FILE, dtype=str)


def read_boundaries() -> gpd.GeoDataFrame:
    with DISTRICTS_FILE.open(encoding="utf-8") as f:
        features = json.load(f)["features"]
    frame = gpd.GeoDataFrame.from_features(features, crs=4326)
    frame["geometry"] = to_utm(frame.geometry.to_numpy())
    return frame.set_crs(UTM_CRS, allow_override=True)


def tile(polygon: BaseGeometry, n: int, rng: np.random.Generator, relax: int = 2) -> list[BaseGeometry]:
    """``n`` cells that exactly tile ``polygon``."""
    if n == 1:
        return [polygonal(polygon)]
    seeds = random_points_in(polygon, n, rng)
    frame = shapely.box(*polygon.bounds).buffer(1000)
    for step in range(relax + 1):
        diagram = shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=frame, ordered=True)
        cells = shapely.intersection(shapely.get_parts(diagram), polygon)
        if step == relax:
            break
        centres = shapely.centroid(cells)
        inside = shapely.contains(cells, centres)
        centres = np.where(inside, centres, shapely.point_on_surface(cells))
        seeds = shapely.get_coordinates(centres)
    parts = [polygonal(c) for c in cells]
    if any(p.is_empty for p in parts):  # a cell lost to a degenerate relaxation: start afresh
        return tile(polygon, n, rng, relax=0)
    return parts


def generate_divisions(rng: np.random.Generator) -> Divisions:
    nbs = read_nbs()
    bounds = read_boundaries()
    boundary = bounds.loc[bounds["level"] == "city", "geometry"].iloc[0]
    districts = bounds[bounds["level"] == "district"].rename(columns={"adcode": "code"})[
        ["code", "name", "geometry"]
    ]
    districts = districts.sort_values("code").reset_index(drop=True)
    districts["ring"] = districts["code"].map(RINGS)

    street_rows = nbs[nbs["level"] == "4"].sort_values("code")
    community_rows = nbs[nbs["level"] == "5"].sort_values("code")

    streets: list[dict] = []
    for district in districts.itertuples():
        rows = street_rows[street_rows["district_code"] == district.code]
        for row, cell in zip(rows.itertuples(), tile(district.geometry, len(rows), rng), strict=True):
            streets.append(
                {
                    "code": row.code,
                    "name": row.name,
                    "district_code": district.code,
                    "district": district.name,
                    "ring": district.ring,
                    "geometry": cell,
                }
            )
    street_frame = gpd.GeoDataFrame(streets, geometry="geometry", crs=UTM_CRS)
    street_frame["kind"] = (
        street_frame["name"].str.extract(r"(街道|地区|镇|乡)$", expand=False).fillna("街道")
    )

    communities: list[dict] = []
    for street in street_frame.itertuples():
        rows = community_rows[community_rows["street_code"] == street.code]
        if rows.empty:
            continue
        for row, cell in zip(rows.itertuples(), tile(street.geometry, len(rows), rng), strict=True):
            communities.append(
                {
                    "code": row.code,
                    "name": row.name,
                    "short_name": short_community(row.name),
                    "street_code": street.code,
                    "street": street.name,
                    "district_code": street.district_code,
                    "district": street.district,
                    "geometry": cell,
                }
            )
    community_frame = gpd.GeoDataFrame(communities, geometry="geometry", crs=UTM_CRS)
    return Divisions(boundary, districts, street_frame, community_frame)
