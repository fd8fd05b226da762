"""Request authentication: the ``principal`` dependency and the permission checks built on it.

The key travels in the ``X-API-Key`` header or, for tile URLs and embeds, the ``key`` query
parameter. A request without one is anonymous and costs nothing (no database, no thread hop). A
keyed request costs one primary-key probe on its own pooled connection, unless this worker has
authenticated the same key within the last minute: then the principal is reused, for as long as
nothing was announced on ``gs_access`` (any change to keys, users, departments or agreements drops
every reused principal at once), the key has not expired and the day has not changed. Keys bound to
referrers or IPs are checked against the database every time. The principal is also left on
``request.state.principal`` for later consumers (audit). Keys are never logged in full.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any

from fastapi import Depends, Request
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from geoshare.access import keys
from geoshare.access.identity import Forbidden, Principal, Unauthenticated, authenticate, origin_of
from geoshare.services.layer_cache import layer_cache
from layers.errors import BadParameter

log = logging.getLogger("geoshare.auth")

KEY_HEADER = "X-API-Key"
KEY_PARAM = "key"
ANONYMOUS = Principal.anonymous()
MAX_REUSED = 10_000  # principals kept per worker
_NEED_KEY = f"an API key is required: send it in the {KEY_HEADER} header or the {KEY_PARAM} parameter"


def request_key(request: Request) -> tuple[str | None, str]:
    """The key sent with the request and where it came from (for naming it in errors): the one
    parse every limiter and the audit see too (``keys.sent_key``)."""
    sent = keys.sent_key(request.scope)
    if sent.conflict:
        raise BadParameter(f"two different API keys sent ({KEY_HEADER} and {KEY_PARAM})", field=KEY_PARAM)
    return sent.key, sent.source


def request_origin(request: Request) -> str | None:
    """``Origin`` when it is a real origin (sandboxed pages send ``null``), else ``Referer``."""
    origin = request.headers.get("origin")
    return origin if origin_of(origin) else request.headers.get("referer")


def _authenticate(engine: Engine, key: str, referrer: str | None, client_ip: str | None) -> Principal:
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT")
        return authenticate(conn, key, referrer=referrer, client_ip=client_ip)


def reused_principal(registry: Any, digest: str) -> Principal | None:
    """The principal this worker may reuse for the key with ``digest``: authenticated here within
    its reuse time, with nothing announced on ``gs_access`` since (bound keys are never kept)."""
    if not registry.live:
        return None
    who = registry.principals.get(digest)
    if isinstance(who, Principal) and who.cacheable_until and who.cacheable_until > datetime.now(UTC):
        return who
    return None


async def principal(request: Request) -> Principal:
    """Who is asking. The client IP is the socket peer: behind a reverse proxy, run uvicorn with
    ``--proxy-headers --forwarded-allow-ips=<proxy>`` so the peer is the real client."""
    key, source = request_key(request)
    if key is None:
        request.state.principal = ANONYMOUS
        return ANONYMOUS
    state = request.app.state
    registry = layer_cache(state)
    digest = keys.digest(key)
    reused = reused_principal(registry, digest)
    if reused is not None:
        request.state.principal = reused
        return reused
    generation = registry.access_generation
    client_ip = request.client.host if request.client else None
    try:
        who = await run_in_threadpool(
            _authenticate, request.app.state.engine, key, request_origin(request), client_ip
        )
    except Unauthenticated as exc:
        log.info("refused API key %s from %s: %s", keys.redact(key), client_ip, exc.detail)
        exc.field = exc.field or source
        raise
    except Forbidden as exc:
        log.info("refused API key %s from %s: %s", keys.redact(key), client_ip, exc.detail)
        raise
    if who.cacheable_until is not None and registry.live and generation == registry.access_generation:
        if len(registry.principals) >= MAX_REUSED:
            registry.principals = {}
        registry.principals[digest] = who
    request.state.principal = who
    return who


def require_authenticated(who: Principal = Depends(principal)) -> Principal:
    if who.is_anonymous:
        raise Unauthenticated(_NEED_KEY, field=KEY_HEADER)
    return who


def require_platform_admin(who: Principal = Depends(require_authenticated)) -> Principal:
    if not who.is_platform_admin:
        raise Forbidden("only platform administrators may do this")
    return who


def require_department_admin(who: Principal, department: str) -> Principal:
    """Platform admins, or the administrators of ``department`` itself."""
    if who.is_anonymous:
        raise Unauthenticated(_NEED_KEY, field=KEY_HEADER)
    if not who.can_administer(department):
        raise Forbidden(
            f"only platform administrators or administrators of department {department!r} may do this",
            field="department",
        )
    return who


# -- logs ------------------------------------------------------------------------------------------

_FULL_KEY = re.compile(r"(gsk_[a-z0-9]{8}_)[A-Za-z0-9_-]+")
_KEY_PARAM_VALUE = re.compile(r"([?&]key=)(?!gsk_[a-z0-9]{8}_…)[^&\s\"']+")


def redact_text(value: str) -> str:
    """Keys inside a log line (access-log paths with ``?key=…`` above all) cut to their prefix."""
    return _KEY_PARAM_VALUE.sub(r"\1…", _FULL_KEY.sub(r"\1…", value))


class RedactKeys(logging.Filter):
    """A logging filter that redacts keys in the message and its string arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_text(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact_text(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: redact_text(v) if isinstance(v, str) else v for k, v in record.args.items()}
        return True


def install_log_redaction(*names: str) -> None:
    """Attach ``RedactKeys`` to the loggers that may see request URLs (idempotent)."""
    for name in names or ("uvicorn.access", "uvicorn.error", "geoshare", "geoshare.api", "geoshare.auth"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactKeys) for f in logger.filters):
            logger.addFilter(RedactKeys())
