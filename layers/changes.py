"""The change log: written per version against the previous one, read back as a collapsed feed.

Identity is the declared key (``fkey``) when both versions declare one — then a changed ``_hash``
means *modified*. Otherwise identity is the content (``_hash``) and only additions and removals exist,
counted as multisets so duplicate features are neither lost nor double-counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text

from layers.errors import BadParameter
from layers.model import LayerInfo
from layers.storage import qualified


@dataclass(frozen=True)
class ChangeCounts:
    added: int
    removed: int
    modified: int


_BY_KEY = """
WITH diff AS (
    SELECT coalesce(n.fkey, o.fkey) AS feature_key,
           CASE WHEN o.fkey IS NULL THEN 'A' WHEN n.fkey IS NULL THEN 'D' ELSE 'M' END AS change
    FROM {new} n FULL JOIN {old} o ON o.fkey = n.fkey
    WHERE o.fkey IS NULL OR n.fkey IS NULL OR o._hash <> n._hash
), logged AS (
    INSERT INTO gs.layer_change (layer_id, version, feature_key, change)
    SELECT :layer_id, :version, feature_key, change FROM diff
    RETURNING change
)
SELECT count(*) FILTER (WHERE change = 'A') AS added,
       count(*) FILTER (WHERE change = 'D') AS removed,
       count(*) FILTER (WHERE change = 'M') AS modified
FROM logged
"""

_BY_CONTENT = """
WITH n AS (SELECT {new_identity} AS k, count(*) AS c FROM {new} GROUP BY 1),
     o AS (SELECT {old_identity} AS k, count(*) AS c FROM {old} GROUP BY 1),
diff AS (
    SELECT coalesce(n.k, o.k) AS feature_key, coalesce(n.c, 0) - coalesce(o.c, 0) AS delta
    FROM n FULL JOIN o ON o.k = n.k
    WHERE n.k IS NULL OR o.k IS NULL OR n.c <> o.c
), logged AS (
    INSERT INTO gs.layer_change (layer_id, version, feature_key, change)
    SELECT :layer_id, :version, feature_key, CASE WHEN delta > 0 THEN 'A' ELSE 'D' END FROM diff
)
SELECT coalesce(sum(greatest(delta, 0)), 0) AS added,
       coalesce(sum(greatest(-delta, 0)), 0) AS removed,
       0 AS modified
FROM diff
"""


def identity_column(keyed: bool) -> str:
    """The column that names a feature in the change log."""
    return "fkey" if keyed else "_hash"


def record_changes(
    conn: Connection,
    layer_id: str,
    version: int,
    new_table: str,
    old_table: str,
    *,
    new_keyed: bool,
    old_keyed: bool,
) -> ChangeCounts:
    if new_keyed and old_keyed:
        sql = _BY_KEY.format(new=qualified(new_table), old=qualified(old_table))
    else:
        sql = _BY_CONTENT.format(
            new=qualified(new_table),
            old=qualified(old_table),
            new_identity=identity_column(new_keyed),
            old_identity=identity_column(old_keyed),
        )
    row = conn.execute(text(sql), {"layer_id": layer_id, "version": version}).one()
    return ChangeCounts(added=int(row.added), removed=int(row.removed), modified=int(row.modified))


# ---------------------------------------------------------------- the change feed


@dataclass(frozen=True)
class Change:
    id: str  # the feature key in the change log: the key value, or the content hash for unkeyed layers
    change: str  # added | modified | removed
    feature: dict[str, Any] | None  # current GeoJSON feature for added/modified


@dataclass(frozen=True)
class ChangePage:
    since: int
    current_version: int
    changes: list[Change]
    next_after: str | None  # keyset cursor for the next page


def _feature_sql(layer: LayerInfo, alias: str, hidden: frozenset[str]) -> str:
    """A GeoJSON Feature built in SQL; json_build_object takes at most 100 arguments, hence the chunks."""
    pairs = [f"{_literal(a.name)}, {alias}.{a.column}" for a in layer.attributes if a.name not in hidden]
    if len(pairs) <= 50:
        properties = f"json_build_object({', '.join(pairs)})"
    else:
        chunks = [pairs[i : i + 50] for i in range(0, len(pairs), 50)]
        properties = "(" + " || ".join(f"jsonb_build_object({', '.join(c)})" for c in chunks) + ")::json"
    return (
        f"json_build_object('type', 'Feature', 'id', {alias}.fkey, "
        f"'geometry', ST_AsGeoJSON({alias}.geom)::json, 'properties', {properties})"
    )


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


_COLLAPSED = """
WITH touched AS (
    SELECT feature_key,
           (array_agg(change ORDER BY version))[1] AS first_change,
           (array_agg(change ORDER BY version DESC))[1] AS last_change
    FROM gs.layer_change
    WHERE layer_id = :layer_id AND version > :since AND (CAST(:after AS text) IS NULL OR feature_key > :after)
    GROUP BY feature_key
), net AS (
    SELECT feature_key,
           CASE WHEN first_change = 'A' AND last_change <> 'D' THEN 'added'
                WHEN first_change <> 'A' AND last_change = 'D' THEN 'removed'
                WHEN first_change <> 'A' THEN 'modified' END AS change
    FROM touched
), page AS (
    SELECT feature_key, change FROM net n
    WHERE change IS NOT NULL AND (CAST(:area AS bytea) IS NULL OR (change <> 'removed' AND EXISTS (
        SELECT 1 FROM {table} t
        WHERE t.{identity} = n.feature_key AND ST_Intersects(t.geom, (SELECT ST_GeomFromWKB(:area, 4326))))))
    ORDER BY feature_key LIMIT :limit
)
SELECT p.feature_key, p.change, f.feature
FROM page p
LEFT JOIN LATERAL (
    SELECT {feature} AS feature FROM {table} t
    WHERE p.change <> 'removed' AND t.{identity} = p.feature_key
    ORDER BY t.fid LIMIT 1
) f ON true
ORDER BY p.feature_key
"""

_EVERYTHING = """
SELECT DISTINCT ON (t.{identity}) t.{identity} AS feature_key, 'added' AS change, {feature} AS feature
FROM {table} t
WHERE (CAST(:after AS text) IS NULL OR t.{identity} > :after)
  AND (CAST(:area AS bytea) IS NULL OR ST_Intersects(t.geom, (SELECT ST_GeomFromWKB(:area, 4326))))
ORDER BY t.{identity}, t.fid
LIMIT :limit
"""


def changes_since(
    conn: Connection,
    layer: LayerInfo,
    since: int,
    limit: int = 1000,
    after: str | None = None,
    *,
    hidden: frozenset[str] | None = None,
    area: bytes | None = None,
) -> ChangePage:
    """Net changes after version ``since``, one entry per feature key, in key order.

    Collapsed over versions: the last change wins and a feature added then removed disappears.
    ``since=0`` lists every current feature as added (first versions log no rows). The log outlives
    pruned data tables, so any ``since`` back to 0 answers. ``hidden`` fields are left out of the
    features; None hides the layer's restricted fields (the safe default), an empty set hides none.
    ``area`` (WKB, EPSG:4326) limits the feed to features now inside it; removals are then left
    out, because where a removed feature was is no longer known and its key is data too.
    """
    current = layer.current_version or 0
    if not isinstance(since, int) or since < 0 or since > current:
        raise BadParameter(f"since must be between 0 and the current version {current}", field="since")
    if limit < 1:
        raise BadParameter("limit must be at least 1", field="limit")
    hidden = frozenset(layer.restricted_fields) if hidden is None else hidden
    identity = identity_column(layer.key_field is not None)
    feature = _feature_sql(layer, "t", hidden)
    sql = _EVERYTHING if since == 0 else _COLLAPSED
    rows = conn.execute(
        text(sql.format(feature=feature, table=layer.qualified_table, identity=identity)),
        {"layer_id": layer.id, "since": since, "after": after, "limit": limit + 1, "area": area},
    ).all()
    more = len(rows) > limit
    rows = rows[:limit]
    changes = [Change(r.feature_key, r.change, r.feature) for r in rows]
    return ChangePage(since, current, changes, rows[-1].feature_key if more else None)
