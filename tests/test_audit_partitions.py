"""The audit log partitioned by month (migration 0014, issue 18.6): rows land in their month's
partition, the coming months are made ahead, whole months past the retention are dropped, and the
append-only rule holds on every partition before and after a drop."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from geoshare.access import audit_partitions
from geoshare.access.audit import Access, AuditConfig, AuditWriter


def partitions(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "WHERE i.inhparent = 'gs.audit_log'::regclass ORDER BY 1"
                )
            ).scalars()
        )


def record(ts: datetime, endpoint: str) -> Access:
    return Access(
        ts.timestamp(), "read", "GET", endpoint, "other", None, None, None, None, None, 200, 1.0, 1, None
    )


def test_rows_land_in_their_month_and_the_coming_months_exist(engine: Engine) -> None:
    with engine.begin() as conn:
        made = audit_partitions.ensure(conn)
    today = datetime.now(UTC).date()
    assert made[0] == f"audit_log_y{today:%Y}m{today:%m}" and len(made) == audit_partitions.MONTHS_AHEAD + 1
    assert set(made) <= set(partitions(engine)) and "audit_log_default" in partitions(engine)
    writer = AuditWriter(engine, AuditConfig())
    writer.submit(record(datetime.now(UTC), "/_partition_now"))
    assert writer.flush() == 1
    with engine.connect() as conn:
        where = conn.execute(
            text("SELECT tableoid::regclass::text FROM gs.audit_log WHERE endpoint = '/_partition_now'")
        ).scalar_one()
    assert where == f"gs.{made[0]}"


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM gs.{p} WHERE endpoint = '/_partition_old'",
        "UPDATE gs.{p} SET status = 500",
        "TRUNCATE gs.{p}",
        "DELETE FROM gs.audit_log WHERE endpoint = '/_partition_old'",
    ],
)
def test_every_partition_is_append_only(engine: Engine, sql: str) -> None:
    with engine.begin() as conn:
        name = conn.execute(text("SELECT gs.audit_log_partition('2021-03-01')")).scalar_one()
    writer = AuditWriter(engine, AuditConfig())
    writer.submit(record(datetime(2021, 3, 15, tzinfo=UTC), "/_partition_old"))
    writer.flush()
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text(sql.format(p=name)))


def test_months_past_the_retention_are_dropped_whole(engine: Engine) -> None:
    with engine.begin() as conn:
        for month in ("2020-01-01", "2020-02-01"):
            conn.execute(text("SELECT gs.audit_log_partition(:m)"), {"m": month})
    writer = AuditWriter(engine, AuditConfig())
    writer.submit(record(datetime(2020, 1, 20, tzinfo=UTC), "/_partition_purged"))
    writer.submit(record(datetime(2020, 2, 20, tzinfo=UTC), "/_partition_kept"))
    writer.flush()
    with engine.begin() as conn:  # in March 2020, keeping 6 months keeps October 2019 on
        assert audit_partitions.purge(conn, 6, today=date(2020, 3, 10)) == []
    with engine.begin() as conn:  # in July 2020 the last 6 months are February to July
        dropped = audit_partitions.purge(conn, 6, today=date(2020, 7, 2))
    assert dropped == ["audit_log_y2020m01"]
    assert "audit_log_y2020m01" not in partitions(engine) and "audit_log_y2020m02" in partitions(engine)
    with engine.connect() as conn:
        early = text("SELECT endpoint FROM gs.audit_log WHERE ts >= '2020-01-01' AND ts < '2020-03-01'")
        left = set(conn.execute(early).scalars())
    assert left == {"/_partition_kept"}
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text("DELETE FROM gs.audit_log_y2020m02"))  # the rule still holds


def test_a_retention_under_six_months_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEOSHARE_AUDIT_RETENTION_MONTHS", "3")
    with pytest.raises(ValueError, match="6 months"):
        AuditConfig.from_settings(object())
    monkeypatch.setenv("GEOSHARE_AUDIT_RETENTION_MONTHS", "12")
    assert AuditConfig.from_settings(object()).retention_months == 12
