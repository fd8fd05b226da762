"""Tests run against a real PostGIS: a throw-away database cloned from ``geoshare_template``.

``GEOSHARE_TEST_DB`` names it (default ``geoshare_test``) so parallel runs can keep apart.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, make_url, text

from geoshare.db import migrate
from geoshare.db.engine import make_engine
from geoshare.settings import DEFAULT_DATABASE_URL, Settings

ADMIN_URL = os.environ.get("GEOSHARE_DATABASE_URL", DEFAULT_DATABASE_URL)
TEST_DB = os.environ.get("GEOSHARE_TEST_DB", "geoshare_test")


def _recreate_database() -> str:
    admin = create_engine(make_url(ADMIN_URL).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{TEST_DB}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{TEST_DB}" TEMPLATE geoshare_template'))
    admin.dispose()
    return make_url(ADMIN_URL).set(database=TEST_DB).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def database_url() -> str:
    url = _recreate_database()
    migrate.upgrade(url)
    os.environ["GEOSHARE_DATABASE_URL"] = url
    return url


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, items_max_limit=10_000)


@pytest.fixture(scope="session")
def engine(settings: Settings) -> Iterator[Engine]:
    eng = make_engine(settings.database_url, pool_size=4)
    yield eng
    eng.dispose()


def _wipe(engine: Engine) -> None:
    with engine.begin() as conn:
        tables = (
            conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'layerdata'"))
            .scalars()
            .all()
        )
        for t in tables:
            conn.execute(text(f'DROP TABLE layerdata."{t}"'))
        conn.execute(text("TRUNCATE gs.layer, gs.layer_version, gs.layer_change, gs.department CASCADE"))


@pytest.fixture
def db(engine: Engine) -> Iterator[Engine]:
    """An engine on an empty platform schema (layers and departments wiped before the test)."""
    _wipe(engine)
    yield engine


@pytest.fixture
def key_headers(db: Engine) -> Callable[..., dict[str, str]]:
    """``key_headers("transport")``: ``X-API-Key`` headers for a fresh key of that department
    (created if missing), a publisher by default — what publishing and deleting over HTTP need."""
    from geoshare.access.store import create_key

    def make(department: str, role: str = "publisher") -> dict[str, str]:
        with db.begin() as conn:
            conn.execute(
                text("INSERT INTO gs.department (code, name) VALUES (:c, :c) ON CONFLICT (code) DO NOTHING"),
                {"c": department},
            )
            return {"X-API-Key": create_key(conn, department, role).key}

    return make


@pytest.fixture
def client(db: Engine, settings: Settings) -> Iterator[TestClient]:
    from geoshare.api.app import create_app

    with TestClient(create_app(settings)) as c:
        yield c


DEMO_SCALE, DEMO_SEED = 5000, 42


@pytest.fixture(scope="session")
def demo_city():  # noqa: ANN201 - geoshare.demo.generate.city.City, imported lazily
    """The small demo city (deterministic), generated once per session."""
    from geoshare.demo.generate.city import generate_city

    return generate_city(DEMO_SCALE, DEMO_SEED)


@pytest.fixture(scope="session")
def address_db(engine: Engine, demo_city) -> Engine:  # noqa: ANN001
    """An engine whose ``addr`` schema holds the small demo city's address database."""
    from geocode.addressdb.load import replace_address_database

    with engine.begin() as conn:
        replace_address_database(conn, **demo_city.address_tables())
    return engine


@pytest.fixture(scope="module")
def api(address_db: Engine, settings: Settings) -> Iterator[TestClient]:
    """The whole app over the small demo city's address database (platform tables left as they are)."""
    from geoshare.api.app import create_app

    with TestClient(create_app(settings)) as c:
        yield c
