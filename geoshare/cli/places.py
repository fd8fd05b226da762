"""``geoshare places import FILE [--format csv|osm]``: place names (地名) into ``addr.place``.

A file replaces the places of its source (``--source``, default the file's name), in one
transaction, and leaves every other source alone. CSV rows without coordinates are placed by the
geocoder on the address database where it knows the address, and otherwise stored without a
point. Exit codes: 0 imported, 2 unusable input or database error.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from geoshare.cli.layer import _one_line_errors

app = typer.Typer(no_args_is_help=True, help="Place names (地名): landmarks, POIs, named buildings.")
console = Console(soft_wrap=True)


@app.callback()
def places() -> None:
    """Place names (地名): import from CSV or OpenStreetMap."""  # keeps `import` a subcommand


@app.command("import")
def import_cmd(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="CSV or OSM .pbf"),
    format: str | None = typer.Option(None, "--format", help="csv or osm (default: from the file name)"),
    source: str | None = typer.Option(None, "--source", help="source name; its earlier import is replaced"),
    category: str = typer.Option("other", "--category", help="CSV: category of rows that give none"),
    layer: str = typer.Option("points", "--layer", help="OSM: the OGR layer (points …)"),
) -> None:
    """Replace the places of one source with FILE."""
    from geocode.index import load_index
    from geocode.places.csvfile import read_csv
    from geocode.places.locate import locate
    from geocode.places.model import check_category
    from geocode.places.osm import read_osm
    from geocode.places.store import replace_places
    from geoshare.db.engine import make_engine
    from geoshare.settings import get_settings

    kind = (format or ("osm" if file.name.endswith((".pbf", ".osm")) else "csv")).lower()
    with _one_line_errors():
        if kind not in ("csv", "osm"):
            raise typer.BadParameter("--format must be csv or osm")
        try:
            check_category(category)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        records = read_csv(file, category) if kind == "csv" else read_osm(file, layer)
        name = source or (f"osm-{file.name.split('.')[0]}" if kind == "osm" else file.stem)
        engine = make_engine(get_settings().database_url, pool_size=1)
        try:
            with engine.begin() as conn:
                counts = locate(load_index(conn), records) if kind == "csv" else {"had a point": len(records)}
                written = replace_places(conn, name, records)
        finally:
            engine.dispose()
    details = ", ".join(f"{k}: {v:,}" for k, v in counts.items())
    console.print(f"{written:,} places imported as source {name!r} ({details})", markup=False)
