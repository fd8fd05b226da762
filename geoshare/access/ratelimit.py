"""Rate limits and daily quotas, decided in memory on the request path.

Three kinds of caller, three buckets, all per worker process (no database, no lock: the event loop
is the only writer of the buckets):

* a key that has authenticated on this worker: a bucket per key prefix at its department's
  ``rate_limit_per_minute`` (else ``rate_limit_per_minute`` from settings), and its department's
  ``daily_quota``;
* a request without a key: a bucket per client IP at ``rate_limit_anonymous_per_minute`` (a key not
  yet seen on this worker is let through once: it is proven, or it counts as a failure below);
* failed authentications (401 with a key) per client IP: after ``auth_failures_per_minute`` the IP is
  locked out for ``auth_cooldown_seconds``, except for keys already proven here, so a brute force of
  random keys is cut off while the NAT-ed colleagues of a careless client keep working.

Buckets are "leaky": a level that drains at the per-minute rate, so a department's new limit applies
to the next request without resetting anyone. With W workers the effective ceiling per key is up to
W times the per-minute figure (the load balancer spreads a key's calls): set it accordingly.

The daily quota is shared by all workers through the usage roll-up: every ``refresh_seconds`` the
audit writer thread reads each department's limits and today's calls (one query) and resets the local
counter; a department is refused when ``calls in the roll-up + calls admitted here since`` reaches its
quota. The approximation: other workers' calls since the last refresh and records not yet flushed are
not seen, so a department may overshoot by about (refresh + flush interval) × its call rate — a few
seconds of traffic, which is the price of keeping the database off the hot path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, text

from geoshare.access.audit import setting
from geoshare.access.identity import Principal
from layers.errors import BadParameter, NotFound


@dataclass(frozen=True)
class LimitConfig:
    enabled: bool = True
    per_minute: int = 600  # per key and worker, unless the department says otherwise
    daily_quota: int = 0  # per department across workers, unless the department says otherwise; 0: none
    anonymous_per_minute: int = 600  # per client IP and worker, for requests without a proven key
    auth_failures_per_minute: int = 10  # per client IP and worker
    auth_cooldown_seconds: int = 60
    refresh_seconds: float = 5.0
    timezone: str = "Asia/Shanghai"  # when the daily quota resets (local midnight)

    @classmethod
    def from_settings(cls, settings: object) -> LimitConfig:
        d = cls()
        return cls(
            enabled=setting(settings, "rate_limit_enabled", d.enabled),
            per_minute=setting(settings, "rate_limit_per_minute", d.per_minute),
            daily_quota=setting(settings, "daily_quota", d.daily_quota),
            anonymous_per_minute=setting(settings, "rate_limit_anonymous_per_minute", d.anonymous_per_minute),
            auth_failures_per_minute=setting(
                settings, "auth_failures_per_minute", d.auth_failures_per_minute
            ),
            auth_cooldown_seconds=setting(settings, "auth_cooldown_seconds", d.auth_cooldown_seconds),
            refresh_seconds=setting(settings, "rate_limit_refresh_seconds", d.refresh_seconds),
            timezone=setting(settings, "usage_timezone", d.timezone),
        )


class Refusal(NamedTuple):
    retry_after: int  # seconds, for the Retry-After header
    detail: str
    field: str | None = None


class Bucket:
    """A leaky bucket: ``level`` requests in it, draining at ``per_minute / 60`` per second."""

    __slots__ = ("level", "stamp")

    def __init__(self, now: float) -> None:
        self.level = 0.0
        self.stamp = now

    def _drain(self, now: float, per_minute: int) -> float:
        level = max(0.0, self.level - (now - self.stamp) * per_minute / 60.0)
        self.level, self.stamp = level, now
        return level

    def take(self, now: float, per_minute: int) -> float:
        """Add one request: 0.0 if it fits, else the seconds until it would."""
        level = self._drain(now, per_minute)
        if level + 1 > per_minute:
            return (level + 1 - per_minute) * 60.0 / per_minute
        self.level = level + 1
        return 0.0

    def give_back(self) -> None:
        self.level = max(0.0, self.level - 1)

    def full(self, now: float, per_minute: int) -> bool:
        return self._drain(now, per_minute) + 1 > per_minute

    def idle(self, now: float, per_minute: int) -> bool:
        return self._drain(now, per_minute) == 0.0


@dataclass(frozen=True)
class DepartmentLimits:
    per_minute: int | None
    daily_quota: int | None
    used_today: int  # calls in the roll-up at the last refresh (429s excluded)


_SNAPSHOT = text(
    """
    SELECT d.code, d.rate_limit_per_minute, d.daily_quota, coalesce(u.used, 0) AS used
    FROM gs.department d
    LEFT JOIN (
        SELECT department_code, sum(calls - limited) AS used
        FROM gs.usage_daily
        WHERE day = (now() AT TIME ZONE :tz)::date AND department_code IS NOT NULL
        GROUP BY department_code
    ) u ON u.department_code = d.code
    """
)


class Limiter:
    """The per-process limiter: ``admit`` before a request, ``settle`` once its status is known."""

    def __init__(self, config: LimitConfig) -> None:
        self.config = config
        self._zone = ZoneInfo(config.timezone)
        self._departments: dict[str, DepartmentLimits] = {}
        self._local: dict[str, int] = {}  # calls admitted per department since the last refresh
        self._proven: dict[str, tuple[str | None, str | None]] = {}  # prefix → (department, role)
        self._keys: dict[str, Bucket] = {}
        self._ips: dict[str, Bucket] = {}
        self._failures: dict[str, Bucket] = {}
        self._lockout: dict[str, float] = {}  # ip → monotonic time the lockout ends

    # -- request path ------------------------------------------------------------------------------

    def proven(self, prefix: str | None) -> tuple[str | None, str | None] | None:
        """(department, role) of a key prefix that authenticated on this worker, else None."""
        return self._proven.get(prefix) if prefix else None

    def admit(self, ip: str | None, prefix: str | None, has_key: bool, now: float) -> Refusal | None:
        """None to let the request through, or why not and for how long."""
        if not self.config.enabled:
            return None
        known = self._proven.get(prefix) if prefix else None
        if known is not None:
            return self._admit_key(prefix, known[0], now)  # type: ignore[arg-type]
        ip_key = ip or "-"
        if has_key:
            until = self._lockout.get(ip_key)
            if until is not None and until > now:
                return Refusal(
                    math.ceil(until - now),
                    "too many failed authentications from this address: try again later",
                    "X-API-Key",
                )
            return None  # the key's first call here: if it fails, the failure lockout counts it
        bucket = self._ips.get(ip_key)
        if bucket is None:
            bucket = self._ips[ip_key] = Bucket(now)
        wait = bucket.take(now, self.config.anonymous_per_minute)
        if wait:
            return Refusal(
                math.ceil(wait),
                f"rate limit of {self.config.anonymous_per_minute} requests per minute from this address "
                "exceeded: send an API key or slow down",
            )
        return None

    def _admit_key(self, prefix: str, department: str | None, now: float) -> Refusal | None:
        limits = self._departments.get(department) if department else None
        per_minute = (limits.per_minute if limits else None) or self.config.per_minute
        bucket = self._keys.get(prefix)
        if bucket is None:
            bucket = self._keys[prefix] = Bucket(now)
        wait = bucket.take(now, per_minute)
        if wait:
            return Refusal(
                math.ceil(wait),
                f"rate limit of {per_minute} requests per minute for key gsk_{prefix}_… exceeded",
            )
        if department is None:
            return None
        quota = (limits.daily_quota if limits else None) or self.config.daily_quota
        local = self._local.get(department, 0)
        if quota and (limits.used_today if limits else 0) + local >= quota:
            bucket.give_back()
            return Refusal(
                self.seconds_to_midnight(),
                f"daily quota of {quota} calls for department {department} used up: it resets at midnight",
            )
        self._local[department] = local + 1
        return None

    def settle(
        self,
        ip: str | None,
        prefix: str | None,
        has_key: bool,
        status: int,
        who: Principal | None,
        now: float,
    ) -> None:
        """Learn from the outcome: a key that authenticated is proven (and its department known); a
        401 to a request with a key is a failed authentication of its client IP."""
        if who is not None and who.key_prefix is not None:
            if self._proven.get(who.key_prefix) != (who.department, who.role):
                if who.key_prefix not in self._proven and who.department is not None:
                    # admitted as an unknown key, so not yet counted against its department's quota
                    self._local[who.department] = self._local.get(who.department, 0) + 1
                self._proven[who.key_prefix] = (who.department, who.role)
            return
        if not has_key or status != 401 or not self.config.enabled:
            return
        if prefix is not None:
            self._proven.pop(prefix, None)  # revoked or expired since
        ip_key = ip or "-"
        bucket = self._failures.get(ip_key)
        if bucket is None:
            bucket = self._failures[ip_key] = Bucket(now)
        limit = self.config.auth_failures_per_minute
        if bucket.take(now, limit) or bucket.full(now, limit):
            self._lockout[ip_key] = now + self.config.auth_cooldown_seconds

    def seconds_to_midnight(self) -> int:
        now = datetime.now(self._zone)
        midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), self._zone)
        return max(1, math.ceil((midnight - now).total_seconds()))

    # -- writer thread -------------------------------------------------------------------------------

    def refresh(self, conn: Connection) -> None:
        """Read every department's limits and today's calls (one query), and restart local counting."""
        self._local = {}
        rows = conn.execute(_SNAPSHOT, {"tz": self.config.timezone}).all()
        self._departments = {
            r.code: DepartmentLimits(r.rate_limit_per_minute, r.daily_quota, int(r.used)) for r in rows
        }

    def prune(self, now: float) -> None:
        """Forget drained buckets and ended lockouts, so memory follows the active callers only."""
        for table, per_minute in (
            (self._ips, self.config.anonymous_per_minute),
            (self._failures, self.config.auth_failures_per_minute),
            (self._keys, self.config.per_minute),
        ):
            for key, bucket in list(table.items()):
                if bucket.idle(now, per_minute):
                    table.pop(key, None)
        for ip, until in list(self._lockout.items()):
            if until <= now:
                self._lockout.pop(ip, None)


# -- department limits (CLI, admin) -----------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    department: str
    per_minute: int | None
    daily_quota: int | None


def get_limits(conn: Connection, department: str) -> Limits:
    row = conn.execute(
        text("SELECT code, rate_limit_per_minute, daily_quota FROM gs.department WHERE code = :c"),
        {"c": department},
    ).first()
    if row is None:
        raise NotFound(f"no department {department!r}", field="department")
    return Limits(row.code, row.rate_limit_per_minute, row.daily_quota)


def set_limits(
    conn: Connection,
    department: str,
    *,
    per_minute: int | None = None,
    daily_quota: int | None = None,
    clear_per_minute: bool = False,
    clear_daily_quota: bool = False,
) -> Limits:
    """Set (or clear back to the server default) a department's limits; values left None are kept.
    Workers pick the change up within ``refresh_seconds``."""
    for name, value in (("per-minute", per_minute), ("daily", daily_quota)):
        if value is not None and value <= 0:
            raise BadParameter(f"{name} limit must be a positive number, got {value}", field=name)
    row = conn.execute(
        text(
            """
            UPDATE gs.department SET
                rate_limit_per_minute = CASE WHEN :clear_pm THEN NULL
                                             ELSE coalesce(CAST(:pm AS integer), rate_limit_per_minute) END,
                daily_quota = CASE WHEN :clear_dq THEN NULL
                                   ELSE coalesce(CAST(:dq AS integer), daily_quota) END
            WHERE code = :c
            RETURNING code, rate_limit_per_minute, daily_quota
            """
        ),
        {
            "c": department,
            "pm": per_minute,
            "dq": daily_quota,
            "clear_pm": clear_per_minute,
            "clear_dq": clear_daily_quota,
        },
    ).first()
    if row is None:
        raise NotFound(f"no department {department!r}", field="department")
    return Limits(row.code, row.rate_limit_per_minute, row.daily_quota)
