"""``geoshare layer``: publish, list, show versions, delete."""

from __future__ import annotations

import getpass
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import typer
from rich.console import Console
from sqlalchemy.exc import DBAPIError

from geocode.model import CONFIDENT
from geoshare.access import audit
from geoshare.db.engine import get_engine
from geoshare.services import address_layers, publishing, tile_pyramids
from geoshare.settings import get_settings
from layers.errors import LayerError
from layers.model import SHARING_CLASSES, LayerMetadata
from layers.registry import list_layers

app = typer.Typer(no_args_is_help=True, help="Publish and manage layers.")
console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """Publisher mistakes and an unreachable database end with one line and exit code 2, not a traceback."""
    try:
        yield
    except LayerError as exc:
        where = "".join(
            [f" [field {exc.field}]" if exc.field else "", f" [line {exc.line}]" if exc.line else ""]
        )
        errors.print(f"error: {exc.detail}{where}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    except DBAPIError as exc:
        errors.print(f"error: database: {str(exc.orig).strip().splitlines()[0]}", markup=False)
        raise typer.Exit(2) from None
    except OSError as exc:
        errors.print(f"error: {exc}", markup=False)
        raise typer.Exit(2) from None


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _run(status: str, job: Callable[[], T]) -> T:
    with _one_line_errors(), console.status(status):
        return job()


@app.command()
def publish(
    file: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="GeoJSON, zipped Shapefile, GeoPackage, CSV"
    ),
    layer_id: str = typer.Option(..., "--id", help="layer id: a-z, 0-9, '_' and '-'"),
    title: str = typer.Option(..., help="human title"),
    department: str = typer.Option(..., help="owning department code"),
    sharing_class: str = typer.Option("shared", "--class", help="public | shared | restricted"),
    description: str = typer.Option("", help="what the layer holds"),
    contact: str | None = typer.Option(None, help="who to ask about it"),
    keywords: str | None = typer.Option(None, help="comma-separated"),
    theme: str | None = typer.Option(None),
    key_field: str | None = typer.Option(None, help="field with a stable unique feature key"),
    time_field: str | None = typer.Option(None, help="date/time field for the time extent"),
    encoding: str | None = typer.Option(None, help="DBF/CSV text encoding (default: detect)"),
    source_crs: str | None = typer.Option(None, help="e.g. EPSG:4490 when the file has no .prj"),
    lon_column: str | None = typer.Option(None, help="CSV longitude column"),
    lat_column: str | None = typer.Option(None, help="CSV latitude column"),
    source_layer: str | None = typer.Option(
        None, help="layer of a multi-layer source, e.g. lines of an OpenStreetMap .pbf"
    ),
    where: str | None = typer.Option(None, help='OGR SQL attribute filter, e.g. "highway IS NOT NULL"'),
    kind: str = typer.Option("thematic", help="thematic | base (base map layers: the IT office's)"),
    update_frequency: str | None = typer.Option(None),
    source: str | None = typer.Option(None),
    licence: str | None = typer.Option(None),
    restricted_fields: str | None = typer.Option(
        None, help="comma-separated fields hidden from public output"
    ),
    actor: str | None = typer.Option(None, help="who publishes (recorded in the version history)"),
    address_column: str | None = typer.Option(
        None,
        help="CSV of records without coordinates: geocode this column (e.g. 注册地址), publish the matches",
    ),
    min_score: float = typer.Option(CONFIDENT, min=0.0, max=1.0, help="lowest match score published"),
) -> None:
    """Publish FILE as a new layer, or as the next version of an existing one."""
    if sharing_class not in SHARING_CLASSES:
        errors.print(f"error: --class must be one of {', '.join(SHARING_CLASSES)}", markup=False)
        raise typer.Exit(2)
    metadata = LayerMetadata(
        title=title,
        department=department,
        description=description,
        contact=contact,
        keywords=_split(keywords),
        theme=theme,
        sharing_class=sharing_class,  # type: ignore[arg-type]
        restricted_fields=_split(restricted_fields),
        update_frequency=update_frequency,
        source=source,
        licence=licence,
        key_field=key_field,
        time_field=time_field,
        kind=kind,  # type: ignore[arg-type]
    )
    actor = actor or cli_actor()
    if address_column:
        result, report = _run(
            f"geocoding {address_column} of {file.name} and publishing it as {layer_id} …",
            lambda: address_layers.publish_address_file(
                get_engine(), get_settings(), layer_id, file, metadata, address_column, encoding=encoding,
                min_score=min_score, actor=actor, source_name=file.name,
            ),
        )  # fmt: skip
        geo = report["geocoding"]
        console.print(
            f"geocoded {geo['rows']} records: {geo['matched']} matched ({geo['match_rate']:.1%}), "
            f"{geo['unmatched']} left out (see `geoshare layer unmatched {layer_id} {result.version}`)",
            highlight=False,
        )
        console.print(
            f"published {result.layer_id} version {result.version}: {result.feature_count} features",
            highlight=False,
        )
        _audit_publish(result.layer_id, result.version, result.feature_count, actor)
        _render_dense_tiles(result.layer_id, result.feature_count)
        return
    result = _run(
        f"publishing {file.name} as {layer_id} …",
        lambda: publishing.publish(
            get_engine(), get_settings(), layer_id, file, metadata, encoding=encoding, source_crs=source_crs,
            lon_column=lon_column, lat_column=lat_column, source_layer=source_layer, where=where,
            actor=actor, source_name=file.name,
        ),
    )  # fmt: skip
    console.print(
        f"published {result.layer_id} version {result.version}: {result.feature_count} features "
        f"(+{result.added} -{result.removed} ~{result.modified}, {result.repaired} repaired)",
        highlight=False,
    )
    _audit_publish(result.layer_id, result.version, result.feature_count, actor)
    _render_dense_tiles(result.layer_id, result.feature_count)


def cli_actor() -> str:
    """Who makes a change from the command line, as the audit log and version history name them."""
    return f"cli:{getpass.getuser()}"


def _audit_publish(layer_id: str, version: int, features: int, actor: str) -> None:
    detail = {"version": version, "features": features}
    audit.record_change(get_engine(), actor, "layer.publish", f"layer:{layer_id}", detail)


def _render_dense_tiles(layer_id: str, feature_count: int) -> None:
    from geoshare.cli.tiles import render_dense_tiles  # the tiles commands import this module

    if tile_pyramids.wanted(feature_count, get_settings()):
        with _one_line_errors():
            render_dense_tiles(layer_id)


@app.command("list")
def list_command() -> None:
    """List published layers."""

    def load() -> list:
        with get_engine().connect() as conn:
            return list_layers(conn)

    for layer in _run("reading layers …", load):
        console.print(
            f"{layer.id}\tv{layer.current_version}\t{layer.feature_count}\t{layer.geometry_type}\t"
            f"{layer.sharing_class}\t{layer.department_code}\t{layer.title}",
            highlight=False,
            markup=False,
        )


@app.command()
def versions(layer_id: str = typer.Argument(..., help="layer id")) -> None:
    """Show the version history of a layer."""
    for v in _run("reading versions …", lambda: publishing.versions(get_engine(), layer_id)):
        mark = "*" if v.current else " "
        kept = "" if v.data_kept else " (data pruned)"
        console.print(
            f"{mark} v{v.version}\t{v.created_at:%Y-%m-%d %H:%M}\t{v.created_by or '-'}\t"
            f"{v.feature_count} features\t+{v.added} -{v.removed} ~{v.modified}\t{v.source_name or ''}{kept}",
            highlight=False,
            markup=False,
        )


@app.command()
def delete(layer_id: str = typer.Argument(..., help="layer id")) -> None:
    """Delete a layer with all its versions and history."""
    _run(f"deleting {layer_id} …", lambda: publishing.delete(get_engine(), layer_id))
    audit.record_change(get_engine(), cli_actor(), "layer.delete", f"layer:{layer_id}")
    console.print(f"deleted {layer_id}", highlight=False)


@app.command("unmatched")
def unmatched(
    layer_id: str = typer.Argument(..., help="layer id"),
    version: int = typer.Argument(..., help="version number"),
    output: Path | None = typer.Option(None, "-o", "--output", help="write CSV here (default: print)"),
) -> None:
    """The records of a geocoded version that were left out, with why."""
    rows = _run("reading …", lambda: address_layers.unmatched_rows(get_engine(), layer_id, version))
    data = address_layers.rows_csv(rows)
    if output:
        output.write_bytes(data)
        console.print(f"{len(rows)} rows written to {output}", highlight=False)
    else:
        typer.echo(data.decode("utf-8-sig"), nl=False)
