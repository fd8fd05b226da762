"""Places from OpenStreetMap: the named nodes of a ``.osm.pbf`` (GDAL's OSM driver, layer ``points``).

OSM's tags say what a node is; the mapping below keeps the kinds a city's place names cover and
files the rest as ``other``. Aliases come from the name variants OSM keeps (``name:zh``,
``alt_name``, ``official_name`` …), the code is ``node/<id>``, and the address is assembled from
``addr:*`` when present.
"""

from __future__ import annotations

import re
from pathlib import Path

from geocode.places.model import PlaceRecord
from layers.errors import InvalidInput

_TAG = re.compile(r'"((?:[^"\\]|\\.)*)"=>"((?:[^"\\]|\\.)*)"')
ALIAS_TAGS = ("name:zh", "name:zh-Hans", "name:en", "name:fi", "name:sv", "alt_name", "official_name",
              "short_name", "old_name", "loc_name")  # fmt: skip
CATEGORY_TAGS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("aeroway", ("aerodrome", "terminal"), "airport"),
    ("amenity", ("hospital", "clinic"), "hospital"),
    ("healthcare", ("hospital", "clinic"), "hospital"),
    ("amenity", ("school", "university", "college", "kindergarten"), "school"),
    ("amenity", ("townhall", "courthouse", "police", "fire_station", "embassy"), "government"),
    ("office", ("government",), "government"),
    ("railway", ("station", "halt"), "station"),
    ("public_transport", ("station",), "station"),
    ("leisure", ("park", "garden", "nature_reserve"), "park"),
    ("tourism", ("attraction", "museum", "viewpoint", "artwork", "gallery"), "landmark"),
    ("historic", ("*",), "landmark"),
    ("building", ("*",), "building"),
    ("place", ("neighbourhood", "quarter", "suburb"), "residential"),
)
WEIGHTS = {"airport": 0.9, "station": 0.8, "landmark": 0.7, "hospital": 0.7, "government": 0.7, "school": 0.6,
           "park": 0.6}  # fmt: skip


def parse_tags(other_tags: object) -> dict[str, str]:
    """GDAL's ``other_tags`` (an hstore literal) as a dict."""
    if not isinstance(other_tags, str) or not other_tags:
        return {}  # None, or NaN where pandas had no value
    return {k.replace('\\"', '"'): v.replace('\\"', '"') for k, v in _TAG.findall(other_tags)}


def category_of(tags: dict[str, str]) -> str:
    for key, values, category in CATEGORY_TAGS:
        value = tags.get(key)
        if value and ("*" in values or value in values):
            return category
    return "other"


def _address(tags: dict[str, str]) -> str | None:
    street, number = tags.get("addr:street"), tags.get("addr:housenumber")
    city = tags.get("addr:city")
    if not street:
        return None
    return ", ".join(p for p in (f"{street} {number}" if number else street, city) if p)


def read_osm(path: Path, layer: str = "points") -> list[PlaceRecord]:
    """Every named feature of ``layer`` (points: nodes) as a place, at its WGS84 point."""
    import pyogrio
    from pyogrio.errors import DataLayerError, DataSourceError, FieldError

    try:
        frame = pyogrio.read_dataframe(path, layer=layer, where="name IS NOT NULL")
    except (DataSourceError, DataLayerError, FieldError) as exc:
        raise InvalidInput(f"cannot read {path.name} as OpenStreetMap: {exc}", field="file") from None
    out: list[PlaceRecord] = []
    columns = set(frame.columns)
    for row in frame.itertuples(index=False):
        geom = row.geometry
        name = str(row.name).strip()
        if geom is None or geom.is_empty or not name:
            continue
        tags = parse_tags(getattr(row, "other_tags", None))
        for column in ("place", "man_made", "highway"):
            value = getattr(row, column, None) if column in columns else None
            if isinstance(value, str) and value:
                tags.setdefault(column, value)
        point = geom if geom.geom_type == "Point" else geom.representative_point()
        category = category_of(tags)
        osm_id = str(row.osm_id)
        out.append(
            PlaceRecord(
                source_id=f"node/{osm_id}" if layer == "points" else f"{layer}/{osm_id}",
                name=name,
                category=category,
                aliases=[tags[t] for t in ALIAS_TAGS if tags.get(t)],
                code=f"node/{osm_id}" if layer == "points" else osm_id,
                address=_address(tags),
                lon=float(point.x),
                lat=float(point.y),
                weight=WEIGHTS.get(category, 0.5),
                located_by="source",
                tags={k: v for k, v in tags.items() if not k.startswith("name:")},
            )
        )
    return out
