"""Identities: users with roles and API keys, both belonging to a department.

A key is stored as its SHA-256 digest under its public 8-character prefix (the primary key), so
authenticating a request is one primary-key probe. A key bound to a user can only be issued in that
user's department (composite foreign key). Browser keys carry ``allowed_referrers`` (origins) and/or
``allowed_ips`` (CIDR ranges); empty arrays mean "no binding". Keys are revoked, never deleted, so
audit records that name a prefix keep resolving.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ROLES = "('platform_admin', 'department_admin', 'publisher', 'consumer')"


def upgrade() -> None:
    op.execute(
        f"""
        CREATE TABLE gs.app_user (
            id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            department_code  text NOT NULL REFERENCES gs.department(code),
            name             text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
            role             text NOT NULL CHECK (role IN {_ROLES}),
            created_at       timestamptz NOT NULL DEFAULT now(),
            disabled_at      timestamptz,
            CONSTRAINT app_user_department_name_key UNIQUE (department_code, name),
            CONSTRAINT app_user_id_department_key UNIQUE (id, department_code)
        );

        CREATE TABLE gs.api_key (
            prefix             text PRIMARY KEY CHECK (prefix ~ '^[a-z0-9]{{8}}$'),
            digest             text NOT NULL CHECK (digest ~ '^[0-9a-f]{{64}}$'),
            department_code    text NOT NULL
                               CONSTRAINT api_key_department_fk REFERENCES gs.department(code),
            user_id            bigint,
            role               text NOT NULL DEFAULT 'consumer' CHECK (role IN {_ROLES}),
            label              text,
            created_at         timestamptz NOT NULL DEFAULT now(),
            created_by         text,
            expires_at         timestamptz,
            revoked_at         timestamptz,
            allowed_referrers  text[] NOT NULL DEFAULT '{{}}',
            allowed_ips        cidr[] NOT NULL DEFAULT '{{}}',
            last_used_at       timestamptz,
            CONSTRAINT api_key_user_fk FOREIGN KEY (user_id, department_code)
                REFERENCES gs.app_user (id, department_code)
        );
        -- listing a department's keys; the user index serves the foreign key (disable/delete a user)
        CREATE INDEX api_key_department_idx ON gs.api_key (department_code, created_at);
        CREATE INDEX api_key_user_idx ON gs.api_key (user_id) WHERE user_id IS NOT NULL;
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS gs.api_key")
    op.execute("DROP TABLE IF EXISTS gs.app_user")
