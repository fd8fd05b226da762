"""Thematic layers built from address-bearing records (注册地址 → point), the departments' main path.

Each record is geocoded against the address database; confident matches (score ≥ ``min_score``)
become the layer's points with how they were matched, everything else is left out and listed in
the version record (line, address, why) so the publisher can fix and re-publish. Nothing is
published when no record matches at all.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import Connection, Engine, text

from geocode.index import AddressIndex, load_index
from geocode.match import geocode
from geocode.model import CONFIDENT
from geoshare.settings import Settings
from layers.errors import InvalidInput, NotFound
from layers.ingest.tabular import _typed, read_table
from layers.model import LayerMetadata
from layers.publish import PublishResult, publish_frame

MATCH_COLUMNS = ("匹配级别", "匹配得分", "标准地址", "地址编码")
UNMATCHED_LISTED = 50_000  # more than this many unmatched rows: counted, the first ones listed


def geocode_records(
    index: AddressIndex,
    frame: pd.DataFrame,
    address_column: str,
    *,
    min_score: float = CONFIDENT,
    city: str | None = None,
    district: str | None = None,
    first_line: int = 2,
) -> tuple[gpd.GeoDataFrame, dict[str, Any]]:
    """(matched records as WGS84 points with the match columns, report with the unmatched rows)."""
    if address_column not in frame.columns:
        raise InvalidInput(
            f"no column {address_column!r}; the columns are: {', '.join(map(str, frame.columns))}",
            field="address_column",
        )
    started = time.perf_counter()
    n = len(frame)
    lon, lat, score = np.full(n, np.nan), np.full(n, np.nan), np.zeros(n)
    level = np.empty(n, dtype=object)
    formatted = np.empty(n, dtype=object)
    code = np.empty(n, dtype=object)
    statuses: dict[str, int] = {}
    unmatched: list[dict[str, Any]] = []
    for i, raw in enumerate(frame[address_column].tolist()):
        result = geocode(index, raw if isinstance(raw, str) else "", city=city, district=district, limit=1)
        statuses[result.status.value] = statuses.get(result.status.value, 0) + 1
        best = result.best
        if best is not None and best.score >= min_score:
            lon[i], lat[i], score[i] = best.lon, best.lat, best.score
            level[i], formatted[i], code[i] = best.level.label, best.formatted_address, best.address_code
        elif len(unmatched) < UNMATCHED_LISTED:
            unmatched.append(
                {
                    "line": i + first_line,
                    "address": raw if isinstance(raw, str) else None,
                    "status": result.status.value,
                    "score": round(best.score, 3) if best else None,
                    "best": best.formatted_address if best else None,
                    "level": best.level.label if best else None,
                    "message": result.message,
                }
            )
    ok = ~np.isnan(lon)
    matched = int(ok.sum())
    if matched == 0:
        raise InvalidInput(
            f"none of the {n} addresses in {address_column!r} matched the address database confidently",
            field="address_column",
        )
    out = frame.loc[ok].copy()
    out["匹配级别"], out["匹配得分"] = level[ok], np.round(score[ok], 3)
    out["标准地址"], out["地址编码"] = formatted[ok], code[ok]
    layer = gpd.GeoDataFrame(out, geometry=shapely.points(lon[ok], lat[ok]), crs=4326)
    report = {
        "geocoding": {
            "address_column": address_column,
            "rows": n,
            "matched": matched,
            "unmatched": n - matched,
            "match_rate": round(matched / n, 4) if n else 0.0,
            "min_score": min_score,
            "by_status": statuses,
            "address_index_version": index.version,
            "seconds": round(time.perf_counter() - started, 2),
            "unmatched_rows": unmatched,
        }
    }
    return layer, report


def publish_address_file(
    engine: Engine,
    settings: Settings,
    layer_id: str,
    path: Path,
    metadata: LayerMetadata,
    address_column: str,
    *,
    encoding: str | None = None,
    min_score: float = CONFIDENT,
    index: AddressIndex | None = None,
    actor: str | None = None,
    source_name: str | None = None,
) -> tuple[PublishResult, dict[str, Any]]:
    """Read a CSV of records, geocode its address column and publish the matches as a point layer."""
    from geoshare.services.publishing import prune

    table, used = read_table(Path(path).read_bytes(), source_name or Path(path).name, encoding=encoding)
    if table.empty:
        raise InvalidInput(f"{source_name or Path(path).name} has a header but no rows", field="file")
    if index is None:
        with engine.connect() as conn:
            index = load_index(conn)
    frame, report = geocode_records(index, table, address_column, min_score=min_score)
    layer = frame.copy()
    for column in table.columns:  # the record's own columns: numbers become numbers, codes stay text
        if layer[column].notna().any():
            layer[column] = _typed(layer[column])
    report["encoding"] = used
    with engine.begin() as conn:
        result = publish_into(conn, layer_id, layer, metadata, report, actor, source_name or Path(path).name)
    prune(engine, settings, layer_id)
    return result, report


def publish_into(
    conn: Connection,
    layer_id: str,
    layer: gpd.GeoDataFrame,
    metadata: LayerMetadata,
    report: dict[str, Any],
    actor: str | None,
    source_name: str | None,
) -> PublishResult:
    geo = report["geocoding"]
    note = (
        f"geocoded {geo['matched']}/{geo['rows']} addresses ({geo['match_rate']:.1%}) "
        f"from {geo['address_column']}"
    )
    return publish_frame(
        conn, layer_id, layer, metadata, actor=actor, source_name=source_name, note=note, report=report
    )


def summary(report: dict[str, Any], version_href: str) -> dict[str, Any]:
    """The geocoding part of a version record without its row list, and where to download that."""
    geo = {k: v for k, v in report["geocoding"].items() if k != "unmatched_rows"}
    geo["unmatched_href"] = f"{version_href}/unmatched"
    return geo


def unmatched_rows(engine: Engine, layer_id: str, version: int) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT report->'geocoding'->'unmatched_rows' FROM gs.layer_version "
                "WHERE layer_id = :l AND version = :v"
            ),
            {"l": layer_id, "v": version},
        ).first()
    if row is None:
        raise NotFound(f"layer {layer_id!r} has no version {version}")
    if row[0] is None:
        raise NotFound(f"version {version} of layer {layer_id!r} was not built from addresses")
    return list(row[0])


def rows_csv(rows: list[dict[str, Any]]) -> bytes:
    """UTF-8 with BOM, so the spreadsheet the publisher opens it in reads the Chinese right."""
    columns = ["line", "address", "status", "score", "best", "level", "message"]
    return pd.DataFrame(rows, columns=columns).to_csv(index=False).encode("utf-8-sig")
