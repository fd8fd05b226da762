"""Forward geocoding quality on noisy queries generated from the address database itself.

    .venv/bin/python -m benchmarks.geocode_quality [--n 5000] [--seed 1] [--database geoshare] [--real DIR]

Reads the address database, builds the engine's in-memory index, writes ``n`` noisy queries of
real and nonexistent addresses (``geocode.evaluation.noise``), geocodes them in this process and
scores the answers against the true points (``geocode.evaluation.score``), with a calibration
table (per score band, the share of answers that are right). Then the real hand-labelled corpora
(``--real``, default ``../shared/data/addresses-real``; read in place, never copied) go through
the same engine (``geocode.evaluation.real``): rows of other provinces must never be ``ok`` nor
a confident road, and Beijing rows must stay in the district they name. Results go to
benchmarks/results/geocode-quality-<timestamp>.json and geocode-quality-latest.json with the
machine's facts; the Markdown summary is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from sqlalchemy import Connection, create_engine, make_url

from benchmarks.harness import ADMIN_URL, RESULTS, ROOT, machine_facts
from geocode import index as geocode_index
from geocode.evaluation.noise import Shares, make_cases, read_known, read_rows
from geocode.evaluation.real import DEFAULT_FOLDER, evaluate_real, read_corpora
from geocode.evaluation.score import evaluate
from geocode.index import AddressIndex


def load_index(conn: Connection) -> AddressIndex:
    """``AddressIndex.load`` where the index module offers it, else its ``load_index``."""
    loader = getattr(AddressIndex, "load", None) or geocode_index.load_index
    return loader(conn)


def _shown(folder: Path) -> str:
    """The corpora's folder as results record it: relative to the repository, never this machine's path."""
    try:
        return os.path.relpath(Path(folder).resolve(), ROOT)
    except ValueError:
        return Path(folder).name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=5000, help="number of queries (85%% real, 15%% nonexistent)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--database", default="geoshare")
    ap.add_argument("--failures", type=int, default=40, help="worst failures kept in the results file")
    ap.add_argument(
        "--real", type=Path, default=DEFAULT_FOLDER, help="folder of the real corpora (*_train.jsonl)"
    )
    ap.add_argument("--no-real", action="store_true", help="skip the real corpora")
    args = ap.parse_args()

    from geocode.match import geocode

    url = make_url(ADMIN_URL).set(database=args.database).render_as_string(hide_password=False)
    eng = create_engine(url)
    started = time.perf_counter()
    with eng.connect() as conn:
        rows, known = read_rows(conn), read_known(conn)
        read_s = time.perf_counter() - started
        index = load_index(conn)
    eng.dispose()
    if rows.empty:
        raise SystemExit(f"database {args.database} has no addresses: run `geoshare demo load` first")
    started = time.perf_counter()
    shares = Shares()
    cases = make_cases(rows, np.random.default_rng(args.seed), args.n, shares=shares, known=known)
    generate_s = time.perf_counter() - started
    geocode(index, cases[0].query)  # warm the gazetteer and caches: not part of any query's time
    print(
        f"{len(rows)} addresses, {len(cases)} queries (generated in {generate_s:.1f} s); geocoding …",
        flush=True,
    )
    report = evaluate(lambda q: geocode(index, q), cases, worst=args.failures)
    real_rows = [] if args.no_real else read_corpora(args.real)
    real = evaluate_real(lambda q: geocode(index, q), real_rows) if real_rows else None

    result = {
        "benchmark": "forward geocoding quality (noisy queries from the address database)",
        "database": args.database,
        "addresses": len(rows),
        "n": args.n,
        "seed": args.seed,
        "shares": asdict(shares),
        "timings_s": {
            "read_rows": round(read_s, 2),
            "index_load": getattr(index, "load_seconds", None),
            "generate": round(generate_s, 2),
        },
        "machine": machine_facts(url),
        "report": report.to_dict(),
        "real": None
        if real is None
        else {"folder": _shown(args.real), "rows": len(real_rows), **real.to_dict()},
        "samples": [c.as_dict() for c in cases[:20]],
    }
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = RESULTS / f"geocode-quality-{stamp}.json"
    body = json.dumps(result, ensure_ascii=False, indent=2, default=str)
    out.write_text(body)
    (RESULTS / "geocode-quality-latest.json").write_text(body)
    print(report.to_markdown())
    if real is not None:
        print(f"\nReal corpora ({len(real_rows)} rows from {args.real}):\n")
        print(real.to_markdown())
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
