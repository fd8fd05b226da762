"""An asyncio connection pool per worker, for the few statements awaited on the event loop.

Tiles are the hottest path: a statement compiled once, a few numbers bound, bytes back. Sending it
through a worker thread (the SQLAlchemy engine is synchronous) costs more in thread hand-offs and
GIL traffic than the query itself, so plain tiles use this pool instead: asyncpg connections
(prepared statements, binary protocol, a C parser) lent by ``TilePool``, with the engine's session
settings.

asyncio connections belong to the event loop that opened them. A served worker has one loop for its
life; test clients may run each request in a loop of its own, so the pool answers only on the loop
it was opened on and callers fall back to the engine elsewhere.
"""

from __future__ import annotations

import asyncio
from collections import deque

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


class TilePool:
    """A few asyncpg connections lent out without ceremony.

    asyncpg's own pool costs 80–130 µs of CPU per acquire and release (a task per release, an idle
    timer re-armed each time, a reset hook), as much as a tenth of a tile's whole cost on cores the
    database shares. Tile statements set nothing on their session, so lending a connection is a
    list pop and returning it a list append; a connection found closed (a database restart) is
    dropped and another opened."""

    def __init__(self, dsn: str, size: int) -> None:
        self._dsn = dsn
        self._size = max(1, size)
        self._idle: list[asyncpg.Connection] = []
        self._opened = 0  # connections lent out or idle
        self._waiting: deque[asyncio.Future[asyncpg.Connection | None]] = deque()
        self._closed = False

    async def _connect(self) -> asyncpg.Connection:
        self._opened += 1
        try:
            return await asyncpg.connect(
                self._dsn,
                server_settings={**SESSION_SETTINGS, "application_name": APPLICATION_NAME},
                statement_cache_size=STATEMENT_CACHE,
                max_cacheable_statement_size=0,  # tile statements run to kilobytes: cache them all
            )
        except BaseException:
            self._opened -= 1
            self._hand_on(None)  # a waiter may try in its turn
            raise

    async def acquire(self) -> asyncpg.Connection:
        if self._closed:
            raise asyncpg.InterfaceError("the tile pool is closed")
        while self._idle:
            conn = self._idle.pop()
            if not conn.is_closed():
                return conn
            self._opened -= 1
        if self._opened < self._size:
            return await self._connect()
        waiter: asyncio.Future[asyncpg.Connection | None] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        try:
            conn = await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed over as we were cancelled: pass it on
                handed = waiter.result()
                if handed is not None:
                    self.release(handed)
                else:
                    self._hand_on(None)  # the room for a new connection, to the next waiter
            raise
        return conn if conn is not None else await self.acquire()

    def release(self, conn: asyncpg.Connection) -> None:
        if conn.is_closed() or self._closed:
            self._opened -= 1
            if not conn.is_closed():
                conn.terminate()
            self._hand_on(None)  # a waiter opens a connection of its own
            return
        if not self._hand_on(conn):
            self._idle.append(conn)

    def _hand_on(self, conn: asyncpg.Connection | None) -> bool:
        """Give ``conn`` (None: room for a new connection) to the first waiter still waiting."""
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return True
        return False

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            self._opened -= 1
            await conn.close()
        self._hand_on(None)


async def make_async_pool(url: str, size: int) -> TilePool:
    """Opened in the running loop, with one connection ready and up to ``size``."""
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    pool = TilePool(dsn, size)
    pool.release(await pool.acquire())
    return pool


class LoopPool:
    """The worker's pool, opened on first use (or by the app's lifespan) in the running loop."""

    def __init__(self, url: str, size: int) -> None:
        self._url, self._size = url, size
        self._pool: TilePool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opening: asyncio.Future[TilePool] | None = None

    async def get(self) -> TilePool | None:
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
