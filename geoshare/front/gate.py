"""The gate of the nginx front cache: which cached tile URLs nginx may still answer by itself.

nginx keeps versioned public tiles for 30 days (``front.nginx``). A copy must not outlive the class
or the version it was kept for: once a layer, a base map part or an image is reclassified, deleted
or replaced, its kept copies must be unreachable at once, on every node. So nginx answers from its
cache only while an empty file named for the URL's resource and version exists in the gate
directory (one ``stat`` per request, not cached by nginx); without it the request goes to the app,
which checks it like any other, and nothing is kept. The names:

* ``layer.<id>.<version>``: a public layer at its current version (``/collections/<id>/tiles/…?v=``);
* ``basemap.<versions>``: the base map as an anonymous reader has it (``/basemap/tiles/…?v=``);
* ``imagery.<id>.<checksum prefix>``: a public image (``/imagery/<id>/tiles/…?v=``).

Each worker makes the directory match the database when it starts listening for layer changes, on
every change announced on ``gs_layer`` (migration 0005; imagery since 0012) and every few seconds
besides; the workers of a node take a file lock for the read-and-apply, so a slow worker cannot put
back a file a later change removed. Measured cost: ``benchmarks/front_gate.py``.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, text

from geoshare.access.identity import Principal
from geoshare.services.basemap import basemap_config, readable_parts
from geoshare.services.layer_cache import layer_cache
from geoshare.settings import Settings
from layers.imagery.store import URL_VERSION_CHARS

log = logging.getLogger("geoshare.front.gate")

LOCK = ".lock"
#: how often a worker re-reads the database even without a notification (a lost one, a standby)
RESYNC_SECONDS = 5.0

_PUBLIC = text(
    "SELECT 'layer.' || id || '.' || current_version FROM gs.layer "
    "WHERE sharing_class = 'public' AND current_version IS NOT NULL "
    "UNION ALL "
    "SELECT 'imagery.' || id || '.' || left(checksum, :chars) FROM gs.imagery WHERE sharing_class = 'public'"
)


def open_names(conn: Connection, settings: Settings) -> set[str]:
    """The gate files that should exist now: what anyone may read, at its current version."""
    names = set(conn.execute(_PUBLIC, {"chars": URL_VERSION_CHARS}).scalars())
    parts = readable_parts(conn, basemap_config(settings), Principal.anonymous())
    if parts:  # the same ``v`` the base map's TileJSON hands out to an anonymous reader
        names.add("basemap." + ".".join(str(p.layer.current_version) for p in parts))
    return names


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    with open(directory / LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def apply(directory: Path, names: set[str]) -> None:
    """Make ``directory`` hold exactly ``names`` (closing first, then opening)."""
    present = {p.name for p in directory.iterdir() if p.name != LOCK}
    for name in present - names:
        with contextlib.suppress(FileNotFoundError):
            (directory / name).unlink()
    for name in names - present:
        (directory / name).touch()


class Gate:
    """One worker's keeper of the gate directory."""

    def __init__(self, engine: Engine, settings: Settings, directory: str | os.PathLike[str]) -> None:
        self.engine = engine
        self.settings = settings
        self.directory = Path(directory)

    def sync(self) -> None:
        """Read what is open now and apply it, under the node's lock (called from the listener)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with _locked(self.directory), self.engine.connect() as conn:
            apply(self.directory, open_names(conn, self.settings))


def start(state: Any) -> Gate | None:
    """Keep the gate the settings name (none without a front): synced now, then by the worker's
    layer-change listener."""
    directory = state.settings.front_gate
    if not directory:
        return None
    gate = Gate(state.engine, state.settings, directory)
    try:
        gate.sync()
    except Exception:  # noqa: BLE001 - the listener syncs again once the database answers
        log.warning("could not open the front cache's gate yet", exc_info=True)
    layer_cache(state).add_listener(gate.sync, RESYNC_SECONDS)
    return gate
