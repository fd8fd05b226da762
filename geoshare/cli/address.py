"""``geoshare address import FILE``: a city's address register as the address database.

The import runs in one transaction: it either replaces the whole address database or, when the
file cannot be read or too many rows are rejected, leaves it exactly as it was. Exit codes: 0
imported (or checked, with ``--dry-run``), 1 refused for too many rejected rows, 2 unusable input
(unreadable file, missing mandatory column, bad option) or database error.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import Engine

from geocode.addressdb.columns import ColumnMapping
from geocode.addressdb.importing import ImportRefused, ImportReport, import_address_file
from geoshare.cli.layer import _one_line_errors

app = typer.Typer(no_args_is_help=True, help="The address database (地址库).")
console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)


@app.callback()
def address() -> None:
    """The address database (地址库): import a city's address register."""  # keeps `import` a subcommand


def _summary(report: ImportReport) -> Table:
    title = "dry run: nothing written" if report.dry_run else f"address import of {report.file}"
    table = Table(title=title, show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("rows read", f"{report.rows_read:,}")
    table.add_row("accepted", f"{report.accepted:,}")
    table.add_row(
        "rejected", f"{report.rejected:,} ({report.reject_rate:.2%}, allowed {report.max_reject_rate:.2%})"
    )
    for problem, count in report.by_reason.items():
        table.add_row(f"  {problem}", f"{count:,}")
    table.add_row("door addresses", f"{report.doors:,}")
    table.add_row("building addresses", f"{report.building_addresses:,}")
    table.add_row("roads", f"{report.roads:,}")
    table.add_row("compounds", f"{report.compounds:,}")
    table.add_row("buildings", f"{report.buildings:,}")
    table.add_row("seconds", f"{report.elapsed_s:.1f}")
    return table


def _describe(report: ImportReport) -> None:
    columns = ", ".join(f"{field}={header}" for field, header in report.columns.items())
    console.print(
        f"{report.format}, encoding {report.encoding or 'n/a'}, coordinates {report.crs}; columns: {columns}",
        style="dim",
        markup=False,
    )
    console.print(_summary(report))
    console.print(f"rejected rows: {report.rejects_file or 'none'}", markup=False)


@app.command("import")
def import_cmd(
    file: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="CSV or GeoPackage of address points, one per door or building"
    ),
    mapping: Path | None = typer.Option(
        None, "--mapping", exists=True, dir_okay=False, help='TOML column mapping: field = "header"'
    ),
    column: list[str] = typer.Option(
        [], "--column", help="FIELD=HEADER (repeatable); FIELD= ignores a column an alias would pick"
    ),
    crs: str | None = typer.Option(
        None,
        "--crs",
        help="coordinates: EPSG:4326 (CSV default), EPSG:4490, GCJ-02, BD-09 or another EPSG code",
    ),
    encoding: str = typer.Option("auto", "--encoding", help="text encoding: auto, utf-8, gbk, gb18030"),
    rejects: Path | None = typer.Option(
        None, "--rejects", dir_okay=False, help="rejected rows CSV (default: FILE-rejects.csv next to FILE)"
    ),
    max_reject_rate: float = typer.Option(
        0.02,
        "--max-reject-rate",
        min=0.0,
        max=1.0,
        help="refuse the import above this share of rejected rows",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="check and report, change nothing"),
) -> None:
    """Replace the address database with FILE, validated, all or nothing."""
    from geoshare.db.engine import make_engine
    from geoshare.settings import get_settings

    rejects = rejects or file.with_name(f"{file.stem}-rejects.csv")
    with _one_line_errors():
        columns = ColumnMapping.from_options(mapping, column)
        engine = make_engine(get_settings().database_url, pool_size=1)
        try:
            report = _run(engine, file, columns, crs, encoding, rejects, max_reject_rate, dry_run)
        except ImportRefused as refused:
            _describe(refused.report)
            errors.print(f"error: {refused.detail}", markup=False, highlight=False)
            raise typer.Exit(1) from None
        finally:
            engine.dispose()
    _describe(report)
    if report.written:
        console.print("the address database was replaced", style="green")


def _run(
    engine: Engine,
    file: Path,
    columns: ColumnMapping,
    crs: str | None,
    encoding: str,
    rejects: Path,
    max_reject_rate: float,
    dry_run: bool,
) -> ImportReport:
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(event: str, step: str) -> None:
            if event == "start":
                tasks[step] = bar.add_task(step, total=1)
            else:
                bar.update(tasks[step], completed=1)
                bar.stop_task(tasks[step])

        with engine.connect() as conn:
            transaction = conn.begin()
            try:
                report = import_address_file(
                    conn,
                    file,
                    mapping=columns,
                    crs=crs,
                    encoding=encoding,
                    rejects_path=rejects,
                    max_reject_rate=max_reject_rate,
                    dry_run=dry_run,
                    progress=progress,
                )
                if dry_run:
                    transaction.rollback()
                else:
                    progress("start", "commit")
                    transaction.commit()
                    progress("done", "commit")
            except BaseException:
                transaction.rollback()
                raise
    return report
