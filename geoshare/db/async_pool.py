"""An asyncio connection pool per worker, for the few statements awaited on the event loop.

Tiles are the hottest path: a statement compiled once, a few numbers bound, bytes back. Sending it
through a worker thread (the SQLAlchemy engine is synchronous) costs more in thread hand-offs and
GIL traffic than the query itself, so plain tiles use this pool instead. It is asyncpg's: its
prepared statements, binary protocol and C parser cost about a third of psycopg's async CPU per
tile, and a tile server shares its cores with the database. Connections get the same session
settings as the engine's.

asyncio connections belong to the event loop that opened them. A served worker has one loop for its
life; test clients may run each request in a loop of its own, so the pool answers only on the loop
it was opened on and callers fall back to the engine elsewhere.
"""

from __future__ import annotations

import asyncio

import asyncpg
from sqlalchemy import make_url

from geoshare.db.engine import SESSION_SETTINGS

#: prepared statements kept per connection: tile statements are one per layer version and shape
STATEMENT_CACHE = 1024
#: how the pool's sessions show in ``pg_stat_activity``
APPLICATION_NAME = "geoshare-tiles"
#: what a statement raises when its connection is gone (a database restart, a killed backend): the
#: caller may read the same thing again elsewhere, and the pool replaces the connection
CONNECTION_LOST = (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, ConnectionError, OSError)


async def make_async_pool(url: str, size: int) -> asyncpg.Pool:
    """Opened in the running loop, with one connection ready and up to ``size``."""
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    return await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=max(1, size),
        server_settings={**SESSION_SETTINGS, "application_name": APPLICATION_NAME},
        statement_cache_size=STATEMENT_CACHE,
        max_cacheable_statement_size=0,  # tile statements run to kilobytes: cache them whatever size
        max_inactive_connection_lifetime=1800,
        reset=_keep_session,
    )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Nothing to reset: the pool's statements set nothing, listen to nothing and hold no locks or
    cursors, and asyncpg's default reset (``RESET ALL``, ``UNLISTEN *`` …) is a second round trip
    to the database on every release, which for a tile costs as much as a third of the tile."""


class LoopPool:
    """The worker's pool, opened on first use (or by the app's lifespan) in the running loop."""

    def __init__(self, url: str, size: int) -> None:
        self._url, self._size = url, size
        self._pool: asyncpg.Pool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opening: asyncio.Future[asyncpg.Pool] | None = None

    async def get(self) -> asyncpg.Pool | None:
        """The open pool, or None when called from another loop than the one it was opened on."""
        loop = asyncio.get_running_loop()
        if self._opening is None:
            self._loop = loop
            self._opening = asyncio.ensure_future(make_async_pool(self._url, self._size))
        if self._loop is not loop:
            return None
        if self._pool is None:
            try:
                self._pool = await asyncio.shield(self._opening)
            except Exception:
                self._opening = self._loop = None  # the next request tries again
                raise
        return self._pool

    async def close(self) -> None:
        if self._loop is asyncio.get_running_loop():
            if self._pool is not None:
                await self._pool.close()
            elif self._opening is not None:
                self._opening.cancel()
        self._pool = self._loop = self._opening = None
