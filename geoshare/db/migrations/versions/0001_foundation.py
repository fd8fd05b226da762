"""Foundation: departments, the layer registry, layer versions and the change log.

Layer data lives in schema ``layerdata``, one table per layer version (``l{uid}_v{version}``);
the registry row in ``gs.layer`` points at the current one, so a publish swaps versions in a
single transaction and readers never see a half-loaded layer.

Revision ID: 0001
Revises:
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute("CREATE SCHEMA IF NOT EXISTS gs")
    op.execute("CREATE SCHEMA IF NOT EXISTS layerdata")
    op.execute(
        """
        CREATE TABLE gs.department (
            code        text PRIMARY KEY CHECK (code ~ '^[A-Za-z0-9_-]{1,32}$'),
            name        text NOT NULL,
            contact     text,
            created_at  timestamptz NOT NULL DEFAULT now()
        );

        CREATE TABLE gs.layer (
            uid               serial UNIQUE,
            id                text PRIMARY KEY CHECK (id ~ '^[a-z][a-z0-9_-]{0,62}$'),
            kind              text NOT NULL DEFAULT 'thematic' CHECK (kind IN ('thematic', 'base')),
            title             text NOT NULL,
            description       text NOT NULL DEFAULT '',
            department_code   text NOT NULL REFERENCES gs.department(code),
            contact           text,
            keywords          text[] NOT NULL DEFAULT '{}',
            theme             text,
            sharing_class     text NOT NULL DEFAULT 'shared'
                              CHECK (sharing_class IN ('public', 'shared', 'restricted')),
            restricted_fields text[] NOT NULL DEFAULT '{}',
            update_frequency  text,
            source            text,
            licence           text,
            source_crs        text,
            key_field         text,
            time_field        text,
            current_version   integer,
            table_name        text,
            feature_count     bigint NOT NULL DEFAULT 0,
            geometry_type     text,
            extent            double precision[],
            time_extent       timestamptz[],
            attributes        jsonb NOT NULL DEFAULT '[]',
            created_at        timestamptz NOT NULL DEFAULT now(),
            updated_at        timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX layer_department_idx ON gs.layer (department_code);

        CREATE TABLE gs.layer_version (
            layer_id        text NOT NULL REFERENCES gs.layer(id) ON DELETE CASCADE,
            version         integer NOT NULL,
            table_name      text,
            created_at      timestamptz NOT NULL DEFAULT now(),
            created_by      text,
            source_name     text,
            feature_count   bigint NOT NULL,
            added           bigint NOT NULL DEFAULT 0,
            removed         bigint NOT NULL DEFAULT 0,
            modified        bigint NOT NULL DEFAULT 0,
            repaired        bigint NOT NULL DEFAULT 0,
            note            text,
            report          jsonb NOT NULL DEFAULT '{}',
            PRIMARY KEY (layer_id, version)
        );

        CREATE TABLE gs.layer_change (
            layer_id    text NOT NULL REFERENCES gs.layer(id) ON DELETE CASCADE,
            version     integer NOT NULL,
            feature_key text NOT NULL,
            change      char(1) NOT NULL CHECK (change IN ('A', 'M', 'D')),
            PRIMARY KEY (layer_id, version, feature_key)
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP SCHEMA IF EXISTS layerdata CASCADE")
    op.execute("DROP SCHEMA IF EXISTS gs CASCADE")
