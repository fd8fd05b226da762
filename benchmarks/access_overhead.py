"""What access control costs: keyed reads under a sharing agreement beside anonymous public reads.

    .venv/bin/python -m benchmarks.access_overhead [--seconds 10 --rounds 3]   # ~10 minutes
    .venv/bin/python -m benchmarks.access_overhead --quick                     # ~2 minutes

The tile benchmark's points layer (1,000,000 points, database ``geoshare_bench_tiles``) read four
ways, each by its own GeoShare server (2 workers, tile cache off) driven with wrk at 2 and 8
connections, rounds alternating the order:

* ``anonymous_public``: no key, the layer public: the baseline;
* ``key_public``: a consumer key of another department, the layer public: the key lookup alone;
* ``key_agreement``: that key, the layer reclassified restricted, readable through an approved
  sharing agreement listing three of its five fields (no area);
* ``key_agreement_area``: a key of a third department whose agreement also limits rows to a division
  (朝阳区, its real boundary copied from the demo database).

Every configuration asks for the same three fields, and every bbox and tile lies inside the division,
so all four return the same features; a sample is compared to prove it. The issue's target: keyed
reads with agreements in force lose at most 5% of the anonymous throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import date, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
from sqlalchemy import Engine, create_engine, make_url, text

from benchmarks.harness import (
    RESULTS,
    ROOT,
    contention,
    ensure_database,
    free_port,
    machine_facts,
    median_runs,
    server,
    wrk,
)
from benchmarks.tiles import (
    NO_LIMITS,
    TileRef,
    _decode,
    audit_state,
    geoshare_env,
    lonlat_to_tile,
    settings_like_template,
    tile_bounds_lonlat,
    tile_urls_ours,
    uvicorn_cmd,
)
from benchmarks.tiles_data import DEPARTMENT, audit_log_rows, ensure_layers, set_sharing_class

FIELDS = ["编号", "名称", "类型"]  # the agreements' grant: three of the layer's five fields
AREA_CODE = "110105"  # 朝阳区 in the demo address database
CONSUMERS = {"key_agreement": "benchfull", "key_agreement_area": "benchzone"}
CONFIGS = ("anonymous_public", "key_public", "key_agreement", "key_agreement_area")
TARGET = 0.95


def ensure_area(eng: Engine, demo_url: str) -> None:
    """Copy the division's real boundary from the demo database (read only) into the benchmark's."""
    with eng.connect() as conn:
        if conn.execute(text("SELECT 1 FROM addr.division WHERE code = :c"), {"c": AREA_CODE}).first():
            return
    demo = create_engine(demo_url)
    with demo.connect() as conn:
        row = conn.execute(
            text(
                "SELECT code, level, name, short_name, path_codes, path_names, full_name,"
                " ST_AsBinary(geom) AS wkb FROM addr.division WHERE code = :c"
            ),
            {"c": AREA_CODE},
        ).one()
    demo.dispose()
    with eng.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO addr.division (code, level, name, short_name, path_codes, path_names,"
                " full_name, geom) VALUES (:code, :level, :name, :short_name, :path_codes, :path_names,"
                " :full_name, ST_Multi(ST_GeomFromWKB(:wkb, 4326)))"
            ),
            dict(row._mapping),
        )


def ensure_agreement(eng: Engine, consumer: str, layer_id: str, area_code: str | None) -> int:
    """An approved agreement of ``consumer`` on the layer (filed and decided through the real code)."""
    from geoshare.access import agreements
    from geoshare.access.identity import Principal
    from geoshare.services.departments import ensure_department

    with eng.begin() as conn:
        ensure_department(conn, consumer, f"基准消费方 {consumer}")
        found = conn.execute(
            text(
                "SELECT a.id FROM gs.agreement a JOIN gs.agreement_layer l ON l.agreement_id = a.id"
                " WHERE a.consumer_code = :c AND a.status = 'approved' AND a.ends_on >= current_date"
                " AND l.layer_id = :l"
            ),
            {"c": consumer, "l": layer_id},
        ).scalar()
        if found is not None:
            return int(found)
        filed = agreements.file(
            conn,
            Principal(department=consumer, role="publisher", key_prefix=None),
            consumer=consumer,
            provider=DEPARTMENT,
            layers=[agreements.LayerGrant(layer_id, FIELDS)],
            purpose="访问控制开销基准测试",
            starts_on=date.today() - timedelta(days=1),
            ends_on=date.today() + timedelta(days=365),
            area_code=area_code,
        )
        agreements.decide(
            conn, Principal(department=DEPARTMENT, role="publisher", key_prefix=None), filed.id, approve=True
        )
        return filed.id


def inside_area(
    eng: Engine, table: str, count: int, n_boxes: int, n_tiles: int, seed: int = 5
) -> tuple[list, list]:
    """bboxes (0.02° x 0.015°) and z13–16 tiles (with their MVT buffer) wholly inside the division,
    centred where the points are, so an area-limited reader gets exactly what everyone gets."""
    with eng.connect() as conn:
        pts = np.array(
            conn.execute(
                text(
                    f'SELECT ST_X(t.geom), ST_Y(t.geom) FROM layerdata."{table}" t, addr.division d'
                    " WHERE d.code = :c AND t.fid % :m = 0 AND ST_Within(t.geom, d.geom) ORDER BY t.fid"
                ),
                {"c": AREA_CODE, "m": max(1, count // 20_000)},
            ).all()
        )
        rng = np.random.default_rng(seed)
        pts = pts[rng.permutation(len(pts))]
        within = text(
            "SELECT ST_Within(ST_MakeEnvelope(:w, :s, :e, :n, 4326), geom) FROM addr.division WHERE code = :c"
        )
        boxes: list[tuple[float, float, float, float]] = []
        for x, y in pts:
            box = (x - 0.01, y - 0.0075, x + 0.01, y + 0.0075)
            if conn.execute(within, dict(zip("wsen", box, strict=True), c=AREA_CODE)).scalar():
                boxes.append(box)
            if len(boxes) == n_boxes:
                break
        tiles: list[TileRef] = []
        seen: set[TileRef] = set()
        for i, (x, y) in enumerate(pts):
            z = 13 + i % 4
            tx, ty = lonlat_to_tile(np.array([x]), np.array([y]), z)
            t = TileRef("points", z, int(tx[0]), int(ty[0]))
            if t in seen:
                continue
            seen.add(t)
            w, s, e, n = tile_bounds_lonlat(t)
            pad = (e - w) * 0.05
            if conn.execute(
                within, {"w": w - pad, "s": s - pad, "e": e + pad, "n": n + pad, "c": AREA_CODE}
            ).scalar():
                tiles.append(t)
            if len(tiles) == n_tiles:
                break
    return boxes, tiles


def _items_digest(body: bytes) -> list[tuple[Any, str]]:
    doc = json.loads(body)
    return sorted((f["id"], json.dumps(f["properties"], sort_keys=True)) for f in doc["features"])


def _tile_digest(body: bytes) -> list[tuple[Any, str]]:
    return sorted((f.get("id"), json.dumps(f["properties"], sort_keys=True)) for f in _decode(body))


def main() -> None:  # noqa: PLR0915 — one linear script
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--database", default="geoshare_bench_tiles")
    ap.add_argument("--quick", action="store_true", help="smoke run: 5%% of the data, 1 round of 3 s runs")
    args = ap.parse_args()
    scale, suffix = (0.05, "_quick") if args.quick else (1.0, "")
    if args.quick:
        args.seconds, args.rounds = 3, 1

    from geoshare.access.store import create_key, revoke_key
    from geoshare.db import migrate

    t_begin = time.time()
    RESULTS.mkdir(exist_ok=True)
    os.chdir(ROOT)
    url = ensure_database(args.database)
    settings_like_template(url)
    migrate.upgrade(url)
    layer = ensure_layers(url, scale, suffix)["points"]
    eng = create_engine(url)
    audit_before = audit_log_rows(eng)
    ensure_area(eng, make_url(url).set(database="geoshare").render_as_string(hide_password=False))
    agreement_ids = {
        cfg: ensure_agreement(eng, dept, layer.id, AREA_CODE if "area" in cfg else None)
        for cfg, dept in CONSUMERS.items()
    }
    with eng.begin() as conn:
        created = {
            cfg: create_key(conn, dept, "consumer", label="access benchmark")
            for cfg, dept in CONSUMERS.items()
        }
    keys = {
        "anonymous_public": None,
        "key_public": created["key_agreement"].key,
        "key_agreement": created["key_agreement"].key,
        "key_agreement_area": created["key_agreement_area"].key,
    }
    boxes, tiles = inside_area(eng, layer.table, layer.count, 200, 300)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    props = quote(",".join(FIELDS), safe=",")

    def urls(cfg: str) -> dict[str, list[str]]:
        q = f"&key={keys[cfg]}" if keys[cfg] else ""
        return {
            "items_bbox_limit100": [
                f"{base}/collections/{layer.id}/items?limit=100&bbox={w:.5f},{s:.5f},{e:.5f},{n:.5f}"
                f"&properties={props}{q}"
                for w, s, e, n in boxes
            ],
            "tiles_uncached": tile_urls_ours(base, {"points": layer}, tiles, query=q, names=FIELDS),
        }

    cmd = uvicorn_cmd(sys.executable, "geoshare.api.app:create_app", port, args.workers, factory=True)
    env = geoshare_env(url, cache=False)
    results: dict[str, dict[str, list[dict[str, float]]]] = {}
    same: dict[str, dict[str, bool]] = {}
    baseline: dict[str, list[Any]] = {}
    load: list[float] = []
    try:
        for rnd in range(args.rounds):
            order = list(CONFIGS[rnd % len(CONFIGS) :] + CONFIGS[: rnd % len(CONFIGS)])
            if rnd == 0:  # the baseline's answers first, to compare the others with
                order.remove("anonymous_public")
                order.insert(0, "anonymous_public")
            for cfg in order:
                set_sharing_class(
                    eng, layer.id, "restricted" if cfg.startswith("key_agreement") else "public"
                )
                lists = urls(cfg)
                with server(cmd, env, f"{base}/readyz", timeout=120):
                    if rnd == 0:
                        with httpx.Client(timeout=120) as client:
                            for scen, lst in lists.items():
                                digest = _items_digest if scen.startswith("items") else _tile_digest
                                got = []
                                for u in lst[:: max(1, len(lst) // 10)]:
                                    r = client.get(u)
                                    r.raise_for_status()
                                    got.append(digest(r.content))
                                if cfg == "anonymous_public":
                                    baseline[scen] = got
                                same.setdefault(cfg, {})[scen] = got == baseline[scen]
                    for scen, lst in lists.items():
                        wrk(lst, 2, 2)  # warm-up
                        for conns in (2, 8):
                            r = wrk(lst, conns, args.seconds)
                            results.setdefault(f"{scen}@c{conns}", {}).setdefault(cfg, []).append(r)
                            load.append(os.getloadavg()[0])
                            print(
                                f"round {rnd + 1} {cfg:19s} {scen:20s} c={conns}: {r['rps']:8.1f} req/s"
                                f"  p50 {r['p50_ms']:7.1f} ms  p99 {r['p99_ms']:7.1f} ms"
                                f"  errors {r['errors'] + r['non2xx']}",
                                flush=True,
                            )
    finally:
        set_sharing_class(eng, layer.id, "public")
        with eng.begin() as conn:
            for k in created.values():
                revoke_key(conn, k.info.prefix)

    summary = {key: {cfg: median_runs(runs) for cfg, runs in per.items()} for key, per in results.items()}
    ratios = {
        key: {cfg: round(per[cfg]["rps"] / per["anonymous_public"]["rps"], 3) for cfg in CONFIGS[1:]}
        for key, per in summary.items()
    }
    report = {
        "benchmark": "access-control overhead (keys, sharing agreements)",
        "quick": args.quick,
        "layer": {"id": layer.id, "table": f"layerdata.{layer.table}", "features": layer.count},
        "method": {
            "seconds_per_run": args.seconds,
            "rounds": args.rounds,
            "workers": args.workers,
            "fields_requested": FIELDS,
            "key_sent_as": "the key query parameter",
            "rate_limits": f"on, never refusing: {NO_LIMITS}",
            "area": f"division {AREA_CODE} (朝阳区), boundary copied from the demo database",
            "bboxes": len(boxes),
            "tiles": len(tiles),
            "tile_zooms": sorted({t.z for t in tiles}),
            "tile_cache": "off",
            "configs": {
                "anonymous_public": "no key; layer public",
                "key_public": "consumer key of another department; layer public",
                "key_agreement": f"same key; layer restricted; agreement {agreement_ids['key_agreement']}"
                f" grants {FIELDS}, no area",
                "key_agreement_area": f"key of a third department; layer restricted; agreement "
                f"{agreement_ids['key_agreement_area']} grants {FIELDS} within division {AREA_CODE}",
            },
        },
        "auditing": audit_state(url) | {"audit_log_rows_written": audit_log_rows(eng) - audit_before},
        "machine": machine_facts(url),
        "contention": contention(load),
        "same_response_as_anonymous": same,
        "results": summary,
        "ratio_rps_vs_anonymous_public": ratios,
        "target_min_ratio": TARGET,
        "targets_met": {key: {cfg: v >= TARGET for cfg, v in per.items()} for key, per in ratios.items()},
        "runtime_s": round(time.time() - t_begin),
    }
    stamp = time.strftime("%Y%m%d-%H%M%S")
    prefix = "access-overhead-quick" if args.quick else "access-overhead"
    out = RESULTS / f"{prefix}-{stamp}.json"
    body = json.dumps(report, ensure_ascii=False, indent=2, default=str)
    out.write_text(body)
    (RESULTS / f"{prefix}-latest.json").write_text(body)
    print(json.dumps({"ratios": ratios, "same": same}, indent=2, ensure_ascii=False))
    print(f"written to {out.relative_to(ROOT)}")
    eng.dispose()


if __name__ == "__main__":
    main()
