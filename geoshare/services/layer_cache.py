"""Published layers' registry rows held in each worker, dropped the moment the database says so.

A tile or feature request needs the layer's row (version, table, attributes, class) before its own
query; for a cached tile that lookup would be the only database work left. Each worker keeps the
rows it has read and LISTENs on ``gs_layer``, which a trigger on ``gs.layer`` notifies on every
insert, update, delete and truncate (migration 0005), so a publish or a reclassification reaches
every worker within milliseconds of its commit.

Correctness does not depend on timing: while the listener is not connected (start-up, a lost
connection) nothing is served from the cache; a row read concurrently with a change is kept only
if no notification arrived while it was being read (a generation counter); and ``sync()`` waits
until every change committed before it has been applied, for callers that must see their own
writes (the worker that publishes calls ``invalidate`` directly as well).

Listeners (``add_listener``: the front cache's gate) run in the listening thread after each
change, on every (re)connection and every ``every`` seconds besides, so ``sync()`` returning means
they have seen every change committed before it.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable

import psycopg
from sqlalchemy import Connection, Engine

from layers.model import LayerInfo
from layers.registry import TRUSTED, get_layer

log = logging.getLogger("geoshare.layer_cache")

CHANNEL = "gs_layer"
ACCESS_CHANNEL = "gs_access"  # keys, users, departments, agreements (migration 0008)
_SYNC = "sync:"
IMAGERY_PREFIX = "imagery:"


class LayerCache:
    def __init__(self, engine: Engine, max_entries: int = 10_000) -> None:
        self._engine = engine
        self._max = max_entries
        self._rows: dict[str, LayerInfo] = {}
        self._generation = 0
        self._live = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._synced: dict[str, threading.Event] = {}
        # principals by key digest, dropped on any change announced on ACCESS_CHANNEL (see api.auth)
        self.principals: dict[str, object] = {}
        self.access_generation = 0
        self._thread: threading.Thread | None = None
        self._listeners: list[tuple[Callable[[], None], float]] = []
        self._last_heard = 0.0  # when the listeners last ran (monotonic)

    # -- reading -------------------------------------------------------------------------------

    def get(self, conn: Connection, layer_id: str) -> LayerInfo:
        """The layer's current row (trusted view); ``NotFound`` as ``registry.get_layer`` raises it."""
        layer = self._rows.get(layer_id) if self._live else None
        if layer is not None:
            return layer
        generation = self._generation
        layer = get_layer(conn, layer_id, TRUSTED)
        with self._lock:
            if self._live and generation == self._generation:
                if len(self._rows) >= self._max:
                    self._rows.clear()
                self._rows[layer_id] = layer
        return layer

    def peek(self, layer_id: str) -> LayerInfo | None:
        """The cached row without touching the database (None when absent or not listening)."""
        return self._rows.get(layer_id) if self._live else None

    def invalidate(self, layer_id: str | None = None) -> None:
        """Forget one layer (None: all of them)."""
        with self._lock:
            self._generation += 1
            if layer_id is None:
                self._rows.clear()
            else:
                self._rows.pop(layer_id, None)

    @property
    def live(self) -> bool:
        return self._live

    # -- listening ---------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._listen_forever, name="layer-cache", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def add_listener(self, listener: Callable[[], None], every: float) -> None:
        """Call ``listener`` after every change, on every (re)connection and every ``every`` s."""
        self._listeners.append((listener, every))
        self._last_heard = 0.0  # due at the next turn of the listening loop

    def _tell_listeners(self, periodic: bool = False) -> None:
        now = time.monotonic()
        for listener, every in self._listeners:
            if periodic and now - self._last_heard < every:
                continue
            try:
                listener()
            except Exception:  # noqa: BLE001 - a listener's failure must not stop the listening
                log.warning("layer change listener %r failed", listener, exc_info=True)
        self._last_heard = now

    def sync(self, timeout: float = 5.0) -> bool:
        """Block until every change committed before this call has reached this worker's cache."""
        if not self._live:
            return True  # nothing is served from the cache
        token = uuid.uuid4().hex
        done = self._synced.setdefault(token, threading.Event())
        with self._engine.connect() as conn:
            conn.exec_driver_sql(f"NOTIFY {CHANNEL}, '{_SYNC}{token}'")
            conn.commit()
        ok = done.wait(timeout)
        self._synced.pop(token, None)
        return ok

    def _dsn(self) -> str:
        url = self._engine.url.set(drivername="postgresql")
        return url.render_as_string(hide_password=False)

    def _listen_forever(self) -> None:
        delay = 0.5
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._dsn(), autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    conn.execute(f"LISTEN {ACCESS_CHANNEL}")
                    with self._lock:  # changes made while we were not listening are unknown
                        self._rows.clear()
                        self._generation += 1
                        self._forget_principals()
                        self._live = True
                    self._tell_listeners()
                    delay = 0.5
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            if note.channel == ACCESS_CHANNEL:
                                self._forget_principals()
                            else:
                                self._apply(note.payload)
                        self._tell_listeners(periodic=True)
            except Exception as exc:  # noqa: BLE001 - any failure: stop serving from the cache, retry
                if not self._stop.is_set():
                    log.warning(
                        "layer cache listener lost its connection (%s); retrying in %.1fs", exc, delay
                    )
            finally:
                with self._lock:
                    self._live = False
                    self._rows.clear()
                    self._generation += 1
                    self._forget_principals()
                for event in list(self._synced.values()):
                    event.set()  # nothing is cached any more: waiting callers may go on
            self._stop.wait(delay)
            delay = min(delay * 2, 10.0)

    def forget_principals(self) -> None:
        """Drop every reused principal now (this worker changed keys or agreements itself)."""
        with self._lock:
            self._forget_principals()

    def _forget_principals(self) -> None:
        self.access_generation += 1
        self.principals = {}

    def _apply(self, payload: str) -> None:
        if payload.startswith(_SYNC):
            event = self._synced.get(payload[len(_SYNC) :])
            if event is not None:
                event.set()
            return
        if not payload.startswith(IMAGERY_PREFIX):  # imagery (migration 0012) concerns listeners only
            self.invalidate(None if payload == "*" else payload)
        self._tell_listeners()


def layer_cache(state: object) -> LayerCache:
    """The worker's cache, created and started on first use."""
    cache = getattr(state, "layer_cache", None)
    if cache is None:
        cache = LayerCache(state.engine)  # type: ignore[attr-defined]
        state.layer_cache = cache  # type: ignore[attr-defined]
        cache.start()
    return cache
