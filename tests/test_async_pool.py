"""The tile pool: at most ``size`` connections, waiters served in turn, closed connections replaced,
a cancelled waiter never loses a connection, and the engine's session settings on every session."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from geoshare.db.async_pool import APPLICATION_NAME, TilePool, make_async_pool
from geoshare.settings import Settings


def test_at_most_size_connections_and_waiters_served_in_turn(settings: Settings) -> None:
    async def scenario() -> None:
        pool = await make_async_pool(settings.database_url, 2)
        a, b = await pool.acquire(), await pool.acquire()
        assert a is not b
        third = asyncio.ensure_future(pool.acquire())
        await asyncio.sleep(0.05)
        assert not third.done(), "a third connection was opened beyond the size"
        pool.release(a)
        assert await asyncio.wait_for(third, 2) is a  # handed over, not a new one
        pool.release(b)
        pool.release(a)
        assert await pool.acquire() in (a, b)
        await pool.close()

    asyncio.run(scenario())


def test_sessions_carry_the_engine_settings(settings: Settings) -> None:
    async def scenario() -> None:
        pool = await make_async_pool(settings.database_url, 1)
        conn = await pool.acquire()
        assert await conn.fetchval("SHOW jit") == "off"
        assert await conn.fetchval("SHOW max_parallel_workers_per_gather") == "0"
        assert await conn.fetchval("SHOW application_name") == APPLICATION_NAME
        pool.release(conn)
        await pool.close()

    asyncio.run(scenario())


def test_a_closed_connection_is_replaced(settings: Settings) -> None:
    async def scenario() -> None:
        pool = await make_async_pool(settings.database_url, 1)
        conn = await pool.acquire()
        pid = conn.get_server_pid()
        conn.terminate()  # as a database restart would leave it
        pool.release(conn)
        fresh = await pool.acquire()
        assert not fresh.is_closed() and fresh.get_server_pid() != pid
        assert await fresh.fetchval("SELECT 1") == 1
        pool.release(fresh)
        await pool.close()

    asyncio.run(scenario())


def test_a_cancelled_waiter_loses_no_connection(settings: Settings) -> None:
    async def scenario() -> None:
        pool = await make_async_pool(settings.database_url, 1)
        held = await pool.acquire()
        waiter = asyncio.ensure_future(pool.acquire())
        await asyncio.sleep(0.02)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        pool.release(held)
        again = await asyncio.wait_for(pool.acquire(), 2)  # the only connection is still lendable
        assert again is held
        pool.release(again)
        await pool.close()
        with pytest.raises(asyncpg.InterfaceError):
            await pool.acquire()

    asyncio.run(scenario())


def test_a_failed_connect_frees_its_place(settings: Settings) -> None:
    async def scenario() -> None:
        pool = TilePool("postgresql://nobody:wrong@127.0.0.1:1/none", 1)
        for _ in range(2):  # the failed attempt gave its place back: the second one tries again
            with pytest.raises((OSError, asyncpg.PostgresError)):
                await pool.acquire()
        await pool.close()

    asyncio.run(scenario())


def test_a_cancelled_waiter_passes_on_the_room_it_was_given(settings: Settings) -> None:
    """A waiter told "open one of your own" (a closed connection came back) and cancelled before it
    could must leave that room to the next waiter, or the next one waits for ever."""

    async def scenario() -> None:
        pool = await make_async_pool(settings.database_url, 1)
        held = await pool.acquire()
        first = asyncio.ensure_future(pool.acquire())
        second = asyncio.ensure_future(pool.acquire())
        await asyncio.sleep(0.02)
        held.terminate()
        pool.release(held)  # closed: the first waiter is told to open a connection of its own
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        conn = await asyncio.wait_for(second, 5)
        assert await conn.fetchval("SELECT 1") == 1
        pool.release(conn)
        await pool.close()

    asyncio.run(scenario())
