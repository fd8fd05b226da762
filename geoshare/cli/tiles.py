"""``geoshare tiles seed|dense`` and ``geoshare package``: tiles made ahead of time, for the server or
offline."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from geoshare.access.identity import Principal, department_principal
from geoshare.cli.layer import _one_line_errors
from geoshare.db.engine import get_engine
from geoshare.services import offline, tile_pyramids
from geoshare.settings import get_settings

app = typer.Typer(no_args_is_help=True, help="Pre-render base map tiles and layers' dense tiles.")
console = Console(soft_wrap=True)


def _bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    )


@app.command("seed")
def seed_cmd(
    bbox: str = typer.Option(..., help="west,south,east,north in degrees"),
    zooms: str = typer.Option(..., help="zoom range, e.g. 10-14"),
) -> None:
    """Render the public base map tiles of an area into the shared tile store (GEOSHARE_TILE_STORE)."""
    with _one_line_errors(), _bar() as bar:
        area, levels = offline.parse_bbox(bbox), offline.parse_zooms(zooms)
        task = bar.add_task("seeding", total=None)
        rendered, present = offline.seed(
            get_engine(), get_settings(), area, levels, lambda i, n: bar.update(task, completed=i, total=n)
        )
    console.print(f"seeded {rendered} tiles ({present} were already in the store)", highlight=False)


def render_dense_tiles(layer_id: str) -> None:
    """Render the layer's dense-tile pyramid with a progress bar (nothing when the layer is small)."""
    with _bar() as bar:
        task = bar.add_task(f"dense tiles of {layer_id}", total=None)
        pyramid = tile_pyramids.build(
            get_engine(), get_settings(), layer_id, lambda i, n: bar.update(task, completed=i, total=n)
        )
    if pyramid is None:
        console.print(f"{layer_id}: no tile holds enough features to be pre-rendered", highlight=False)
    else:
        console.print(
            f"{layer_id} v{pyramid.version}: {pyramid.tiles} dense tiles ({pyramid.bytes / 1e6:.1f} MB) "
            f"pre-rendered in {pyramid.seconds:.1f}s",
            highlight=False,
        )


@app.command("dense")
def dense_cmd(
    layer_id: str = typer.Argument(..., help="layer id"),
    clear: bool = typer.Option(False, "--clear", help="drop the pre-rendered tiles instead"),
) -> None:
    """Pre-render the current version's dense tiles (publishing does this itself), or drop them."""
    with _one_line_errors():
        if clear:
            tile_pyramids.clear(get_engine(), layer_id)
            console.print(f"{layer_id}: dense tiles dropped; tiles are cut on request", highlight=False)
            return
        render_dense_tiles(layer_id)


def package_cmd(
    output: Path = typer.Option(..., "-o", "--output", help="area.pmtiles or area.mbtiles"),
    bbox: str = typer.Option(..., help="west,south,east,north in degrees"),
    zooms: str = typer.Option("10-16", help="zoom range"),
    layers: str = typer.Option("", help="comma-separated layer ids to add to the base map"),
    department: str | None = typer.Option(
        None, help="package what this department may read (its agreements included); default: public only"
    ),
) -> None:
    """Write an offline package: the base map plus layers, for field and emergency use."""
    with _one_line_errors(), _bar() as bar:
        area, levels = offline.parse_bbox(bbox), offline.parse_zooms(zooms)
        engine = get_engine()
        if department:
            with engine.connect() as conn:
                who = department_principal(conn, department)
        else:
            who = Principal.anonymous()
        task = bar.add_task(f"packaging {output.name}", total=None)
        count = offline.build_package(
            engine,
            get_settings(),
            who,
            area,
            levels,
            [x.strip() for x in layers.split(",") if x.strip()],
            output,
            lambda i, n: bar.update(task, completed=i, total=n),
        )
    console.print(f"wrote {output} with {count} tiles", highlight=False)
