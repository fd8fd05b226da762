"""The ``addr.place`` table: replace one source's places, stamp the version workers watch.

A source (``demo``, ``osm-helsinki``, a file's name) is replaced as a whole inside the caller's
transaction, so a re-import is idempotent and never touches another source's rows. Division codes
are filled from the address database's polygons in the same transaction (one spatial join), so a
place is filed under the district it lies in, whatever the source wrote.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable

from sqlalchemy import Connection, text

from geocode.places.model import PlaceRecord, check_category

VERSION_KEY = "places"
_COLUMNS = (
    "source", "source_id", "name", "aliases", "category", "code", "address", "district_code", "weight",
    "located_by", "tags", "geom",
)  # fmt: skip


def _row(source: str, r: PlaceRecord) -> tuple[object, ...]:
    check_category(r.category)
    point = None
    if r.lon is not None and r.lat is not None:
        point = f"SRID=4326;POINT({r.lon!r} {r.lat!r})"
    aliases = r.names()[1:]
    tags = json.dumps(r.tags, ensure_ascii=False)
    return (
        source, r.source_id, r.name, aliases, r.category, r.code, r.address, r.district_code, float(r.weight),
        r.located_by, tags, point,
    )  # fmt: skip


def replace_places(conn: Connection, source: str, records: Iterable[PlaceRecord]) -> int:
    """Replace the places of ``source`` with ``records``; returns how many were written."""
    rows = [_row(source, r) for r in records]
    conn.execute(text("DELETE FROM addr.place WHERE source = :s"), {"s": source})
    cursor = conn.connection.driver_connection.cursor()
    with cursor.copy(f"COPY addr.place ({', '.join(_COLUMNS)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    conn.execute(
        text(
            """
            UPDATE addr.place p
            SET district_code = coalesce(d.code[1], p.district_code), street_code = d.code[2]
            FROM (
                SELECT p2.id, ARRAY[
                    (SELECT code FROM addr.division WHERE level = 3 AND ST_Intersects(geom, p2.geom) LIMIT 1),
                    (SELECT code FROM addr.division WHERE level = 4 AND ST_Intersects(geom, p2.geom) LIMIT 1)
                ] AS code
                FROM addr.place p2 WHERE p2.source = :s AND p2.geom IS NOT NULL
            ) d
            WHERE p.id = d.id
            """
        ),
        {"s": source},
    )
    stamp_version(conn)
    return len(rows)


def stamp_version(conn: Connection) -> str:
    """A new ``places`` version: every worker rebuilds its place index once the caller commits."""
    version = uuid.uuid4().hex
    counts = dict(conn.execute(text("SELECT source, count(*) FROM addr.place GROUP BY source")).all())
    conn.execute(
        text(
            "INSERT INTO gs.setting (key, value) VALUES (:k, CAST(:v AS jsonb)) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()"
        ),
        {"k": VERSION_KEY, "v": json.dumps({"version": version, "counts": counts})},
    )
    return version


def current_version(conn: Connection) -> str:
    row = conn.execute(
        text("SELECT value->>'version' FROM gs.setting WHERE key = :k"), {"k": VERSION_KEY}
    ).first()
    return row[0] if row and row[0] else "unversioned"
