"""The import itself: read, check, build, replace in one transaction, record the source."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
from sqlalchemy import Connection, text

from geocode.addressdb.columns import ColumnMapping
from geocode.addressdb.importing.reading import IMPORT_KEY, LOCK_KEY, read_address_file
from geocode.addressdb.importing.tables import build_tables
from geocode.addressdb.load import replace_address_database
from geocode.addressdb.steps import Progress, Steps
from layers.errors import InvalidInput


@dataclass
class ImportReport:
    file: str
    format: str
    encoding: str | None
    crs: str
    columns: dict[str, str]
    rows_read: int
    accepted: int
    rejected: int
    by_reason: dict[str, int]
    doors: int  # door-level addresses
    building_addresses: int
    roads: int
    compounds: int
    buildings: int
    max_reject_rate: float
    dry_run: bool
    written: bool = False
    rejects_file: str | None = None
    elapsed_s: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def reject_rate(self) -> float:
        return self.rejected / self.rows_read if self.rows_read else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "reject_rate": round(self.reject_rate, 6)}


class ImportRefused(InvalidInput):
    """Too many rows rejected (or none accepted): nothing was written."""

    def __init__(self, detail: str, report: ImportReport, rejects: pd.DataFrame) -> None:
        super().__init__(detail, field="max_reject_rate")
        self.report = report
        self.rejects = rejects


def read_divisions(conn: Connection) -> gpd.GeoDataFrame:
    """``addr.division`` as it is (geometry included): an import keeps it and only places rows in it."""
    frame = gpd.read_postgis(
        text(
            "SELECT code, level, name, short_name, parent_code, path_codes, path_names, full_name, geom "
            "FROM addr.division ORDER BY code"
        ),
        conn,
        geom_col="geom",
        crs=4326,
    )
    if frame.empty:
        raise InvalidInput(
            "the address database has no divisions (addr.division is empty); load them first",
            field="divisions",
        )
    return frame


def write_rejects(rejects: pd.DataFrame, path: Path) -> None:
    """UTF-8 with BOM, so that spreadsheet programs show the Chinese right."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rejects.to_csv(path, index=False, encoding="utf-8-sig")


def import_address_file(
    conn: Connection,
    path: Path,
    *,
    mapping: ColumnMapping | None = None,
    crs: str | None = None,
    encoding: str | None = None,
    rejects_path: Path | None = None,
    max_reject_rate: float = 0.02,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> ImportReport:
    """Import ``path`` as the whole address database, inside the caller's transaction.

    Raises :class:`ImportRefused` (after writing the rejects file) when more than
    ``max_reject_rate`` of the rows are rejected: the caller rolls back and nothing changes.
    ``dry_run`` does everything but the writing.
    """
    if not 0.0 <= max_reject_rate <= 1.0:
        raise InvalidInput("max_reject_rate must be within 0..1 (0.02 = 2 %)", field="max_reject_rate")
    started = time.perf_counter()
    steps = Steps(progress)
    with steps.step("read file"):
        raw = read_address_file(path, mapping, crs, encoding)
    with steps.step("read divisions"):
        divisions = read_divisions(conn)
    tables, rejects = build_tables(raw, divisions, progress)
    addresses = tables["addresses"]
    report = ImportReport(
        file=path.name,
        format=raw.format,
        encoding=raw.encoding,
        crs=raw.crs,
        columns=raw.columns,
        rows_read=len(raw),
        accepted=len(addresses),
        rejected=len(rejects),
        by_reason={str(k): int(v) for k, v in rejects["problem"].value_counts().sort_index().items()},
        doors=int((addresses["level"] == "door").sum()),
        building_addresses=int((addresses["level"] == "building").sum()),
        roads=len(tables["roads"]),
        compounds=len(tables["compounds"]),
        buildings=len(tables["buildings"]),
        max_reject_rate=max_reject_rate,
        dry_run=dry_run,
    )
    if rejects_path is not None and len(rejects):
        write_rejects(rejects, rejects_path)
        report.rejects_file = str(rejects_path)
    refusal = None
    if report.accepted == 0:
        refusal = "no row could be imported"
    elif report.reject_rate > max_reject_rate:
        refusal = (
            f"{report.rejected:,} of {report.rows_read:,} rows rejected ({report.reject_rate:.2%}), "
            f"more than the allowed {max_reject_rate:.2%}"
        )
    if refusal is None and not dry_run:
        with steps.step("write database"):
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": LOCK_KEY})
            replace_address_database(conn, **tables)
            _record_source(conn, report)
        report.written = True
    report.timings = steps.timings
    report.elapsed_s = round(time.perf_counter() - started, 2)
    if refusal is not None:
        raise ImportRefused(
            f"import refused: {refusal}; the address database was not changed", report, rejects
        )
    return report


def _record_source(conn: Connection, report: ImportReport) -> None:
    value = {
        "file": report.file,
        "rows_read": report.rows_read,
        "accepted": report.accepted,
        "rejected": report.rejected,
        "crs": report.crs,
    }
    conn.execute(
        text(
            "INSERT INTO gs.setting (key, value) VALUES (:k, CAST(:v AS jsonb)) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()"
        ),
        {"k": IMPORT_KEY, "v": json.dumps(value, ensure_ascii=False)},
    )
