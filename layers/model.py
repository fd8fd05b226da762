"""The contract between storage and queries.

A layer is one row of ``gs.layer``; its current features live in
``layerdata.l{uid}_v{version}`` (``LayerInfo.table_name``) with columns:

* ``fid bigint PRIMARY KEY`` — 1-based feature number in source order
* ``fkey text NOT NULL UNIQUE`` — the feature's stable key: the value of ``key_field`` when the
  layer declares one, otherwise ``fid`` as text; it is the OGC featureId
* ``geom geometry(Geometry, 4326) NOT NULL`` — GiST index; valid, CRS84 (lon, lat)
* ``_hash text`` — md5 of attributes + geometry, used to tell modified features between versions
* one column per attribute, named by ``Attribute.column`` (``a1``, ``a2`` …, so any source
  field name, Chinese included, is safe) and typed by ``Attribute.type``; every filterable
  attribute gets a btree index where the layer is large.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

AttrType = Literal["string", "integer", "number", "boolean", "date", "datetime"]
SharingClass = Literal["public", "shared", "restricted"]
SHARING_CLASSES: tuple[str, ...] = ("public", "shared", "restricted")

SQL_TYPES: dict[str, str] = {
    "string": "text",
    "integer": "bigint",
    "number": "double precision",
    "boolean": "boolean",
    "date": "date",
    "datetime": "timestamptz",
}


@dataclass(frozen=True)
class Attribute:
    name: str  # as in the source and in the API
    column: str  # physical column in the data table
    type: AttrType

    def as_json(self) -> dict[str, str]:
        return {"name": self.name, "column": self.column, "type": self.type}


@dataclass
class LayerMetadata:
    """What a publisher says about a layer (everything but the data)."""

    title: str
    department: str
    description: str = ""
    contact: str | None = None
    keywords: list[str] = field(default_factory=list)
    theme: str | None = None
    sharing_class: SharingClass = "shared"
    restricted_fields: list[str] = field(default_factory=list)
    update_frequency: str | None = None
    source: str | None = None
    licence: str | None = None
    key_field: str | None = None
    time_field: str | None = None
    kind: Literal["thematic", "base"] = "thematic"


@dataclass(frozen=True)
class TilePyramid:
    """A layer version's pre-rendered dense tiles (see ``layers.tiles.pyramid``): which requests
    they answer is decided by how they were cut."""

    table: str  # in schema layerdata
    version: int
    tms_ids: tuple[str, ...]
    attributes: tuple[str, ...]  # the properties of every tile, in order
    feature_limit: int
    min_features: int  # tiles with at least this many features were rendered
    tiles: int
    bytes: int
    seconds: float

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> TilePyramid:
        return cls(
            table=doc["table"],
            version=int(doc["version"]),
            tms_ids=tuple(doc["tms_ids"]),
            attributes=tuple(doc["attributes"]),
            feature_limit=int(doc["feature_limit"]),
            min_features=int(doc["min_features"]),
            tiles=int(doc["tiles"]),
            bytes=int(doc["bytes"]),
            seconds=float(doc["seconds"]),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "version": self.version,
            "tms_ids": list(self.tms_ids),
            "attributes": list(self.attributes),
            "feature_limit": self.feature_limit,
            "min_features": self.min_features,
            "tiles": self.tiles,
            "bytes": self.bytes,
            "seconds": self.seconds,
        }


@dataclass(frozen=True)
class LayerInfo:
    """A published layer as readers see it."""

    uid: int
    id: str
    kind: str
    title: str
    description: str
    department_code: str
    contact: str | None
    keywords: list[str]
    theme: str | None
    sharing_class: str
    restricted_fields: list[str]
    update_frequency: str | None
    source: str | None
    licence: str | None
    source_crs: str | None
    key_field: str | None
    time_field: str | None
    current_version: int | None
    table_name: str | None
    feature_count: int
    geometry_type: str | None
    extent: list[float] | None
    time_extent: list[datetime | None] | None
    attributes: list[Attribute]
    created_at: datetime
    updated_at: datetime
    tile_pyramid: TilePyramid | None = None  # the current version's dense tiles, once rendered

    @classmethod
    def from_row(cls, row: Any) -> LayerInfo:
        m = dict(row._mapping)
        m["attributes"] = [Attribute(**a) for a in (m.get("attributes") or [])]
        pyramid = m.get("tile_pyramid")
        m["tile_pyramid"] = TilePyramid.from_json(pyramid) if pyramid else None
        return cls(**{k: m[k] for k in cls.__dataclass_fields__})

    def attribute(self, name: str) -> Attribute | None:
        for a in self.attributes:
            if a.name == name:
                return a
        return None

    @property
    def qualified_table(self) -> str:
        if not self.table_name:
            raise ValueError(f"layer {self.id} has no published version")
        return f'layerdata."{self.table_name}"'


LAYER_COLUMNS = ", ".join(LayerInfo.__dataclass_fields__)
