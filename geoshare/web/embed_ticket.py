"""Embed tickets: how a page framed on a department's site keeps its browser key's origin binding.

A browser key bound to ``https://dept.example`` is checked against the request's Origin/Referer.
When that site frames ``/embed``, the browser sends the site's origin as the Referer of the
``/embed`` request itself, but every request the framed page then makes (style, TileJSON, tiles)
comes from the GeoShare page and carries GeoShare's own origin, which the key does not allow.

So ``/embed`` checks the key against the framing site once, then hands the page a short-lived
ticket: ``HMAC(server secret, key prefix | origin | expiry)``. The page sends it in the
``X-GeoShare-Embed`` header; this middleware verifies it and, for that one request, presents the
ticket's origin as the request's Origin, so the ordinary key check runs unchanged. A ticket names
the key it was issued for and is refused with any other; without the server secret none can be
made, and an expired or forged one is simply ignored (the key check then refuses the request as
before). Tickets are no weaker than the binding itself: whoever can obtain one could already send
that Origin header from outside a browser.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from urllib.parse import parse_qsl

from sqlalchemy import Engine, text
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from geoshare.access import keys

HEADER = "x-geoshare-embed"
TTL_SECONDS = 12 * 3600
SETTING_KEY = "portal_embed_secret"
_MAC_BYTES = 16


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def _mac(secret: bytes, payload: str) -> bytes:
    return hmac.new(secret, payload.encode(), hashlib.sha256).digest()[:_MAC_BYTES]


def issue(secret: bytes, key_prefix: str, origin: str, now: float | None = None) -> str:
    expires = int((now if now is not None else time.time()) + TTL_SECONDS)
    payload = f"{key_prefix}|{origin}|{expires}"
    return f"{_b64(payload.encode())}.{_b64(_mac(secret, payload))}"


def verify(secret: bytes, ticket: str, key_prefix: str, now: float | None = None) -> str | None:
    """The origin a valid, current ticket for ``key_prefix`` vouches for; None otherwise."""
    try:
        payload_b64, mac_b64 = ticket.split(".", 1)
        payload = _unb64(payload_b64).decode()
        mac = _unb64(mac_b64)
        prefix, origin, expires = payload.rsplit("|", 2)
        expires_at = int(expires)
    except (ValueError, UnicodeDecodeError):
        return None
    if not hmac.compare_digest(mac, _mac(secret, payload)) or prefix != key_prefix:
        return None
    if expires_at < (now if now is not None else time.time()):
        return None
    return origin


def load_secret(engine: Engine) -> bytes:
    """The deployment's ticket secret, shared by every worker: created once in ``gs.setting``."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO gs.setting (key, value) "
                "VALUES (:k, jsonb_build_object('secret', CAST(:s AS text))) ON CONFLICT (key) DO NOTHING"
            ),
            {"k": SETTING_KEY, "s": secrets.token_hex(32)},
        )
        value = conn.execute(
            text("SELECT value->>'secret' FROM gs.setting WHERE key = :k"), {"k": SETTING_KEY}
        )
        return bytes.fromhex(value.scalar_one())


def secret_for(state: object) -> bytes:
    """The secret cached on the app state (one query per worker)."""
    cached = getattr(state, "embed_secret", None)
    if cached is None:
        cached = load_secret(state.engine)  # type: ignore[attr-defined]
        state.embed_secret = cached  # type: ignore[attr-defined]
    return cached


def _request_key(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-api-key":
            return value.decode("latin-1").strip()
    for name, value in parse_qsl(scope.get("query_string", b"").decode("latin-1")):
        if name == "key":
            return value.strip()
    return None


class EmbedTicketMiddleware:
    """Pure ASGI: requests without the header pass through untouched, at the cost of one scan of
    the header list."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            ticket = next((v for k, v in scope["headers"] if k == HEADER.encode()), None)
            if ticket is not None:
                scope = await self._vouched(scope, ticket.decode("latin-1"))
        await self.app(scope, receive, send)

    async def _vouched(self, scope: Scope, ticket: str) -> Scope:
        key = _request_key(scope)
        prefix = keys.parse_prefix(key) if key else None
        if prefix is None:
            return scope
        state = scope["app"].state
        secret = getattr(state, "embed_secret", None) or await run_in_threadpool(secret_for, state)
        origin = verify(secret, ticket, prefix)
        if origin is None:
            return scope
        headers = [(k, v) for k, v in scope["headers"] if k not in (b"origin", b"referer", HEADER.encode())]
        headers.append((b"origin", origin.encode("latin-1")))
        return {**scope, "headers": headers}
