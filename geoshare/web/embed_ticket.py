"""Embed tickets: how a page framed on a department's site keeps its browser key's origin binding.

A browser key bound to ``https://dept.example`` is checked against the request's Origin/Referer.
When that site frames ``/embed``, the browser sends the site's origin as the Referer of the
``/embed`` request itself, but every request the framed page then makes (style, TileJSON, tiles)
comes from the GeoShare page and carries GeoShare's own origin, which the key does not allow.

So ``/embed`` checks the key against the framing site once, then hands the page a short-lived
ticket: ``HMAC(server secret, key prefix | origin | layers | base map | expiry)``. The page sends
it in the ``X-GeoShare-Embed`` header; this middleware verifies it and, for that one request,
presents the ticket's origin as the request's Origin, so the ordinary key check runs unchanged. A
ticket names the key it was issued for and is refused with any other; without the server secret
none can be made, and an expired or forged one is simply ignored (the key check then refuses the
request as before).

A ticket is scoped to what its embed shows (``covers``): reads of the embed's own layers (their
collection, items and tiles), the base map or image it was made with, fonts and address search. It
vouches for nothing else: not another layer the key could read, not an export, not a write. So a
ticket lifted from a page is no more than that page's map.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class Vouch:
    """What a valid ticket vouches for: the framing site's origin, for the embed's resources."""

    origin: str
    layers: frozenset[str]
    basemap: str  # light, dark or an imagery id

    def covers(self, method: str, path: str) -> bool:
        """Whether the request is one the embed itself makes (reads of its map, address search)."""
        if method not in ("GET", "HEAD"):
            return False
        if path in _ALWAYS or path.startswith(_ALWAYS_UNDER):
            return True
        parts = path.split("/")
        if len(parts) >= 3 and parts[1] == "collections" and parts[2] in self.layers:
            return len(parts) == 3 or parts[3] in ("tiles", "items")
        return len(parts) >= 4 and parts[1] == "imagery" and parts[2] == self.basemap and parts[3] == "tiles"


_ALWAYS = frozenset({"/basemap", "/geocode", "/geocode/reverse"})
_ALWAYS_UNDER = ("/basemap/", "/fonts/")


def issue(
    secret: bytes,
    key_prefix: str,
    origin: str,
    layers: Iterable[str] = (),
    basemap: str = "light",
    now: float | None = None,
) -> str:
    expires = int((now if now is not None else time.time()) + TTL_SECONDS)
    payload = "|".join((key_prefix, origin, ",".join(sorted(set(layers))), basemap, str(expires)))
    return f"{_b64(payload.encode())}.{_b64(_mac(secret, payload))}"


def verify(secret: bytes, ticket: str, key_prefix: str, now: float | None = None) -> Vouch | None:
    """What a valid, current ticket for ``key_prefix`` vouches for; None otherwise."""
    try:
        payload_b64, mac_b64 = ticket.split(".", 1)
        payload = _unb64(payload_b64).decode()
        mac = _unb64(mac_b64)
        prefix, rest = payload.split("|", 1)
        origin, layers, basemap, expires = rest.rsplit("|", 3)
        expires_at = int(expires)
    except (ValueError, UnicodeDecodeError):
        return None
    if not hmac.compare_digest(mac, _mac(secret, payload)) or prefix != key_prefix:
        return None
    if expires_at < (now if now is not None else time.time()):
        return None
    return Vouch(origin, frozenset(filter(None, layers.split(","))), basemap)


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
        prefix = keys.sent_key(scope).prefix
        if prefix is None:
            return scope
        state = scope["app"].state
        secret = getattr(state, "embed_secret", None) or await run_in_threadpool(secret_for, state)
        vouch = verify(secret, ticket, prefix)
        if vouch is None or not vouch.covers(scope["method"], scope["path"]):
            return scope
        headers = [(k, v) for k, v in scope["headers"] if k not in (b"origin", b"referer", HEADER.encode())]
        headers.append((b"origin", vouch.origin.encode("latin-1")))
        return {**scope, "headers": headers}
