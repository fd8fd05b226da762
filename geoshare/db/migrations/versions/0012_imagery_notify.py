"""Imagery changes are announced on ``gs_layer`` too (payload ``imagery:<id>``).

The nginx front's gate (``geoshare.front.gate``) closes the cached tiles of an image the moment it
is reclassified, replaced or removed; every worker learns of it from this notification, as it
learns of layer changes.

Revision ID: 0012
Revises: 0011
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION gs.notify_imagery_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'TRUNCATE' THEN
                PERFORM pg_notify('gs_layer', 'imagery:*');
            ELSIF TG_OP = 'DELETE' THEN
                PERFORM pg_notify('gs_layer', 'imagery:' || OLD.id);
            ELSE
                PERFORM pg_notify('gs_layer', 'imagery:' || NEW.id);
            END IF;
            RETURN NULL;
        END $$;
        CREATE TRIGGER imagery_changed AFTER INSERT OR UPDATE OR DELETE ON gs.imagery
            FOR EACH ROW EXECUTE FUNCTION gs.notify_imagery_changed();
        CREATE TRIGGER imagery_truncated AFTER TRUNCATE ON gs.imagery
            FOR EACH STATEMENT EXECUTE FUNCTION gs.notify_imagery_changed();
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS imagery_truncated ON gs.imagery")
    op.execute("DROP TRIGGER IF EXISTS imagery_changed ON gs.imagery")
    op.execute("DROP FUNCTION IF EXISTS gs.notify_imagery_changed()")
