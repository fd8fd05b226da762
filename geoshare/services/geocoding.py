"""Geocoding for the platform: each worker's address index, kept current, and the calls on it.

Every worker holds its own :class:`~geocode.index.AddressIndex` (no shared state to break with
``--workers N``). Before answering, a worker looks at the address database's version at most
every ``CHECK_SECONDS``; when an import has changed it, the new index is built in a background
thread while the old one keeps answering, then swapped in one assignment.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from dataclasses import dataclass, field

from sqlalchemy import Engine

from geocode.gazetteer import default_gazetteer
from geocode.index import AddressIndex, current_version, load_index
from geocode.match import geocode
from geocode.model import GeocodeResult
from layers.errors import LayerError

log = logging.getLogger(__name__)
CHECK_SECONDS = 2.0


class IndexUnavailable(LayerError):
    """The address database is being loaded (first start) or empty."""

    status = 503


@dataclass
class IndexHolder:
    engine: Engine
    index: AddressIndex | None = None
    checked_at: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _load_lock: threading.Lock = field(default_factory=threading.Lock)  # one load at a time (memory)
    _loading: bool = False

    def warm_up(self) -> None:
        """Start loading in the background so the first request does not pay for it."""
        self._reload_async()

    def get(self) -> AddressIndex:
        now = time.monotonic()
        if self.index is None:
            self._load(only_if_missing=True)  # waits for a warm-up load already running
        elif now - self.checked_at > CHECK_SECONDS:
            self.checked_at = now
            try:
                with self.engine.connect() as conn:
                    version = current_version(conn)
            except Exception:  # noqa: BLE001 - a failed check must not fail the request
                log.warning("address database version check failed", exc_info=True)
                version = self.index.version
            if version != self.index.version:
                self._reload_async()
        assert self.index is not None
        return self.index

    def _load(self, only_if_missing: bool = False) -> None:
        with self._load_lock:
            if only_if_missing and self.index is not None:
                return
            self._load_now()

    def _load_now(self) -> None:
        default_gazetteer()  # built once per process; not on the first request's time
        with self.engine.connect() as conn:
            index = load_index(conn)
        if index.size == 0 and not index.divisions:
            raise IndexUnavailable(
                "the address database is empty: run `geoshare demo load` or `geoshare address import`"
            )
        self.index, self.checked_at = index, time.monotonic()
        # the index and gazetteer live as long as the process: keep the cyclic GC from walking them
        # on every full collection (a batch of 1,000 answers creates enough objects to trigger some)
        gc.collect()
        gc.freeze()
        log.info(
            "address index %s loaded: %d addresses in %.2f s", index.version, index.size, index.load_seconds
        )

    def _reload_async(self) -> None:
        with self._lock:
            if self._loading:
                return
            self._loading = True

        def run() -> None:
            try:
                self._load()
            except IndexUnavailable as exc:
                log.info("address index not loaded: %s", exc.detail)
            except Exception:  # noqa: BLE001 - logged; the old index keeps serving
                log.exception("address index reload failed")
            finally:
                self._loading = False

        threading.Thread(target=run, name="address-index", daemon=True).start()


def holder(state: object) -> IndexHolder:
    """The worker's holder, kept on ``app.state`` (created on first use)."""
    h = getattr(state, "address_index", None)
    if h is None:
        h = IndexHolder(state.engine)  # type: ignore[attr-defined]
        state.address_index = h  # type: ignore[attr-defined]
    return h


def forward(
    app: object, address: str, *, city: str | None = None, district: str | None = None, limit: int = 5
) -> GeocodeResult:
    """Address first; place names (地名) only where that answer leaves room (``services.places``)."""
    from geoshare.services.places import with_places  # it builds on this module's holder

    index = holder(app.state).get()  # type: ignore[attr-defined]
    result = geocode(index, address, city=city, district=district, limit=limit)
    return with_places(app, result, city=city, district=district, limit=limit)


def forward_many(
    app: object, addresses: list[str], *, city: str | None = None, district: str | None = None, limit: int = 1
) -> list[GeocodeResult]:
    from geoshare.services.places import with_places

    index = holder(app.state).get()  # type: ignore[attr-defined]
    return [
        with_places(app, geocode(index, a, city=city, district=district, limit=limit), city=city,
                    district=district, limit=limit)  # fmt: skip
        for a in addresses
    ]
