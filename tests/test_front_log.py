"""The nginx front cache's log into the audit log: lines become tallied audit rows and roll-up calls,
once each — across rounds, appends, partial lines, rotation, malformed lines and concurrent workers —
and the follower thread ingests on its own, flushes on close and survives a dead database.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import _wipe
from layer_factory import make_layer
from shapely.geometry import Point
from sqlalchemy import Engine, create_engine, text

from geoshare.access import front_log
from geoshare.access.audit import TallyKey
from geoshare.access.front_log import FrontHit, FrontLogFollower, ingest, ingest_once, parse

LAYER, OWNER = "front_roads", "FRONTD"
TZ = "Asia/Shanghai"
TILES = "/collections/{collection_id}/tiles/{tms_id}/{tile_matrix}/{tile_row}/{tile_col}"
TILE_PATH = re.compile(r"^/collections/([^/]+)/tiles/[^/]+/\d+/\d+/\d+$")
T0 = 1765040000.0


def key_for(hit: FrontHit) -> TallyKey | None:
    m = TILE_PATH.match(hit.path)
    if m is None:
        return None
    return TallyKey("read", hit.method, TILES, "tiles", m[1], None, None, None, hit.ip, hit.status)


def line(
    n: int = 0,
    *,
    ip: str = "127.0.0.1",
    status: int = 200,
    size: int = 1000,
    seconds: float = 0.002,
    path: str | None = None,
    cache: str = "HIT",
) -> str:
    path = path or f"/collections/{LAYER}/tiles/WebMercatorQuad/12/1550/{3372 + n % 7}"
    record = {
        "ts": T0 + n / 1000,
        "ip": ip,
        "method": "GET",
        "path": path,
        "status": status,
        "bytes": size,
        "seconds": seconds,
        "cache": cache,
    }
    return orjson.dumps(record).decode() + "\n"


def append(path: Path, *lines: str) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write("".join(lines))


def quiet(path: Path | str) -> None:
    """As if nothing had been written to ``path`` for a minute: past the rotated log's settling."""
    then = time.time() - 60
    os.utime(path, (then, then))


def mark(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT coalesce(max(id), 0) FROM gs.audit_log")).scalar_one()


def rows_after(engine: Engine, since: int) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        result = conn.execute(
            text(
                "SELECT *, host(client_ip) AS ip, extract(epoch FROM ts) AS epoch FROM gs.audit_log "
                "WHERE id > :m ORDER BY id"
            ),
            {"m": since},
        )
        return [dict(r) for r in result.mappings()]


def requests_after(engine: Engine, since: int) -> int:
    return sum(r["requests"] for r in rows_after(engine, since))


def usage(engine: Engine) -> tuple[int, ...]:
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT coalesce(sum(calls), 0), coalesce(sum(items), 0), coalesce(sum(errors), 0),"
                " coalesce(sum(limited), 0), coalesce(sum(bytes), 0) FROM gs.usage_daily"
                " WHERE layer_id = :l AND layer_department = :d AND endpoint_kind = 'tiles'"
                " AND department_code IS NULL"
            ),
            {"l": LAYER, "d": OWNER},
        ).one()
    return tuple(int(v) for v in row)


@pytest.fixture(scope="module")
def world(engine: Engine) -> Engine:
    _wipe(engine)
    make_layer(engine, LAYER, [(Point(116.3, 39.9), {"编号": "R1"})], [("编号", "string")], department=OWNER)
    return engine


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    return tmp_path / "front.log"


def test_parse_accepts_nginx_lines_and_refuses_the_rest() -> None:
    hit = parse(line(3, ip="2001:db8::1", size=59123, seconds=0.0))
    assert hit == FrontHit(T0 + 0.003, "2001:db8::1", "GET", hit.path, 200, 59123, 0.0)  # type: ignore[union-attr]
    assert parse(line(ip="").encode()).ip is None  # type: ignore[union-attr]
    refused = parse(line(status=429, cache=""))
    assert refused is not None and refused.status == 429
    good = orjson.loads(line())
    for bad in (
        line()[:40],  # truncated by a crash
        "garbage",
        "",
        "[1, 2]",
        b"\xff\xfe{}",
        orjson.dumps({**good, "status": "200"}),
        orjson.dumps({**good, "status": True}),
        orjson.dumps({**good, "bytes": -1}),
        orjson.dumps({**good, "ts": 1e300}),
        orjson.dumps({**good, "path": "/collections/a\x00b/tiles/x/1/2/3"}),
        orjson.dumps({k: v for k, v in good.items() if k != "seconds"}),
    ):
        assert parse(bad) is None, bad


def test_lines_become_tallied_audit_rows_and_rollup_calls_once(world: Engine, log_file: Path) -> None:
    before_usage, since = usage(world), mark(world)
    append(
        log_file,
        line(0, size=100, seconds=0.001),
        line(7, size=200, seconds=0.002),  # same tile (7 % 7 == 0), same client: same row
        line(14, size=300, seconds=0.003),
        line(1, ip="10.0.0.2", size=50),
        line(2, status=429, size=10, cache=""),
        line(3, status=429, size=10, cache=""),
        line(4, ip="2001:db8::1", status=304, size=0),
    )
    assert ingest_once(world, str(log_file), key_for, TZ) == 7

    rows = {(r["ip"], r["status"]): r for r in rows_after(world, since)}
    assert set(rows) == {("127.0.0.1", 200), ("10.0.0.2", 200), ("127.0.0.1", 429), ("2001:db8::1", 304)}
    hits = rows[("127.0.0.1", 200)]
    assert (hits["requests"], hits["bytes"], hits["items"]) == (3, 600, 3)
    assert hits["duration_ms"] == pytest.approx(6.0)
    assert float(hits["epoch"]) == pytest.approx(T0)  # the first hit's time
    assert (hits["kind"], hits["method"], hits["endpoint"], hits["endpoint_kind"]) == (
        "read",
        "GET",
        TILES,
        "tiles",
    )
    assert hits["layer_id"] == LAYER and hits["layer_department"] == OWNER
    limited = rows[("127.0.0.1", 429)]
    assert (limited["requests"], limited["bytes"], limited["items"]) == (2, 20, None)
    assert rows[("2001:db8::1", 304)]["items"] is None
    assert rows[("10.0.0.2", 200)]["items"] == 1

    calls, items, errors, refused, size = (a - b for a, b in zip(usage(world), before_usage, strict=True))
    assert (calls, items, errors, refused, size) == (7, 4, 2, 2, 670)

    again = mark(world)
    assert ingest_once(world, str(log_file), key_for, TZ) == 0
    assert rows_after(world, again) == []


def test_appends_and_partial_lines_are_taken_once_whole(world: Engine, log_file: Path) -> None:
    since = mark(world)
    append(log_file, line(0), line(1))
    assert ingest_once(world, str(log_file), key_for, TZ) == 2
    partial = line(3, size=777)
    append(log_file, line(2), partial[:25])
    assert ingest_once(world, str(log_file), key_for, TZ) == 1
    assert ingest_once(world, str(log_file), key_for, TZ) == 0  # still not whole
    append(log_file, partial[25:])
    assert ingest_once(world, str(log_file), key_for, TZ) == 1
    assert ingest_once(world, str(log_file), key_for, TZ) == 0
    rows = rows_after(world, since)
    assert sum(r["requests"] for r in rows) == 4
    assert rows[-1]["bytes"] == 777


def test_missing_file_reads_nothing_until_it_appears(world: Engine, log_file: Path) -> None:
    assert ingest_once(world, str(log_file), key_for, TZ) == 0
    append(log_file, line(0))
    assert ingest_once(world, str(log_file), key_for, TZ) == 1


def test_rotation_finishes_the_old_file_then_reads_the_new_from_the_start(
    world: Engine, log_file: Path
) -> None:
    since = mark(world)
    append(log_file, line(0), line(1))
    assert ingest_once(world, str(log_file), key_for, TZ) == 2
    append(log_file, line(2, size=5))  # written before logrotate moved the file
    log_file.rename(f"{log_file}.1")
    append(log_file, line(3, size=7), line(4, size=7), line(5, size=7))  # nginx reopened: a new inode
    assert ingest_once(world, str(log_file), key_for, TZ) == 1  # the rest of the rotated file first
    quiet(f"{log_file}.1")
    assert ingest_once(world, str(log_file), key_for, TZ) == 3
    assert ingest_once(world, str(log_file), key_for, TZ) == 0
    assert [r["bytes"] for r in rows_after(world, since)] == [2000, 5, 21]

    # rotated under another name: the new file is still read from its start
    log_file.rename(f"{log_file}.old")
    append(log_file, line(6))
    assert ingest_once(world, str(log_file), key_for, TZ) == 1

    # truncated in place (copytruncate): shorter than the position, read from 0
    append(log_file, line(7), line(8))
    assert ingest_once(world, str(log_file), key_for, TZ) == 2
    log_file.write_text(line(9))
    assert ingest_once(world, str(log_file), key_for, TZ) == 1
    assert requests_after(world, since) == 10


def test_a_log_read_this_far_is_rotated_and_nothing_is_lost(world: Engine, log_file: Path) -> None:
    since = mark(world)
    reopened: list[int] = []

    def reopen() -> None:  # nginx, told to reopen, creates the file anew
        reopened.append(1)
        log_file.touch()

    rotate = front_log.Rotation(max_bytes=len(line(0)) * 3, reopen=reopen)
    append(log_file, line(0), line(1))
    assert ingest(world, str(log_file), key_for, TZ, rotate=rotate).hits == 2
    assert not reopened and log_file.exists()  # not far enough yet
    append(log_file, line(2), line(3))
    assert ingest(world, str(log_file), key_for, TZ, rotate=rotate).hits == 2
    assert reopened == [1] and Path(f"{log_file}.1").exists()
    append(Path(f"{log_file}.1"), line(4))  # a worker still writing the old file before it reopens
    append(log_file, line(5), line(6))
    assert ingest(world, str(log_file), key_for, TZ, rotate=rotate).hits == 1
    quiet(f"{log_file}.1")
    for _ in range(2):
        ingest(world, str(log_file), key_for, TZ, rotate=rotate)
    assert requests_after(world, since) == 7  # every line once: the old file's rest, then the new
    assert reopened == [1]  # the new file is not far enough to rotate again

    # a rotation the cursor has not caught up with is never rotated over
    append(log_file, *(line(n) for n in range(7, 12)))
    cursor_inode = front_log._inode(log_file.stat())
    log_file.rename(f"{log_file}.1")  # rotated by someone else, the cursor still in the old file
    append(log_file, line(12))
    assert not rotate.maybe(str(log_file), cursor_inode, 10**9)
    assert ingest(world, str(log_file), key_for, TZ).hits == 5  # the old file's rest
    quiet(f"{log_file}.1")
    for _ in range(2):
        ingest(world, str(log_file), key_for, TZ)
    assert requests_after(world, since) == 13


def test_lines_flushed_late_to_a_rotated_log_are_not_lost(world: Engine, log_file: Path) -> None:
    since = mark(world)
    rotated = Path(f"{log_file}.1")
    append(log_file, line(0))
    assert ingest_once(world, str(log_file), key_for, TZ) == 1
    log_file.rename(rotated)
    append(log_file, line(1))  # nginx reopened its log: a new file
    assert ingest_once(world, str(log_file), key_for, TZ) == 0  # the old one was written just now
    append(rotated, line(2))  # a worker flushing its buffer to the old file before it reopens
    assert ingest_once(world, str(log_file), key_for, TZ) == 1
    assert ingest_once(world, str(log_file), key_for, TZ) == 0  # still waiting on the old file
    quiet(rotated)
    assert ingest_once(world, str(log_file), key_for, TZ) == 1  # quiet: on to the new file
    assert requests_after(world, since) == 3

    # a partial line at the end of a rotated file holds the cursor only until the file is quiet
    append(log_file, line(3))
    with log_file.open("a") as f:
        f.write(line(4)[:20])  # nginx died mid-line
    assert ingest_once(world, str(log_file), key_for, TZ) == 1
    log_file.rename(rotated)
    append(log_file, line(5))
    assert ingest_once(world, str(log_file), key_for, TZ) == 0
    quiet(rotated)
    assert ingest_once(world, str(log_file), key_for, TZ) == 1
    assert requests_after(world, since) == 5


def test_malformed_lines_and_declined_hits_are_skipped_and_counted(world: Engine, log_file: Path) -> None:
    since = mark(world)
    append(
        log_file,
        line(0),
        "garbage\n",
        line(1)[:30] + "\n",  # truncated by a crash, then nginx went on
        line(2, path="/favicon.ico"),  # key_for: not a tile
        "\n",
        line(3),
    )
    follower = FrontLogFollower(world, str(log_file), key_for, TZ)
    assert follower.run_once() == 2
    assert (follower.ingested, follower.malformed, follower.skipped) == (2, 3, 1)
    assert requests_after(world, since) == 2


def test_reads_are_bounded_and_an_overlong_line_is_skipped(world: Engine, log_file: Path) -> None:
    append(log_file, "x" * 300 + "\n", line(0), line(1), line(2))
    path = str(log_file)
    first = ingest(world, path, key_for, TZ, limit=256)  # the long line, cut into pieces
    assert (first.hits, first.malformed, first.more) == (0, 1, True)
    rounds = [ingest(world, path, key_for, TZ, limit=256) for _ in range(6)]
    assert sum(r.hits for r in rounds) == 3
    assert len(line(0)) < 256
    assert rounds[-1] == front_log.Ingested(0, 0, 0, False)


def test_concurrent_workers_never_count_a_line_twice(world: Engine, log_file: Path) -> None:
    total = 1500
    append(log_file, *(line(n, ip=f"10.1.{n % 3}.1", size=n) for n in range(total)))
    since, before = mark(world), usage(world)
    start = threading.Barrier(4)
    written: list[int] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            start.wait()
            while True:
                result = ingest(world, str(log_file), key_for, TZ, limit=8192)
                written.append(result.hits)
                if not result.more and result.hits == 0:
                    return
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert sum(written) == total
    assert len([w for w in written if w]) > 1  # several rounds did share the work
    rows = rows_after(world, since)
    assert sum(r["requests"] for r in rows) == total
    assert sum(r["bytes"] for r in rows) == sum(range(total))
    assert usage(world)[0] - before[0] == total


def test_follower_ingests_on_its_own_and_flushes_on_close(world: Engine, log_file: Path) -> None:
    since = mark(world)
    follower = FrontLogFollower(world, str(log_file), key_for, TZ, interval=0.1)
    follower.start()
    try:
        append(log_file, line(0), line(1))
        deadline = time.monotonic() + 5
        while requests_after(world, since) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert requests_after(world, since) == 2
    finally:
        follower.close()
    assert follower.ingested == 2

    slow = FrontLogFollower(world, str(log_file), key_for, TZ, interval=3600)
    slow.start()
    append(log_file, line(2), line(3), line(4))
    slow.close(timeout=5)
    assert slow.ingested == 3
    assert requests_after(world, since) == 5


def test_follower_survives_a_dead_database_and_an_unreadable_file(
    world: Engine, log_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    append(log_file, line(0))
    dead = create_engine("postgresql+psycopg://nobody:x@127.0.0.1:1/none")
    follower = FrontLogFollower(dead, str(log_file), key_for, TZ, interval=0.05)
    with caplog.at_level(logging.WARNING, logger="geoshare.audit.front"):
        follower.start()
        time.sleep(0.4)
        follower.close()
    assert follower.ingested == 0
    warnings = [r for r in caplog.records if "ingestion failed" in r.getMessage()]
    assert len(warnings) == 1  # at most once a minute

    unreadable = tmp_path / "unreadable.log"
    unreadable.mkdir()  # a directory where the file should be: open() fails (chmod would not, as root)
    follower = FrontLogFollower(world, str(unreadable), key_for, TZ)
    assert follower.run_once() == 0
    unreadable.rmdir()
    append(unreadable, line(0))
    assert follower.run_once() == 1  # retried, then taken
    assert follower.ingested == 1
