"""Background jobs (batch geocoding of uploaded CSV files) and their files.

Files live in the database, not on a worker's disk, so any worker on any host answers
``/jobs/{id}`` and serves the result. A file is stored as numbered parts of a few MiB: a bytea value
is limited to 1 GiB and is read whole, parts are streamed one at a time.

``heartbeat_at`` is touched while a job runs; a ``running`` job whose heartbeat is old lost its
worker and is marked failed when a worker starts.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE gs.job (
            id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            kind          text NOT NULL,
            status        text NOT NULL DEFAULT 'queued'
                          CHECK (status IN ('queued', 'running', 'done', 'failed')),
            params        jsonb NOT NULL DEFAULT '{}',
            total         bigint NOT NULL DEFAULT 0,
            processed     bigint NOT NULL DEFAULT 0,
            counts        jsonb NOT NULL DEFAULT '{}',
            error         text,
            created_at    timestamptz NOT NULL DEFAULT now(),
            started_at    timestamptz,
            finished_at   timestamptz,
            heartbeat_at  timestamptz
        );
        CREATE INDEX job_unfinished_idx ON gs.job (heartbeat_at) WHERE status IN ('queued', 'running');
        CREATE INDEX job_created_idx ON gs.job (created_at);

        CREATE TABLE gs.job_file (
            job_id        uuid NOT NULL REFERENCES gs.job(id) ON DELETE CASCADE,
            role          text NOT NULL CHECK (role IN ('input', 'result', 'unmatched')),
            part          integer NOT NULL DEFAULT 0 CHECK (part >= 0),
            content       bytea NOT NULL,
            filename      text NOT NULL,
            content_type  text NOT NULL DEFAULT 'text/csv',
            PRIMARY KEY (job_id, role, part)
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS gs.job_file")
    op.execute("DROP TABLE IF EXISTS gs.job")
