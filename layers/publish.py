"""Publishing a layer version: validate, load a new table, diff, and swap the registry pointer atomically.

Everything runs in the caller's transaction. Readers follow ``gs.layer.table_name``, which changes
only at commit, so they see the old version or the new one, never a mix; a failure rolls back the
new table with everything else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import orjson
from pyproj import CRS
from sqlalchemy import Connection, text

from layers import storage
from layers.changes import record_changes
from layers.errors import BadParameter, InvalidInput, NotFound
from layers.ingest import DEFAULT_LIMITS, ReadLimits, read_source
from layers.ingest.crs import epsg_code
from layers.model import SHARING_CLASSES, LayerMetadata
from layers.validate import PreparedLayer, prepare

LAYER_ID = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


@dataclass
class PublishResult:
    layer_id: str
    version: int
    feature_count: int
    added: int
    removed: int
    modified: int
    repaired: int
    warnings: list[dict[str, Any]] = field(default_factory=list)  # what the data made doubtful


def report_warnings(source: dict[str, Any], prepared: PreparedLayer) -> list[dict[str, Any]]:
    """The reader's warnings (integers kept as text …) then the validator's (an implausible CRS)."""
    return [*source.get("warnings", []), *prepared.warnings]


def check_layer_id(layer_id: str) -> None:
    if not isinstance(layer_id, str) or not LAYER_ID.match(layer_id):
        raise BadParameter(
            f"layer id {layer_id!r} must start with a lowercase letter and use only a-z, 0-9, '_' and '-' "
            "(at most 63 characters)",
            field="id",
        )


def check_metadata(conn: Connection, metadata: LayerMetadata) -> None:
    if not (metadata.title or "").strip():
        raise InvalidInput("a layer needs a title", field="title")
    if metadata.sharing_class not in SHARING_CLASSES:
        raise InvalidInput(
            f"sharing class {metadata.sharing_class!r} is not one of {', '.join(SHARING_CLASSES)}",
            field="class",
        )
    if metadata.kind not in ("thematic", "base"):
        raise InvalidInput(f"kind {metadata.kind!r} is not 'thematic' or 'base'", field="kind")
    known = conn.execute(
        text("SELECT 1 FROM gs.department WHERE code = :c"), {"c": metadata.department}
    ).first()
    if known is None:
        raise InvalidInput(f"department {metadata.department!r} is not registered", field="department")


def _lock_layer(conn: Connection, layer_id: str, metadata: LayerMetadata) -> Any:
    """Create the registry row if needed and lock it: concurrent publishes of one layer queue here."""
    conn.execute(
        text(
            "INSERT INTO gs.layer (id, title, department_code) VALUES (:id, :title, :dept) "
            "ON CONFLICT (id) DO NOTHING"
        ),
        {"id": layer_id, "title": metadata.title, "dept": metadata.department},
    )
    return conn.execute(
        text("SELECT uid, current_version, table_name, key_field FROM gs.layer WHERE id = :id FOR UPDATE"),
        {"id": layer_id},
    ).one()


def _update_registry(
    conn: Connection,
    layer_id: str,
    version: int,
    table: str,
    layer: PreparedLayer,
    metadata: LayerMetadata,
    source_crs: str,
) -> None:
    conn.execute(
        text(
            """
            UPDATE gs.layer SET
                kind = :kind, title = :title, description = :description, department_code = :department,
                contact = :contact, keywords = :keywords, theme = :theme, sharing_class = :sharing_class,
                restricted_fields = :restricted_fields, update_frequency = :update_frequency,
                source = :source, licence = :licence, source_crs = :source_crs, key_field = :key_field,
                time_field = :time_field, current_version = :version, table_name = :table,
                tile_pyramid = NULL, feature_count = :feature_count, geometry_type = :geometry_type,
                extent = :extent,
                time_extent = CAST(:time_extent AS timestamptz[]), attributes = CAST(:attributes AS jsonb),
                updated_at = now()
            WHERE id = :id
            """
        ),
        {
            "id": layer_id,
            "kind": metadata.kind,
            "title": metadata.title.strip(),
            "description": metadata.description or "",
            "department": metadata.department,
            "contact": metadata.contact,
            "keywords": list(metadata.keywords),
            "theme": metadata.theme,
            "sharing_class": metadata.sharing_class,
            "restricted_fields": list(metadata.restricted_fields),
            "update_frequency": metadata.update_frequency,
            "source": metadata.source,
            "licence": metadata.licence,
            "source_crs": source_crs,
            "key_field": metadata.key_field,
            "time_field": metadata.time_field,
            "version": version,
            "table": table,
            "feature_count": len(layer.geometries),
            "geometry_type": layer.geometry_type,
            "extent": layer.extent,
            "time_extent": layer.time_extent,
            "attributes": orjson.dumps([a.as_json() for a in layer.attributes]).decode(),
        },
    )


def _publish(
    conn: Connection,
    layer_id: str,
    frame: gpd.GeoDataFrame,
    metadata: LayerMetadata,
    *,
    actor: str | None,
    source_name: str | None,
    note: str | None,
    report: dict[str, Any],
) -> PublishResult:
    check_layer_id(layer_id)
    check_metadata(conn, metadata)
    if frame.crs is None:
        raise InvalidInput("the data has no coordinate reference system; pass source_crs", field="source_crs")
    source_crs = f"EPSG:{epsg_code(frame.crs)}"
    if len(frame) == 0:
        raise InvalidInput("the file holds no features", field="file")
    prepared = prepare(frame, metadata, CRS.from_user_input(source_crs))

    current = _lock_layer(conn, layer_id, metadata)
    version = (current.current_version or 0) + 1
    table = storage.table_name(current.uid, version)
    storage.create_table(conn, table, prepared.attributes)
    storage.load(conn, table, prepared)
    storage.index(conn, table, prepared, metadata.key_field)

    count = len(prepared.geometries)
    if current.table_name is None:
        added, removed, modified = count, 0, 0
    else:
        counts = record_changes(
            conn,
            layer_id,
            version,
            table,
            current.table_name,
            new_keyed=metadata.key_field is not None,
            old_keyed=current.key_field is not None,
        )
        added, removed, modified = counts.added, counts.removed, counts.modified
    warnings = report_warnings(report, prepared)
    report = {
        **report,
        "source_crs": source_crs,
        "key_field": metadata.key_field,
        "repaired_features": prepared.repaired[:100],
        "warnings": warnings,
    }
    conn.execute(
        text(
            """
            INSERT INTO gs.layer_version (layer_id, version, table_name, created_by, source_name,
                                          feature_count, added, removed, modified, repaired, note, report)
            VALUES (:id, :version, :table, :actor, :source_name, :count, :added, :removed, :modified,
                    :repaired, :note, CAST(:report AS jsonb))
            """
        ),
        {
            "id": layer_id,
            "version": version,
            "table": table,
            "actor": actor,
            "source_name": source_name,
            "count": count,
            "added": added,
            "removed": removed,
            "modified": modified,
            "repaired": len(prepared.repaired),
            "note": note,
            "report": orjson.dumps(report).decode(),
        },
    )
    _update_registry(conn, layer_id, version, table, prepared, metadata, source_crs)
    return PublishResult(layer_id, version, count, added, removed, modified, len(prepared.repaired), warnings)


def publish_frame(
    conn: Connection,
    layer_id: str,
    frame: gpd.GeoDataFrame,
    metadata: LayerMetadata,
    *,
    actor: str | None = None,
    source_name: str | None = None,
    note: str | None = None,
    report: dict[str, Any] | None = None,
) -> PublishResult:
    """Publish ``frame`` (any CRS with an EPSG code) as the next version of ``layer_id``.

    ``report`` goes into the version record (e.g. how the frame's points were geocoded).
    """
    return _publish(
        conn,
        layer_id,
        frame,
        metadata,
        actor=actor,
        source_name=source_name,
        note=note,
        report={"format": "frame", **(report or {})},
    )


def publish_file(
    conn: Connection,
    layer_id: str,
    path: Path,
    metadata: LayerMetadata,
    *,
    encoding: str | None = None,
    source_crs: str | None = None,
    lon_column: str | None = None,
    lat_column: str | None = None,
    source_layer: str | None = None,
    where: str | None = None,
    actor: str | None = None,
    source_name: str | None = None,
    limits: ReadLimits = DEFAULT_LIMITS,
) -> PublishResult:
    """Read ``path`` (GeoJSON, zipped Shapefile, GeoPackage, CSV, any OGR source) and publish it;
    ``limits`` bound what reading it may cost (``layers.ingest.ReadLimits``)."""
    check_layer_id(layer_id)
    check_metadata(conn, metadata)
    source = read_source(
        Path(path),
        encoding=encoding,
        source_crs=source_crs,
        lon_column=lon_column,
        lat_column=lat_column,
        label=source_name,
        source_layer=source_layer,
        where=where,
        limits=limits,
    )
    return _publish(
        conn,
        layer_id,
        source.frame,
        metadata,
        actor=actor,
        source_name=source_name or Path(path).name,
        note=None,
        report=source.report,
    )


def _layer_tables(conn: Connection, uid: int) -> list[str]:
    return list(
        conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'layerdata' AND tablename ~ :pattern"),
            {"pattern": f"^l{uid}_v[0-9]+(_tiles)?$"},
        ).scalars()
    )


def delete_layer(conn: Connection, layer_id: str) -> None:
    """Drop every data table of the layer and its registry rows (versions and changes cascade)."""
    row = conn.execute(text("SELECT uid FROM gs.layer WHERE id = :id FOR UPDATE"), {"id": layer_id}).first()
    if row is None:
        raise NotFound(f"layer {layer_id!r} does not exist", field="id")
    for table in _layer_tables(conn, row.uid):
        storage.drop(conn, table)
    conn.execute(text("DELETE FROM gs.layer WHERE id = :id"), {"id": layer_id})


def prune_versions(conn: Connection, layer_id: str, keep: int) -> list[int]:
    """Drop the data tables of all but the newest ``keep`` versions; their history rows stay.

    Dense-tile pyramids of every version but the current one go too: only the current version's is
    ever read. Run it after the publish has committed: dropping a table waits for its readers.
    """
    if keep < 1:
        raise BadParameter("at least the current version must be kept", field="keep")
    layer = conn.execute(
        text(
            "SELECT uid, current_version, tile_pyramid->>'table' AS pyramid FROM gs.layer "
            "WHERE id = :id FOR UPDATE"
        ),
        {"id": layer_id},
    ).first()
    if layer is None:
        raise NotFound(f"layer {layer_id!r} does not exist", field="id")
    stale = conn.execute(
        text(
            """
            SELECT version, table_name FROM gs.layer_version
            WHERE layer_id = :id AND table_name IS NOT NULL AND version <> :current
            ORDER BY version DESC OFFSET :skip
            """
        ),
        {"id": layer_id, "current": layer.current_version, "skip": keep - 1},
    ).all()
    for row in stale:
        storage.drop(conn, row.table_name)
    for table in _layer_tables(conn, layer.uid):
        if table.endswith("_tiles") and table != layer.pyramid:
            storage.drop(conn, table)
    if stale:
        conn.execute(
            text(
                "UPDATE gs.layer_version SET table_name = NULL "
                "WHERE layer_id = :id AND version = ANY(:versions)"
            ),
            {"id": layer_id, "versions": [r.version for r in stale]},
        )
    return [r.version for r in stale]
