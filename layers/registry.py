"""Reading the layer registry (``gs.layer``), filtered by what the reader may see.

Who may see what is decided in ``geoshare.access.policy``; the engine receives the outcome as
plain values (``Visibility``) and turns them into a predicate inside the registry query, so a
layer the reader may not see never leaves the database, and is "not found" like an unknown id.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection, text

from layers.errors import NotFound
from layers.model import LAYER_COLUMNS, LayerInfo


@dataclass(frozen=True)
class Visibility:
    """Which rows of ``gs.layer`` a reader sees.

    ``everything`` for trusted callers (CLI, services); otherwise public layers, shared layers when
    ``department`` is set, the department's own layers, and ``granted`` layer ids (the seam for
    sharing agreements: restricted layers another department may read).
    """

    department: str | None = None
    everything: bool = False
    granted: frozenset[str] = frozenset()

    def predicate(self, alias: str = "l") -> tuple[str, dict[str, Any]]:
        """A SQL boolean over ``gs.layer`` aliased ``alias`` and its bind parameters."""
        sql = (
            f"(CAST(:vis_all AS boolean) OR {alias}.sharing_class = 'public'"
            f" OR (CAST(:vis_dept AS text) IS NOT NULL"
            f" AND ({alias}.sharing_class = 'shared' OR {alias}.department_code = :vis_dept))"
            f" OR {alias}.id = ANY(CAST(:vis_granted AS text[])))"
        )
        params = {
            "vis_all": self.everything,
            "vis_dept": self.department,
            "vis_granted": sorted(self.granted),
        }
        return sql, params

    def allows(self, layer: LayerInfo) -> bool:
        """The same rule as ``predicate``, for a layer already in hand (a cached registry row)."""
        return (
            self.everything
            or layer.sharing_class == "public"
            or (
                self.department is not None
                and (layer.sharing_class == "shared" or layer.department_code == self.department)
            )
            or layer.id in self.granted
        )


def layer_not_found(layer_id: str) -> NotFound:
    """The one answer for an unknown layer and for one the reader may not see."""
    return NotFound(f"layer {layer_id!r} does not exist", field="collectionId")


TRUSTED = Visibility(everything=True)
ANONYMOUS = Visibility()


def redact(layer: LayerInfo, hidden: frozenset[str]) -> LayerInfo:
    """The layer as a reader who may not see ``hidden`` fields knows it: those attributes do not
    exist (so properties, filters, sorting and schemas treat them as unknown names)."""
    if not hidden:
        return layer
    time_hidden = layer.time_field in hidden
    return replace(
        layer,
        attributes=[a for a in layer.attributes if a.name not in hidden],
        restricted_fields=[],
        time_field=None if time_hidden else layer.time_field,
        time_extent=None if time_hidden else layer.time_extent,
    )


def get_layer(conn: Connection, layer_id: str, visibility: Visibility = TRUSTED) -> LayerInfo:
    """One published layer; ``NotFound`` alike for an unknown id and one the reader may not see."""
    where, params = visibility.predicate()
    row = conn.execute(
        text(f"SELECT {LAYER_COLUMNS} FROM gs.layer l WHERE l.id = :id AND {where}"),
        {"id": layer_id, **params},
    ).first()
    if row is None or row.current_version is None:
        raise layer_not_found(layer_id)
    return LayerInfo.from_row(row)


def list_layers(conn: Connection, visibility: Visibility = TRUSTED) -> list[LayerInfo]:
    where, params = visibility.predicate()
    sql = f"SELECT {LAYER_COLUMNS} FROM gs.layer l WHERE l.current_version IS NOT NULL AND {where}"
    sql += " ORDER BY l.id"
    rows = conn.execute(text(sql), params)
    return [LayerInfo.from_row(r) for r in rows]


def layer_owner(conn: Connection, layer_id: str) -> str | None:
    """The owning department of ``layer_id`` whether or not it is published or visible (write checks)."""
    return conn.execute(
        text("SELECT department_code FROM gs.layer WHERE id = :id"), {"id": layer_id}
    ).scalar_one_or_none()
