"""Imagery: aerial and satellite Cloud-Optimized GeoTIFFs served as raster tiles.

One row per image; the file itself lives in the imagery directory under ``file_name``, which carries
the checksum, so a replacement is a new file and a row update (readers of the old file are never
cut off mid-tile). ``sharing_class`` and ``department_code`` mean what they mean on ``gs.layer``,
so the layer visibility predicate applies unchanged. ``bounds`` is the image footprint in EPSG:4326;
``minzoom``/``maxzoom`` are WebMercatorQuad levels; ``rescale`` holds per-band (min, max) for
images that are not 8-bit, so tiles of 16-bit or float data render with sensible contrast.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE gs.imagery (
            id               text PRIMARY KEY CHECK (id ~ '^[a-z][a-z0-9_-]{0,62}$'),
            title            text NOT NULL CHECK (length(btrim(title)) BETWEEN 1 AND 500),
            description      text NOT NULL DEFAULT '',
            department_code  text REFERENCES gs.department(code),
            sharing_class    text NOT NULL DEFAULT 'public'
                             CHECK (sharing_class IN ('public', 'shared', 'restricted')),
            licence          text,
            source           text,
            crs              text NOT NULL,
            bounds           geometry(Polygon, 4326) NOT NULL,
            minzoom          smallint NOT NULL,
            maxzoom          smallint NOT NULL CHECK (maxzoom >= minzoom),
            band_count       smallint NOT NULL CHECK (band_count > 0),
            dtype            text NOT NULL,
            resolution       double precision[] NOT NULL,
            width            integer NOT NULL,
            height           integer NOT NULL,
            nodata           double precision,
            rescale          jsonb,
            file_name        text NOT NULL UNIQUE,
            size_bytes       bigint NOT NULL,
            checksum         text NOT NULL,
            source_checksum  text NOT NULL,
            added_at         timestamptz NOT NULL DEFAULT now(),
            updated_at       timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX imagery_department_idx ON gs.imagery (department_code);
        CREATE INDEX imagery_bounds_idx ON gs.imagery USING gist (bounds);
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE gs.imagery")
