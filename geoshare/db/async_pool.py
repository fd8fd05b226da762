"""An asyncio connection pool per worker, for the few statements awaited on the event loop.

Tiles are the hottest path: a statement compiled once, a few numbers bound, bytes back. Sending it
through a worker thread (the SQLAlchemy engine is synchronous) costs more in thread hand-offs and
GIL traffic than the query itself, so plain tiles use this pool instead. Connections get the same
session settings as the engine's.

asyncio connections belong to the event loop that opened them. A served worker has one loop for its
life; test clients may run each request in a loop of its own, so the pool answers only on the loop
it was opened on and callers fall back to the engine elsewhere.
"""

from __future__ import annotations

import asyncio

from psycopg_pool import AsyncConnectionPool
from sqlalchemy import make_url

from geoshare.db.engine import SESSION_OPTIONS


def make_async_pool(url: str, size: int) -> AsyncConnectionPool:
    """Not opened yet: ``await pool.open()`` in the worker's event loop."""
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    return AsyncConnectionPool(
        conninfo,
        min_size=1,
        max_size=max(1, size),
        open=False,
        kwargs={"autocommit": True, "options": SESSION_OPTIONS},
        name="geoshare-async",
    )


class LoopPool:
    """The worker's pool, opened on first use (or by the app's lifespan) in the running loop."""

    def __init__(self, url: str, size: int) -> None:
        self._url, self._size = url, size
        self._pool: AsyncConnectionPool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opening: asyncio.Future[None] | None = None

    async def get(self) -> AsyncConnectionPool | None:
        """The open pool, or None when called from another loop than the one it was opened on."""
        loop = asyncio.get_running_loop()
        if self._pool is None:
            self._pool, self._loop = make_async_pool(self._url, self._size), loop
            self._opening = asyncio.ensure_future(self._pool.open(wait=False))
        if self._loop is not loop:
            return None
        if self._opening is not None and not self._opening.done():
            await asyncio.shield(self._opening)
        return self._pool

    async def close(self) -> None:
        if self._pool is not None and self._loop is asyncio.get_running_loop():
            await self._pool.close()
        self._pool = self._loop = self._opening = None
