"""Place names for the platform: each worker's place index and suggest names, kept current.

Like the address index (``services.geocoding``), every worker holds its own copy: a
:class:`~geocode.places.index.PlaceIndex` rebuilt when ``gs.setting`` key ``places`` changes, and
the address index's names for suggest (:class:`~geocode.places.suggest.AddressNames`), rebuilt when
the address index is. A rebuild runs in a background thread while the old copy keeps answering.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, text

from geocode.gazetteer import default_gazetteer
from geocode.model import GeocodeResult
from geocode.places import resolve as places_resolve
from geocode.places.index import PlaceIndex, empty_index, load_places
from geocode.places.store import current_version
from geocode.places.suggest import AddressNames, Suggestion, suggest
from geoshare.services import geocoding

log = logging.getLogger(__name__)
CHECK_SECONDS = 2.0


@dataclass
class PlaceHolder:
    engine: Engine
    index: PlaceIndex | None = None
    names: AddressNames | None = None
    checked_at: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _busy: set[str] = field(default_factory=set)

    def places(self) -> PlaceIndex:
        if self.index is None:
            with self._lock:
                if self.index is None:
                    self.index = self._load()
        elif time.monotonic() - self.checked_at > CHECK_SECONDS:
            self.checked_at = time.monotonic()
            try:
                with self.engine.connect() as conn:
                    version = current_version(conn)
            except Exception:  # noqa: BLE001 - a failed check must not fail the request
                log.warning("place index version check failed", exc_info=True)
                version = self.index.version
            if version != self.index.version:
                self._in_background("places", self._reload)
        return self.index

    def address_names(self, app: object) -> AddressNames:
        index = geocoding.holder(app.state).get()  # type: ignore[attr-defined]
        if self.names is None:
            with self._lock:
                if self.names is None or self.names.version != index.version:
                    self.names = AddressNames.build(index)
        elif self.names.version != index.version:
            self._in_background("names", lambda: setattr(self, "names", AddressNames.build(index)))
        return self.names

    def _load(self) -> PlaceIndex:
        with self.engine.connect() as conn:
            if conn.execute(text("SELECT to_regclass('addr.place')")).scalar() is None:
                return empty_index()  # not migrated yet: no places, not an error
            index = load_places(conn)
        self.checked_at = time.monotonic()
        log.info("place index %s loaded: %d places in %.2f s", index.version, len(index), index.load_seconds)
        return index

    def _reload(self) -> None:
        self.index = self._load()

    def _in_background(self, what: str, job: Callable[[], None]) -> None:
        with self._lock:
            if what in self._busy:
                return
            self._busy.add(what)

        def run() -> None:
            try:
                job()
            except Exception:  # noqa: BLE001 - logged; the old copy keeps serving
                log.exception("%s rebuild failed", what)
            finally:
                self._busy.discard(what)

        threading.Thread(target=run, name=f"place-{what}", daemon=True).start()


def holder(state: Any) -> PlaceHolder:
    """The worker's holder, kept on ``app.state`` (created on first use)."""
    h = getattr(state, "place_index", None)
    if h is None:
        h = PlaceHolder(state.engine)
        state.place_index = h
    return h


def search(
    app: Any,
    q: str | None,
    *,
    bbox: tuple[float, float, float, float] | None = None,
    near: tuple[float, float] | None = None,
    categories: set[str] | None = None,
    limit: int = 10,
) -> tuple[PlaceIndex, list[tuple[int, float, float | None]]]:
    index = holder(app.state).places()
    return index, index.search(q, bbox=bbox, near=near, categories=categories, limit=limit)


def suggestions(
    app: Any, q: str, *, near: tuple[float, float] | None = None, limit: int = 10
) -> list[Suggestion]:
    h = holder(app.state)
    places, names = h.places(), h.address_names(app)
    index = geocoding.holder(app.state).get()
    return suggest(q, index, names, places, default_gazetteer(), near=near, limit=limit)


def with_places(
    app: Any, result: GeocodeResult, *, city: str | None, district: str | None, limit: int
) -> GeocodeResult:
    """``result`` with the place names its query contains, when the address answer leaves room."""
    if not places_resolve.worth_a_look(result):
        return result
    places = holder(app.state).places()
    if len(places) == 0:
        return result
    index = geocoding.holder(app.state).get()
    return places_resolve.resolve(
        places, index, default_gazetteer(), result, city=city, district=district, limit=limit
    )
