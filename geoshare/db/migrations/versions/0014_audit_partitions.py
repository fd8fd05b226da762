"""The audit log partitioned by month, so old months are dropped whole and the log stays append-only.

``gs.audit_log`` becomes ``PARTITION BY RANGE (ts)`` with one partition per calendar month (UTC),
``gs.audit_log_yYYYYmMM``, and a default partition that keeps any row outside them (a clock far
off) rather than lose it. ``gs.audit_log_partition(month)`` makes a month's partition (workers
keep the coming months made, ``access.audit_partitions``); ``gs.audit_log_drop_before(cutoff)``
drops the months wholly before ``cutoff`` — the one way rows leave the log, and only whole months
past the retention (``GEOSHARE_AUDIT_RETENTION_MONTHS``).

The append-only rule holds on every partition, not only through the parent: a row-level trigger
on the partitioned table (cloned to each partition) refuses UPDATE and DELETE of any row, and the
parent and each partition refuse UPDATE, DELETE and TRUNCATE statements of their own. Dropping a partition
fires none of them: retention never disables the rule.

The existing rows are copied into the new table (ids kept, the identity continued after them).

Revision ID: 0014
Revises: 0013
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

COLUMNS = (
    "id, ts, kind, method, endpoint, endpoint_kind, layer_id, layer_department, department_code, "
    "key_prefix, role, actor, client_ip, status, duration_ms, bytes, items, action, target, detail, requests"
)


def upgrade() -> None:
    op.execute(
        f"""
        ALTER TABLE gs.audit_log RENAME TO audit_log_unpartitioned;
        ALTER INDEX gs.audit_log_pkey RENAME TO audit_log_unpartitioned_pkey;
        ALTER INDEX gs.audit_log_ts_brin RENAME TO audit_log_unpartitioned_ts_brin;

        CREATE TABLE gs.audit_log (
            id                bigint GENERATED ALWAYS AS IDENTITY,
            ts                timestamptz NOT NULL DEFAULT now(),
            kind              text NOT NULL CHECK (kind IN ('read', 'write', 'change')),
            method            text,
            endpoint          text,
            endpoint_kind     text,
            layer_id          text,
            layer_department  text,
            department_code   text,
            key_prefix        text,
            role              text,
            actor             text,
            client_ip         inet,
            status            smallint,
            duration_ms       real,
            bytes             bigint,
            items             integer,
            action            text,
            target            text,
            detail            jsonb,
            requests          integer NOT NULL DEFAULT 1,
            PRIMARY KEY (id, ts)
        ) PARTITION BY RANGE (ts);
        CREATE INDEX audit_log_ts_brin ON gs.audit_log USING brin (ts);
        COMMENT ON COLUMN gs.audit_log.requests IS
            'requests this row stands for: tile reads are tallied per flush; bytes, items and duration_ms '
            'are then their sums';
        CREATE TABLE gs.audit_log_default PARTITION OF gs.audit_log DEFAULT;

        CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON gs.audit_log
            FOR EACH STATEMENT EXECUTE FUNCTION gs.audit_log_append_only();
        CREATE TRIGGER audit_log_append_only_rows BEFORE UPDATE OR DELETE ON gs.audit_log
            FOR EACH ROW EXECUTE FUNCTION gs.audit_log_append_only();
        CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON gs.audit_log_default
            FOR EACH STATEMENT EXECUTE FUNCTION gs.audit_log_append_only();
        REVOKE UPDATE, DELETE, TRUNCATE ON gs.audit_log, gs.audit_log_default FROM PUBLIC;

        CREATE FUNCTION gs.audit_log_partition(month date) RETURNS text LANGUAGE plpgsql AS $$
        DECLARE
            first date := date_trunc('month', month)::date;
            name text := format('audit_log_y%sm%s', to_char(first, 'YYYY'), to_char(first, 'MM'));
        BEGIN
            IF to_regclass('gs.' || name) IS NULL THEN
                EXECUTE format(
                    'CREATE TABLE gs.%I PARTITION OF gs.audit_log FOR VALUES FROM (%L) TO (%L)',
                    name, first::text || ' 00:00:00+00',
                    (first + interval '1 month')::date::text || ' 00:00:00+00'
                );
                EXECUTE format(
                    'CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON gs.%I '
                    'FOR EACH STATEMENT EXECUTE FUNCTION gs.audit_log_append_only()', name
                );
                EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE ON gs.%I FROM PUBLIC', name);
            END IF;
            RETURN name;
        END $$;

        CREATE FUNCTION gs.audit_log_drop_before(cutoff date) RETURNS SETOF text LANGUAGE plpgsql AS $$
        DECLARE
            part record;
        BEGIN
            FOR part IN
                SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                WHERE i.inhparent = 'gs.audit_log'::regclass
                  AND c.relname ~ '^audit_log_y[0-9]{{4}}m[0-9]{{2}}$'
                  AND (to_date(substr(c.relname, 12, 4) || substr(c.relname, 17, 2), 'YYYYMM')
                       + interval '1 month') <= cutoff
                ORDER BY c.relname
            LOOP
                EXECUTE format('DROP TABLE gs.%I', part.relname);
                RETURN NEXT part.relname;
            END LOOP;
        END $$;

        SELECT gs.audit_log_partition(m::date)
        FROM generate_series(
            date_trunc('month',
                       coalesce((SELECT min(ts) FROM gs.audit_log_unpartitioned), now()) AT TIME ZONE 'UTC'),
            date_trunc('month', now() AT TIME ZONE 'UTC') + interval '2 months',
            interval '1 month'
        ) AS m;

        INSERT INTO gs.audit_log ({COLUMNS}) OVERRIDING SYSTEM VALUE
            SELECT {COLUMNS} FROM gs.audit_log_unpartitioned;
        SELECT setval(pg_get_serial_sequence('gs.audit_log', 'id'),
                      coalesce((SELECT max(id) FROM gs.audit_log_unpartitioned), 0) + 1, false);
        DROP TABLE gs.audit_log_unpartitioned;
        """
    )


def downgrade() -> None:
    op.execute(
        f"""
        CREATE TABLE gs.audit_log_flat (LIKE gs.audit_log INCLUDING DEFAULTS);
        INSERT INTO gs.audit_log_flat SELECT {COLUMNS} FROM gs.audit_log;
        DROP TABLE gs.audit_log;
        DROP FUNCTION IF EXISTS gs.audit_log_partition(date);
        DROP FUNCTION IF EXISTS gs.audit_log_drop_before(date);
        ALTER TABLE gs.audit_log_flat RENAME TO audit_log;
        ALTER TABLE gs.audit_log ADD PRIMARY KEY (id);
        CREATE INDEX audit_log_ts_brin ON gs.audit_log USING brin (ts);
        CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON gs.audit_log
            FOR EACH STATEMENT EXECUTE FUNCTION gs.audit_log_append_only();
        """
    )
