"""Address database (schema ``addr``) and platform settings (``gs.setting``).

The hierarchy is province → city → district (6-digit) → street/town (9) → community/village (12)
in ``addr.division``; below it roads, door addresses, compounds and buildings. Address points
carry their whole admin path denormalised, so a geocoder answers from one table without joins.
``address_code`` follows the region-based form of GB/T 39609-2020 and is derived from stable
identifiers (division code, road code, door number, building number), never from row order.

No foreign keys between the ``addr`` tables: they are replaced wholesale by bulk loads, and the
loader checks consistency instead.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE gs.setting (
            key         text PRIMARY KEY,
            value       jsonb NOT NULL,
            updated_at  timestamptz NOT NULL DEFAULT now()
        );

        CREATE SCHEMA IF NOT EXISTS addr;

        CREATE TABLE addr.division (
            code         text PRIMARY KEY CHECK (code ~ '^[0-9]{2,12}$'),
            level        smallint NOT NULL CHECK (level BETWEEN 1 AND 5),
            name         text NOT NULL,
            short_name   text NOT NULL,
            parent_code  text,
            path_codes   text[] NOT NULL,
            path_names   text[] NOT NULL,
            full_name    text NOT NULL,
            geom         geometry(MultiPolygon, 4326)
        );
        CREATE INDEX division_geom_idx ON addr.division USING gist (geom);
        CREATE INDEX division_parent_idx ON addr.division (parent_code);
        CREATE INDEX division_level_name_idx ON addr.division (level, short_name);

        CREATE TABLE addr.road (
            id             bigint PRIMARY KEY,
            road_code      text NOT NULL,
            name           text NOT NULL,
            district_code  text NOT NULL,
            street_code    text NOT NULL,
            road_class     text NOT NULL,
            length_m       double precision NOT NULL,
            geom           geometry(LineString, 4326) NOT NULL,
            UNIQUE (street_code, road_code)
        );
        CREATE INDEX road_geom_idx ON addr.road USING gist (geom);
        CREATE INDEX road_district_name_idx ON addr.road (district_code, name);
        CREATE INDEX road_name_trgm_idx ON addr.road USING gin (name gin_trgm_ops);

        CREATE TABLE addr.compound (
            id              bigint PRIMARY KEY,
            name            text NOT NULL,
            kind            text NOT NULL,
            road_id         bigint,
            door_number     integer,
            district_code   text NOT NULL,
            street_code     text NOT NULL,
            community_code  text NOT NULL,
            geom            geometry(Polygon, 4326) NOT NULL
        );
        CREATE INDEX compound_geom_idx ON addr.compound USING gist (geom);
        CREATE INDEX compound_name_trgm_idx ON addr.compound USING gin (name gin_trgm_ops);

        CREATE TABLE addr.building (
            id               bigint PRIMARY KEY,
            compound_id      bigint NOT NULL,
            number           integer NOT NULL,
            name             text NOT NULL,
            floors           integer,
            units            integer,
            rooms_per_floor  integer,
            geom             geometry(Polygon, 4326) NOT NULL
        );
        CREATE INDEX building_compound_idx ON addr.building (compound_id, number);
        CREATE INDEX building_geom_idx ON addr.building USING gist (geom);

        CREATE TABLE addr.address (
            address_code     text PRIMARY KEY,
            level            text NOT NULL CHECK (level IN ('door', 'building')),
            province_code    text NOT NULL,
            province         text NOT NULL,
            city_code        text NOT NULL,
            city             text NOT NULL,
            district_code    text NOT NULL,
            district         text NOT NULL,
            street_code      text NOT NULL,
            street           text NOT NULL,
            community_code   text NOT NULL,
            community        text NOT NULL,
            road_id          bigint NOT NULL,
            road             text NOT NULL,
            door_number      integer NOT NULL CHECK (door_number > 0),
            door_suffix      text NOT NULL DEFAULT '',
            side             char(1) NOT NULL CHECK (side IN ('L', 'R')),
            road_position    double precision NOT NULL CHECK (road_position BETWEEN 0 AND 1),
            compound_id      bigint,
            compound         text,
            building_id      bigint,
            building_number  integer,
            units            integer,
            floors           integer,
            rooms_per_floor  integer,
            full_address     text NOT NULL,
            geom             geometry(Point, 4326) NOT NULL
        );
        CREATE INDEX address_geom_idx ON addr.address USING gist (geom);
        CREATE INDEX address_road_door_idx ON addr.address (road_id, door_number);
        CREATE INDEX address_district_road_idx ON addr.address (district_code, road, door_number);
        CREATE INDEX address_road_trgm_idx ON addr.address USING gin (road gin_trgm_ops);
        CREATE INDEX address_compound_trgm_idx ON addr.address USING gin (compound gin_trgm_ops);
        """
    )


def downgrade() -> None:
    op.execute("DROP SCHEMA IF EXISTS addr CASCADE")
    op.execute("DROP TABLE IF EXISTS gs.setting")
