"""Any OGR source as a layer: the real OpenStreetMap extract of central Helsinki (../shared/data/osm).

An OSM file holds several layers (points, lines, multipolygons …): publishing names one and may
filter it with an OGR SQL ``where`` — how the IT office turns OSM into base layers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from layers.errors import InvalidInput
from layers.ingest import read_source

OSM = Path(__file__).resolve().parents[2] / "shared" / "data" / "osm" / "Helsinki.osm.pbf"
pytestmark = pytest.mark.skipif(not OSM.exists(), reason="../shared/data/osm is not beside the project")


def test_one_layer_and_a_filter() -> None:
    roads = read_source(OSM, source_layer="lines", where="highway IS NOT NULL")
    everything = read_source(OSM, source_layer="lines")
    assert roads.format == "osm" and roads.source_crs == "EPSG:4326"
    assert 0 < len(roads.frame) < len(everything.frame)
    assert roads.frame["highway"].notna().all()
    assert set(roads.frame.geometry.geom_type) <= {"LineString", "MultiLineString"}
    buildings = read_source(OSM, source_layer="multipolygons", where="building IS NOT NULL")
    assert buildings.report["dropped_incomplete"] > 0  # ways cut at the extract's edge
    assert buildings.frame.geometry.notna().all() and not buildings.frame.geometry.is_empty.any()
    # central Helsinki
    minx, miny, maxx, maxy = roads.frame.total_bounds
    assert 24.8 < minx < maxx < 25.1 and 60.1 < miny < maxy < 60.3


def test_naming_mistakes_are_the_publishers_to_fix() -> None:
    with pytest.raises(InvalidInput) as several:
        read_source(OSM)
    assert several.value.field == "source_layer" and "lines" in str(several.value)
    with pytest.raises(InvalidInput) as missing:
        read_source(OSM, source_layer="roads")
    assert missing.value.field == "source_layer" and "multipolygons" in str(missing.value)
    with pytest.raises(InvalidInput) as bad:
        read_source(OSM, source_layer="lines", where="highway IS NOT")
    assert bad.value.field == "where"


def test_publish_osm_buildings_as_a_base_layer(client: TestClient, db: Engine, key_headers) -> None:  # noqa: ANN001
    metadata = {
        "id": "osm_buildings",
        "title": "Buildings (OpenStreetMap)",
        "department": "IT",
        "class": "public",
        "kind": "base",
        "source_layer": "multipolygons",
        "where": "building IS NOT NULL",
        "licence": "ODbL 1.0, © OpenStreetMap contributors",
    }
    r = client.post(
        "/layers",
        files={"file": ("Helsinki.osm.pbf", OSM.read_bytes())},
        data={"metadata": json.dumps(metadata)},
        headers=key_headers("IT", "platform_admin"),
    )
    assert r.status_code == 201, r.text
    assert r.json()["feature_count"] > 100
    items = client.get("/collections/osm_buildings/items", params={"limit": 5}).json()
    assert all(f["properties"]["building"] for f in items["features"])
    assert all(f["geometry"]["type"] in ("Polygon", "MultiPolygon") for f in items["features"])
