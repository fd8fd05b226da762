"""``geoshare imagery …``: add, list and remove aerial and satellite imagery.

The CLI is trusted (it holds the database credentials), like a platform admin; files go to the
imagery directory (``GEOSHARE_IMAGERY_DIR``, default ``data/imagery`` under the working directory).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from geoshare.cli.layer import _one_line_errors
from geoshare.db.engine import get_engine
from geoshare.settings import get_settings

if TYPE_CHECKING:
    pass

app = typer.Typer(no_args_is_help=True, help="Add, list and remove imagery (raster tiles).")
console = Console(soft_wrap=True)


def _print(line: str) -> None:
    console.print(line, highlight=False, markup=False)


def default_id(file: Path) -> str:
    """An id from the file name: ``Bahamas RGB.tif`` → ``bahamas_rgb``."""
    slug = re.sub(r"[^a-z0-9_-]+", "_", file.stem.lower()).strip("_-")
    return (slug if slug[:1].isalpha() else f"img_{slug}")[:63]


@app.command("add")
def add(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="GeoTIFF (or any raster GDAL reads)"),
    imagery_id: str | None = typer.Option(None, "--id", help="a-z, 0-9, '_' and '-'; default from the file"),
    title: str | None = typer.Option(None, help="human title; default the file name"),
    description: str = typer.Option("", help="what the image shows"),
    department: str | None = typer.Option(None, help="owning department code"),
    sharing_class: str = typer.Option("public", "--sharing-class", help="public | shared | restricted"),
    licence: str | None = typer.Option(None),
    source: str | None = typer.Option(None, help="who captured it, when"),
) -> None:
    """Store an image as a Cloud-Optimized GeoTIFF (converted if needed); re-adding an id replaces it."""
    from layers.imagery.store import ImageryMetadata, add_imagery, imagery_dir

    meta = ImageryMetadata(
        id=imagery_id or default_id(file),
        title=title or file.stem,
        description=description,
        department_code=department,
        sharing_class=sharing_class,
        licence=licence,
        source=source,
    )
    with _one_line_errors(), console.status(f"storing {file.name}"):
        image = add_imagery(get_engine(), file, imagery_dir(get_settings()), meta)
    _print(
        f"stored imagery {image.id}: {image.width}x{image.height}, {image.band_count} band(s) {image.dtype}, "
        f"{image.crs}, zoom {image.minzoom}-{image.maxzoom}, {image.size_bytes} bytes ({image.file_name})"
    )


@app.command("list")
def list_cmd() -> None:
    """Every image, whatever its class."""
    from layers.imagery.store import list_imagery
    from layers.registry import TRUSTED

    with _one_line_errors(), get_engine().connect() as conn:
        images = list_imagery(conn, TRUSTED)
    for i in images:
        bounds = ",".join(f"{v:.5f}" for v in i.bounds)
        _print(
            f"{i.id}\t{i.title}\t{i.department_code or '-'}\t{i.sharing_class}\t{i.crs}\t"
            f"z{i.minzoom}-{i.maxzoom}\t{bounds}\t{i.size_bytes}\t{i.updated_at:%Y-%m-%d %H:%M}"
        )
    if not images:
        _print("no imagery")


@app.command("remove")
def remove(imagery_id: str = typer.Argument(..., help="imagery id")) -> None:
    """Delete an image's record and its file."""
    from layers.imagery.store import imagery_dir, remove_imagery

    with _one_line_errors():
        name = remove_imagery(get_engine(), imagery_id, imagery_dir(get_settings()))
    _print(f"removed imagery {imagery_id} ({name})")
