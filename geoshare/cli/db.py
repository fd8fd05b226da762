"""``geoshare db``: schema migrations."""

from __future__ import annotations

import typer

from geoshare.db import migrate
from geoshare.settings import get_settings

app = typer.Typer(no_args_is_help=True, help="Database schema.")


@app.command()
def upgrade(revision: str = typer.Argument("head", help="target revision")) -> None:
    """Apply schema migrations up to REVISION (default: the latest)."""
    migrate.upgrade(get_settings().database_url, revision)
    typer.echo(f"database at {migrate.head_revision() if revision == 'head' else revision}")
