"""Sharing agreements (共享协议): a consumer department's filed access to a provider's layers.

An agreement names its layers and, per layer, the fields granted; a purpose, a period (dates,
inclusive) and an update frequency; optionally a division area whose polygon is copied in when the
agreement is filed, so a later address-database update cannot silently widen or narrow it. Layers
are named by id without a foreign key: a consumer may name a restricted layer it cannot see, and
learns nothing about whether it exists; the provider checks the names when deciding. Agreements
are never deleted (the audit trail cites them); a decision or a revocation is a status change.

Also: every change to ``gs.layer`` is announced on the channel ``gs_layer`` (payload: the layer id,
or ``*`` after a TRUNCATE), so each worker's in-process layer cache drops it at once.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE gs.agreement (
            id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            consumer_code     text NOT NULL REFERENCES gs.department(code),
            provider_code     text NOT NULL REFERENCES gs.department(code),
            purpose           text NOT NULL CHECK (length(btrim(purpose)) BETWEEN 1 AND 2000),
            update_frequency  text,
            starts_on         date NOT NULL,
            ends_on           date NOT NULL,
            area_code         text,
            area_name         text,
            area              geometry(MultiPolygon, 4326),
            status            text NOT NULL DEFAULT 'requested'
                              CHECK (status IN ('requested', 'approved', 'rejected', 'revoked')),
            requested_by      text,
            requested_at      timestamptz NOT NULL DEFAULT now(),
            decided_by        text,
            decided_at        timestamptz,
            decision_note     text,
            revoked_by        text,
            revoked_at        timestamptz,
            CHECK (ends_on >= starts_on),
            CHECK (consumer_code <> provider_code),
            CHECK ((area_code IS NULL) = (area IS NULL))
        );
        CREATE TABLE gs.agreement_layer (
            agreement_id  bigint NOT NULL REFERENCES gs.agreement(id),
            layer_id      text NOT NULL,
            fields        text[] NOT NULL,
            PRIMARY KEY (agreement_id, layer_id)
        );
        -- the grant lookup on every keyed request: approved agreements of the consumer
        CREATE INDEX agreement_consumer_idx ON gs.agreement (consumer_code, ends_on)
            WHERE status = 'approved';
        CREATE INDEX agreement_provider_idx ON gs.agreement (provider_code, requested_at);
        CREATE INDEX agreement_layer_layer_idx ON gs.agreement_layer (layer_id);

        CREATE FUNCTION gs.notify_layer_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'TRUNCATE' THEN
                PERFORM pg_notify('gs_layer', '*');
            ELSIF TG_OP = 'DELETE' THEN
                PERFORM pg_notify('gs_layer', OLD.id);
            ELSE
                PERFORM pg_notify('gs_layer', NEW.id);
                IF TG_OP = 'UPDATE' AND OLD.id <> NEW.id THEN
                    PERFORM pg_notify('gs_layer', OLD.id);
                END IF;
            END IF;
            RETURN NULL;
        END $$;
        CREATE TRIGGER layer_changed AFTER INSERT OR UPDATE OR DELETE ON gs.layer
            FOR EACH ROW EXECUTE FUNCTION gs.notify_layer_changed();
        CREATE TRIGGER layer_truncated AFTER TRUNCATE ON gs.layer
            FOR EACH STATEMENT EXECUTE FUNCTION gs.notify_layer_changed();
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS layer_truncated ON gs.layer")
    op.execute("DROP TRIGGER IF EXISTS layer_changed ON gs.layer")
    op.execute("DROP FUNCTION IF EXISTS gs.notify_layer_changed()")
    op.execute("DROP TABLE IF EXISTS gs.agreement_layer")
    op.execute("DROP TABLE IF EXISTS gs.agreement")
