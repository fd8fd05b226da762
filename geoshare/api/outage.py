"""A database outage answered as what it is: 503 with ``Retry-After``, audited as 503, logged twice.

A restart or a failover makes every request that needs the database fail at once, hundreds a
second. Handled by Starlette's exception middleware (inside the audit middleware, so the audit log
records the 503 that was sent, not a 500), such a failure is answered here and not raised further,
so uvicorn logs no traceback per request. The log gets one line when the outage starts and one when
it has been quiet for ``QUIET_SECONDS``, with how many requests were answered 503 meanwhile. A
statement past one of PostgreSQL's limits is the data's fault, a 422; any other database error is
raised on: it is ours, a 500 with its traceback.
"""

from __future__ import annotations

import logging
import threading
import time

from fastapi import FastAPI, Request
from sqlalchemy.exc import DBAPIError
from starlette.responses import Response

from geoshare.api.problems import (
    UNAVAILABLE_ERRORS,
    database_unavailable,
    limit_problem,
    program_limit,
    unavailable_problem,
)

log = logging.getLogger("geoshare.api")

QUIET_SECONDS = 5.0


class OutageLog:
    """Counts the requests an outage refused; logs its start and, once quiet, its end."""

    def __init__(self, quiet_seconds: float = QUIET_SECONDS) -> None:
        self.quiet = quiet_seconds
        self._lock = threading.Lock()
        self._started: float | None = None
        self._last = 0.0
        self.count = 0

    def refused(self, exc: BaseException) -> None:
        now = time.monotonic()
        with self._lock:
            self._last = now
            self.count += 1
            if self._started is not None:
                return
            self._started = now
        log.warning("database unavailable (%s): answering 503 with Retry-After until it is back", exc)
        threading.Thread(target=self._watch, name="outage-log", daemon=True).start()

    @property
    def ongoing(self) -> bool:
        return self._started is not None

    def _watch(self) -> None:
        while True:
            time.sleep(min(1.0, self.quiet))
            with self._lock:
                if self._started is None or time.monotonic() - self._last < self.quiet:
                    continue
                lasted, count = self._last - self._started, self.count
                self._started, self.count = None, 0
            log.warning("database back: %d requests answered 503 over %.1f s", count, lasted)
            return


def install(app: FastAPI) -> None:
    outages = app.state.outages = OutageLog()

    async def unavailable(request: Request, exc: Exception) -> Response:
        if program_limit(exc):
            return limit_problem(request.url.path, exc)
        if not database_unavailable(exc):
            raise exc  # a fault of ours: the 500 handler logs its traceback
        outages.refused(exc)
        return unavailable_problem(request.url.path)

    for kind in (DBAPIError, *UNAVAILABLE_ERRORS):
        app.add_exception_handler(kind, unavailable)
