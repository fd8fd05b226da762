"""Jobs in ``gs.job`` and their files in ``gs.job_file``: one SQL statement per call.

Status moves queued → running → done | failed and never back: every update names the states it
may leave, so a job the start-up sweep already declared lost stays failed even if its thread
wakes up later.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO

from sqlalchemy import Connection, Engine, bindparam, text
from sqlalchemy.dialects.postgresql import JSONB

PART_BYTES = 8 * 1024 * 1024
"""Files are stored in parts of this size (a bytea is read whole and capped at 1 GiB)."""

_COLUMNS = (
    "id::text, kind, status, params, total, processed, counts, error, created_at, started_at, finished_at"
)


@dataclass(slots=True)
class Job:
    id: str
    kind: str
    status: str
    params: dict[str, Any]
    total: int
    processed: int
    counts: dict[str, Any]
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def progress(self) -> float:
        if self.status == "done":
            return 1.0
        return round(min(1.0, self.processed / self.total), 4) if self.total else 0.0

    def as_json(self, base: str) -> dict[str, Any]:
        href = f"{base}/jobs/{self.id}"
        links = [{"rel": "self", "href": href, "type": "application/json"}]
        if self.status == "done":
            links += [
                {"rel": "result", "href": f"{href}/result", "type": "text/csv"},
                {"rel": "unmatched", "href": f"{href}/unmatched", "type": "text/csv"},
            ]
        return {
            "id": self.id,
            "kind": self.kind,
            "status": self.status,
            "progress": self.progress,
            "total": self.total,
            "processed": self.processed,
            "counts": self.counts,
            "params": self.params,
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "error": self.error,
            "links": links,
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def parse_id(value: str) -> str | None:
    """The canonical form of a job id, or None when it cannot be one (callers answer 404)."""
    try:
        return str(uuid.UUID(value))
    except (ValueError, TypeError):
        return None


def create(conn: Connection, kind: str, params: dict[str, Any]) -> Job:
    row = conn.execute(
        text(f"INSERT INTO gs.job (kind, params) VALUES (:kind, :params) RETURNING {_COLUMNS}").bindparams(
            bindparam("params", type_=JSONB)
        ),
        {"kind": kind, "params": params},
    ).one()
    return Job(*row)


def get(conn: Connection, job_id: str) -> Job | None:
    row = conn.execute(text(f"SELECT {_COLUMNS} FROM gs.job WHERE id = :id"), {"id": job_id}).first()
    return Job(*row) if row else None


def start(conn: Connection, job_id: str) -> Job | None:
    """Queued → running; None when the job is not queued (taken, failed or gone)."""
    row = conn.execute(
        text(
            "UPDATE gs.job SET status = 'running', started_at = now(), heartbeat_at = now() "
            f"WHERE id = :id AND status = 'queued' RETURNING {_COLUMNS}"
        ),
        {"id": job_id},
    ).first()
    return Job(*row) if row else None


def update_progress(conn: Connection, job_id: str, processed: int, total: int) -> None:
    conn.execute(
        text(
            "UPDATE gs.job SET processed = :processed, total = :total, heartbeat_at = now() "
            "WHERE id = :id AND status = 'running'"
        ),
        {"id": job_id, "processed": processed, "total": total},
    )


def touch(conn: Connection, job_id: str) -> None:
    """The heartbeat of a running job: its worker is alive."""
    conn.execute(
        text("UPDATE gs.job SET heartbeat_at = now() WHERE id = :id AND status = 'running'"), {"id": job_id}
    )


def finish(
    conn: Connection, job_id: str, total: int, counts: dict[str, Any], details: dict[str, Any]
) -> bool:
    """Running → done (``details`` are merged into params); False when the job is no longer running."""
    row = conn.execute(
        text(
            "UPDATE gs.job SET status = 'done', total = :total, processed = :total, counts = :counts, "
            "params = params || :details, finished_at = now(), heartbeat_at = now() "
            "WHERE id = :id AND status = 'running' RETURNING id"
        ).bindparams(bindparam("counts", type_=JSONB), bindparam("details", type_=JSONB)),
        {"id": job_id, "total": total, "counts": counts, "details": details},
    ).first()
    return row is not None


def fail(conn: Connection, job_id: str, error: str) -> None:
    conn.execute(
        text(
            "UPDATE gs.job SET status = 'failed', error = :error, finished_at = now() "
            "WHERE id = :id AND status IN ('queued', 'running')"
        ),
        {"id": job_id, "error": error},
    )


def fail_stale(conn: Connection, seconds: float, error: str) -> int:
    """Unfinished jobs whose worker has not been heard of for ``seconds``: failed with ``error``."""
    result = conn.execute(
        text(
            "UPDATE gs.job SET status = 'failed', error = :error, finished_at = now() "
            "WHERE status IN ('queued', 'running') "
            "AND coalesce(heartbeat_at, created_at) < now() - make_interval(secs => :seconds)"
        ),
        {"seconds": seconds, "error": error},
    )
    return result.rowcount


def purge_files(conn: Connection, days: float) -> int:
    """Drop the files of jobs that ended more than ``days`` ago (the job rows and counts stay)."""
    result = conn.execute(
        text(
            "DELETE FROM gs.job_file f USING gs.job j WHERE f.job_id = j.id "
            "AND j.finished_at < now() - make_interval(secs => :seconds)"
        ),
        {"seconds": days * 86400},
    )
    return result.rowcount


def write_file(
    conn: Connection, job_id: str, role: str, src: BinaryIO, filename: str, content_type: str
) -> int:
    """Store ``src`` from its current position as the job's ``role`` file; bytes written.

    One INSERT per part of ``PART_BYTES``: a file of any size is never held in memory whole.
    """
    statement = text(
        "INSERT INTO gs.job_file (job_id, role, part, content, filename, content_type) "
        "VALUES (:id, :role, :part, :content, :filename, :content_type)"
    )
    part, written = 0, 0
    while True:
        content = src.read(PART_BYTES)
        if not content and part > 0:
            return written
        conn.execute(
            statement,
            {"id": job_id, "role": role, "part": part, "content": content, "filename": filename,
             "content_type": content_type},
        )  # fmt: skip
        part, written = part + 1, written + len(content)


@dataclass(slots=True)
class FileHead:
    """A job with the first part of one of its files (None when there is no such file yet)."""

    job: Job
    filename: str | None
    content_type: str | None
    first: bytes | None
    parts: int


def file_head(conn: Connection, job_id: str, role: str) -> FileHead | None:
    """The job, its ``role`` file's name, type, first part and part count, in one round trip."""
    row = conn.execute(
        text(
            f"SELECT {', '.join('j.' + c.strip() for c in _COLUMNS.split(','))}, f.filename, f.content_type, "
            "f.content, (SELECT count(*) FROM gs.job_file p WHERE p.job_id = j.id AND p.role = :role) "
            "FROM gs.job j LEFT JOIN gs.job_file f ON f.job_id = j.id AND f.role = :role AND f.part = 0 "
            "WHERE j.id = :id"
        ),
        {"id": job_id, "role": role},
    ).first()
    if row is None:
        return None
    *job, filename, content_type, first, parts = row
    return FileHead(
        Job(*job), filename, content_type, bytes(first) if first is not None else None, int(parts)
    )


def file_part(conn: Connection, job_id: str, role: str, part: int) -> bytes:
    row = conn.execute(
        text("SELECT content FROM gs.job_file WHERE job_id = :id AND role = :role AND part = :part"),
        {"id": job_id, "role": role, "part": part},
    ).first()
    return bytes(row[0]) if row else b""


def file_parts(
    engine: Engine, job_id: str, role: str, start: int = 0, end: int | None = None
) -> Iterator[bytes]:
    """Parts ``start`` … ``end - 1`` of a file, each fetched when needed on a short-lived connection."""
    part = start
    while end is None or part < end:
        with engine.connect() as conn:
            content = file_part(conn, job_id, role, part)
        if not content and end is None:
            return
        yield content
        part += 1


class ProgressWriter:
    """A ``progress(done, total)`` callback writing at most once per ``every`` seconds (a heartbeat too)."""

    def __init__(self, engine: Engine, job_id: str, every: float = 1.0) -> None:
        self.engine, self.job_id, self.every = engine, job_id, every
        self.last = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last < self.every:
            return
        self.last = now
        with self.engine.begin() as conn:
            update_progress(conn, self.job_id, done, total)
