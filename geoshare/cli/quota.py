"""``geoshare department limits CODE [--per-minute N] [--daily N]``: a department's rate limit and
daily quota. Without options it shows them; ``--default-per-minute`` / ``--default-daily`` return a
limit to the server default. Running workers pick a change up within a few seconds.
"""

from __future__ import annotations

import getpass

import typer
from sqlalchemy import Connection

from geoshare.access import audit, ratelimit
from geoshare.access.audit import setting
from geoshare.cli.access import _in_transaction, _print
from geoshare.settings import get_settings


def _describe(limits: ratelimit.Limits) -> str:
    config = ratelimit.LimitConfig.from_settings(get_settings())
    per_minute = (
        f"{limits.per_minute}/min per key"
        if limits.per_minute
        else f"default ({config.per_minute}/min per key)"
    )
    if limits.daily_quota:
        daily = f"{limits.daily_quota} calls/day"
    elif config.daily_quota:
        daily = f"default ({config.daily_quota} calls/day)"
    else:
        daily = "no daily quota"
    zone = setting(get_settings(), "usage_timezone", config.timezone)
    return f"{limits.department}\trate {per_minute}\tquota {daily} (days in {zone})"


def _set(
    conn: Connection, code: str, per_minute: int | None, daily: int | None, clear_pm: bool, clear_daily: bool
) -> ratelimit.Limits:
    result = ratelimit.set_limits(
        conn,
        code,
        per_minute=per_minute,
        daily_quota=daily,
        clear_per_minute=clear_pm,
        clear_daily_quota=clear_daily,
    )
    audit.record_change(
        conn,
        f"cli:{getpass.getuser()}",
        "department.limits",
        f"department:{code}",
        {"rate_limit_per_minute": result.per_minute, "daily_quota": result.daily_quota},
    )
    return result


def limits(
    code: str = typer.Argument(..., help="department code"),
    per_minute: int | None = typer.Option(None, "--per-minute", min=1, help="requests per minute per key"),
    daily: int | None = typer.Option(None, "--daily", min=1, help="calls per day for the whole department"),
    default_per_minute: bool = typer.Option(False, "--default-per-minute", help="use the server default"),
    default_daily: bool = typer.Option(False, "--default-daily", help="use the server default"),
) -> None:
    """Show or set a department's rate limit and daily quota."""
    if per_minute is not None and default_per_minute:
        raise typer.BadParameter("give --per-minute or --default-per-minute, not both")
    if daily is not None and default_daily:
        raise typer.BadParameter("give --daily or --default-daily, not both")
    if per_minute is None and daily is None and not default_per_minute and not default_daily:
        result = _in_transaction(lambda conn: ratelimit.get_limits(conn, code))
    else:
        result = _in_transaction(
            lambda conn: _set(conn, code, per_minute, daily, default_per_minute, default_daily)
        )
    _print(_describe(result))
