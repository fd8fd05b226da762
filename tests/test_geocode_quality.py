"""Geocoding quality on generated noisy queries over the small demo city (loose bounds; the
benchmark ``python -m benchmarks.geocode_quality`` reports the real figures at full scale)."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import Connection, Engine

from geocode import index as geocode_index
from geocode.evaluation.noise import make_cases, read_known, read_rows
from geocode.evaluation.score import Report, evaluate, haversine_m
from geocode.index import AddressIndex

match = pytest.importorskip("geocode.match", reason="forward geocoding (geocode.match) is not written yet")


def load_index(conn: Connection) -> AddressIndex:
    """``AddressIndex.load`` where the index module offers it, else its ``load_index``."""
    loader = getattr(AddressIndex, "load", None) or geocode_index.load_index
    return loader(conn)


@pytest.fixture(scope="module")
def report(address_db: Engine) -> Report:
    with address_db.connect() as conn:
        rows, known, index = read_rows(conn), read_known(conn), load_index(conn)
    cases = make_cases(rows, np.random.default_rng(11), 400, known=known)
    return evaluate(lambda q: match.geocode(index, q), cases)


def test_quality_on_the_small_city(report: Report) -> None:
    summary = report.to_markdown()
    assert report.existing == 340 and report.nonexistent == 60
    assert report.errors == 0, summary
    assert report.top1_within_50m >= 0.9, summary
    assert report.district_street_correct >= 0.97, summary
    assert report.nonexistent_confident <= 0.05, summary


def test_report_serialises(report: Report) -> None:
    data = report.to_dict()
    assert data["by_kind"]["door"]["n"] + data["by_kind"]["building"]["n"] == report.existing
    assert sum(s["n"] for k, s in data["by_kind"].items() if k.startswith("absent_")) == report.nonexistent
    assert '"top1_within_50m"' in report.to_json()
    assert "| top-1 within 50 m |" in report.to_markdown()


def test_haversine() -> None:
    # one degree of latitude is ~111.2 km everywhere; a degree of longitude shrinks with cos(lat)
    assert haversine_m(116.4, 39.9, 116.4, 40.9) == pytest.approx(111_195, rel=1e-3)
    assert haversine_m(116.0, 40.0, 117.0, 40.0) == pytest.approx(111_195 * np.cos(np.radians(40)), rel=2e-3)
    assert haversine_m(116.4, 39.9, 116.4, 39.9) == 0.0


def test_calibration_table(report: Report) -> None:
    """Per score band the share of right answers: confident answers are right, low ones mostly not."""
    bands = {row["band"]: row for row in report.calibration}
    assert sum(row["n"] for row in report.calibration) == report.cases
    top = bands["[0.9, 1.0]"]
    assert top["n"] > 0.6 * report.existing and top["share_right"] >= 0.99, report.calibration
    low = [bands["[0.0, 0.3)"], bands["[0.3, 0.5)"]]
    assert sum(r["right"] for r in low) <= 0.25 * max(1, sum(r["n"] for r in low)), report.calibration
    assert "| score band | answers | right | share right |" in report.to_markdown()
    assert report.named_district_kept >= 0.95 and report.outside_named_high == 0.0
