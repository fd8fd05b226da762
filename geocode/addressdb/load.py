"""Bulk loading of the address database, whatever the source (demo generator, file import).

Each ``load_*`` replaces one ``addr`` table inside the caller's transaction: secondary indexes are
dropped, the table truncated, the rows COPYed in and the indexes rebuilt — building an index once
is much cheaper than maintaining it row by row. Readers keep seeing the old content until the
caller commits; a failure rolls everything back.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import Connection, text

from layers.errors import InvalidInput


@dataclass(frozen=True)
class TableSpec:
    """Columns of one ``addr`` table as the loader writes them (order = COPY order)."""

    name: str
    key: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    integers: tuple[str, ...]
    geometry_types: tuple[str, ...]
    geometry_required: bool = True

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.required, *self.optional, "geom")


DIVISIONS = TableSpec(
    name="division",
    key="code",
    required=("code", "level", "name", "short_name", "path_codes", "path_names", "full_name"),
    optional=("parent_code",),
    integers=("level",),
    geometry_types=("Polygon", "MultiPolygon"),
    geometry_required=False,
)
ROADS = TableSpec(
    name="road",
    key="id",
    required=("id", "road_code", "name", "district_code", "street_code", "road_class", "length_m"),
    optional=(),
    integers=("id",),
    geometry_types=("LineString",),
)
COMPOUNDS = TableSpec(
    name="compound",
    key="id",
    required=("id", "name", "kind", "district_code", "street_code", "community_code"),
    optional=("road_id", "door_number"),
    integers=("id", "road_id", "door_number"),
    geometry_types=("Polygon",),
)
BUILDINGS = TableSpec(
    name="building",
    key="id",
    required=("id", "compound_id", "number", "name"),
    optional=("floors", "units", "rooms_per_floor"),
    integers=("id", "compound_id", "number", "floors", "units", "rooms_per_floor"),
    geometry_types=("Polygon",),
)
ADDRESSES = TableSpec(
    name="address",
    key="address_code",
    required=(
        "address_code",
        "level",
        "province_code",
        "province",
        "city_code",
        "city",
        "district_code",
        "district",
        "street_code",
        "street",
        "community_code",
        "community",
        "road_id",
        "road",
        "door_number",
        "door_suffix",
        "side",
        "road_position",
        "full_address",
    ),
    optional=(
        "compound_id",
        "compound",
        "building_id",
        "building_number",
        "units",
        "floors",
        "rooms_per_floor",
    ),
    integers=(
        "road_id",
        "door_number",
        "compound_id",
        "building_id",
        "building_number",
        "units",
        "floors",
        "rooms_per_floor",
    ),
    geometry_types=("Point",),
)


def as_frame(
    rows: gpd.GeoDataFrame | Iterable[Mapping[str, Any]], geometry: str = "geom"
) -> gpd.GeoDataFrame:
    """Accept a GeoDataFrame or any iterable of dicts with shapely geometries under ``geometry``."""
    if isinstance(rows, gpd.GeoDataFrame):
        frame = rows
    else:
        frame = gpd.GeoDataFrame(pd.DataFrame.from_records(list(rows)), geometry=geometry, crs=4326)
    if frame.crs is None:
        raise InvalidInput("the address data has no coordinate reference system", field="crs")
    if frame.crs.to_epsg() != 4326:
        frame = frame.to_crs(4326)
    return frame


def _check(frame: gpd.GeoDataFrame, spec: TableSpec) -> None:
    missing = [c for c in spec.required if c not in frame.columns]
    if missing:
        raise InvalidInput(f"{spec.name}: missing columns {', '.join(missing)}", field=missing[0])
    for col in spec.required:
        nulls = np.flatnonzero(frame[col].isna().to_numpy())
        if nulls.size:
            raise InvalidInput(f"{spec.name}: {col} is empty", field=col, line=int(nulls[0]) + 1)
    dup = np.flatnonzero(frame[spec.key].duplicated().to_numpy())
    if dup.size:
        value = frame[spec.key].iloc[dup[0]]
        raise InvalidInput(
            f"{spec.name}: duplicate {spec.key} {value!r}", field=spec.key, line=int(dup[0]) + 1
        )
    geoms = frame.geometry.to_numpy()
    types = shapely.get_type_id(geoms)
    allowed = [shapely.GeometryType[t.upper()].value for t in spec.geometry_types]
    bad = ~np.isin(types, allowed)
    if not spec.geometry_required:
        bad &= ~shapely.is_missing(geoms)
    if bad.any():
        line = int(np.flatnonzero(bad)[0])
        raise InvalidInput(
            f"{spec.name}: geometry must be {' or '.join(spec.geometry_types)}", field="geom", line=line + 1
        )


def _pg_array(values: pd.Series) -> pd.Series:
    return values.map(lambda items: "{" + ",".join('"' + str(v) + '"' for v in items) + "}")


def _csv(frame: gpd.GeoDataFrame, spec: TableSpec) -> str:
    out = pd.DataFrame(index=frame.index)
    for col in spec.required + spec.optional:
        values = frame[col] if col in frame.columns else pd.Series(pd.NA, index=frame.index)
        if col in spec.integers:
            values = values.astype("Int64")
        elif col in ("path_codes", "path_names"):
            values = _pg_array(values)
        out[col] = values
    geoms = frame.geometry.to_numpy()
    if spec.name == "division":  # a column typed MultiPolygon accepts no Polygon
        geoms = np.array(
            [shapely.MultiPolygon([g]) if g is not None and g.geom_type == "Polygon" else g for g in geoms],
            dtype=object,
        )
    out["geom"] = shapely.to_wkb(shapely.set_srid(geoms, 4326), hex=True, include_srid=True)
    buf = io.StringIO()
    out.to_csv(buf, index=False, header=False)
    return buf.getvalue()


def _secondary_indexes(conn: Connection, table: str) -> list[tuple[str, str]]:
    rows = conn.execute(
        text(
            """
            SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
            FROM pg_index i
            WHERE i.indrelid = CAST(:t AS regclass)
              AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
            """
        ),
        {"t": table},
    )
    return [(r[0], r[1]) for r in rows]


def replace_table(
    conn: Connection, spec: TableSpec, rows: gpd.GeoDataFrame | Iterable[Mapping[str, Any]]
) -> int:
    """Replace ``addr.<spec.name>`` with ``rows``; returns the row count."""
    frame = as_frame(rows)
    _check(frame, spec)
    table = f"addr.{spec.name}"
    payload = _csv(frame, spec)
    indexes = _secondary_indexes(conn, table)
    for name, _ in indexes:
        conn.execute(text(f"DROP INDEX {name}"))
    conn.execute(text(f"TRUNCATE {table}"))
    not_null_text = [c for c in spec.required if c not in spec.integers]
    columns = ", ".join(spec.columns)
    copy_sql = (
        f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT csv, FORCE_NOT_NULL ({', '.join(not_null_text)}))"
    )
    cursor = conn.connection.driver_connection.cursor()
    with cursor.copy(copy_sql) as copy:
        copy.write(payload)
    for _, definition in indexes:
        conn.execute(text(definition))
    conn.execute(text(f"ANALYZE {table}"))
    return len(frame)


def load_divisions(conn: Connection, rows: gpd.GeoDataFrame | Iterable[Mapping[str, Any]]) -> int:
    return replace_table(conn, DIVISIONS, rows)


def load_roads(conn: Connection, rows: gpd.GeoDataFrame | Iterable[Mapping[str, Any]]) -> int:
    return replace_table(conn, ROADS, rows)


def load_compounds(conn: Connection, rows: gpd.GeoDataFrame | Iterable[Mapping[str, Any]]) -> int:
    return replace_table(conn, COMPOUNDS, rows)


def load_buildings(conn: Connection, rows: gpd.GeoDataFrame | Iterable[Mapping[str, Any]]) -> int:
    return replace_table(conn, BUILDINGS, rows)


def load_addresses(conn: Connection, rows: gpd.GeoDataFrame | Iterable[Mapping[str, Any]]) -> int:
    return replace_table(conn, ADDRESSES, rows)


def replace_address_database(
    conn: Connection,
    *,
    divisions: gpd.GeoDataFrame,
    roads: gpd.GeoDataFrame,
    compounds: gpd.GeoDataFrame,
    buildings: gpd.GeoDataFrame,
    addresses: gpd.GeoDataFrame,
) -> dict[str, int]:
    """Replace the whole address database; cross-table references are checked before writing.

    A new version stamp goes with it (``gs.setting`` key ``addressdb``): every worker's in-memory
    index notices the change and rebuilds, once the caller commits.
    """
    _check_references(divisions, roads, compounds, addresses)
    counts = {
        "divisions": load_divisions(conn, divisions),
        "roads": load_roads(conn, roads),
        "compounds": load_compounds(conn, compounds),
        "buildings": load_buildings(conn, buildings),
        "addresses": load_addresses(conn, addresses),
    }
    stamp_version(conn, counts)
    return counts


def stamp_version(conn: Connection, counts: Mapping[str, int]) -> str:
    version = uuid.uuid4().hex
    conn.execute(
        text(
            "INSERT INTO gs.setting (key, value) VALUES ('addressdb', CAST(:v AS jsonb)) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()"
        ),
        {"v": json.dumps({"version": version, "counts": dict(counts)})},
    )
    return version


def _check_references(
    divisions: gpd.GeoDataFrame,
    roads: gpd.GeoDataFrame,
    compounds: gpd.GeoDataFrame,
    addresses: gpd.GeoDataFrame,
) -> None:
    codes = set(divisions["code"])
    for name, frame, col in (
        ("road", roads, "street_code"),
        ("address", addresses, "community_code"),
        ("compound", compounds, "community_code"),
    ):
        unknown = np.flatnonzero(~frame[col].isin(codes).to_numpy())
        if unknown.size:
            value = frame[col].iloc[unknown[0]]
            raise InvalidInput(f"{name}: unknown division {value!r}", field=col, line=int(unknown[0]) + 1)
    unknown = np.flatnonzero(~addresses["road_id"].isin(roads["id"]).to_numpy())
    if unknown.size:
        value = addresses["road_id"].iloc[unknown[0]]
        raise InvalidInput(f"address: unknown road {value!r}", field="road_id", line=int(unknown[0]) + 1)
