"""The audit log's monthly partitions (migration 0014): made ahead of time, dropped past retention.

Each worker's audit runtime calls ``maintain`` when it starts and every few hours: the partitions
of this month and the next ``MONTHS_AHEAD`` exist before a row needs them (a row with no partition
would land in the default one, which then blocks making its month), and with a retention set the
months wholly older than it are dropped. Dropping a partition is the only way rows leave the log,
and it never touches the append-only triggers. Graded protection (等保) asks for at least six
months of logs, so a shorter retention is refused.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime

from sqlalchemy import Connection, text

log = logging.getLogger("geoshare.audit")

MONTHS_AHEAD = 2
MIN_RETENTION_MONTHS = 6
EVERY_SECONDS = 6 * 3600


def _month(day: date, offset: int) -> date:
    index = day.year * 12 + day.month - 1 + offset
    return date(index // 12, index % 12 + 1, 1)


def check_retention(months: int) -> int:
    """0 keeps everything; otherwise at least ``MIN_RETENTION_MONTHS``."""
    if months != 0 and months < MIN_RETENTION_MONTHS:
        raise ValueError(
            f"audit retention of {months} months is below the {MIN_RETENTION_MONTHS} months graded "
            "protection asks for (0 keeps every month)"
        )
    return months


def ensure(conn: Connection, today: date | None = None) -> list[str]:
    """This month's partition and the next ``MONTHS_AHEAD`` ones (made if missing)."""
    today = today or datetime.now(UTC).date()
    months = [_month(today, n) for n in range(MONTHS_AHEAD + 1)]
    return [conn.execute(text("SELECT gs.audit_log_partition(:m)"), {"m": m}).scalar_one() for m in months]


def purge(conn: Connection, keep_months: int, today: date | None = None) -> list[str]:
    """Drop the months wholly before the last ``keep_months`` (this one included); their names."""
    check_retention(keep_months)
    if keep_months == 0:
        return []
    cutoff = _month(today or datetime.now(UTC).date(), 1 - keep_months)
    return list(conn.execute(text("SELECT gs.audit_log_drop_before(:c)"), {"c": cutoff}).scalars())


def maintain(conn: Connection, keep_months: int) -> None:
    ensure(conn)
    dropped = purge(conn, keep_months)
    if dropped:
        log.warning("audit log: dropped %s (retention %d months)", ", ".join(dropped), keep_months)
