"""Place names (地名): points of interest and landmarks beside the address database (``addr.place``).

A place has a name, aliases, a category and an optional code (a source's own identifier, e.g. an
OSM id or a register number); its point is optional, because a register may name a place whose
address the address database cannot locate, and a made-up point would be worse than none. Rows
are replaced per ``source`` (one import never deletes another's), and ``gs.setting`` key
``places`` carries a version stamp that workers watch, as they watch ``addressdb``.

Workers search an in-memory index built from this table; the trigram index serves SQL clients
(QGIS, ad hoc queries) and keep ``name %`` / ``ILIKE`` usable without a scan.

Revision ID: 0013
Revises: 0012
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE addr.place (
            id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            source         text NOT NULL,
            source_id      text NOT NULL,
            name           text NOT NULL CHECK (name <> ''),
            aliases        text[] NOT NULL DEFAULT '{}',
            category       text NOT NULL,
            code           text,
            address        text,
            district_code  text,
            street_code    text,
            weight         real NOT NULL DEFAULT 0.5 CHECK (weight BETWEEN 0 AND 1),
            located_by     text,
            tags           jsonb NOT NULL DEFAULT '{}',
            geom           geometry(Point, 4326),
            UNIQUE (source, source_id)
        );
        CREATE INDEX place_geom_idx ON addr.place USING gist (geom);
        CREATE INDEX place_category_idx ON addr.place (category);
        CREATE INDEX place_name_trgm_idx ON addr.place USING gin (name gin_trgm_ops);
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS addr.place")
