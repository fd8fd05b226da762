"""Publishing as one unit of work: a transaction per publish, then pruning old data tables.

Pruning runs in its own transaction after the publish commits, so readers still on the replaced
version are never blocked by the publish itself.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import Engine

from geoshare.access import policy
from geoshare.access.identity import Principal
from geoshare.settings import Settings
from layers.changes import ChangePage, changes_since
from layers.ingest import DEFAULT_LIMITS, ReadLimits
from layers.ingest.limits import MiB
from layers.model import LayerMetadata
from layers.publish import PublishResult, delete_layer, prune_versions, publish_file
from layers.registry import TRUSTED, get_layer
from layers.versions import VersionInfo, list_versions

log = logging.getLogger("geoshare.publishing")

UPLOAD_MAX_RATIO = 100.0  # expanded : compressed, for each archive member …
UPLOAD_RATIO_FLOOR = 16 * MiB  # … once it is past this size


def upload_limits(settings: Settings) -> ReadLimits:
    """What reading an HTTP upload may cost: never more data than the upload limit lets in, nor than
    ``upload_data_max_bytes`` once expanded (an archive's members, or the loose file): it is read
    whole, about three times its size as a frame, so this rather than the upload limit bounds a
    worker's memory; larger layers go through the CLI (trusted, unbounded)."""
    return ReadLimits(
        max_bytes=min(settings.upload_max_bytes, settings.upload_data_max_bytes),
        max_ratio=UPLOAD_MAX_RATIO,
        ratio_floor=UPLOAD_RATIO_FLOOR,
    )


def publish(
    engine: Engine,
    settings: Settings,
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
    """Publish ``path`` in one transaction; ``limits``: ``upload_limits`` for uploads, the engine's
    defaults (bombs refused, size unbounded) for the trusted CLI."""
    with engine.begin() as conn:
        result = publish_file(
            conn,
            layer_id,
            path,
            metadata,
            encoding=encoding,
            source_crs=source_crs,
            lon_column=lon_column,
            lat_column=lat_column,
            source_layer=source_layer,
            where=where,
            actor=actor,
            source_name=source_name,
            limits=limits,
        )
    prune(engine, settings, layer_id)
    return result


def prune(engine: Engine, settings: Settings, layer_id: str) -> None:
    """Best effort: a failed prune leaves extra tables behind, never a broken layer."""
    try:
        with engine.begin() as conn:
            dropped = prune_versions(conn, layer_id, max(1, settings.versions_kept))
        if dropped:
            log.info("layer %s: dropped data of versions %s", layer_id, dropped)
    except Exception:  # noqa: BLE001 - the publish itself already succeeded
        log.exception("pruning old versions of layer %s failed", layer_id)


def delete(engine: Engine, layer_id: str) -> None:
    with engine.begin() as conn:
        delete_layer(conn, layer_id)


def versions(engine: Engine, layer_id: str, who: Principal | None = None) -> list[VersionInfo]:
    """``who`` None: trusted callers (CLI); otherwise only a layer ``who`` may read."""
    with engine.connect() as conn:
        return list_versions(conn, layer_id, policy.visibility(who) if who else TRUSTED)


def changes(
    engine: Engine,
    layer_id: str,
    since: int,
    limit: int,
    after: str | None = None,
    who: Principal | None = None,
) -> ChangePage:
    """Read the registry row and the feed in one snapshot, so a concurrent publish cannot split them."""
    with engine.connect() as conn, conn.begin():
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        layer = get_layer(conn, layer_id, policy.visibility(who) if who else TRUSTED)
        hidden = policy.hidden_fields(who, layer) if who else None
        area = policy.area(who, layer) if who else None
        return changes_since(conn, layer, since, limit, after, hidden=hidden, area=area)
