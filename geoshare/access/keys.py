"""API keys: shown once, stored as a SHA-256 digest, recognised by a short public prefix.

A key looks like ``gsk_<prefix>_<secret>``: the prefix (8 characters) is stored in clear so
keys can be listed and revoked by it and appear in audit logs; the secret never is. Keys are
high-entropy random strings, so an unsalted fast hash is safe here (unlike passwords).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

KEY_PATTERN = re.compile(r"^gsk_([a-z0-9]{8})_([A-Za-z0-9_-]{32,64})$")
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


@dataclass(frozen=True)
class NewKey:
    key: str  # the full secret, to show once
    prefix: str
    digest: str


def generate() -> NewKey:
    prefix = "".join(secrets.choice(_ALPHABET) for _ in range(8))
    key = f"gsk_{prefix}_{secrets.token_urlsafe(32)}"
    return NewKey(key=key, prefix=prefix, digest=digest(key))


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_prefix(key: str) -> str | None:
    """The public prefix of a well-formed key, or None (malformed keys need no database look-up)."""
    m = KEY_PATTERN.match(key)
    return m.group(1) if m else None


def matches(key: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(key), stored_digest)


def redact(key: str | None) -> str | None:
    """What may appear in logs: the prefix only."""
    if not key:
        return None
    prefix = parse_prefix(key)
    return f"gsk_{prefix}_…" if prefix else "malformed"


# -- the key a request sent ---------------------------------------------------------------------

HEADER = b"x-api-key"
PARAM = "key"
_SENT = "gs_sent_key"  # where the parse is kept in the request's state, for every later reader


@dataclass(frozen=True, slots=True)
class SentKey:
    """The key a request carries, as every reader of it (authentication, limits, audit, embed
    tickets) must see it: the ``X-API-Key`` header, else the ``key`` parameter after percent-decoding
    (``?%6Bey=`` is ``?key=``). ``conflict``: two different keys were sent, which is refused."""

    key: str | None
    source: str  # "X-API-Key" or "key", for naming it in errors
    conflict: bool = False

    @property
    def prefix(self) -> str | None:
        return parse_prefix(self.key) if self.key else None

    @property
    def present(self) -> bool:
        return self.key is not None and self.key != ""


def sent_key(scope: MutableMapping[str, Any]) -> SentKey:
    """Parse the request's key once and keep the parse in ``scope["state"]``."""
    state = scope.setdefault("state", {})
    found = state.get(_SENT)
    if found is None:
        found = state[_SENT] = _parse(scope)
    return found


def _parse(scope: MutableMapping[str, Any]) -> SentKey:
    header = next((v.decode("latin-1").strip() for k, v in scope["headers"] if k == HEADER), None)
    query: bytes = scope.get("query_string", b"")
    params: set[str] = set()
    if query and (b"key" in query or b"%" in query):  # a name can only decode to "key" from these
        params = {
            v.strip() for k, v in parse_qsl(query.decode("latin-1"), keep_blank_values=True) if k == PARAM
        }
    values = params | ({header} if header is not None else set())
    conflict = len(values) > 1
    if header is not None:
        return SentKey(header, "X-API-Key", conflict)
    return SentKey(next(iter(params)) if params else None, PARAM, conflict)
