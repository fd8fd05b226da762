"""Placeholder command group, filled in by its feature work."""

import typer

app = typer.Typer(no_args_is_help=True)
