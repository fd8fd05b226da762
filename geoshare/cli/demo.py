"""``geoshare demo load``: the demo city (Beijing), generated and stored in one transaction.

Heavy imports happen inside the command, so ``--if-missing`` on an already loaded demo returns
in a blink (it is run on every start-up).
"""

from __future__ import annotations

import typer

from geoshare.demo.generate.seed import DEFAULT_SCALE, DEFAULT_SEED, MAX_SCALE, MIN_SCALE

app = typer.Typer(no_args_is_help=True, help="The demo city.")


@app.command()
def load(
    scale: int = typer.Option(DEFAULT_SCALE, min=MIN_SCALE, max=MAX_SCALE, help="address points to generate"),
    seed: int = typer.Option(DEFAULT_SEED, help="random seed: same seed and scale, same city"),
    if_missing: bool = typer.Option(
        False, "--if-missing", help="do nothing when this demo is already loaded"
    ),
    force: bool = typer.Option(False, "--force", help="reload even when this demo is already loaded"),
    upgrade: bool = typer.Option(
        False, "--upgrade", help="apply schema migrations first (one start-up instead of two)"
    ),
) -> None:
    """Generate the demo city and load its address database and layers (replacing the previous demo)."""
    from geoshare.db.engine import get_engine
    from geoshare.demo.load import imported_address_database, is_loaded

    if upgrade:
        from geoshare.db import migrate
        from geoshare.settings import get_settings

        migrate.upgrade(get_settings().database_url)
    engine = get_engine()
    with engine.connect() as conn:
        already = is_loaded(conn, scale, seed)
        imported = imported_address_database(conn)
    if imported and not force:
        typer.echo(f"the address database was imported ({imported}); the demo leaves it (--force replaces)")
        return
    if already and not force:
        if not if_missing:
            typer.echo(f"demo (scale {scale}, seed {seed}) is already loaded; --force reloads it")
    else:
        _load_with_progress(engine, scale, seed)
    _ensure_imagery(engine)
    _ensure_dense_tiles(engine)


def _ensure_dense_tiles(engine: object) -> None:
    """Pre-render the dense tiles of large layers that lack them (after a load, or an upgrade that
    introduced them); a no-op on later starts."""
    from sqlalchemy import text

    from geoshare.cli.tiles import render_dense_tiles
    from geoshare.settings import get_settings

    least = get_settings().tile_pyramid_min_features
    if least <= 0:
        return
    sql = text(
        "SELECT id FROM gs.layer WHERE current_version IS NOT NULL AND tile_pyramid IS NULL "
        "AND feature_count >= :n ORDER BY id"
    )
    with engine.connect() as conn:  # type: ignore[attr-defined]
        missing = list(conn.execute(sql, {"n": least}).scalars())
    for layer_id in missing:
        render_dense_tiles(layer_id)


def _ensure_imagery(engine: object) -> None:
    """The sample image: its file lives outside the database, so check it on every start."""
    from geoshare.demo.imagery import load_demo_imagery
    from geoshare.settings import get_settings

    image = load_demo_imagery(engine, get_settings())  # type: ignore[arg-type]
    typer.echo(f"imagery {image.id}: {image.file_name}")


def _load_with_progress(engine: object, scale: int, seed: int) -> None:
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from geoshare.demo.load import load_demo, step_names

    console = Console()
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console
    ) as bar:
        tasks = {name: bar.add_task(name, total=1, start=False) for name in step_names()}

        def report(event: str, name: str) -> None:
            if event == "start":
                bar.start_task(tasks[name])
            else:
                bar.update(tasks[name], completed=1)
                bar.stop_task(tasks[name])

        timings = load_demo(engine, scale, seed, progress=report)  # type: ignore[arg-type]
    table = Table(title=f"demo loaded: scale {scale}, seed {seed}")
    table.add_column("step")
    table.add_column("seconds", justify="right")
    for name, seconds in timings.items():
        table.add_row(name, f"{seconds:.2f}")
    table.add_row("total", f"{sum(timings.values()):.2f}")
    console.print(table)
