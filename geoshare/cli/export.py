"""``geoshare layer export ID -f gpkg -o file``: a layer as a file, on the trusted side (every field).

Registered on the ``layer`` command group in ``geoshare.cli.main`` (see ``export_cmd``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import typer
from rich.console import Console
from sqlalchemy.exc import DBAPIError

from geoshare.api.ogc_params import parse_bbox, parse_names
from geoshare.db.engine import get_engine
from layers.crs import resolve_crs
from layers.errors import LayerError
from layers.export import ExportRequest, parse_format, plan_export, write_export
from layers.registry import get_layer

errors = Console(stderr=True, soft_wrap=True)


def export_cmd(
    layer_id: str = typer.Argument(..., help="layer id"),
    fmt: str = typer.Option("gpkg", "-f", "--format", help="gpkg | geojson | csv | shp (zipped)"),
    output: Path | None = typer.Option(None, "-o", "--output", help="file to write (default: ID-vN.ext)"),
    bbox: str | None = typer.Option(None, help="minlon,minlat,maxlon,maxlat"),
    crs: str | None = typer.Option(None, help="e.g. EPSG:4490, EPSG:3857, GCJ-02 (default CRS84)"),
    properties: str | None = typer.Option(None, help="comma-separated fields (default: all)"),
) -> None:
    """Export a layer's current version as a file GIS tools and spreadsheets open."""
    try:
        request = ExportRequest(
            format=parse_format(fmt),
            crs=resolve_crs(crs, "crs"),
            bbox=parse_bbox(bbox, None),
            properties=parse_names(properties, "properties"),
        )
        with get_engine().connect() as conn:
            plan = plan_export(get_layer(conn, layer_id), request)
            target = output or Path(plan.file_name)
            with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as folder:
                written = Path(folder) / target.name  # no half-written file if it fails
                write_export(conn, plan, written)
                os.replace(written, target)
    except LayerError as exc:
        where = f" [{exc.field}]" if exc.field else ""
        errors.print(f"error: {exc.detail}{where}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    except (DBAPIError, OSError) as exc:
        errors.print(f"error: {getattr(exc, 'orig', None) or exc}".splitlines()[0], markup=False)
        raise typer.Exit(2) from None
    typer.echo(f"{target} ({target.stat().st_size} bytes)")
