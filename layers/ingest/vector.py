"""Reading GDAL-readable vector data (Shapefile, GeoPackage, GeoJSON) with pyogrio."""

from __future__ import annotations

import os
import re

import geopandas as gpd
import pandas as pd
import pyogrio

from layers.errors import InvalidInput


def _message(exc: Exception, source: str, label: str) -> str:
    """GDAL's message with the server's paths (the source and anything beside it) named as ``label``."""
    folder = os.path.dirname(source.removeprefix("/vsizip/"))
    text = str(exc).replace(source, label)
    return re.sub(re.escape(folder) + r"/[^\s'\",;:)]*", label, text) if folder else text


def _single_layer(source: str, label: str, wanted: str | None = None) -> str | None:
    try:
        layers = pyogrio.list_layers(source)
    except Exception as exc:  # noqa: BLE001 - any GDAL failure here means an unreadable upload
        raise InvalidInput(f"cannot read {label}: {_message(exc, source, label)}", field="file") from exc
    if wanted is not None:
        names = [str(name) for name, _ in layers]
        if wanted not in names:
            raise InvalidInput(
                f"{label} has no layer {wanted!r}; it has {', '.join(names[:20])}", field="source_layer"
            )
        return wanted
    if len(layers) <= 1:
        return None
    spatial = [str(name) for name, geometry_type in layers if geometry_type]
    if len(spatial) == 1:
        return spatial[0]
    raise InvalidInput(
        f"{label} holds several layers ({', '.join(spatial[:5])}); name one in source_layer",
        field="source_layer",
    )


def read_vector(
    source: str,
    label: str,
    *,
    encoding: str | None = None,
    layer: str | None = None,
    where: str | None = None,
) -> gpd.GeoDataFrame:
    """Read every feature in 2D; an unreadable geometry becomes None so validation can name its feature.

    ``layer`` picks one layer of a multi-layer source (an OpenStreetMap extract: points, lines,
    multipolygons …); ``where`` is an OGR SQL attribute filter (``highway IS NOT NULL``)."""
    layer = _single_layer(source, label, layer)
    try:
        info = pyogrio.read_info(source, layer=layer, encoding=encoding)
        frame = pyogrio.read_dataframe(
            source,
            layer=layer,
            encoding=encoding,
            where=where,
            force_2d=True,
            on_invalid="ignore",
            use_arrow=False,
        )
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"{label} is not valid {encoding or 'UTF-8'} text: {exc.reason}", field="encoding"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - GDAL/pyogrio errors on a bad file are the publisher's to fix
        if where is not None and ("SQL" in str(exc) or "where" in str(exc).lower()):
            raise InvalidInput(
                f"the where filter cannot be applied: {_message(exc, source, label)}", field="where"
            ) from exc
        raise InvalidInput(f"cannot read {label}: {_message(exc, source, label)}", field="file") from exc
    for name, ogr_type in zip(info["fields"], info["ogr_types"], strict=False):
        if ogr_type == "OFTDate" and name in frame.columns:
            frame[name] = _as_dates(frame[name])
    return frame


def _as_dates(series: pd.Series) -> pd.Series:
    """OGR Date fields arrive as midnight datetimes; keep them as dates so the schema says ``date``."""
    values = pd.to_datetime(series, errors="coerce")
    return pd.Series([None if pd.isna(v) else v.date() for v in values], index=series.index, dtype=object)
