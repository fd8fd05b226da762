"""The demo's sample imagery (no imagery of Beijing is freely available offline)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from geoshare.settings import Settings
from layers.imagery.store import ImageryMetadata, ImageryRecord, ensure_imagery, imagery_dir

DEMO_IMAGE = Path(__file__).parent / "data" / "imagery" / "bahamas_rgb.tif"
DEMO_DEPARTMENT = "zwsjj"  # the demo's data office (geoshare.demo.metadata.DEPARTMENTS)


def load_demo_imagery(engine: Engine, settings: Settings) -> ImageryRecord:
    """The demo's sample image (Landsat natural colour of the Bahamas; no imagery of Beijing is
    freely available offline), stored once: a reload with an unchanged file only checks its checksum.
    Call after the demo's departments exist."""
    meta = ImageryMetadata(
        id="bahamas_rgb",
        title="巴哈马卫星影像（示例）Bahamas, Landsat natural colour (sample)",
        description="演示用示例影像，非北京地区（sample imagery for the demo; not of Beijing）。",
        department_code=DEMO_DEPARTMENT,
        sharing_class="public",
        licence="US public domain (Landsat); sample file from localtileserver 1.0.0 (MIT)",
        source="Landsat, via the localtileserver 1.0.0 package test data",
    )
    return ensure_imagery(engine, DEMO_IMAGE, imagery_dir(settings), meta)
