"""Announce changes to keys, users and agreements on the channel ``gs_access``.

Each worker keeps the principals it has authenticated and drops them all the moment one of these
tables changes (revocations, expiries moved, role changes, agreements decided or revoked), so a
keyed request usually needs no database round trip to know who is asking. Touching a key's
``last_used_at`` is not a change anyone must hear about and is filtered out.

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_TABLES = ("app_user", "agreement", "agreement_layer", "department")
_KEY_COLUMNS = (
    "digest",
    "department_code",
    "user_id",
    "role",
    "expires_at",
    "revoked_at",
    "allowed_referrers",
    "allowed_ips",
)


def upgrade() -> None:
    changed = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in _KEY_COLUMNS)
    op.execute(
        """
        CREATE FUNCTION gs.notify_access_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('gs_access', TG_TABLE_NAME);
            RETURN NULL;
        END $$;
        """
    )
    op.execute(
        f"""
        CREATE TRIGGER access_changed AFTER INSERT OR DELETE ON gs.api_key
            FOR EACH STATEMENT EXECUTE FUNCTION gs.notify_access_changed();
        CREATE TRIGGER access_changed_update AFTER UPDATE ON gs.api_key
            FOR EACH ROW WHEN ({changed}) EXECUTE FUNCTION gs.notify_access_changed();
        CREATE TRIGGER access_truncated AFTER TRUNCATE ON gs.api_key
            FOR EACH STATEMENT EXECUTE FUNCTION gs.notify_access_changed();
        """
    )
    for table in _TABLES:
        op.execute(
            f"""
            CREATE TRIGGER access_changed AFTER INSERT OR UPDATE OR DELETE ON gs.{table}
                FOR EACH STATEMENT EXECUTE FUNCTION gs.notify_access_changed();
            CREATE TRIGGER access_truncated AFTER TRUNCATE ON gs.{table}
                FOR EACH STATEMENT EXECUTE FUNCTION gs.notify_access_changed();
            """
        )


def downgrade() -> None:
    for table in ("api_key", *_TABLES):
        op.execute(f"DROP TRIGGER IF EXISTS access_changed ON gs.{table}")
        op.execute(f"DROP TRIGGER IF EXISTS access_truncated ON gs.{table}")
    op.execute("DROP TRIGGER IF EXISTS access_changed_update ON gs.api_key")
    op.execute("DROP FUNCTION IF EXISTS gs.notify_access_changed()")
