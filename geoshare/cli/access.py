"""``geoshare department …`` and ``geoshare key …``: identities from the command line.

The CLI is trusted (it holds the database credentials), so it needs no key: this is how the first
platform admin key is made — ``geoshare key create --department <IT office> --role platform_admin``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

import typer
from rich.console import Console
from sqlalchemy import Connection

from geoshare.access import audit, store
from geoshare.cli.layer import _one_line_errors, cli_actor
from geoshare.db.engine import get_engine

department_app = typer.Typer(no_args_is_help=True, help="Register and list departments.")
key_app = typer.Typer(no_args_is_help=True, help="Issue, list and revoke API keys.")
console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")


def _in_transaction(job: Callable[[Connection], T]) -> T:
    with _one_line_errors(), get_engine().begin() as conn:
        return job(conn)


def _print(line: str) -> None:
    console.print(line, highlight=False, markup=False)


def _when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M}" if value else "-"


@department_app.command("create")
def department_create(
    code: str = typer.Argument(..., help="short code: letters, digits, '_' or '-'"),
    name: str = typer.Option(..., help="full name, e.g. 北京市市场监督管理局"),
    contact: str | None = typer.Option(None, help="who to ask"),
) -> None:
    """Register a department."""
    def create(conn: Connection) -> store.Department:
        made = store.create_department(conn, code, name, contact)
        audit.record_change(conn, cli_actor(), "department.create", f"department:{code}", {"name": name})
        return made

    dept = _in_transaction(create)
    _print(f"created department {dept.code}: {dept.name}")


@department_app.command("list")
def department_list() -> None:
    """List departments."""
    for d in _in_transaction(store.list_departments):
        _print(f"{d.code}\t{d.name}\t{d.contact or '-'}")


@key_app.command("create")
def key_create(
    department: str = typer.Option(..., help="department code the key belongs to"),
    role: str = typer.Option("consumer", help="consumer | publisher | department_admin | platform_admin"),
    expires: str | None = typer.Option(None, help="90d, 12h, 2027-01-01 (midnight UTC) or ISO date-time"),
    label: str | None = typer.Option(None, help="what the key is for, e.g. 执法App"),
    referrer: list[str] | None = typer.Option(
        None, "--referrer", help="browser key: allowed origin (repeatable), e.g. https://*.example.gov.cn"
    ),
    ip: list[str] | None = typer.Option(None, "--ip", help="allowed address or CIDR range (repeatable)"),
    user: int | None = typer.Option(None, "--user", help="id of the user the key belongs to"),
) -> None:
    """Issue an API key and print it once."""
    def create(conn: Connection) -> store.CreatedKey:
        made = store.create_key(
            conn, department, role, label=label, expires=expires, allowed_referrers=referrer,
            allowed_ips=ip, user_id=user, created_by=cli_actor(),
        )  # fmt: skip
        detail = {"department": department, "role": role}
        audit.record_change(conn, cli_actor(), "key.create", f"key:{made.info.prefix}", detail)
        return made

    created = _in_transaction(create)
    info = created.info
    typer.echo(created.key)
    errors.print(
        f"{info.role} key gsk_{info.prefix}_… for {info.department}, expires {_when(info.expires_at)}. "
        "Store it now: it cannot be shown again.",
        highlight=False,
        markup=False,
    )


@key_app.command("list")
def key_list(department: str | None = typer.Option(None, help="only this department's keys")) -> None:
    """List keys by prefix (secrets are never stored, so never shown)."""
    for k in _in_transaction(lambda conn: store.list_keys(conn, department)):
        bound = " ".join([*k.allowed_referrers, *k.allowed_ips]) or "-"
        _print(
            f"gsk_{k.prefix}_…\t{k.department}\t{k.role}\t{k.status}\texpires {_when(k.expires_at)}\t"
            f"last used {_when(k.last_used_at)}\t{bound}\t{k.label or ''}"
        )


@key_app.command("revoke")
def key_revoke(
    prefix: str = typer.Argument(..., help="the key's prefix (the 8 characters after gsk_)"),
) -> None:
    """Revoke a key; it stops working on the next request."""
    def revoke(conn: Connection) -> store.KeyInfo:
        revoked = store.revoke_key(conn, prefix)
        audit.record_change(conn, cli_actor(), "key.revoke", f"key:{revoked.prefix}")
        return revoked

    info = _in_transaction(revoke)
    _print(f"revoked gsk_{info.prefix}_… ({info.department}, {info.role}) at {_when(info.revoked_at)}")
