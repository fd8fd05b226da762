"""The ``gs.imagery`` registry and the files behind it, changed so a failure leaves no trace.

A stored file is named ``<id>.<checksum prefix>.tif``, so a replacement never overwrites the file
being served: the new COG is written to a temporary name in the same directory, renamed to its own
final name, the row is updated in one transaction, and only after the commit is the old file
deleted. A failed conversion or a failed transaction deletes only what this call created. Adds of
one id are serialised by a transaction-scoped advisory lock.
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, text

from layers.errors import InvalidInput, NotFound
from layers.imagery import cog
from layers.model import SHARING_CLASSES
from layers.registry import TRUSTED, Visibility

DEFAULT_DIR = "data/imagery"
#: hex digits of the checksum that tile URLs carry as ``v=`` (what makes them immutable)
URL_VERSION_CHARS = 12
_ID = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


def imagery_dir(settings: object) -> Path:
    """Where image files live: ``settings.imagery_dir``, else ``GEOSHARE_IMAGERY_DIR``, else
    ``data/imagery`` under the working directory."""
    configured = getattr(settings, "imagery_dir", None) or os.environ.get("GEOSHARE_IMAGERY_DIR")
    return Path(configured or DEFAULT_DIR)


def for_imagery(visibility: Visibility) -> Visibility:
    """The layer visibility rule applied to imagery: agreements grant layers, not images, so a
    granted layer id must not open an image that happens to share it."""
    return replace(visibility, granted=frozenset())


def imagery_not_found(imagery_id: str) -> NotFound:
    """The one answer for unknown imagery and for imagery the reader may not see."""
    return NotFound(f"imagery {imagery_id!r} does not exist", field="imageryId")


@dataclass(frozen=True)
class ImageryMetadata:
    """What the adder says about an image (the rest is read from the file)."""

    id: str
    title: str
    description: str = ""
    department_code: str | None = None
    sharing_class: str = "public"
    licence: str | None = None
    source: str | None = None

    def check(self) -> None:
        if not _ID.match(self.id):
            raise InvalidInput(
                f"imagery id {self.id!r} must be 1-63 of a-z, 0-9, '_' and '-', starting with a letter",
                field="id",
            )
        if not self.title.strip():
            raise InvalidInput("title must not be empty", field="title")
        if self.sharing_class not in SHARING_CLASSES:
            raise InvalidInput(f"sharing class must be one of {', '.join(SHARING_CLASSES)}", field="class")


@dataclass(frozen=True)
class ImageryRecord:
    id: str
    title: str
    description: str
    department_code: str | None
    sharing_class: str
    licence: str | None
    source: str | None
    crs: str
    bounds: tuple[float, float, float, float]
    minzoom: int
    maxzoom: int
    band_count: int
    dtype: str
    resolution: tuple[float, float]
    width: int
    height: int
    nodata: float | None
    rescale: list[tuple[float, float]] | None
    file_name: str
    size_bytes: int
    checksum: str
    source_checksum: str
    added_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> ImageryRecord:
        m = row._mapping
        values = {k: m[k] for k in cls.__dataclass_fields__ if k not in ("bounds", "resolution", "rescale")}
        return cls(
            **values,
            bounds=(m["west"], m["south"], m["east"], m["north"]),
            resolution=tuple(m["resolution"]),  # type: ignore[arg-type]
            rescale=[tuple(r) for r in m["rescale"]] if m["rescale"] else None,  # type: ignore[misc]
        )


_COLUMNS = """i.id, i.title, i.description, i.department_code, i.sharing_class, i.licence, i.source,
    i.crs, ST_XMin(i.bounds) AS west, ST_YMin(i.bounds) AS south, ST_XMax(i.bounds) AS east,
    ST_YMax(i.bounds) AS north, i.minzoom, i.maxzoom, i.band_count, i.dtype, i.resolution, i.width,
    i.height, i.nodata, i.rescale, i.file_name, i.size_bytes, i.checksum, i.source_checksum,
    i.added_at, i.updated_at"""


def list_imagery(conn: Connection, visibility: Visibility) -> list[ImageryRecord]:
    visible, params = for_imagery(visibility).predicate("i")
    sql = f"SELECT {_COLUMNS} FROM gs.imagery i WHERE {visible} ORDER BY i.title, i.id"
    return [ImageryRecord.from_row(r) for r in conn.execute(text(sql), params)]


def get_imagery(conn: Connection, imagery_id: str, visibility: Visibility) -> ImageryRecord:
    """The image if ``visibility`` lets the reader see it; NotFound otherwise, as for an unknown id."""
    visible, params = for_imagery(visibility).predicate("i")
    sql = f"SELECT {_COLUMNS} FROM gs.imagery i WHERE i.id = :id AND {visible}"
    row = conn.execute(text(sql), {**params, "id": imagery_id}).first()
    if row is None:
        raise imagery_not_found(imagery_id)
    return ImageryRecord.from_row(row)


_UPSERT = f"""
INSERT INTO gs.imagery AS i (id, title, description, department_code, sharing_class, licence, source,
    crs, bounds, minzoom, maxzoom, band_count, dtype, resolution, width, height, nodata, rescale,
    file_name, size_bytes, checksum, source_checksum)
VALUES (:id, :title, :description, :department_code, :sharing_class, :licence, :source,
    :crs, ST_MakeEnvelope(:west, :south, :east, :north, 4326), :minzoom, :maxzoom, :band_count, :dtype,
    :resolution, :width, :height, :nodata, CAST(:rescale AS jsonb),
    :file_name, :size_bytes, :checksum, :source_checksum)
ON CONFLICT (id) DO UPDATE SET
    title = EXCLUDED.title, description = EXCLUDED.description,
    department_code = EXCLUDED.department_code, sharing_class = EXCLUDED.sharing_class,
    licence = EXCLUDED.licence, source = EXCLUDED.source, crs = EXCLUDED.crs, bounds = EXCLUDED.bounds,
    minzoom = EXCLUDED.minzoom, maxzoom = EXCLUDED.maxzoom, band_count = EXCLUDED.band_count,
    dtype = EXCLUDED.dtype, resolution = EXCLUDED.resolution, width = EXCLUDED.width,
    height = EXCLUDED.height, nodata = EXCLUDED.nodata, rescale = EXCLUDED.rescale,
    file_name = EXCLUDED.file_name, size_bytes = EXCLUDED.size_bytes, checksum = EXCLUDED.checksum,
    source_checksum = EXCLUDED.source_checksum, updated_at = now()
RETURNING {_COLUMNS}
"""


def _check_department(conn: Connection, code: str | None) -> None:
    if code is not None and conn.execute(
        text("SELECT 1 FROM gs.department WHERE code = :c"), {"c": code}
    ).first() is None:  # fmt: skip
        raise InvalidInput(f"department {code!r} does not exist", field="department")


def _upsert(conn: Connection, meta: ImageryMetadata, info: cog.RasterInfo, path: Path, sums: tuple[str, str]):
    west, south, east, north = info.bounds
    params = {
        **meta.__dict__,
        "crs": info.crs,
        "west": west,
        "south": south,
        "east": east,
        "north": north,
        "minzoom": info.minzoom,
        "maxzoom": info.maxzoom,
        "band_count": info.band_count,
        "dtype": info.dtype,
        "resolution": list(info.resolution),
        "width": info.width,
        "height": info.height,
        "nodata": info.nodata,
        "rescale": orjson.dumps(info.rescale).decode() if info.rescale else None,
        "file_name": path.name,
        "size_bytes": path.stat().st_size,
        "checksum": sums[0],
        "source_checksum": sums[1],
    }
    return ImageryRecord.from_row(conn.execute(text(_UPSERT), params).one())


def add_imagery(engine: Engine, source: Path, directory: Path, meta: ImageryMetadata) -> ImageryRecord:
    """Store ``source`` as image ``meta.id`` (replacing any previous file of that id) and record it."""
    meta.check()
    directory.mkdir(parents=True, exist_ok=True)
    part = directory / f".{meta.id}.{uuid.uuid4().hex}.part"
    final: Path | None = None
    with engine.connect() as conn:
        transaction = conn.begin()
        try:
            conn.execute(
                text("SELECT pg_advisory_xact_lock(hashtext('gs.imagery:' || :id))"), {"id": meta.id}
            )
            _check_department(conn, meta.department_code)
            previous = conn.execute(
                text("SELECT file_name FROM gs.imagery WHERE id = :id"), {"id": meta.id}
            ).scalar()
            source_sum = cog.checksum(source)
            cog.write_cog(source, part)
            info = cog.describe(part)
            stored_sum = cog.checksum(part)
            target = directory / f"{meta.id}.{stored_sum[:16]}.tif"
            if not target.exists():
                final = target  # ours to delete on failure; an identical existing file is not
            os.replace(part, target)
            record = _upsert(conn, meta, info, target, (stored_sum, source_sum))
            transaction.commit()
        except BaseException:
            transaction.rollback()
            part.unlink(missing_ok=True)
            if final is not None:
                final.unlink(missing_ok=True)
            raise
    if previous and previous != record.file_name:
        (directory / previous).unlink(missing_ok=True)
    return record


def remove_imagery(engine: Engine, imagery_id: str, directory: Path) -> str:
    """Delete the row, then its file; returns the file name removed."""
    with engine.begin() as conn:
        name = conn.execute(
            text("DELETE FROM gs.imagery WHERE id = :id RETURNING file_name"), {"id": imagery_id}
        ).scalar()
    if name is None:
        raise imagery_not_found(imagery_id)
    (directory / name).unlink(missing_ok=True)
    return name


def ensure_imagery(engine: Engine, source: Path, directory: Path, meta: ImageryMetadata) -> ImageryRecord:
    """``add_imagery`` unless the same file with the same metadata is already stored (the demo
    loader's restart path: a checksum instead of a conversion)."""
    with engine.connect() as conn:
        try:
            current: ImageryRecord | None = get_imagery(conn, meta.id, TRUSTED)
        except NotFound:
            current = None
    if (
        current is not None
        and (directory / current.file_name).is_file()
        and current.source_checksum == cog.checksum(source)
        and all(getattr(current, k) == v for k, v in meta.__dict__.items())
    ):
        return current
    return add_imagery(engine, source, directory, meta)
