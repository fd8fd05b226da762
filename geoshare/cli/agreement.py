"""``geoshare agreement …``: the IT office's view of sharing agreements (共享协议).

The CLI is trusted and acts as a platform admin: it lists every filing and may decide or revoke
any of them (e.g. one filed on paper); departments use the HTTP API with their own keys.
"""

from __future__ import annotations

from datetime import date

import typer
from rich.console import Console

from geoshare.access import agreements
from geoshare.access.identity import Principal
from geoshare.cli.access import _in_transaction, _print

app = typer.Typer(no_args_is_help=True, help="List, approve, reject and revoke sharing agreements.")
IT_OFFICE = Principal(department=None, role="platform_admin", key_prefix=None)
console = Console(soft_wrap=True)


def _line(a: agreements.Agreement) -> str:
    layers = ", ".join(f"{g.layer}[{','.join(g.fields)}]" for g in a.layers)
    area = f" area {a.area_code} {a.area_name}" if a.area_code else ""
    period = f"{a.starts_on}…{a.ends_on}{area}"
    return f"#{a.id}\t{a.status}\t{a.consumer} ← {a.provider}\t{period}\t{layers}\t{a.purpose}"


@app.command("list")
def list_cmd(
    status: str = typer.Option(None, help="requested | approved | rejected | revoked | expired"),
    layer: str = typer.Option(None, help="only agreements naming this layer"),
) -> None:
    """Every filing, newest first."""
    found = _in_transaction(lambda conn: agreements.list_for(conn, IT_OFFICE, status=status, layer=layer))
    for a in found:
        _print(_line(a))
    if not found:
        _print("no agreements")


@app.command("file")
def file_cmd(
    consumer: str = typer.Option(..., help="the department that will read"),
    provider: str = typer.Option(..., help="the department that keeps the layers"),
    layer: list[str] = typer.Option(..., help="LAYER=field1,field2 (repeat for several layers)"),
    purpose: str = typer.Option(...),
    starts: str = typer.Option(None, help="YYYY-MM-DD, default today"),
    ends: str = typer.Option(..., help="YYYY-MM-DD"),
    area: str = typer.Option(None, help="division code: only rows inside it"),
    frequency: str = typer.Option(None, help="update frequency agreed, e.g. daily"),
) -> None:
    """File an agreement on a department's behalf (it still needs approving)."""
    grants = []
    for spec in layer:
        name, _, fields = spec.partition("=")
        grants.append(
            agreements.LayerGrant(name.strip(), [f.strip() for f in fields.split(",") if f.strip()])
        )
    filed = _in_transaction(
        lambda conn: agreements.file(
            conn,
            IT_OFFICE,
            consumer=consumer,
            provider=provider,
            layers=grants,
            purpose=purpose,
            starts_on=date.fromisoformat(starts) if starts else date.today(),
            ends_on=date.fromisoformat(ends),
            update_frequency=frequency,
            area_code=area,
        )
    )
    _print(_line(filed))


@app.command("approve")
def approve_cmd(agreement_id: int, note: str = typer.Option(None)) -> None:
    _print(
        _line(
            _in_transaction(lambda c: agreements.decide(c, IT_OFFICE, agreement_id, approve=True, note=note))
        )
    )


@app.command("reject")
def reject_cmd(agreement_id: int, note: str = typer.Option(None)) -> None:
    _print(
        _line(
            _in_transaction(lambda c: agreements.decide(c, IT_OFFICE, agreement_id, approve=False, note=note))
        )
    )


@app.command("revoke")
def revoke_cmd(agreement_id: int, note: str = typer.Option(None)) -> None:
    _print(_line(_in_transaction(lambda c: agreements.revoke(c, IT_OFFICE, agreement_id, note))))
