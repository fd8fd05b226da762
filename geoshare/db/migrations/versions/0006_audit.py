"""Audit log, daily usage roll-up, and per-department rate limits and quotas.

``gs.audit_log`` is append-only: statement-level triggers refuse UPDATE, DELETE and TRUNCATE, so
no code path of the application (which connects as the table's owner, so REVOKE alone would not
bind it) can rewrite history. Rows arrive in batches from each worker's writer thread, in time
order, so a BRIN index on ``ts`` serves time-range reads for a few kilobytes; the identity
primary key serves paging (newest first). No foreign keys: a record must outlive the layer,
key or department it names.

``gs.usage_daily`` is the roll-up the IT office reports from: one row per (local day, calling
department, layer, layer owner, endpoint kind), upserted by the same statement that appends a
batch to the log. It keeps ``/usage`` a read of a few hundred rows instead of a scan of the log
(20,000 calls a day is 7 million rows a year), and is what the daily quota reads across workers.
NULL is a value here (anonymous caller, no layer), hence ``NULLS NOT DISTINCT``.

``gs.department`` gains ``rate_limit_per_minute`` and ``daily_quota`` (NULL: the server default).

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE gs.audit_log (
            id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
            detail            jsonb
        );
        CREATE INDEX audit_log_ts_brin ON gs.audit_log USING brin (ts);

        CREATE FUNCTION gs.audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'gs.audit_log is append-only: % refused', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END $$;
        CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON gs.audit_log
            FOR EACH STATEMENT EXECUTE FUNCTION gs.audit_log_append_only();
        REVOKE UPDATE, DELETE, TRUNCATE ON gs.audit_log FROM PUBLIC;

        CREATE TABLE gs.usage_daily (
            day               date NOT NULL,
            department_code   text,
            layer_id          text,
            layer_department  text,
            endpoint_kind     text NOT NULL,
            calls             bigint NOT NULL DEFAULT 0,
            items             bigint NOT NULL DEFAULT 0,
            errors            bigint NOT NULL DEFAULT 0,
            limited           bigint NOT NULL DEFAULT 0,
            bytes             bigint NOT NULL DEFAULT 0,
            duration_ms       double precision NOT NULL DEFAULT 0,
            CONSTRAINT usage_daily_key UNIQUE NULLS NOT DISTINCT
                (day, department_code, layer_id, layer_department, endpoint_kind)
        );
        -- "calls on my layers": the provider's view
        CREATE INDEX usage_daily_provider_idx ON gs.usage_daily (layer_department, day)
            WHERE layer_department IS NOT NULL;

        ALTER TABLE gs.department
            ADD COLUMN rate_limit_per_minute integer CHECK (rate_limit_per_minute > 0),
            ADD COLUMN daily_quota integer CHECK (daily_quota > 0);
        """
    )


def downgrade() -> None:
    op.execute("ALTER TABLE gs.department DROP COLUMN IF EXISTS daily_quota")
    op.execute("ALTER TABLE gs.department DROP COLUMN IF EXISTS rate_limit_per_minute")
    op.execute("DROP TABLE IF EXISTS gs.usage_daily")
    op.execute("DROP TABLE IF EXISTS gs.audit_log")
    op.execute("DROP FUNCTION IF EXISTS gs.audit_log_append_only()")
