"""Catalog search over layer metadata: title, description and keywords, Chinese included.

Matching is by case-insensitive substring (``strpos`` on ``lower()``), which works for CJK text
where pg_trgm finds no word boundaries; pg_trgm similarity then only ranks, title hits first.
Every whitespace-separated term must match somewhere.  The registry holds hundreds of rows, so
this scans it; one statement returns the page and the total.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, text

from layers.errors import BadParameter
from layers.model import LAYER_COLUMNS, SHARING_CLASSES, LayerInfo
from layers.registry import TRUSTED, Visibility

MAX_TERMS = 8
MAX_QUERY_CHARS = 200


@dataclass(frozen=True)
class CatalogPage:
    layers: list[LayerInfo]
    number_matched: int


_HAYSTACK = "lower(l.title || ' ' || l.description || ' ' || array_to_string(l.keywords, ' '))"

_SQL_TEMPLATE = f"""
WITH matched AS (
    SELECT l.*,
           CASE WHEN :q = '' THEN 0 ELSE
               (CASE WHEN strpos(lower(l.title), lower(:q)) > 0 THEN 4 ELSE 0 END)
             + (CASE WHEN EXISTS (SELECT 1 FROM unnest(l.keywords) k WHERE lower(k) = lower(:q))
                     THEN 2 ELSE 0 END)
             + similarity(l.title, :q) + word_similarity(lower(:q), {_HAYSTACK})
           END AS rank
    FROM gs.layer l LEFT JOIN gs.department d ON d.code = l.department_code
    WHERE l.current_version IS NOT NULL
      AND (CAST(:department AS text) IS NULL OR l.department_code = :department OR d.name = :department)
      AND (CAST(:theme AS text) IS NULL OR lower(l.theme) = lower(:theme))
      AND (CAST(:class AS text) IS NULL OR l.sharing_class = :class)
      AND (CAST(:bbox AS float8[]) IS NULL OR (l.extent[1] <= (CAST(:bbox AS float8[]))[3]
           AND l.extent[3] >= (CAST(:bbox AS float8[]))[1] AND l.extent[2] <= (CAST(:bbox AS float8[]))[4]
           AND l.extent[4] >= (CAST(:bbox AS float8[]))[2]))
      AND (CAST(:starts AS timestamptz) IS NULL
           OR coalesce(l.time_extent[2], l.time_extent[1], l.updated_at) >= CAST(:starts AS timestamptz))
      AND (CAST(:ends AS timestamptz) IS NULL
           OR coalesce(l.time_extent[1], l.time_extent[2], l.updated_at) <= CAST(:ends AS timestamptz))
      AND {{visible}}
      AND NOT EXISTS (
          SELECT 1 FROM unnest(CAST(:terms AS text[])) t WHERE strpos({_HAYSTACK}, lower(t)) = 0
      )
)
SELECT {", ".join(f"m.{c}" for c in LAYER_COLUMNS.split(", "))}, count(*) OVER () AS total
FROM matched m
ORDER BY m.rank DESC, m.title, m.id
LIMIT :limit OFFSET :offset
"""


def search(
    conn: Connection,
    q: str | None = None,
    *,
    department: str | None = None,
    theme: str | None = None,
    sharing_class: str | None = None,
    limit: int = 20,
    offset: int = 0,
    visibility: Visibility = TRUSTED,
    bbox: tuple[float, float, float, float] | None = None,
    interval: tuple[datetime | None, datetime | None] | None = None,
) -> CatalogPage:
    """Layers matching every term, among those ``visibility`` lets the reader see (others are
    neither listed nor counted); ``bbox`` (lon/lat) meets the layer's extent, ``interval`` its time
    extent or, without one, its last update."""
    query = " ".join((q or "").split())
    if len(query) > MAX_QUERY_CHARS:
        raise BadParameter(f"q is longer than {MAX_QUERY_CHARS} characters", field="q")
    terms = query.split(" ") if query else []
    if len(terms) > MAX_TERMS:
        raise BadParameter(f"q has more than {MAX_TERMS} words", field="q")
    if sharing_class is not None and sharing_class not in SHARING_CLASSES:
        raise BadParameter(f"class must be one of {', '.join(SHARING_CLASSES)}", field="class")
    params = {
        "q": query,
        "terms": terms,
        "department": department or None,
        "theme": theme or None,
        "class": sharing_class,
        "limit": limit,
        "offset": offset,
        "bbox": list(bbox) if bbox else None,
        "starts": interval[0] if interval else None,
        "ends": interval[1] if interval else None,
    }
    visible, vis_params = visibility.predicate("l")
    params.update(vis_params)
    sql = _SQL_TEMPLATE.replace("{visible}", visible)
    rows = conn.execute(text(sql), params).all()
    if rows:
        total = rows[0].total
    elif offset:
        count_sql = f"SELECT count(*) FROM ({sql.replace('LIMIT :limit OFFSET :offset', '')}) s"
        total = conn.execute(text(count_sql), params).scalar_one()
    else:
        total = 0
    return CatalogPage([LayerInfo.from_row(r) for r in rows], int(total))
