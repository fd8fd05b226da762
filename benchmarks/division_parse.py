"""Division parsing (province / city / district, and street in Beijing): GeoShare beside JioNLP.

    .venv/bin/python -m benchmarks.division_parse [--beijing 2000] [--china 2000] [--seed 1]
        [--database geoshare]

Strings: noisy queries of real Beijing addresses from ``geocode.evaluation.noise`` (read from the
database) and, for the rest of China, addresses built from the NBS tables in ``geocode/data``
(广东省深圳市南山区粤海街道科技园路1号 with the province or city left out, short names, and former
names from the JioNLP renames table). Truth is today's division; a level is scored only where the
string determines it (the names written fit exactly one answer at that level), so neither parser
is blamed for 南山区 alone. JioNLP (``jionlp.parse_location``) runs in its own venv
(benchmarks/.venv-jionlp) in a subprocess: nothing of it is imported here. Results go to
benchmarks/results/division-parse-<timestamp>.json and division-parse-latest.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import create_engine, make_url

from benchmarks.harness import ADMIN_URL, RESULTS, ROOT, machine_facts
from geocode.evaluation.noise import STREET_FORMS, Shares, make_cases, read_known, read_rows

JIONLP_VENV = Path(__file__).resolve().parent / ".venv-jionlp"
DATA = ROOT / "geocode" / "data"
LEVELS = ("province", "city", "district", "street")
DIRECT = "(直辖)"  # canonical city of a county the province administers directly (仙桃市), and
# canonical district of a city without districts (东莞市)
PLACEHOLDER_CITIES = {"省直辖县级行政区划", "自治区直辖县级行政区划"}
MUNICIPAL_CITIES = {"市辖区", "县"}
ROADS = (
    "人民路",
    "解放路",
    "建设路",
    "科技园路",
    "新华街",
    "文化路",
    "和平路",
    "工业大道",
    "迎宾大道",
    "滨江路",
)
SPECIAL_PROVINCE_SHORT = {
    "内蒙古自治区": "内蒙古",
    "广西壮族自治区": "广西",
    "西藏自治区": "西藏",
    "宁夏回族自治区": "宁夏",
    "新疆维吾尔自治区": "新疆",
    "香港特别行政区": "香港",
    "澳门特别行政区": "澳门",
}
JIONLP_WORKER = r"""
import json, sys, time
import jionlp
texts = json.load(open(sys.argv[1], encoding="utf-8"))
out = []
for t in texts:
    started = time.perf_counter()
    try:
        r = jionlp.parse_location(t, town_village=True)
    except Exception as exc:  # a crash on one string is a wrong answer, not the end of the run
        r = {"error": repr(exc)}
    ms = (time.perf_counter() - started) * 1000
    out.append({"province": r.get("province"), "city": r.get("city"), "district": r.get("county"),
                "street": r.get("town"), "ms": ms, "error": r.get("error")})
json.dump({"version": jionlp.__version__, "results": out}, open(sys.argv[2], "w", encoding="utf-8"),
          ensure_ascii=False)
"""


def _rows(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def province_short(name: str) -> str:
    return SPECIAL_PROVINCE_SHORT.get(name) or re.sub(r"[省市]$", "", name)


def place_short(name: str) -> str:
    """深圳市 → 深圳, 南山区 → 南山; long names (开发区, autonomous ones) stay whole, as people write them."""
    if "自治" in name or len(name) > 4:
        return name
    for suffix in ("地区", "市", "区", "县", "旗", "盟"):
        if name.endswith(suffix) and len(name) - len(suffix) >= 2:
            return name[: -len(suffix)]
    return name


class China:
    """The NBS tables as lookups: codes, names, aliases (full, short, former) and streets by district."""

    def __init__(self) -> None:
        self.provinces = {r["code"]: r["name"] for r in _rows("provinces.csv")}
        self.cities = {r["code"]: (r["name"], r["provinceCode"]) for r in _rows("cities.csv")}
        self.areas = {r["code"]: (r["name"], r["cityCode"], r["provinceCode"]) for r in _rows("areas.csv")}
        self.streets: dict[str, list[str]] = defaultdict(list)
        for r in _rows("streets.csv"):
            self.streets[r["areaCode"]].append(r["name"])
        self.alias: dict[str, dict[str, set[str]]] = {lv: defaultdict(set) for lv in LEVELS}
        for code, name in self.provinces.items():
            for a in (name, province_short(name)):
                self.alias["province"][a].add(code)
        for code in self.cities:
            for a in (self.city_name(code), place_short(self.city_name(code))):
                self.alias["city"][a].add(code)
        for code, (name, _, _) in self.areas.items():
            for a in (name, place_short(name)):
                self.alias["district"][a].add(code)
        for area, names in self.streets.items():
            for name in names:
                for form in street_forms(name):
                    self.alias["street"][form].add(area)
        self.renames = self._renames()

    def city_name(self, code: str) -> str:
        """市辖区/县 of a municipality → the municipality (北京市); placeholders → :data:`DIRECT`."""
        name, prov = self.cities[code]
        if name in MUNICIPAL_CITIES:
            return self.provinces[prov]
        return DIRECT if name in PLACEHOLDER_CITIES else name

    def truth(self, area: str) -> dict[str, str]:
        name, city, prov = self.areas[area]
        city_name = self.city_name(city)
        return {
            "province": self.provinces[prov],
            "city": city_name,
            "district": DIRECT if name == city_name else name,
        }

    def _renames(self) -> list[dict[str, str]]:
        """County-level renames whose new division is in today's tables: old names → area code."""
        by_names = {(self.provinces[p], self.city_name(c), n): code for code, (n, c, p) in self.areas.items()}
        out = []
        with (DATA / "division_renames_jionlp.txt").open(encoding="utf-8") as fh:
            for line in fh:
                if "=>" not in line:
                    continue
                old, new = line.rstrip("\n").split("=>")
                o, n = old.split("\t")[2:], new.split("\t")
                if len(o) < 6 or len(n) < 3 or (n[0], n[1], n[2]) not in by_names:
                    continue
                area = by_names[(n[0], n[1], n[2])]
                out.append({"province": o[0], "city": o[2], "district": o[4], "area": area})
                self.alias["city"][o[2]].add(self.areas[area][1])
                self.alias["district"][o[4]].add(area)
        for r in _rows("beijing_renames.csv"):
            self.alias["district"][r["old_name"]].add(r["code"])
            self.alias["district"][place_short(r["old_name"])].add(r["code"])
        return out

    def candidates(self, written: dict[str, str]) -> set[str]:
        """Area codes consistent with every division name written."""
        cands = set(self.areas)
        for level in ("district", "street"):
            if level in written:
                cands &= self.alias[level].get(written[level], set())
        if "city" in written:
            cities = self.alias["city"].get(written["city"], set())
            cands = {a for a in cands if self.areas[a][1] in cities}
        if "province" in written:
            provs = self.alias["province"].get(written["province"], set())
            cands = {a for a in cands if self.areas[a][2] in provs}
        return cands

    def determined(self, written: dict[str, str]) -> set[str]:
        """The levels whose answer the written names fix (every candidate agrees)."""
        if not written:
            return set()
        cands = self.candidates(written)
        if not cands:
            return set()
        truths = [self.truth(a) for a in cands]
        return {lv for lv in ("province", "city", "district") if len({t[lv] for t in truths}) == 1}


def street_forms(name: str) -> tuple[str, ...]:
    for form, variants in STREET_FORMS.items():
        if name.endswith(form) and len(name) - len(form) >= 2:
            return (name, *(name[: -len(form)] + v for v in variants))
    return (name,)


def china_strings(china: China, rng: np.random.Generator, n: int) -> list[dict[str, Any]]:
    """Addresses outside Beijing in the usual variants, plus every usable former-name row."""
    areas = sorted(a for a, (_, _, p) in china.areas.items() if p != "11")
    variants = ("full", "no_province", "no_city", "no_province_city", "short")
    out: list[dict[str, Any]] = []
    for area in rng.choice(areas, n, replace=False):
        name, city, prov = china.areas[str(area)]
        truth = china.truth(str(area))
        variant = variants[int(rng.integers(0, len(variants)))]
        written: dict[str, str] = {}
        short = variant == "short"
        if variant not in ("no_province", "no_province_city"):
            written["province"] = province_short(truth["province"]) if short else truth["province"]
        municipal = truth["city"] == truth["province"]
        if variant not in ("no_city", "no_province_city") and truth["city"] != DIRECT and not municipal:
            written["city"] = place_short(truth["city"]) if short else truth["city"]
        if truth["district"] != DIRECT:
            written["district"] = place_short(name) if short else name
        streets = china.streets.get(str(area), [])
        if streets and rng.random() < 0.5:
            written["street"] = streets[int(rng.integers(0, len(streets)))]
        out.append(_string(china, written, truth, variant, rng))
    for r in china.renames:
        written = {"province": r["province"], "city": r["city"], "district": r["district"]}
        out.append(_string(china, written, china.truth(r["area"]), "former_name", rng))
    return out


def _string(
    china: China, written: dict[str, str], truth: dict[str, str], variant: str, rng: np.random.Generator
) -> dict[str, Any]:
    text = "".join(written.get(lv, "") for lv in LEVELS)
    text += f"{ROADS[int(rng.integers(0, len(ROADS)))]}{int(rng.integers(1, 300))}号"
    return {
        "text": text,
        "set": "china",
        "variant": variant,
        "truth": truth,
        "written": written,
        "determined": sorted(china.determined(written)),
    }


def beijing_strings(china: China, url: str, rng: np.random.Generator, n: int) -> list[dict[str, Any]]:
    """Noisy queries of real Beijing addresses (existing ones only) from the address database."""
    eng = create_engine(url)
    with eng.connect() as conn:
        rows, known = read_rows(conn), read_known(conn)
    eng.dispose()
    out = []
    for c in make_cases(rows, rng, n, shares=Shares(exists=1.0), known=known):
        written = {lv: c.written[lv] for lv in ("province", "district", "street") if lv in c.written}
        truth = {"province": c.province, "city": c.city, "district": c.district, "street": c.street}
        determined = china.determined(written)
        if "street" in written:
            determined.add("street")
        form = next(
            (k for k in ("old_district", "short_district", "no_district") if k in c.noise), "full_district"
        )
        out.append(
            {
                "text": c.query,
                "set": "beijing",
                "variant": form,
                "truth": truth,
                "written": written,
                "determined": sorted(determined),
            }
        )
    return out


def ensure_jionlp() -> Path:
    python = JIONLP_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(JIONLP_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "jionlp"], check=True)
    return python


def run_jionlp(python: Path, texts: list[str]) -> tuple[str, list[dict[str, Any]]]:
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.json", Path(tmp) / "out.json"
        src.write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
        subprocess.run(
            [str(python), "-c", JIONLP_WORKER, str(src), str(dst)],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        data = json.loads(dst.read_text(encoding="utf-8"))
    return data["version"], data["results"]


def run_ours(texts: list[str]) -> list[dict[str, Any]]:
    from geocode.parse import parse_divisions

    parse_divisions("北京市东城区")  # the gazetteer is built once per process: not part of any string's time
    out = []
    for t in texts:
        started = time.perf_counter()
        c = parse_divisions(t)
        ms = (time.perf_counter() - started) * 1000
        out.append(
            {"province": c.province, "city": c.city, "district": c.district, "street": c.township, "ms": ms}
        )
    return out


def canonical(got: dict[str, Any], china: China) -> dict[str, str | None]:
    """Both parsers' answers in one convention (municipal and direct-county cities, short names)."""
    province = got.get("province")
    codes = china.alias["province"].get(province or "", set())
    if len(codes) == 1:
        province = china.provinces[next(iter(codes))]
    city = got.get("city")
    if city in MUNICIPAL_CITIES:
        city = province
    elif city in PLACEHOLDER_CITIES or city is None:
        city = DIRECT if got.get("district") else None
    district = got.get("district")
    if district is None or (city and district == city):
        district = DIRECT if city and city != DIRECT else None
    return {"province": province, "city": city, "district": district, "street": got.get("street")}


def _street_ok(got: str | None, truth: str | None) -> bool:
    return bool(got and truth) and (got == truth or got in street_forms(truth) or truth in street_forms(got))


def score(strings: list[dict[str, Any]], answers: list[dict[str, Any]], china: China) -> dict[str, Any]:
    right: dict[str, list[bool]] = defaultdict(list)
    by_variant: dict[str, list[bool]] = defaultdict(list)
    for s, a in zip(strings, answers, strict=True):
        got = canonical(a, china)
        oks = {}
        for lv in LEVELS:
            if lv not in s["determined"] or s["truth"].get(lv) is None:
                continue
            ok = _street_ok(got[lv], s["truth"][lv]) if lv == "street" else got[lv] == s["truth"][lv]
            oks[lv] = ok
            right[f"{s['set']}.{lv}"].append(ok)
        if "district" in oks:
            by_variant[f"{s['set']}.{s['variant']}"].append(oks["district"])
        a["_ok"] = oks
    ms = sorted(a["ms"] for a in answers)
    return {
        "accuracy": {
            k: {"n": len(v), "correct": round(sum(v) / len(v), 4)} for k, v in sorted(right.items())
        },
        "district_by_variant": {
            k: {"n": len(v), "correct": round(sum(v) / len(v), 4)} for k, v in sorted(by_variant.items())
        },
        "latency_ms": {"p50": round(ms[len(ms) // 2], 4), "mean": round(sum(ms) / len(ms), 4)},
        "errors": sum(1 for a in answers if a.get("error")),
    }


def disagreements(strings: list[dict[str, Any]], ours: list[dict], theirs: list[dict], limit: int) -> dict:
    """Strings one parser gets right and the other wrong, for reading."""
    out: dict[str, list[dict[str, Any]]] = {"only_geoshare_right": [], "only_jionlp_right": []}
    for s, a, b in zip(strings, ours, theirs, strict=True):
        for lv in ("district", "city", "province", "street"):
            if lv in a["_ok"] and a["_ok"][lv] != b["_ok"].get(lv):
                key = "only_geoshare_right" if a["_ok"][lv] else "only_jionlp_right"
                if len(out[key]) < limit:
                    out[key].append(
                        {
                            "text": s["text"],
                            "level": lv,
                            "truth": s["truth"].get(lv),
                            "geoshare": a.get(lv),
                            "jionlp": b.get(lv),
                        }
                    )
                break
    return out


def markdown(summary: dict[str, dict[str, Any]]) -> str:
    keys = sorted(set(summary["geoshare"]["accuracy"]) | set(summary["jionlp"]["accuracy"]))
    lines = ["| set.level | n | GeoShare | JioNLP |", "|---|---:|---:|---:|"]
    for k in keys:
        a, b = summary["geoshare"]["accuracy"].get(k), summary["jionlp"]["accuracy"].get(k)
        lines.append(f"| {k} | {(a or b)['n']} | {100 * a['correct']:.2f}% | {100 * b['correct']:.2f}% |")
    lines += ["", "| district by variant | n | GeoShare | JioNLP |", "|---|---:|---:|---:|"]
    for k in sorted(summary["geoshare"]["district_by_variant"]):
        a, b = summary["geoshare"]["district_by_variant"][k], summary["jionlp"]["district_by_variant"].get(k)
        lines.append(f"| {k} | {a['n']} | {100 * a['correct']:.2f}% | {100 * b['correct']:.2f}% |")
    lines.append("")
    lines.append(
        f"latency p50: GeoShare {summary['geoshare']['latency_ms']['p50']} ms, "
        f"JioNLP {summary['jionlp']['latency_ms']['p50']} ms per string"
    )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--beijing", type=int, default=2000, help="noisy Beijing queries from the address database"
    )
    ap.add_argument(
        "--china", type=int, default=2000, help="addresses elsewhere in China (plus former names)"
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--database", default="geoshare")
    args = ap.parse_args()

    url = make_url(ADMIN_URL).set(database=args.database).render_as_string(hide_password=False)
    rng = np.random.default_rng(args.seed)
    china = China()
    strings = beijing_strings(china, url, rng, args.beijing) + china_strings(china, rng, args.china)
    texts = [s["text"] for s in strings]
    print(f"{len(strings)} strings; running GeoShare …", flush=True)
    ours = run_ours(texts)
    print("running JioNLP in its venv …", flush=True)
    version, theirs = run_jionlp(ensure_jionlp(), texts)
    summary = {"geoshare": score(strings, ours, china), "jionlp": score(strings, theirs, china)}
    report = {
        "benchmark": "division parsing vs JioNLP parse_location",
        "strings": len(strings),
        "seed": args.seed,
        "database": args.database,
        "machine": machine_facts(url) | {"jionlp": version},
        "results": summary,
        "examples": disagreements(strings, ours, theirs, 25),
        "samples": [
            {"text": s["text"], "set": s["set"], "variant": s["variant"], "determined": s["determined"]}
            for s in strings[:: max(1, len(strings) // 40)]
        ],
    }
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = RESULTS / f"division-parse-{stamp}.json"
    body = json.dumps(report, ensure_ascii=False, indent=2)
    out.write_text(body)
    (RESULTS / "division-parse-latest.json").write_text(body)
    print(markdown(summary))
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
