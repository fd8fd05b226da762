"""Audit records for what the nginx front answered itself (``front.nginx``): its cache hits and its
own 429s, read from its hit log by ``access.front_log`` and keyed exactly as the audit middleware
keys a request the app answered (``audit_middleware.audit_key``), so ``/usage`` cannot tell them
apart. The front caches tile paths only, so only tile routes are matched."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from geoshare.access.audit import TallyKey
from geoshare.access.front_log import FrontHit, FrontLogFollower, Rotation
from geoshare.api.audit_middleware import Runtime, audit_key, leaf_routes, runtime
from geoshare.front.nginx import reopen_logs

#: the hit log is rotated (renamed to ``.1``, nginx told to reopen) once read this far
ROTATE_BYTES = 64 * 1024**2


def key_maker(app: FastAPI, rt: Runtime) -> Callable[[FrontHit], TallyKey]:
    """``hit -> TallyKey`` for the app's tile routes, tried in the app's own routing order."""
    routes: list[tuple[str, re.Pattern[str]]] = [
        (route.path, route.path_regex)
        for route in leaf_routes(app.router.routes)
        if "/tiles/" in getattr(route, "path", "") and hasattr(route, "path_regex")
    ]

    def key_for(hit: FrontHit) -> TallyKey:
        template: str | None = None
        params: dict[str, Any] = {}
        for path, regex in routes:
            found = regex.match(hit.path)
            if found is not None:
                template, params = path, found.groupdict()
                break
        scope = {"method": hit.method, "path": hit.path, "client": (hit.ip, 0) if hit.ip else None}
        return audit_key(scope, template, params, None, None, rt, hit.status)

    return key_for


def start(app: FastAPI) -> FrontLogFollower | None:
    """Follow the front's hit log when the settings name one and auditing is on."""
    path = getattr(app.state.settings, "front_log", None)
    rt = runtime(app)
    if not path or not rt.config.enabled:
        return None
    pid_file = getattr(app.state.settings, "front_pid", None)
    rotate = Rotation(ROTATE_BYTES, partial(reopen_logs, Path(pid_file))) if pid_file else None
    follower = FrontLogFollower(app.state.engine, path, key_maker(app, rt), rt.config.timezone, rotate=rotate)
    follower.start()
    return follower
