"""Audit rows may stand for several requests: ``gs.audit_log.requests``.

A map view fetches dozens of tiles a second, and one audit row per tile cost about a third of a
cached tile's throughput (rows written to PostgreSQL on the same cores that serve the tiles). Tile
reads are therefore tallied per reader, key, layer, endpoint, client and outcome over each audit
flush (one second by default): one row with the number of requests, the tiles returned, and the
bytes and milliseconds summed. Every other request keeps a row of its own (``requests`` = 1).

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "audit_log",
        sa.Column("requests", sa.Integer(), nullable=False, server_default="1"),
        schema="gs",
    )
    op.execute(
        "COMMENT ON COLUMN gs.audit_log.requests IS "
        "'requests this row stands for: tile reads are tallied per flush; bytes, items and duration_ms "
        "are then their sums'"
    )


def downgrade() -> None:
    op.drop_column("audit_log", "requests", schema="gs")
