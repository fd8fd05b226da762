"""Scoring a geocoder on generated cases: hit rate, wrong districts, confident nonsense, latency.

Why these figures: a user needs the right point (top-1 within 50 m of the true one), an analyst
aggregating by district and street needs those codes right even when the point is off, and
nobody must be told "confident" for an address that does not exist or a point that is wrong.
The per-noise breakdown says which kind of sloppy input fails, the failure list shows examples.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from geocode.evaluation.noise import HELD_OUT, Case
from geocode.model import CONFIDENT, GeocodeResult, Status

WITHIN_M = 50.0
BANDS: tuple[tuple[float, float], ...] = ((0.0, 0.3), (0.3, 0.5), (0.5, 0.8), (0.8, 0.9), (0.9, 1.0))
"""Score bands of the calibration table; the last one includes 1.0."""
TARGETS: dict[str, tuple[str, float]] = {
    # metric: (comparison, bound) as the acceptance criteria state them
    "top1_within_50m": (">=", 0.97),
    "district_street_correct": (">=", 0.995),
    "nonexistent_confident": ("<=", 0.01),
}
_LABELS = {
    "top1_within_50m": "top-1 within 50 m",
    "district_correct": "district correct",
    "district_street_correct": "district + street correct",
    "confident_wrong": "confident but > 50 m away",
    "confident_share": "confident answers (existing)",
    "nonexistent_confident": "confident answers for nonexistent addresses",
    "named_district_kept": "road in a district without it: top answer in the named district",
    "outside_named_high": "… top answer outside the named district at score ≥ 0.5",
}


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance in metres (WGS84 mean radius)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (
        math.sin((p2 - p1) / 2) ** 2
        + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * 6_371_008.8 * math.asin(min(1.0, math.sqrt(a)))


@dataclass(slots=True)
class Outcome:
    """What happened to one case."""

    case: Case
    ms: float
    status: str
    score: float | None = None
    lon: float | None = None
    lat: float | None = None
    got: str | None = None  # formatted address of the top candidate
    level: str | None = None
    adcode: str | None = None
    towncode: str | None = None
    distance_m: float | None = None
    error: str | None = None

    @property
    def confident(self) -> bool:
        return self.status == Status.ok.value or (self.score is not None and self.score >= CONFIDENT)

    @property
    def hit(self) -> bool:
        return self.distance_m is not None and self.distance_m <= WITHIN_M

    @property
    def district_ok(self) -> bool:
        return self.adcode is not None and self.adcode == self.case.district_code

    @property
    def street_ok(self) -> bool:
        return self.district_ok and self.towncode is not None and self.towncode == self.case.street_code

    @property
    def right(self) -> bool:
        """What the calibration table counts: the true point within 50 m. An answer for an address
        that does not exist is never right, whatever it is (there is no true point to be near)."""
        return self.case.exists and self.hit

    def failure(self) -> dict[str, Any]:
        c = self.case
        return {
            "query": c.query,
            "kind": c.kind,
            "noise": c.noise,
            "expected": {
                "address": c.source,
                "lon": c.lon,
                "lat": c.lat,
                "district_code": c.district_code,
                "street_code": c.street_code,
            },
            "got": {
                "status": self.status,
                "address": self.got,
                "level": self.level,
                "score": None if self.score is None else round(self.score, 3),
                "lon": self.lon,
                "lat": self.lat,
                "adcode": self.adcode,
                "towncode": self.towncode,
                "distance_m": None if self.distance_m is None else round(self.distance_m, 1),
                "error": self.error,
            },
        }


@dataclass
class Report:
    """Aggregate figures; rates are shares in 0..1, latencies in milliseconds."""

    cases: int
    existing: int
    nonexistent: int
    errors: int
    top1_within_50m: float
    district_correct: float
    district_street_correct: float
    confident_wrong: float
    confident_share: float
    nonexistent_confident: float
    named_district_kept: float
    outside_named_high: float
    latency_ms: dict[str, float]
    by_noise: dict[str, dict[str, float]]
    by_kind: dict[str, dict[str, float]]
    calibration: list[dict[str, Any]] = field(default_factory=list)
    held_out: dict[str, float] = field(default_factory=dict)
    targets: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent)

    def to_markdown(self, failures: int = 10) -> str:
        pct = _pct
        lines = [
            f"**{self.existing}** existing and **{self.nonexistent}** nonexistent addresses; "
            f"latency p50 {self.latency_ms['p50']:.2f} ms, p95 {self.latency_ms['p95']:.2f} ms per query"
            + (f"; **{self.errors} queries raised errors**" if self.errors else ""),
            "",
            "| metric | value | target | met |",
            "|---|---:|---:|:---:|",
        ]
        for key, label in _LABELS.items():
            t = self.targets.get(key)
            target = f"{t['op'].replace('>=', '≥').replace('<=', '≤')} {pct(t['bound'])}" if t else ""
            met = ("yes" if t["met"] else "**no**") if t else ""
            lines.append(f"| {label} | {pct(getattr(self, key))} | {target} | {met} |")
        lines += [
            "",
            "| noise (existing) | n | top-1 ≤ 50 m | district + street | confident wrong |",
            "|---|---:|---:|---:|---:|",
        ]
        for kind, s in sorted(self.by_noise.items(), key=lambda kv: kv[1]["top1_within_50m"]):
            lines.append(
                f"| {kind} | {s['n']} | {pct(s['top1_within_50m'])} | {pct(s['district_street_correct'])} "
                f"| {pct(s['confident_wrong'])} |"
            )
        lines += ["", calibration_markdown(self.calibration)]
        if self.held_out:
            h = self.held_out
            lines += [
                "",
                f"Held-out forms ({', '.join(sorted(HELD_OUT))}, never tuned to): "
                f"{h['n_existing']} existing, top-1 within 50 m {pct(h['top1_within_50m'])}, "
                f"district + street {pct(h['district_street_correct'])}, "
                f"confident wrong {pct(h['confident_wrong'])}; "
                f"{h['n_nonexistent']} nonexistent, confident {pct(h['nonexistent_confident'])}",
            ]
        lines += ["", "| kind | n | top-1 ≤ 50 m | confident |", "|---|---:|---:|---:|"]
        for kind, s in self.by_kind.items():
            hit = pct(s["top1_within_50m"]) if "top1_within_50m" in s else "–"
            lines.append(f"| {kind} | {s['n']} | {hit} | {pct(s['confident'])} |")
        if self.failures and failures:
            lines += ["", "Worst failures:", ""]
            for f in self.failures[:failures]:
                got = f["got"]
                if got["distance_m"] is not None:
                    where = f"{got['distance_m']} m off"
                else:
                    where = "no such address" if f["expected"]["lon"] is None else "no answer"
                lines.append(
                    f"- `{f['query']}` ({', '.join(f['noise']) or 'clean'}) → "
                    f"{got['address'] or got['error']} [{got['status']}, score {got['score']}, {where}]; "
                    f"expected {f['expected']['address']}"
                )
        return "\n".join(lines)


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def band_label(lo: float, hi: float) -> str:
    return f"[{lo:.1f}, {hi:.1f}]" if hi >= 1.0 else f"[{lo:.1f}, {hi:.1f})"


def calibration(answers: Sequence[tuple[float | None, bool]]) -> list[dict[str, Any]]:
    """Per score band: how many answers, how many right, the share right; a last row for no answer.

    Why: a score is only useful if it means the same everywhere: answers at 0.9 should be right
    about nine times in ten or more, and those below 0.5 should not be trusted."""
    rows: list[dict[str, Any]] = []
    for i, (lo, hi) in enumerate(BANDS):
        last = i == len(BANDS) - 1
        inside = [
            right for score, right in answers if score is not None and lo <= score and (score < hi or last)
        ]
        rows.append(
            {
                "band": band_label(lo, hi),
                "n": len(inside),
                "right": sum(inside),
                "share_right": sum(inside) / len(inside) if inside else None,
            }
        )
    none = [right for score, right in answers if score is None]
    rows.append({"band": "no answer", "n": len(none), "right": sum(none), "share_right": None})
    return rows


def calibration_markdown(rows: Sequence[dict[str, Any]], title: str = "score band") -> str:
    lines = [f"| {title} | answers | right | share right |", "|---|---:|---:|---:|"]
    for r in rows:
        share = "–" if r["share_right"] is None else _pct(r["share_right"])
        lines.append(f"| {r['band']} | {r['n']} | {r['right']} | {share} |")
    return "\n".join(lines)


def _rate(items: Sequence[Outcome], test: Callable[[Outcome], bool]) -> float:
    return sum(1 for o in items if test(o)) / len(items) if items else 0.0


def _run(geocode_fn: Callable[[str], GeocodeResult], case: Case) -> Outcome:
    started = time.perf_counter()
    try:
        result = geocode_fn(case.query)
    except Exception as exc:  # noqa: BLE001 - an engine crash is a finding, not a reason to stop measuring
        return Outcome(
            case, (time.perf_counter() - started) * 1000, "error", error=f"{type(exc).__name__}: {exc}"
        )
    ms = (time.perf_counter() - started) * 1000
    out = Outcome(case, ms, result.status.value)
    best = result.best
    if best is not None:
        out.score, out.lon, out.lat = float(best.score), float(best.lon), float(best.lat)
        out.got, out.level = best.formatted_address, best.level.value
        out.adcode, out.towncode = best.adcode, best.towncode
        if case.lon is not None and case.lat is not None:
            out.distance_m = haversine_m(case.lon, case.lat, best.lon, best.lat)
    return out


def _group_existing(items: list[Outcome]) -> dict[str, float]:
    return {
        "n": len(items),
        "top1_within_50m": _rate(items, lambda o: o.hit),
        "district_street_correct": _rate(items, lambda o: o.street_ok),
        "confident_wrong": _rate(items, lambda o: o.confident and not o.hit),
        "confident": _rate(items, lambda o: o.confident),
    }


def _worst(existing: list[Outcome], absent: list[Outcome], limit: int) -> list[dict[str, Any]]:
    """Confident-wrong answers first (most confident, farthest), then errors, misses, confident nonsense."""

    def key(o: Outcome) -> tuple[int, float, float]:
        far = o.distance_m if o.distance_m is not None else math.inf
        if o.error:
            return (1, 0.0, 0.0)
        return (0 if o.confident else 2, -(o.score or 0.0), -far)

    misses = sorted((o for o in existing if not o.hit), key=key)
    nonsense = sorted((o for o in absent if o.confident or o.error), key=lambda o: -(o.score or 0.0))
    take_absent = min(len(nonsense), max(limit // 3, limit - len(misses)))
    picked = misses[: limit - take_absent] + nonsense[:take_absent]
    return [o.failure() for o in picked]


def evaluate(geocode_fn: Callable[[str], GeocodeResult], cases: Sequence[Case], *, worst: int = 30) -> Report:
    """Run every case through ``geocode_fn`` (one query string → result) and aggregate."""
    outcomes = [_run(geocode_fn, c) for c in cases]
    existing = [o for o in outcomes if o.case.exists]
    absent = [o for o in outcomes if not o.case.exists]

    by_noise: dict[str, list[Outcome]] = defaultdict(list)
    for o in existing:
        for kind in o.case.noise or ["clean"]:
            by_noise[kind].append(o)
    by_kind: dict[str, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        by_kind[o.case.kind].append(o)
    kinds: dict[str, dict[str, float]] = {}
    for kind, items in sorted(by_kind.items(), key=lambda kv: (not kv[1][0].case.exists, kv[0])):
        kinds[kind] = (
            _group_existing(items)
            if items[0].case.exists
            else {"n": len(items), "confident": _rate(items, lambda o: o.confident)}
        )

    moved = [o for o in absent if o.case.kind == "absent_road_in_district"]
    held = [o for o in existing if set(o.case.noise) & HELD_OUT]
    held_absent = [o for o in absent if o.case.kind in HELD_OUT or set(o.case.noise) & HELD_OUT]
    ms = sorted(o.ms for o in outcomes) or [0.0]
    report = Report(
        cases=len(outcomes),
        existing=len(existing),
        nonexistent=len(absent),
        errors=sum(1 for o in outcomes if o.error),
        top1_within_50m=_rate(existing, lambda o: o.hit),
        district_correct=_rate(existing, lambda o: o.district_ok),
        district_street_correct=_rate(existing, lambda o: o.street_ok),
        confident_wrong=_rate(existing, lambda o: o.confident and not o.hit),
        confident_share=_rate(existing, lambda o: o.confident),
        nonexistent_confident=_rate(absent, lambda o: o.confident),
        named_district_kept=_rate(moved, lambda o: o.adcode == o.case.district_code),
        outside_named_high=_rate(
            moved, lambda o: o.adcode != o.case.district_code and (o.score or 0.0) >= 0.5
        ),
        latency_ms={
            "p50": round(statistics.median(ms), 3),
            "p95": round(ms[min(len(ms) - 1, math.ceil(0.95 * len(ms)) - 1)], 3),
            "mean": round(statistics.fmean(ms), 3),
            "max": round(ms[-1], 3),
        },
        by_noise={k: _group_existing(v) for k, v in sorted(by_noise.items())},
        by_kind=kinds,
        failures=_worst(existing, absent, worst),
        calibration=calibration([(o.score, o.right) for o in outcomes]),
        held_out={
            "n_existing": len(held),
            "top1_within_50m": _rate(held, lambda o: o.hit),
            "district_street_correct": _rate(held, lambda o: o.street_ok),
            "confident_wrong": _rate(held, lambda o: o.confident and not o.hit),
            "n_nonexistent": len(held_absent),
            "nonexistent_confident": _rate(held_absent, lambda o: o.confident),
        },
    )
    for key, (op, bound) in TARGETS.items():
        value = getattr(report, key)
        report.targets[key] = {
            "op": op,
            "bound": bound,
            "value": value,
            "met": value >= bound if op == ">=" else value <= bound,
        }
    return report
