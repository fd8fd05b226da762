"""Version tables: created, bulk-loaded with COPY and indexed inside the caller's transaction.

The text COPY stream is built column-wise per chunk (vectorised where numpy allows), because
per-row Python work is what limits load speed; the ``_hash`` of each row comes from the same text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import numpy as np
import pandas as pd
import shapely
from sqlalchemy import Connection, text

from layers.model import SQL_TYPES, Attribute
from layers.validate import PreparedLayer

CHUNK = 50_000
NULL = "\\N"
LARGE_LAYER = 10_000  # attribute btree indexes only pay off above this many features
MAX_INDEXED_BYTES = 2_600  # longer strings (UTF-8) would overflow a btree page (a third of it)
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\x00": ""})


def table_name(uid: int, version: int) -> str:
    return f"l{uid}_v{version}"


def qualified(name: str) -> str:
    return f'layerdata."{name}"'


def _escape(value: str) -> str:
    return (
        value.translate(_ESCAPES)
        if ("\\" in value or "\t" in value or "\n" in value or "\r" in value or "\x00" in value)
        else value
    )


def copy_text(series: pd.Series, kind: str) -> list[str]:
    """Column values as COPY text, ``\\N`` for nulls."""
    if kind == "number":
        numbers = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        out = list(map(repr, numbers.tolist()))  # shortest round-trip text, faster than numpy's astype(str)
        for i in np.flatnonzero(np.isnan(numbers)).tolist():
            out[i] = NULL
        return out
    if kind == "datetime" and pd.api.types.is_datetime64_any_dtype(series.dtype):
        values = series
        suffix = ""
        if values.dt.tz is not None:
            values, suffix = values.dt.tz_convert("UTC").dt.tz_localize(None), "+00"
        stamps = values.to_numpy(dtype="datetime64[us]")
        out = np.char.add(np.datetime_as_string(stamps, unit="us"), suffix).astype(object)
        out[np.isnat(stamps)] = NULL
        return out.tolist()
    values = series.to_numpy(dtype=object, na_value=None)
    if kind == "string":
        return [NULL if v is None else _escape(v) for v in values]
    if kind == "boolean":
        return [NULL if v is None else ("t" if v else "f") for v in values]
    if kind in ("date", "datetime"):
        return [NULL if v is None or v is pd.NaT else v.isoformat() for v in values]
    return [NULL if v is None else str(int(v)) for v in values]


_POINT_EWKB = np.dtype([("order", "u1"), ("type", "<u4"), ("srid", "<u4"), ("x", "<f8"), ("y", "<f8")])


def ewkb_hex(geometries: np.ndarray) -> list[str]:
    """EWKB hex with SRID 4326; points (the bulk of large layers) are packed by numpy, 6x faster than GEOS."""
    if len(geometries) and (shapely.get_type_id(geometries) == 0).all():
        xy = shapely.get_coordinates(geometries)
        packed = np.empty(len(xy), dtype=_POINT_EWKB)
        packed["order"], packed["type"], packed["srid"] = 1, 0x20000001, 4326
        packed["x"], packed["y"] = xy[:, 0], xy[:, 1]
        text = packed.tobytes().hex().upper()
        width = 2 * _POINT_EWKB.itemsize
        return [text[i : i + width] for i in range(0, len(text), width)]
    return shapely.to_wkb(shapely.set_srid(geometries, 4326), hex=True, include_srid=True).tolist()


def create_table(conn: Connection, name: str, attributes: list[Attribute]) -> None:
    columns = "".join(f", {a.column} {SQL_TYPES[a.type]}" for a in attributes)
    conn.execute(
        text(
            f"CREATE TABLE {qualified(name)} (fid bigint NOT NULL, fkey text NOT NULL, "
            f"geom geometry(Geometry, 4326) NOT NULL, _hash text NOT NULL{columns})"
        )
    )


def _chunks(layer: PreparedLayer) -> Iterator[str]:
    """COPY text, CHUNK rows at a time; the hash covers geometry and attribute values in name order."""
    attributes = layer.attributes
    by_name = sorted(range(len(attributes)), key=lambda i: attributes[i].name)
    same_order = by_name == list(range(len(attributes)))
    total = len(layer.geometries)
    for start in range(0, total, CHUNK):
        stop = min(start + CHUNK, total)
        geoms = ewkb_hex(layer.geometries[start:stop])
        cells = [
            copy_text(c.iloc[start:stop], a.type) for c, a in zip(layer.columns, attributes, strict=True)
        ]
        fids = range(start + 1, stop + 1)
        if layer.keys is not None:
            keys = [_escape(k) for k in layer.keys[start:stop]]
        else:
            keys = [str(f) for f in fids]
        if cells:
            rows = ["\t".join(r) for r in zip(*cells, strict=True)]
            hashed = (
                rows if same_order else ["\t".join(r) for r in zip(*(cells[i] for i in by_name), strict=True)]
            )
            digests = [
                hashlib.md5(f"{g}\t{h}".encode()).hexdigest() for g, h in zip(geoms, hashed, strict=True)
            ]
            lines = [
                f"{f}\t{k}\t{g}\t{d}\t{r}\n"
                for f, k, g, d, r in zip(fids, keys, geoms, digests, rows, strict=True)
            ]
        else:
            digests = [hashlib.md5(g.encode()).hexdigest() for g in geoms]
            lines = [f"{f}\t{k}\t{g}\t{d}\n" for f, k, g, d in zip(fids, keys, geoms, digests, strict=True)]
        yield "".join(lines)


def load(conn: Connection, name: str, layer: PreparedLayer) -> None:
    """COPY every feature on the caller's connection, so it commits or rolls back with the publish."""
    columns = ", ".join(["fid", "fkey", "geom", "_hash", *(a.column for a in layer.attributes)])
    cursor = conn.connection.driver_connection.cursor()
    with cursor.copy(f"COPY {qualified(name)} ({columns}) FROM STDIN") as copy:
        for block in _chunks(layer):
            copy.write(block)


def _indexable(series: pd.Series, attribute: Attribute) -> bool:
    """Text is indexed when every value fits a btree entry: measured in bytes, since 1,000 Chinese
    characters are 3,000 bytes and failed the index (and the publish) when counted as characters."""
    if attribute.type != "string":
        return True
    values = series.dropna().astype(str)
    chars = values.str.len()
    if chars.empty or int(chars.max()) * 4 <= MAX_INDEXED_BYTES:
        return True
    return max(len(v.encode("utf-8")) for v in values) <= MAX_INDEXED_BYTES


def index(conn: Connection, name: str, layer: PreparedLayer, key_field: str | None) -> None:
    """Indexes after the load (much faster than maintaining them row by row), then statistics."""
    table = qualified(name)
    conn.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
    conn.execute(text(f'ALTER TABLE {table} ADD CONSTRAINT "{name}_pkey" PRIMARY KEY (fid)'))
    conn.execute(text(f'ALTER TABLE {table} ADD CONSTRAINT "{name}_fkey_key" UNIQUE (fkey)'))
    conn.execute(text(f'CREATE INDEX "{name}_geom_idx" ON {table} USING gist (geom)'))
    if key_field is None:
        conn.execute(text(f'CREATE INDEX "{name}_hash_idx" ON {table} (_hash)'))
    if len(layer.geometries) >= LARGE_LAYER:
        for series, attribute in zip(layer.columns, layer.attributes, strict=True):
            if attribute.name != key_field and _indexable(series, attribute):
                conn.execute(
                    text(f'CREATE INDEX "{name}_{attribute.column}_idx" ON {table} ({attribute.column})')
                )
    conn.execute(text(f"ANALYZE {table}"))


def drop(conn: Connection, name: str) -> None:
    conn.execute(text(f"DROP TABLE IF EXISTS {qualified(name)}"))
