"""``geoshare geocode "ADDRESS"`` and ``geoshare geocode-batch IN.csv -o OUT.csv``, run locally.

Both load the address index straight from the database (about a second for the demo city) instead
of calling a server, so they work on a host that runs no API. The batch command writes to a
temporary file next to the output and renames it at the end: a failed or interrupted run leaves no
half-written result behind.
"""

from __future__ import annotations

import functools
import os
import tempfile
import time
from pathlib import Path

import orjson
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from geocode.index import AddressIndex
from geoshare.cli.layer import _one_line_errors
from geoshare.services.coords import WGS84, from_wgs84_many, geocode_crs

console = Console(soft_wrap=True)
CRS_HELP = "output coordinates: EPSG:4326 (default), EPSG:4490, GCJ-02 or BD-09"


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} rows/s" if speed else "… rows/s", style="progress.data.speed")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _progress_bar() -> Progress:
    """Rows, rows/s and ETA; refreshed by hand, so no refresh thread is running when workers fork."""
    return Progress(
        TextColumn("geocoding"), BarColumn(), MofNCompleteColumn(), _RateColumn(), TimeElapsedColumn(),
        TextColumn("ETA"), TimeRemainingColumn(), console=console, auto_refresh=False,
    )  # fmt: skip


def _load_index() -> AddressIndex:
    from geocode.index import load_index
    from geoshare.db.engine import make_engine
    from geoshare.services.geocoding import IndexUnavailable
    from geoshare.settings import get_settings

    engine = make_engine(get_settings().database_url, pool_size=1)
    try:
        with console.status("loading the address index …"), engine.connect() as conn:
            index = load_index(conn)
    finally:
        engine.dispose()  # nothing stays connected (batch workers are forked)
    if index.size == 0 and not index.divisions:
        raise IndexUnavailable(
            "the address database is empty: run `geoshare demo load` or `geoshare address import`"
        )
    return index


def geocode_cmd(
    address: str = typer.Argument(..., help="the address, in any usual Chinese form"),
    city: str | None = typer.Option(None, help="admin context: city name, e.g. 北京"),
    district: str | None = typer.Option(None, help="admin context: district name, e.g. 朝阳区"),
    limit: int = typer.Option(5, min=1, max=20, help="candidates to show"),
    crs: str | None = typer.Option(None, help=CRS_HELP),
    as_json: bool = typer.Option(False, "--json", help="print the JSON GET /geocode answers"),
) -> None:
    """Geocode one address against the address database."""
    from geocode.match import geocode
    from geoshare.api.routes.geocode import check_address, result_body

    with _one_line_errors():
        check_address(address, "address")
        out_crs = geocode_crs(crs)
        result = geocode(_load_index(), address, city=city, district=district, limit=limit)
    body = result_body(result, out_crs)
    if as_json:
        typer.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
        return
    title = f"{address} → {body['status']}" + (f" ({body['message']})" if body.get("message") else "")
    table = Table(title=title, title_justify="left")
    for name, justify in (("#", "right"), ("score", "right"), ("level", "left"), ("address", "left"),
                          ("lon", "right"), ("lat", "right"), ("address code", "left")):  # fmt: skip
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for i, c in enumerate(body["candidates"], 1):
        table.add_row(
            str(i), f"{c['score']:.3f}", c["level"], c["formatted_address"], f"{c['location']['lon']:.7f}",
            f"{c['location']['lat']:.7f}", c["address_code"] or "",
        )  # fmt: skip
    console.print(table)
    if body["candidates"]:
        console.print(f"coordinates in {out_crs}", style="dim")


def geocode_batch_cmd(
    input_file: Path = typer.Argument(
        ..., metavar="IN.csv", exists=True, dir_okay=False, readable=True, help="CSV with a header row"
    ),
    column: str | None = typer.Option(
        None, "--column", "-c", help="the address column (default: 地址, 详细地址, 注册地址, address …)"
    ),
    output: Path | None = typer.Option(None, "--output", "-o", help="result CSV (default: IN-geocoded.csv)"),
    unmatched: Path | None = typer.Option(None, "--unmatched", help="also write the rows not matched here"),
    city: str | None = typer.Option(None, help="admin context for every row, e.g. 北京"),
    district: str | None = typer.Option(None, help="admin context for every row, e.g. 朝阳区"),
    crs: str | None = typer.Option(None, help=CRS_HELP),
    encoding: str | None = typer.Option(None, help="input text encoding (default: detect UTF-8/GBK/GB18030)"),
    workers: int = typer.Option(os.cpu_count() or 1, min=1, help="matching processes"),
) -> None:
    """Geocode every row of a CSV file: its columns unchanged plus gs_* match columns (UTF-8 with BOM)."""
    from geocode.batchcsv import geocode_csv, inspect_csv

    stem = input_file.name[:-4] if input_file.name.lower().endswith(".csv") else input_file.name
    output = output or input_file.with_name(f"{stem}-geocoded.csv")
    targets = [p for p in (output, unmatched) if p is not None]
    temps: list[Path] = []
    with _one_line_errors():
        out_crs = geocode_crs(crs)
        with input_file.open("rb") as f:
            inspect_csv(f, column, encoding)  # fail on a bad file before loading the index
        index = _load_index()
        started = time.perf_counter()
        try:
            for target in targets:
                fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
                os.close(fd)
                os.chmod(name, 0o666 & ~_umask())  # mkstemp's 0600 would outlive the rename
                temps.append(Path(name))
            with _progress_bar() as bar:
                task = bar.add_task("geocoding", total=None)

                def progress(done: int, total: int) -> None:
                    bar.update(task, completed=done, total=total)
                    bar.refresh()

                counts = geocode_csv(
                    index, input_file, temps[0], column=column, city=city, district=district, crs=out_crs,
                    crs_fn=None if out_crs == WGS84 else functools.partial(from_wgs84_many, crs=out_crs),
                    encoding=encoding, unmatched=temps[1] if unmatched else None, progress=progress,
                    workers=workers,
                )  # fmt: skip
            for temp, target in zip(temps, targets, strict=True):
                os.replace(temp, target)
        finally:
            for temp in temps:
                temp.unlink(missing_ok=True)
    seconds = time.perf_counter() - started
    table = Table(title=f"{input_file.name} → {output}", title_justify="left")
    table.add_column("rows", justify="right")
    for name in ("matched", "partial", "ambiguous", "not_found", "empty"):
        table.add_column(name, justify="right")
    numbers = counts.as_dict()
    table.add_row(
        *(f"{numbers[k]:,}" for k in ("rows", "matched", "partial", "ambiguous", "not_found", "empty"))
    )
    console.print(table)
    rate = counts.rows / seconds if seconds > 0 else 0.0
    console.print(
        f"address column {counts.column!r}, encoding {counts.encoding}, coordinates {out_crs}; "
        f"{seconds:.1f} s, {rate:,.0f} rows/s",
        highlight=False,
    )
