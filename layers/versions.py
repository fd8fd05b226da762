"""Version history of a layer (``gs.layer_version``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from layers.errors import NotFound
from layers.registry import TRUSTED, Visibility


@dataclass(frozen=True)
class VersionInfo:
    version: int
    created_at: datetime
    created_by: str | None
    source_name: str | None
    feature_count: int
    added: int
    removed: int
    modified: int
    repaired: int
    note: str | None
    current: bool
    data_kept: bool  # False once pruned: the history row stays, the features are gone
    report: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["created_at"] = self.created_at.isoformat()
        return out


def list_versions(conn: Connection, layer_id: str, visibility: Visibility = TRUSTED) -> list[VersionInfo]:
    """Newest first; NotFound for an unknown layer and for one ``visibility`` hides."""
    where, params = visibility.predicate("l")
    rows = conn.execute(
        text(
            f"""
            SELECT l.current_version, v.version, v.created_at, v.created_by, v.source_name, v.feature_count,
                   v.added, v.removed, v.modified, v.repaired, v.note, v.table_name, v.report
            FROM gs.layer l LEFT JOIN gs.layer_version v ON v.layer_id = l.id
            WHERE l.id = :id AND {where}
            ORDER BY v.version DESC
            """
        ),
        {"id": layer_id, **params},
    ).all()
    if not rows or rows[0].version is None:
        raise NotFound(f"layer {layer_id!r} does not exist", field="id")
    return [
        VersionInfo(
            version=r.version,
            created_at=r.created_at,
            created_by=r.created_by,
            source_name=r.source_name,
            feature_count=r.feature_count,
            added=r.added,
            removed=r.removed,
            modified=r.modified,
            repaired=r.repaired,
            note=r.note,
            current=r.version == r.current_version,
            data_kept=r.table_name is not None,
            report=r.report or {},
        )
        for r in rows
    ]
