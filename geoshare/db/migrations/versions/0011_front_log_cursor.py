"""Where the ingestion of the nginx front cache's log has got to: ``gs.front_log_cursor``.

nginx answers repeated public tile requests from its cache without reaching Python, and writes one
JSON line per request it answered itself; the app appends those lines to ``gs.audit_log``. One row
per log file holds the file's inode and the byte position after the last line ingested. It is
advanced in the transaction that writes the lines' audit rows, so a crash neither loses nor doubles
a line, and its row lock lets every worker follow the same file without counting a line twice.

Revision ID: 0011
Revises: 0010
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE gs.front_log_cursor (
            path        text PRIMARY KEY,
            inode       bigint NOT NULL,
            position    bigint NOT NULL,
            updated_at  timestamptz NOT NULL DEFAULT now()
        );
        COMMENT ON TABLE gs.front_log_cursor IS
            'nginx front-cache log files being ingested into gs.audit_log: inode and byte position '
            'after the last whole line ingested';
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS gs.front_log_cursor")
