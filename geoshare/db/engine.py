"""One SQLAlchemy engine per process; workers share nothing but the database."""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import Engine, create_engine

from geoshare.settings import get_settings

# JIT compilation costs far more than it saves on short spatial queries; parallel workers for one
# tile or page cost more than they save when many requests share a few cores
SESSION_SETTINGS = {"jit": "off", "max_parallel_workers_per_gather": "0"}
SESSION_OPTIONS = " ".join(f"-c {name}={value}" for name, value in SESSION_SETTINGS.items())


def make_engine(url: str, pool_size: int = 8) -> Engine:
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        # no ping per checkout: it is a round trip on every request (on the event loop for async
        # dependencies); after a database restart the first use of a stale connection fails once and
        # SQLAlchemy then replaces the whole pool
        pool_pre_ping=False,
        pool_recycle=1800,
        connect_args={"options": SESSION_OPTIONS},
    )


@lru_cache(maxsize=1)
def get_engine() -> Engine:
    s = get_settings()
    return make_engine(s.database_url, s.pool_size)
