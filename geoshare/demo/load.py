"""``geoshare demo load``: generate the demo city and store it, all in one transaction.

Departments are upserted, the address database replaced through the same loader a real import
uses, and every layer published through the layer engine. A marker row in ``gs.setting`` records
which demo (scale, seed, generator version) is loaded, so a restart can skip the work in
milliseconds. Any failure rolls the whole thing back: the previous demo stays as it was.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, Engine, text

from geocode.addressdb.steps import Progress, Steps
from geoshare.demo.metadata import DEPARTMENTS, LAYERS

GENERATOR_VERSION = 3  # 3: place names (地名)
MARKER_KEY = "demo"


def loaded_demo(conn: Connection) -> dict[str, Any] | None:
    if conn.execute(text("SELECT to_regclass('gs.setting')")).scalar() is None:
        return None  # schema not migrated yet: nothing is loaded
    row = conn.execute(text("SELECT value FROM gs.setting WHERE key = :k"), {"k": MARKER_KEY}).first()
    return dict(row[0]) if row else None


def imported_address_database(conn: Connection) -> str | None:
    """The file a real address database was imported from, when that import is newer than any demo."""
    if conn.execute(text("SELECT to_regclass('gs.setting')")).scalar() is None:
        return None
    row = conn.execute(
        text(
            """
            SELECT i.value->>'file' FROM gs.setting i
            LEFT JOIN gs.setting d ON d.key = :demo
            WHERE i.key = 'addressdb_import' AND (d.updated_at IS NULL OR i.updated_at > d.updated_at)
            """
        ),
        {"demo": MARKER_KEY},
    ).first()
    return (row[0] or "a file") if row else None


def is_loaded(conn: Connection, scale: int, seed: int) -> bool:
    marker = loaded_demo(conn)
    return (
        bool(marker)
        and marker.get("scale") == scale
        and marker.get("seed") == seed
        and (marker.get("generator") == GENERATOR_VERSION)
    )


def upsert_departments(conn: Connection) -> None:
    conn.execute(
        text(
            "INSERT INTO gs.department (code, name) VALUES (:code, :name) "
            "ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name"
        ),
        [{"code": c, "name": n} for c, n in DEPARTMENTS.items()],
    )


def _write_marker(conn: Connection, scale: int, seed: int, timings: dict[str, float]) -> None:
    value = {"scale": scale, "seed": seed, "generator": GENERATOR_VERSION, "timings": timings}
    conn.execute(
        text(
            "INSERT INTO gs.setting (key, value) VALUES (:k, CAST(:v AS jsonb)) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()"
        ),
        {"k": MARKER_KEY, "v": json.dumps(value)},
    )


ADDRESS_LAYERS = {"market_entities": "注册地址"}
"""Layers the demo builds as a department would: by geocoding the records' address column."""


def _publish_geocoded(conn: Connection, layer_id: str, frame: Any, address_column: str) -> None:
    """Drop the generator's true points and place the records by their (messy) addresses instead."""
    import pandas as pd

    from geocode.index import load_index
    from geoshare.services.address_layers import geocode_records, publish_into

    records = pd.DataFrame(frame.drop(columns=frame.geometry.name))
    layer, report = geocode_records(load_index(conn), records, address_column)
    publish_into(conn, layer_id, layer, LAYERS[layer_id], report, "demo", "demo generator (geocoded)")


DEMO_AGREEMENT = {
    "consumer": "scjgj",
    "provider": "yjglj",
    "layer": "hazard_sources",
    "fields": ["编号", "名称", "危险化学品", "等级", "地址"],
    "purpose": "市场监管网格巡查：危险化学品经营企业核查",
    "area_code": "110115",  # 大兴区
    "update_frequency": "monthly",
}
"""The demo's one sharing agreement: market supervision reads the emergency office's restricted
hazard sources, five fields, in one district, for a year."""


def _file_demo_agreement(conn: Connection) -> None:
    from datetime import date, timedelta

    from geoshare.access import agreements
    from geoshare.access.identity import Principal

    it_office = Principal(department=None, role="platform_admin", key_prefix=None)
    a = DEMO_AGREEMENT
    filed = agreements.file(
        conn,
        it_office,
        consumer=a["consumer"],
        provider=a["provider"],
        layers=[agreements.LayerGrant(a["layer"], a["fields"])],
        purpose=a["purpose"],
        starts_on=date.today(),
        ends_on=date.today() + timedelta(days=365),
        update_frequency=a["update_frequency"],
        area_code=a["area_code"],
    )
    agreements.decide(conn, it_office, filed.id, approve=True, note="demo")


def step_names(publish: bool = True) -> list[str]:
    layers = [f"layer {k}" for k in LAYERS] if publish else []
    extra = ["agreements"] if publish else []
    return ["generate city", "departments", "address database", "place names", *layers, *extra, "commit"]


def load_demo(
    engine: Engine, scale: int, seed: int, progress: Progress | None = None, publish: bool = True
) -> dict[str, float]:
    """Generate and store the demo; returns seconds per step."""
    from geocode.addressdb.load import replace_address_database
    from geoshare.demo.generate.city import generate_city

    steps = Steps(progress)
    with steps.step("generate city"):
        city = generate_city(scale, seed)
    with engine.connect() as conn:
        transaction = conn.begin()
        try:
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('geoshare demo load'))"))
            with steps.step("departments"):
                upsert_departments(conn)
            with steps.step("address database"):
                replace_address_database(conn, **city.address_tables())
            with steps.step("place names"):
                from geoshare.demo.places import load_demo_places

                load_demo_places(conn)
            if publish:
                from layers.publish import publish_frame

                for layer_id, meta in LAYERS.items():
                    with steps.step(f"layer {layer_id}"):
                        if layer_id in ADDRESS_LAYERS:
                            _publish_geocoded(conn, layer_id, city.layers[layer_id], ADDRESS_LAYERS[layer_id])
                            continue
                        publish_frame(
                            conn,
                            layer_id,
                            city.layers[layer_id],
                            meta,
                            actor="demo",
                            source_name="demo generator",
                        )
                with steps.step("agreements"):
                    _file_demo_agreement(conn)
            _write_marker(conn, scale, seed, steps.timings)
            with steps.step("commit"):
                transaction.commit()
        except BaseException:
            transaction.rollback()
            raise
    return steps.timings
