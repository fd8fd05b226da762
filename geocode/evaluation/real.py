"""Real addresses written by people (hand-labelled corpora), as a check on answers, not on parsing.

Why: generated noise only has the forms we thought of. The real corpora (registered and delivery
addresses, mostly Zhejiang) cannot be geocoded against a Beijing address database, and that is
what they measure: an address in another province must never come back ``ok``, nor as a
confident Beijing road of the same name; the few Beijing rows check that the answer stays inside
the district the query names. The rows are read from where they are kept (``../shared`` beside a
clone), never copied into the repository; only their labels' division and road spans are used.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geocode.evaluation.score import calibration, calibration_markdown
from geocode.model import CONFIDENT, GeocodeResult, Level
from geocode.parse import parse_divisions

HOME = "北京"
ROAD_LEVELS = frozenset({Level.door, Level.building, Level.interpolated, Level.road})
DEFAULT_FOLDER = Path(__file__).resolve().parents[3] / "shared" / "data" / "addresses-real"


@dataclass(frozen=True, slots=True)
class RealRow:
    text: str
    source: str
    labels: dict[str, str]

    @property
    def home(self) -> bool:
        """Labelled as the served city's (北京 in its province or city span)."""
        return any(HOME in self.labels.get(k, "") for k in ("province", "prov", "city"))

    @property
    def district(self) -> str | None:
        """The labelled district as today's official name (西城 → 西城区), or None."""
        written = self.labels.get("district")
        return parse_divisions(f"{HOME}市{written}").district if written else None


def read_corpora(folder: Path = DEFAULT_FOLDER) -> list[RealRow]:
    """Every row of the ``*_train.jsonl`` files in ``folder`` (empty when the folder is absent)."""
    rows: list[RealRow] = []
    for path in sorted(folder.glob("*_train.jsonl")) if folder.is_dir() else ():
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                r = json.loads(line)
                rows.append(RealRow(r["text"], r.get("source", path.stem), dict(r.get("labels", {}))))
    return rows


@dataclass
class RealReport:
    """Foreign rows (another province: every answer is wrong), by whether the query names a division
    outside the home city; home rows (right: in the labelled district, and on the labelled road when
    the answer is a road or finer)."""

    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    contradictions: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"groups": self.groups, "contradictions": self.contradictions}

    def to_markdown(self) -> str:
        lines = [
            "| real rows | n | answered | ok | score ≥ 0.5 | confident road or door | right |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name, g in self.groups.items():
            lines.append(
                f"| {name} | {g['n']} | {g['answered']} | {g['ok']} | {g['at_half']} | {g['confident_road']} "
                f"| {g['right']} |"
            )
        for name, g in self.groups.items():
            lines += ["", calibration_markdown(g["calibration"], title=f"{name}: score band")]
        if self.contradictions:
            lines += ["", "Home rows answered outside the district they name:", ""]
            lines += [f"- `{c['query']}` → {c['got']} ({c['score']})" for c in self.contradictions[:20]]
        return "\n".join(lines)


def _foreign_named(row: RealRow) -> bool:
    province = parse_divisions(row.text).province
    return province is not None and not province.startswith(HOME)


def evaluate_real(geocode_fn: Callable[[str], GeocodeResult], rows: Sequence[RealRow]) -> RealReport:
    groups: dict[str, list[tuple[RealRow, GeocodeResult, bool]]] = {
        "other provinces, named": [],
        "other provinces, no division read": [],
        "home city": [],
    }
    report = RealReport()
    for row in rows:
        result = geocode_fn(row.text)
        best = result.best
        if row.home:
            district = row.district
            right = best is not None and (district is None or best.district == district)
            if right and best is not None and best.level in ROAD_LEVELS:
                right = best.road == row.labels.get("road")
            if best is not None and district is not None and best.district != district:
                report.contradictions.append(
                    {"query": row.text, "got": best.formatted_address, "score": round(best.score, 3)}
                )
            groups["home city"].append((row, result, right))
        else:
            key = "other provinces, named" if _foreign_named(row) else "other provinces, no division read"
            groups[key].append((row, result, best is None))
    for name, items in groups.items():
        scored = [(r.best.score if r.best else None, right) for _, r, right in items]
        report.groups[name] = {
            "n": len(items),
            "answered": sum(1 for _, r, _ in items if r.best is not None),
            "ok": sum(1 for _, r, _ in items if r.best is not None and r.best.score >= CONFIDENT),
            "at_half": sum(1 for _, r, _ in items if r.best is not None and r.best.score >= 0.5),
            "confident_road": sum(
                1
                for _, r, _ in items
                if r.best is not None and r.best.score >= CONFIDENT and r.best.level in ROAD_LEVELS
            ),
            "right": sum(right for _, _, right in items),
            "calibration": calibration(scored),
        }
    return report
