"""Dense-tile pyramids: each layer version's heaviest vector tiles, rendered once after publishing.

A tile holding thousands of features costs tens of milliseconds to cut on every request, and such
tiles are the ones every map shows (city centre, low zooms). ``gs.layer.tile_pyramid`` describes
the pyramid of the current version (its table ``layerdata."l{uid}_v{n}_tiles"``, tile matrix sets,
zooms, the attributes and feature limit its tiles were cut with, counts); NULL when there is none
or a new version has not got one yet. Writing it fires the ``gs_layer`` notification, so every
worker starts using the pyramid at once. Publishing sets it back to NULL in the same statement
that switches the version.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE gs.layer ADD COLUMN tile_pyramid jsonb")


def downgrade() -> None:
    op.execute("ALTER TABLE gs.layer DROP COLUMN IF EXISTS tile_pyramid")
