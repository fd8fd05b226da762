"""Ingest the nginx front cache's log into the audit log.

nginx answers repeated versioned public tiles from its cache (and refuses floods with its own 429)
without reaching Python, so the audit middleware never sees those requests. nginx writes one JSON
line per request it answered itself; this module appends those lines to ``gs.audit_log`` and
``gs.usage_daily`` through the audit writer's statement (``write_batch``), tallied like the app's own
tile reads: one row per distinct ``TallyKey`` per round.

``gs.front_log_cursor`` remembers, per file, its inode and the byte position after the last whole
line ingested. A round locks that row, reads the lines after it, writes their rows and moves it, all
in one transaction: a crash neither loses nor doubles a line, and several workers following the same
file take turns on the row lock instead of counting a line twice. Malformed lines are skipped and
counted, never fatal: a crash can truncate a line, and one bad line must not stop the log.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Engine, text

from geoshare.access.audit import Access, TallyKey, write_batch

log = logging.getLogger("geoshare.audit.front")

CHUNK = 8 << 20  # bytes read per round at most: memory stays bounded however far behind we are
ROTATED_SETTLE_SECONDS = 5.0  # a rotated log unwritten this long is done with (nginx flushes each 1 s)
KeyFor = Callable[["FrontHit"], TallyKey | None]


class FrontHit(NamedTuple):
    """One request nginx answered itself (a cache hit or its own 429)."""

    ts: float  # epoch seconds
    ip: str | None
    method: str
    path: str  # nginx's $uri: decoded, no query string
    status: int
    bytes: int
    seconds: float


def _number(value: Any, low: float, high: float) -> bool:
    # bool is an int; the bounds keep a line from breaking the INSERT (timestamp, int2/int8/float4
    # ranges), which would stop ingestion on that line for good
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and low <= value <= high
    )


def _text(value: Any) -> bool:
    return isinstance(value, str) and "\x00" not in value  # PostgreSQL text refuses NUL


def parse(line: str | bytes) -> FrontHit | None:
    """The hit one log line records, or None when the line is not one (truncated, garbage)."""
    try:
        d = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(d, dict):
        return None
    ts, ip, method, path = d.get("ts"), d.get("ip"), d.get("method"), d.get("path")
    status, size, seconds = d.get("status"), d.get("bytes"), d.get("seconds")
    if not (
        _number(ts, 0, 1e11)
        and (ip is None or _text(ip))
        and _text(method)
        and method
        and _text(path)
        and isinstance(status, int)
        and _number(status, 100, 999)
        and isinstance(size, int)
        and _number(size, 0, 2**62)
        and _number(seconds, 0, 1e6)
    ):
        return None
    return FrontHit(float(ts), ip or None, method, path, status, size, float(seconds))  # type: ignore[arg-type]


# -- reading -------------------------------------------------------------------------------------------


def _inode(st: os.stat_result) -> int:
    """``st_ino`` as a signed 64-bit value (the column is a bigint)."""
    return st.st_ino - (1 << 64) if st.st_ino >= 1 << 63 else st.st_ino


class Read(NamedTuple):
    lines: list[bytes]  # whole lines, without their newline
    inode: int  # the cursor after them
    position: int
    more: bool  # a full chunk was read, or the rest of a rotated file: read again right away
    settling: bool = False  # the cursor waits on a rotated file written to moments ago


def _whole_lines(data: bytes, limit: int) -> tuple[list[bytes], int]:
    """The complete lines in ``data`` and the bytes they take. A partial last line waits for its end;
    a single line longer than ``limit`` is taken as it is (it fails to parse: counted as malformed)."""
    end = data.rfind(b"\n") + 1
    if end == 0:
        return ([data], len(data)) if len(data) >= limit else ([], 0)
    return data[: end - 1].split(b"\n"), end


def read_lines(path: str, inode: int, position: int, limit: int = CHUNK) -> Read:
    """The whole lines after cursor ``(inode, position)`` in ``path`` (at most ``limit`` bytes), and the
    cursor after them.

    A missing file reads nothing (nginx has not written yet, or is between rotation and reopen). A
    different inode means the file was rotated: the rest of the old file is still read first when it
    sits at ``path.1`` (logrotate's name), and the cursor stays on it until it has been quiet for
    ``ROTATED_SETTLE_SECONDS`` (an nginx worker flushes its buffered lines to the old file until it
    has reopened the log); then the new one is read from 0. A file shorter than the position was
    truncated in place (copytruncate) and is read from 0.
    """
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below, after the fstat
    except FileNotFoundError:
        return Read([], inode, position, False)
    with f:
        st = os.fstat(f.fileno())
        if _inode(st) != inode:
            rest = _rotated_rest(path + ".1", inode, position, limit)
            if rest is not None:
                lines, taken = rest
                if taken:
                    return Read(lines, inode, position + taken, True)
                return Read([], inode, position, False, settling=True)  # may still be written to
            inode, position = _inode(st), 0
        elif st.st_size < position:
            position = 0
        f.seek(position)
        data = f.read(limit)
    lines, taken = _whole_lines(data, limit)
    return Read(lines, inode, position + taken, len(data) >= limit)


def _rotated_rest(path: str, inode: int, position: int, limit: int) -> tuple[list[bytes], int] | None:
    """The whole lines after ``position`` of the rotated file at ``path`` if it is the one the cursor
    follows and it has been written to lately or has lines left (maybe none yet: a partial line);
    None when the cursor is done with it."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            if _inode(st) != inode:
                return None
            if st.st_size > position:
                f.seek(position)
                lines, taken = _whole_lines(f.read(limit), limit)
                if taken:
                    return lines, taken
    except OSError:
        return None
    # read through (a partial last line is never finished once nginx has reopened its log)
    return None if time.time() - st.st_mtime >= ROTATED_SETTLE_SECONDS else ([], 0)


# -- ingesting -----------------------------------------------------------------------------------------

_ENSURE = text(
    "INSERT INTO gs.front_log_cursor (path, inode, position) VALUES (:path, 0, 0) "
    "ON CONFLICT (path) DO NOTHING"
)
_LOCK = text("SELECT inode, position FROM gs.front_log_cursor WHERE path = :path FOR UPDATE")
_MOVE = text(
    "UPDATE gs.front_log_cursor SET inode = :inode, position = :position, updated_at = now() "
    "WHERE path = :path"
)


class Ingested(NamedTuple):
    hits: int  # lines written to the audit log
    malformed: int  # lines that did not parse
    skipped: int  # lines ``key_for`` declined
    more: bool  # there is more to read right away (see ``Read``)
    settling: bool = False  # the cursor waits on a rotated file (see ``Read``): look again next round


def ingest(
    engine: Engine,
    path: str,
    key_for: KeyFor,
    timezone: str,
    limit: int = CHUNK,
    rotate: Rotation | None = None,
) -> Ingested:
    """One round: the new whole lines of ``path`` into the audit log, and the cursor moved past them,
    in one transaction (see the module's docstring); then, with ``rotate``, a file read through past
    its size is rotated (under the cursor's lock, so one worker at a time)."""
    cursor = {"path": os.path.abspath(path)}
    with engine.begin() as conn:
        conn.execute(_ENSURE, cursor)
        inode, position = conn.execute(_LOCK, cursor).one()
        read = read_lines(path, inode, position, limit)
        if (read.inode, read.position) == (inode, position):
            if rotate is not None and not read.more:
                rotate.maybe(path, inode, position)
            return Ingested(0, 0, 0, False, read.settling)
        tallies: dict[TallyKey, list[Any]] = {}  # key -> [first ts, requests, bytes, items, seconds]
        malformed = skipped = 0
        for line in read.lines:
            hit = parse(line)
            if hit is None:
                malformed += 1
                continue
            key = key_for(hit)
            if key is None:
                skipped += 1
                continue
            ok = 1 if hit.status == 200 else 0
            row = tallies.get(key)
            if row is None:
                tallies[key] = [hit.ts, 1, hit.bytes, ok, hit.seconds]
            else:
                row[0] = min(row[0], hit.ts)
                row[1] += 1
                row[2] += hit.bytes
                row[3] += ok
                row[4] += hit.seconds
        rows = [
            Access(ts, *key, seconds * 1000, size, items or None, requests)
            for key, (ts, requests, size, items, seconds) in tallies.items()
        ]
        if rows:
            write_batch(conn, rows, timezone)
        conn.execute(_MOVE, {**cursor, "inode": read.inode, "position": read.position})
        if rotate is not None and not read.more:
            rotate.maybe(path, read.inode, read.position)
    return Ingested(sum(r.requests for r in rows), malformed, skipped, read.more)


class Rotation(NamedTuple):
    """Keep the log small: once the cursor is ``max_bytes`` into the file, rename it to ``path.1``
    (whose rest, written since, ``read_lines`` still reads first) and ask nginx to reopen its log
    (``reopen``: SIGUSR1 to its master). The cursor being on the current file means the previous
    ``.1`` was read through, so replacing it loses nothing."""

    max_bytes: int
    reopen: Callable[[], None]

    def maybe(self, path: str, inode: int, position: int) -> bool:
        try:
            st = os.stat(path)
        except OSError:
            return False
        if _inode(st) != inode or position < self.max_bytes:
            # another file than the cursor's (the previous ``.1`` may still be unread): leave it
            return False
        os.replace(path, path + ".1")
        try:
            self.reopen()
        except OSError as exc:
            log.warning("front log %s rotated, but nginx was not told to reopen it: %s", path, exc)
        return True


def ingest_once(engine: Engine, path: str, key_for: KeyFor, timezone: str) -> int:
    """One round of ``ingest``; the number of hits written."""
    return ingest(engine, path, key_for, timezone).hits


class FrontLogFollower:
    """A daemon thread ingesting ``path`` every ``interval`` seconds, one per worker process (the
    cursor's row lock keeps them from counting a line twice). Failures (database down, unreadable
    file) are logged at most once a minute and retried next round, never raised."""

    def __init__(
        self,
        engine: Engine,
        path: str,
        key_for: KeyFor,
        timezone: str,
        interval: float = 1.0,
        rotate: Rotation | None = None,
    ) -> None:
        self.rotate = rotate
        self.engine = engine
        self.path = path
        self.key_for = key_for
        self.timezone = timezone
        self.interval = interval
        self.ingested = 0
        self.malformed = 0
        self.skipped = 0
        self._stop = threading.Event()
        self._round_lock = threading.Lock()  # close()'s last round waits for the thread's
        self._thread: threading.Thread | None = None
        self._last_warning = 0.0
        self._seen: tuple[int, int] | None = None  # (inode, size) of the file when last read through

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="geoshare-front-log", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread and ingest what is there now (on shutdown)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.run_once()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.run_once()

    def run_once(self) -> int:
        """Ingest everything written so far (chunk after chunk); the number of hits written."""
        written = 0
        try:
            st = os.stat(self.path)
            seen: tuple[int, int] | None = (st.st_ino, st.st_size)
        except OSError:
            seen = None
        if seen is not None and seen == self._seen:
            return 0  # nothing written since the last round read it all: no database round trip
        with self._round_lock:
            while True:
                try:
                    result = ingest(self.engine, self.path, self.key_for, self.timezone, rotate=self.rotate)
                except Exception as exc:  # noqa: BLE001 - retried next round, never raised
                    self._warn("front log %s: ingestion failed (%s: %s)", self.path, type(exc).__name__, exc)
                    return written
                written += result.hits
                self.ingested += result.hits
                self.skipped += result.skipped
                if result.malformed:
                    self.malformed += result.malformed
                    self._warn("front log %s: %d malformed lines skipped so far", self.path, self.malformed)
                if not result.more:
                    self._seen = None if result.settling else seen
                    return written

    def _warn(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last_warning >= 60:
            self._last_warning = now
            log.warning(message, *args)
