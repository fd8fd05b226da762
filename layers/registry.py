"""Reading the layer registry (``gs.layer``)."""

from __future__ import annotations

from sqlalchemy import Connection, text

from layers.errors import NotFound
from layers.model import LAYER_COLUMNS, LayerInfo


def get_layer(conn: Connection, layer_id: str) -> LayerInfo:
    row = conn.execute(text(f"SELECT {LAYER_COLUMNS} FROM gs.layer WHERE id = :id"), {"id": layer_id}).first()
    if row is None or row.current_version is None:
        raise NotFound(f"layer {layer_id!r} does not exist", field="collectionId")
    return LayerInfo.from_row(row)


def list_layers(conn: Connection) -> list[LayerInfo]:
    rows = conn.execute(
        text(f"SELECT {LAYER_COLUMNS} FROM gs.layer WHERE current_version IS NOT NULL ORDER BY id")
    )
    return [LayerInfo.from_row(r) for r in rows]
