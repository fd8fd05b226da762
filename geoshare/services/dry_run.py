"""Dry-run publishing: what a publish would give, from the same reader, geocoder and validator,
with nothing written. Publishers see every problem (feature or line number and reason) and every
change to who sees what before anything goes live.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pyproj import CRS
from sqlalchemy import Engine, text

from geocode.index import AddressIndex
from geoshare.services import address_layers
from layers.errors import InvalidInput
from layers.ingest import DEFAULT_LIMITS, ReadLimits, read_source
from layers.ingest.limits import too_large
from layers.ingest.tabular import _typed, read_table
from layers.model import LayerMetadata
from layers.publish import check_layer_id, check_metadata, report_warnings
from layers.validate import PreparedLayer, prepare

LISTED = 100  # repaired features and unmatched rows listed in a report


def _current(engine: Engine, layer_id: str, metadata: LayerMetadata) -> Any:
    """The registry checks a publish makes first (read-only), and the layer's registry row (None: new)."""
    check_layer_id(layer_id)
    with engine.connect() as conn:
        check_metadata(conn, metadata)
        return conn.execute(
            text(
                "SELECT current_version, feature_count, sharing_class, restricted_fields, key_field "
                "FROM gs.layer WHERE id = :id AND current_version IS NOT NULL"
            ),
            {"id": layer_id},
        ).first()


def _warnings(current: Any, metadata: LayerMetadata) -> list[dict[str, Any]]:
    """What the new version would change about who sees what: easy to miss when re-publishing, since
    restricted fields are shown nowhere else. Only the layer's own publishers get this far."""
    if current is None:
        return []
    warnings: list[dict[str, Any]] = []
    if current.sharing_class != metadata.sharing_class:
        warnings.append(_change("class_changed", "class", current.sharing_class, metadata.sharing_class))
    unrestricted = [f for f in current.restricted_fields or [] if f not in metadata.restricted_fields]
    if unrestricted:
        warnings.append({"code": "fields_unrestricted", "field": "restricted_fields", "fields": unrestricted})
    if (current.key_field or None) != metadata.key_field:
        warnings.append(_change("key_field_changed", "key_field", current.key_field, metadata.key_field))
    return warnings


def _change(code: str, field: str, old: str | None, new: str | None) -> dict[str, Any]:
    return {"code": code, "field": field, "from": old, "to": new}


def _report(
    layer_id: str,
    current: Any,
    metadata: LayerMetadata,
    prepared: PreparedLayer,
    source_crs: str,
    source: dict[str, Any],
) -> dict[str, Any]:
    version = current.current_version if current is not None else 0
    return {
        "dry_run": True,
        "id": layer_id,
        "version": version + 1,
        "new_layer": current is None,
        "current": None
        if current is None
        else {"version": version, "feature_count": current.feature_count, "class": current.sharing_class},
        "feature_count": len(prepared.geometries),
        "geometry_type": prepared.geometry_type,
        "extent": prepared.extent,
        "source_crs": source_crs,
        "fields": [{"name": a.name, "type": a.type} for a in prepared.attributes],
        "repaired": len(prepared.repaired),
        "repaired_features": prepared.repaired[:LISTED],
        # who-sees-what changes, then what the data made doubtful (as the publish reports it)
        "warnings": _warnings(current, metadata) + report_warnings(source, prepared),
        "source": source,
    }


def dry_run_file(
    engine: Engine,
    layer_id: str,
    path: Path,
    metadata: LayerMetadata,
    source_name: str,
    limits: ReadLimits = DEFAULT_LIMITS,
    **options: Any,
) -> dict[str, Any]:
    """What publishing ``path`` would give, from the same reader and validator; raises as they do."""
    current = _current(engine, layer_id, metadata)
    source = read_source(path, label=source_name, limits=limits, **options)
    if len(source.frame) == 0:
        raise InvalidInput("the file holds no features", field="file")
    prepared = prepare(source.frame, metadata, CRS.from_user_input(source.source_crs))
    return _report(layer_id, current, metadata, prepared, source.source_crs, source.report)


def dry_run_addresses(
    engine: Engine,
    index: AddressIndex,
    layer_id: str,
    path: Path,
    metadata: LayerMetadata,
    source_name: str,
    address_column: str,
    *,
    encoding: str | None,
    min_score: float,
    limits: ReadLimits = DEFAULT_LIMITS,
) -> dict[str, Any]:
    """What publishing an address CSV would give: the match rate and the first unmatched lines too."""
    current = _current(engine, layer_id, metadata)
    if path.stat().st_size > limits.max_bytes:  # read whole into memory: refuse it before
        raise too_large(source_name, "the data", limits)
    table, used = read_table(path.read_bytes(), source_name, encoding=encoding)
    if table.empty:
        raise InvalidInput(f"{source_name} has a header but no rows", field="file")
    frame, geocoded = address_layers.geocode_records(index, table, address_column, min_score=min_score)
    for column in table.columns:  # as publish_address_file types them
        if frame[column].notna().any():
            frame[column] = _typed(frame[column])
    prepared = prepare(frame, metadata, CRS.from_epsg(4326))
    source = {"format": "csv", "encoding": used}
    report = _report(layer_id, current, metadata, prepared, "EPSG:4326", source)
    geo = geocoded["geocoding"]
    report["geocoding"] = {
        **{k: v for k, v in geo.items() if k != "unmatched_rows"},
        "unmatched_rows": geo["unmatched_rows"][:LISTED],
    }
    return report
