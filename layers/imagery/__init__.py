"""Imagery: aerial and satellite rasters stored as Cloud-Optimized GeoTIFFs and served as tiles.

``cog`` checks and converts files, ``store`` keeps ``gs.imagery`` and the files in step, ``tiles``
renders tiles. ``imagery_catalog_records`` gives the catalog its entries for images.
"""

from __future__ import annotations

from sqlalchemy import Connection

from layers.imagery.store import ImageryRecord, list_imagery
from layers.registry import TRUSTED, Visibility


def catalog_record(base: str, image: ImageryRecord) -> dict[str, object]:
    """One image in the shape of a ``GET /catalog`` layer entry, with ``type`` telling them apart."""
    href = f"{base}/imagery/{image.id}"
    return {
        "id": image.id,
        "type": "imagery",
        "title": image.title,
        "description": image.description,
        "keywords": [],
        "department": image.department_code,
        "theme": "imagery",
        "class": image.sharing_class,
        "updateFrequency": None,
        "featureCount": None,
        "geometryType": None,
        "extent": list(image.bounds),
        "version": None,
        "updated": image.updated_at.isoformat(),
        "licence": image.licence,
        "source": image.source,
        "links": [
            {"href": href, "rel": "describedby", "type": "application/json"},
            {
                "href": f"{href}/tiles/WebMercatorQuad",
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/tilesets-map",
                "type": "application/json",
            },
        ],
    }


def imagery_catalog_records(
    conn: Connection, visibility: Visibility = TRUSTED, base: str = ""
) -> list[dict[str, object]]:
    """Catalog entries for the images ``visibility`` lets the reader see (links under ``base``)."""
    return [catalog_record(base, image) for image in list_imagery(conn, visibility)]
