"""Test layers written straight to the storage contract of ``layers.model`` (no publish engine).

``make_layer`` creates the department if missing, the ``gs.layer`` row and the data table
``layerdata.l{uid}_v{version}`` with fid, fkey, geom (4326, GiST), _hash and a1..aN.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Engine, text

from layers.model import SQL_TYPES, Attribute


def make_layer(
    engine: Engine,
    layer_id: str,
    features: Iterable[tuple[BaseGeometry, dict[str, Any]]],
    attributes: list[tuple[str, str]],
    *,
    key_field: str | None = None,
    time_field: str | None = None,
    sharing_class: str = "public",
    department: str = "TEST",
    department_name: str = "测试部门",
    title: str | None = None,
    description: str = "",
    keywords: list[str] | None = None,
    theme: str | None = None,
    update_frequency: str | None = None,
    version: int = 1,
) -> Attribute | None:
    attrs = [Attribute(name, f"a{i}", typ) for i, (name, typ) in enumerate(attributes, start=1)]  # type: ignore[arg-type]
    rows = list(features)
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO gs.department (code, name) VALUES (:c, :n) ON CONFLICT (code) DO NOTHING"),
            {"c": department, "n": department_name},
        )
        uid = conn.execute(
            text(
                """INSERT INTO gs.layer (id, title, description, department_code, keywords, theme,
                       sharing_class, update_frequency, key_field, time_field, attributes)
                   VALUES (:id, :title, :description, :dep, :keywords, :theme, :sharing, :freq,
                       :key_field, :time_field, CAST(:attributes AS jsonb))
                   RETURNING uid"""
            ),
            {
                "id": layer_id,
                "title": title or layer_id,
                "description": description,
                "dep": department,
                "keywords": keywords or [],
                "theme": theme,
                "sharing": sharing_class,
                "freq": update_frequency,
                "key_field": key_field,
                "time_field": time_field,
                "attributes": json.dumps([a.as_json() for a in attrs], ensure_ascii=False),
            },
        ).scalar_one()
        table = f"l{uid}_v{version}"
        columns = "".join(f", {a.column} {SQL_TYPES[a.type]}" for a in attrs)
        conn.execute(
            text(
                f'CREATE TABLE layerdata."{table}" (fid bigint PRIMARY KEY, fkey text NOT NULL UNIQUE, '
                f"geom geometry(Geometry, 4326) NOT NULL, _hash text{columns})"
            )
        )
        if rows:
            names = ", ".join(a.column for a in attrs)
            binds = ", ".join(f":{a.column}" for a in attrs)
            sep = ", " if attrs else ""
            params = []
            for fid, (geom, props) in enumerate(rows, start=1):
                values = {a.column: props.get(a.name) for a in attrs}
                key = str(props[key_field]) if key_field else str(fid)
                digest = hashlib.md5((json.dumps(values, default=str) + geom.wkt).encode()).hexdigest()
                params.append({"fid": fid, "fkey": key, "wkb": shapely.to_wkb(geom), "h": digest, **values})
            conn.execute(
                text(
                    f'INSERT INTO layerdata."{table}" (fid, fkey, geom, _hash{sep}{names}) '
                    f"VALUES (:fid, :fkey, ST_GeomFromWKB(:wkb, 4326), :h{sep}{binds})"
                ),
                params,
            )
        conn.execute(text(f'CREATE INDEX ON layerdata."{table}" USING gist (geom)'))
        _finish(conn, layer_id, table, version, attrs, time_field)
    return attrs[0] if attrs else None


def make_big_layer(engine: Engine, layer_id: str, n: int, *, department: str = "TEST") -> None:
    """``n`` points on a grid over the city, with a name, a number and a date (for speed checks)."""
    attrs = [
        Attribute("名称", "a1", "string"),
        Attribute("编号", "a2", "integer"),
        Attribute("日期", "a3", "date"),
    ]
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO gs.department (code, name) VALUES (:c, :c) ON CONFLICT (code) DO NOTHING"),
            {"c": department},
        )
        uid = conn.execute(
            text(
                "INSERT INTO gs.layer (id, title, department_code, sharing_class, time_field, attributes) "
                "VALUES (:id, :id, :dep, 'public', '日期', CAST(:attrs AS jsonb)) RETURNING uid"
            ),
            {"id": layer_id, "dep": department, "attrs": json.dumps([a.as_json() for a in attrs])},
        ).scalar_one()
        table = f"l{uid}_v1"
        conn.execute(
            text(
                f'CREATE TABLE layerdata."{table}" AS SELECT g AS fid, g::text AS fkey, '
                "ST_SetSRID(ST_MakePoint(116.0 + (g % 1000) * 0.0005, 39.5 + (g / 1000) * 0.0005), 4326)"
                "::geometry(Geometry, 4326) AS geom, md5(g::text) AS _hash, "
                "'点位' || g AS a1, g % 97 AS a2, DATE '2020-01-01' + (g % 1000) AS a3 "
                f"FROM generate_series(1, {int(n)}) g"
            )
        )
        conn.execute(text(f'ALTER TABLE layerdata."{table}" ADD PRIMARY KEY (fid), ADD UNIQUE (fkey)'))
        conn.execute(text(f'CREATE INDEX ON layerdata."{table}" USING gist (geom)'))
        _finish(conn, layer_id, table, 1, attrs, "日期")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'VACUUM ANALYZE layerdata."{table}"'))


def _finish(
    conn: Any, layer_id: str, table: str, version: int, attrs: list[Attribute], time_field: str | None
) -> None:
    time_col = next((a.column for a in attrs if a.name == time_field), None)
    time_extent = (
        f"ARRAY[min({time_col})::timestamptz, max({time_col})::timestamptz]"
        if time_col
        else "NULL::timestamptz[]"
    )
    conn.execute(
        text(
            f"""WITH s AS (
                    SELECT count(*) AS n, ST_Extent(geom) AS box,
                           (SELECT GeometryType(geom) FROM layerdata."{table}" LIMIT 1) AS gtype,
                           {time_extent} AS te
                    FROM layerdata."{table}")
                UPDATE gs.layer SET current_version = :v, table_name = :t, feature_count = s.n,
                    geometry_type = s.gtype, time_extent = s.te,
                    extent = CASE WHEN s.box IS NULL THEN NULL ELSE
                        ARRAY[ST_XMin(s.box), ST_YMin(s.box), ST_XMax(s.box), ST_YMax(s.box)] END
                FROM s WHERE id = :id"""
        ),
        {"v": version, "t": table, "id": layer_id},
    )
    conn.execute(
        text(
            "INSERT INTO gs.layer_version (layer_id, version, table_name, feature_count) "
            "SELECT id, current_version, table_name, feature_count FROM gs.layer WHERE id = :id"
        ),
        {"id": layer_id},
    )
