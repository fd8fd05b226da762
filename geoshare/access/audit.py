"""The audit log writer: requests are buffered in memory and written by a background thread.

A request only appends a small tuple to a deque (thread-safe, no lock, no I/O), or, for a tile read,
adds to a tally (``tally``): tiles come dozens a second per map view, so they are recorded per reader,
key, layer, endpoint, client and outcome over each flush, one row with the number of requests and
the sums of tiles, bytes and milliseconds (``gs.audit_log.requests``). The writer thread
wakes every ``audit_flush_seconds`` or when ``audit_batch`` records are waiting, and writes the lot
with ONE statement that appends them to ``gs.audit_log`` and upserts the daily roll-up
``gs.usage_daily``, so the roll-up cannot drift from the log. The buffer is bounded: while the
database is down records are kept for a retry up to ``audit_buffer_max``, then dropped and counted
(with a warning at most once a minute), because a full memory is worse than a gap in the log.

Changes (publish, delete, key create/revoke, agreement decisions) are rare and belong to the
transaction that makes them: ``record_change`` writes them synchronously on the caller's connection,
so a rolled-back change leaves no record and a committed one always has one.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple, TypeVar

import orjson
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DataError

from geoshare.access.audit_partitions import check_retention
from geoshare.access.identity import Principal

log = logging.getLogger("geoshare.audit")
T = TypeVar("T", bool, int, float, str)
_FALSE = ("0", "false", "no", "off", "")


def setting(settings: object, name: str, default: T) -> T:
    """``settings.<name>`` when the settings carry it, else env ``GEOSHARE_<NAME>``, else ``default``
    (so the knobs work before they become ``Settings`` fields, and tests and benchmarks can set them)."""
    value = getattr(settings, name, None)
    if value is None:
        value = os.environ.get(f"GEOSHARE_{name.upper()}")
    if value is None:
        return default
    if isinstance(default, bool):
        return (str(value).strip().lower() not in _FALSE) if isinstance(value, str) else bool(value)  # type: ignore[return-value]
    try:
        return type(default)(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"setting {name} must be a {type(default).__name__}, got {value!r}") from exc


@dataclass(frozen=True)
class AuditConfig:
    enabled: bool = True
    flush_seconds: float = 1.0
    batch: int = 2000
    buffer_max: int = 100_000
    timezone: str = "Asia/Shanghai"  # the "day" of the usage statistics and of daily quotas
    retention_months: int = 0  # months of audit log kept (0: all); see access.audit_partitions

    @classmethod
    def from_settings(cls, settings: object) -> AuditConfig:
        d = cls()
        return cls(
            enabled=setting(settings, "audit_enabled", d.enabled),
            flush_seconds=setting(settings, "audit_flush_seconds", d.flush_seconds),
            batch=setting(settings, "audit_batch", d.batch),
            buffer_max=setting(settings, "audit_buffer_max", d.buffer_max),
            timezone=setting(settings, "usage_timezone", d.timezone),
            retention_months=check_retention(setting(settings, "audit_retention_months", d.retention_months)),
        )


class Access(NamedTuple):
    """One request as the audit log records it (built on the request path, so plain values only)."""

    ts: float  # epoch seconds
    kind: str  # read | write
    method: str
    endpoint: str  # the route template, e.g. /collections/{collection_id}/items
    endpoint_kind: str  # features | tiles | export | geocode | catalog | … (the roll-up's grouping)
    layer_id: str | None
    department_code: str | None
    key_prefix: str | None
    role: str | None
    client_ip: str | None
    status: int
    duration_ms: float
    bytes: int
    items: int | None
    requests: int = 1  # a tally's row stands for several (bytes, items, duration_ms are then sums)


class TallyKey(NamedTuple):
    """What a tallied row is about: requests alike in all of this share a row per flush. The fields
    are ``Access``'s from ``kind`` to ``status``, in its order (``Access(ts, *key, ...)``)."""

    kind: str
    method: str
    endpoint: str
    endpoint_kind: str
    layer_id: str | None
    department_code: str | None
    key_prefix: str | None
    role: str | None
    client_ip: str | None
    status: int


# One round trip per flush: the batch arrives as arrays, the layer owner is looked up once, the log
# gets every row and the roll-up one upsert per group (ordered, so two workers flushing at once lock
# roll-up rows in the same order and cannot deadlock). Only existing layers enter the roll-up: a
# scan of random layer ids must not grow it.
_FLUSH = text(
    """
    WITH r AS (
        SELECT to_timestamp(r.ts) AS ts, r.kind, r.method, r.endpoint, r.endpoint_kind, r.layer_id,
               l.department_code AS layer_department, r.department_code, r.key_prefix, r.role,
               r.client_ip, r.status, r.duration_ms, r.bytes, r.items, r.requests
        FROM unnest(CAST(:ts AS float8[]), CAST(:kind AS text[]), CAST(:method AS text[]),
                    CAST(:endpoint AS text[]), CAST(:endpoint_kind AS text[]), CAST(:layer_id AS text[]),
                    CAST(:department_code AS text[]), CAST(:key_prefix AS text[]), CAST(:role AS text[]),
                    CAST(:client_ip AS inet[]), CAST(:status AS int2[]), CAST(:duration_ms AS float4[]),
                    CAST(:bytes AS int8[]), CAST(:items AS int4[]), CAST(:requests AS int4[]))
             AS r(ts, kind, method, endpoint, endpoint_kind, layer_id, department_code, key_prefix, role,
                  client_ip, status, duration_ms, bytes, items, requests)
        LEFT JOIN gs.layer l ON l.id = r.layer_id
    ), logged AS (
        INSERT INTO gs.audit_log (ts, kind, method, endpoint, endpoint_kind, layer_id, layer_department,
                                  department_code, key_prefix, role, client_ip, status, duration_ms,
                                  bytes, items, requests)
        SELECT ts, kind, method, endpoint, endpoint_kind, layer_id, layer_department, department_code,
               key_prefix, role, client_ip, status, duration_ms, bytes, items, requests
        FROM r
        ORDER BY ts
    )
    INSERT INTO gs.usage_daily AS u (day, department_code, layer_id, layer_department, endpoint_kind,
                                     calls, items, errors, limited, bytes, duration_ms)
    SELECT (ts AT TIME ZONE :tz)::date, department_code,
           CASE WHEN layer_department IS NULL THEN NULL ELSE layer_id END, layer_department,
           endpoint_kind, sum(requests), coalesce(sum(items), 0),
           coalesce(sum(requests) FILTER (WHERE status >= 400), 0),
           coalesce(sum(requests) FILTER (WHERE status = 429), 0), coalesce(sum(bytes), 0),
           coalesce(sum(duration_ms), 0)
    FROM r
    GROUP BY 1, 2, 3, 4, 5
    ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT ON CONSTRAINT usage_daily_key DO UPDATE SET
        calls = u.calls + excluded.calls, items = u.items + excluded.items,
        errors = u.errors + excluded.errors, limited = u.limited + excluded.limited,
        bytes = u.bytes + excluded.bytes, duration_ms = u.duration_ms + excluded.duration_ms
    """
)


def write_batch(conn: Connection, rows: list[Access], timezone: str) -> None:
    """Append ``rows`` to the log and the roll-up (the writer thread's statement; also for tests)."""
    columns = list(zip(*rows, strict=True))
    params: dict[str, Any] = {name: list(col) for name, col in zip(Access._fields, columns, strict=True)}
    params["client_ip"] = [_inet(ip) for ip in params["client_ip"]]
    params["tz"] = timezone
    conn.execute(_FLUSH, params)


@lru_cache(maxsize=4096)
def _inet(value: str | None) -> str | None:
    """The peer as ``inet`` accepts it, or None (test clients and unix sockets have no address)."""
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


class AuditWriter:
    """The per-process buffer and its writer thread. ``tick`` callables run in the same thread after
    each flush (the rate limiter refreshes its department limits there: no database on requests)."""

    def __init__(
        self,
        engine: Engine,
        config: AuditConfig,
        ticks: Iterable[Callable[[], None]] = (),
    ) -> None:
        self.engine = engine
        self.config = config
        self.ticks = list(ticks)
        self.dropped = 0
        self.written = 0
        self._buffer: deque[Access] = deque()
        self._tallies: dict[TallyKey, list[Any]] = {}  # key -> [first ts, requests, bytes, items, ms]
        self._tally_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._flush_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._last_warning = 0.0

    # -- request path ------------------------------------------------------------------------------

    def submit(self, record: Access) -> None:
        """Queue one record: O(1), never blocks, never touches the database."""
        buffer = self._buffer
        if len(buffer) >= self.config.buffer_max:
            self.dropped += 1
            self._warn(
                "audit buffer full (%d records): dropping; %d dropped so far", len(buffer), self.dropped
            )
            return
        buffer.append(record)
        if len(buffer) >= self.config.batch:
            self._wake.set()

    def tally(self, key: TallyKey, ts: float, size: int, items: int | None, duration_ms: float) -> None:
        """Count one request into its row of the current flush (tile reads): a dict probe and a few
        additions under an uncontended lock, never the database."""
        with self._tally_lock:
            row = self._tallies.get(key)
            if row is None:
                self._tallies[key] = [ts, 1, size, items, duration_ms]
                return
            row[1] += 1
            row[2] += size
            if items is not None:
                row[3] = items if row[3] is None else row[3] + items
            row[4] += duration_ms

    @property
    def pending(self) -> int:
        return len(self._buffer) + len(self._tallies)

    def _close_tallies(self) -> None:
        """Turn the tallies so far into rows at the end of the buffer (they are written with it)."""
        with self._tally_lock:
            tallies, self._tallies = self._tallies, {}
        for key, (ts, requests, size, items, duration_ms) in tallies.items():
            self._buffer.append(Access(ts, *key, duration_ms, size, items, requests))

    # -- writer thread -----------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="geoshare-audit", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread and write what is left (on shutdown)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.flush()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.config.flush_seconds)
            self._wake.clear()
            if self._stop.is_set():
                break
            self.flush()
            for tick in self.ticks:
                try:
                    tick()
                except Exception:  # noqa: BLE001 - a failed refresh keeps the previous values
                    log.warning("audit tick %s failed", getattr(tick, "__name__", tick), exc_info=True)

    def flush(self) -> int:
        """Write everything buffered now; return the number of records written. Thread-safe: a caller
        returns only once records queued before the call are in the database (or kept for a retry)."""
        with self._flush_lock:
            self._close_tallies()
            written = 0
            while self._buffer:
                take = min(len(self._buffer), self.config.batch)
                rows = [self._buffer.popleft() for _ in range(take)]
                try:
                    try:
                        with self.engine.begin() as conn:
                            write_batch(conn, rows, self.config.timezone)
                    except DataError:  # a value PostgreSQL refuses (a NUL): escaped, never requeued
                        rows = [_printable(r) for r in rows]
                        with self.engine.begin() as conn:
                            write_batch(conn, rows, self.config.timezone)
                except DataError as exc:
                    self.dropped += take
                    log.warning("audit flush of %d records dropped: %s", take, exc)
                    continue
                except Exception as exc:  # noqa: BLE001 - the database may be down: keep or drop, never raise
                    self._requeue(rows)
                    self._warn(
                        "audit flush of %d records failed (%s); %d pending",
                        take,
                        type(exc).__name__,
                        len(self._buffer),
                    )
                    break
                written += take
            self.written += written
            return written

    def _requeue(self, rows: list[Access]) -> None:
        room = self.config.buffer_max - len(self._buffer)
        keep = rows[: max(room, 0)]
        self.dropped += len(rows) - len(keep)
        self._buffer.extendleft(reversed(keep))

    def _warn(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last_warning >= 60:
            self._last_warning = now
            log.warning(message, *args)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _printable(row: Access) -> Access:
    """``row`` with control characters in its text escaped as ``\\xNN`` (the audit log keeps what
    was asked, in a form PostgreSQL stores)."""
    return row._replace(
        **{
            name: _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", value)
            for name, value in row._asdict().items()
            if isinstance(value, str) and _CONTROL.search(value)
        }
    )


# -- changes -------------------------------------------------------------------------------------------

_FULL_KEY = re.compile(r"(gsk_[a-z0-9]{8}_)[A-Za-z0-9_-]+")
_CHANGE = text(
    """
    INSERT INTO gs.audit_log (kind, action, target, layer_id, layer_department, department_code,
                              key_prefix, role, actor, detail)
    SELECT 'change', :action, :target, CAST(:layer_id AS text),
           (SELECT department_code FROM gs.layer WHERE id = :layer_id), :department_code,
           :key_prefix, :role, :actor, CAST(:detail AS jsonb)
    """
)


def _scrub(value: Any) -> Any:
    """Full API keys inside a change's detail cut to their prefix (details may echo requests)."""
    if isinstance(value, str):
        return _FULL_KEY.sub(r"\1…", value)
    if isinstance(value, Mapping):
        return {str(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub(v) for v in value]
    return value


def record_change(
    target_conn: Connection | Engine,
    who: Principal | str | None,
    action: str,
    target: str,
    detail: Mapping[str, Any] | None = None,
) -> None:
    """Append a change to the audit log on ``target_conn`` (inside the caller's transaction).

    ``who`` is the principal, or a plain actor name for the CLI (e.g. ``cli:alice``); ``action`` a
    verb such as ``layer.publish``, ``key.revoke``, ``agreement.approve``; ``target`` ``kind:id``
    (``layer:roads``, ``key:ab12cd34``, ``agreement:7``) — a ``layer:`` target is also filed under
    that layer, so the layer's owner finds it.
    """
    principal = who if isinstance(who, Principal) else None
    actor = (
        who
        if isinstance(who, str)
        else (f"user:{principal.user_id}" if principal and principal.user_id else None)
    )
    layer_id = target.split(":", 1)[1] if target.startswith("layer:") else None
    params = {
        "action": action,
        "target": _scrub(target),
        "layer_id": layer_id,
        "department_code": principal.department if principal else None,
        "key_prefix": principal.key_prefix if principal else None,
        "role": principal.role if principal else None,
        "actor": _scrub(actor) if actor else None,
        "detail": orjson.dumps(_scrub(dict(detail))).decode() if detail else None,
    }
    if isinstance(target_conn, Engine):
        with target_conn.begin() as conn:
            conn.execute(_CHANGE, params)
    else:
        target_conn.execute(_CHANGE, params)
