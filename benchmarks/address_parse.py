"""Address parsing on real, hand-labelled addresses: GeoShare beside JioNLP and cpca.

    .venv/bin/python -m benchmarks.address_parse [--limit N] [--no-others]

Strings: the train splits of two real labelled corpora in ``../shared/data/addresses-real``
(NAACL 2019 and CCKS 2021; CCKS digits are masked to 0). They are read from there, never copied.
Each corpus is reported whole (``train``) and on a fixed fifth of it (``heldout``: rows whose
``crc32(id) % 5 == 0``), which the parser's rules were checked against but not tuned on row by row.

Scoring, per component (province, city, district, township, community, devzone, road, number, poi,
subpoi, building, unit, floor, room, village_group):

* only rows whose gold labels contain the component count (``n``); ``accuracy`` is the share of
  them where the parser's value equals one of the gold spans of that label (a label written twice,
  浙江省…浙江省, is right when either is given); ``spurious`` is the share of the other rows where
  the parser gives a value anyway.
* both sides are normalised first: full-width → half-width (NFKC), case, separators;
* divisions: right when both names lead to the same division in the gazetteer (so 杭州 = 杭州市,
  a former name = its successor, 江干区 = 上城区, for every parser alike), or are equal once a
  division suffix (省/市/区/县/街道/镇/乡 …) is dropped;
* a city label on a county-level city (义乌市, labelled city in some rows and district in others)
  is right when the parser gives that division at county level, as the NBS tables have it;
* numbers (number, building, unit, floor, room): right when the identifying digits and letters
  agree (12号楼 = 12幢 = 12, 三单元 = 3, 1131铺 = 1131, 0000号 = 0 in the masked corpus);
* NAACL has no village-group label and labels 5组 as road: a village_group counts for road;
* names labelled poi by one corpus and devzone by the other (工业区, 工业园) count as right when
  the parser gives them as either; a subpoi also counts when written as phase or zone (2期, B区).

JioNLP 1.5.31 (``parse_location(text, town_village=True)``: province, city, county, town, village)
and cpca (province, city, district) run in ``benchmarks/.venv-jionlp`` in a subprocess, nothing
of them imported here. Microseconds per string: GeoShare and JioNLP timed string by string,
cpca as its batch ``transform`` divided by the number of strings (its per-call overhead is pandas).
Results go to benchmarks/results/address-parse-<timestamp>.json (and address-parse-latest.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import unicodedata
import zlib
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.harness import ADMIN_URL, RESULTS, ROOT, machine_facts
from geocode.gazetteer import DISTRICT, default_gazetteer
from geocode.normalize import cn_to_int, normalize

SHARED = ROOT.parent / "shared" / "data" / "addresses-real"
CORPORA = ("naacl2019_train.jsonl", "ccks2021_train.jsonl")
VENV = Path(__file__).resolve().parent / ".venv-jionlp"
DIVISIONS = ("province", "city", "district", "township")
NUMBERS = ("number", "building", "unit", "floor", "room")
NAMES = ("community", "devzone", "road", "poi", "subpoi", "village_group")
GOLD = {  # corpus label → component
    "province": "province",
    "prov": "province",
    "city": "city",
    "district": "district",
    "township": "township",
    "town": "township",
    "community": "community",
    "devzone": "devzone",
    "road": "road",
    "roadno": "number",
    "poi": "poi",
    "subpoi": "subpoi",
    "houseno": "building",
    "cellno": "unit",
    "floorno": "floor",
    "roomno": "room",
    "village_group": "village_group",
}
WORKER = r"""
import json, sys, time
texts = json.load(open(sys.argv[1], encoding="utf-8"))
out = {"jionlp": [], "cpca": []}
import jionlp
jionlp.parse_location("浙江省杭州市", town_village=True)
for t in texts:
    started = time.perf_counter()
    try:
        r = jionlp.parse_location(t, town_village=True)
    except Exception as exc:
        r = {"error": repr(exc)}
    us = (time.perf_counter() - started) * 1e6
    out["jionlp"].append({"province": r.get("province"), "city": r.get("city"), "district": r.get("county"),
                          "township": r.get("town"), "community": r.get("village"), "us": us})
import cpca
cpca.transform(["浙江省杭州市"])
started = time.perf_counter()
df = cpca.transform(texts)
per = (time.perf_counter() - started) * 1e6 / max(1, len(texts))
for p, c, d in zip(df["省"], df["市"], df["区"]):
    out["cpca"].append({"province": p if isinstance(p, str) and p else None,
                        "city": c if isinstance(c, str) and c else None,
                        "district": d if isinstance(d, str) and d else None, "us": per})
import importlib.metadata as md
out["versions"] = {"jionlp": jionlp.__version__, "cpca": md.version("cpca")}
json.dump(out, open(sys.argv[2], "w", encoding="utf-8"), ensure_ascii=False)
"""
_DIV_SUFFIX_RE = re.compile(
    r"(?:特别行政区|自治区|自治州|街道办事处|街道办|街道|地区|省|市|区|县|镇|乡|盟|旗)$"
)
_NUM_WORD_RE = re.compile(
    r"(?:号楼|号院|号房|房间|号|栋|幢|座|单元|梯|室|层|楼|房|户|期|区|弄|组|队|F|商铺|铺|店面|店|档|商位|摊位)$"
)
_CN_NUM_RE = re.compile(r"[零〇一二两三四五六七八九十百]+")


def heldout(row_id: str) -> bool:
    """The fixed fifth of each corpus kept for checking generalisation."""
    return zlib.crc32(row_id.encode()) % 5 == 0


def rows(path: Path, limit: int | None = None) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if limit is not None and i >= limit:
                return
            yield json.loads(line)


def gold(row: dict[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for label, _, _, text in row["spans"]:
        if label in GOLD:
            out[GOLD[label]].append(text)
    return out


def _flat(text: str) -> str:
    return unicodedata.normalize("NFKC", text).lower().strip(" -_,")


def num_core(text: str) -> str:
    """12号楼 → 12, 三单元 → 3, 0000号 → 0, B座 → b: the digits and letters that identify it."""
    t = _flat(normalize(text) or text)
    t = t.removeprefix("第")
    t = _CN_NUM_RE.sub(lambda m: str(cn_to_int(m.group(0)) or m.group(0)), t)
    t = _NUM_WORD_RE.sub("", t)
    t = _NUM_WORD_RE.sub("", t)
    return re.sub(r"\d+", lambda m: str(int(m.group(0))), t)


def _codes(name: str) -> set[str]:
    gaz = default_gazetteer()
    return {a.place.code for a in gaz.aliases.get(name, ())}


def division_ok(got: str | None, truths: list[str]) -> bool:
    if not got:
        return False
    g = _flat(got)
    mine = _codes(g)
    for t in truths:
        t = _flat(t)
        if g == t or (mine & _codes(t)):
            return True
        if _DIV_SUFFIX_RE.sub("", g) == _DIV_SUFFIX_RE.sub("", t) and len(t) >= 2:
            return True
    return False


def name_ok(got: str | None, truths: list[str]) -> bool:
    return bool(got) and any(_flat(normalize(got)) == _flat(normalize(t)) for t in truths)


def number_ok(got: str | None, truths: list[str]) -> bool:
    return bool(got) and any(num_core(got) == num_core(t) for t in truths)


def _county_level(name: str) -> bool:
    gaz = default_gazetteer()
    return any(gaz.places[c].level == DISTRICT for c in _codes(_flat(name)))


def component_ok(component: str, answer: dict[str, Any], truths: list[str]) -> bool:
    got = answer.get(component)
    if component == "city" and not division_ok(got, truths) and all(_county_level(t) for t in truths):
        # 义乌市 labelled city: a county-level city, given by the parser at county level
        return division_ok(answer.get("district"), truths)
    if component in DIVISIONS:
        return division_ok(got, truths)
    if component in NUMBERS:
        return number_ok(got, truths)
    if component in ("poi", "devzone"):
        other = "devzone" if component == "poi" else "poi"
        return name_ok(got, truths) or name_ok(answer.get(other), truths)
    if component == "road" and name_ok(answer.get("village_group"), truths):
        return True  # NAACL has no village-group label and calls 5组 a road
    if component == "subpoi":  # 2期 and B区 are given as phase 2 and zone B
        phases = [t for t in truths if _flat(t).endswith("期")]
        zones = [t for t in truths if _flat(t).endswith("区")]
        return (
            name_ok(answer.get("subpoi"), truths)
            or number_ok(answer.get("phase"), phases)
            or number_ok(answer.get("zone"), zones)
        )
    return name_ok(got, truths)


def run_ours(texts: list[str]) -> list[dict[str, Any]]:
    from geocode.parse import parse

    parse("浙江省杭州市西湖区")  # the gazetteer is built once per process: not part of any string's time
    out = []
    for t in texts:
        started = time.perf_counter()
        readings = parse(t)
        c = readings[0].components() if readings else None
        us = (time.perf_counter() - started) * 1e6
        d = {k: getattr(c, k) for k in c.__slots__} if c else {}
        d["us"] = us
        out.append(d)
    return out


def ensure_venv() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    probe = subprocess.run([str(python), "-c", "import jionlp, cpca"], capture_output=True)
    if probe.returncode:
        subprocess.run([str(python), "-m", "pip", "install", "-q", "jionlp==1.5.31", "cpca"], check=True)
    return python


def run_others(python: Path, texts: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.json", Path(tmp) / "out.json"
        src.write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
        subprocess.run(
            [str(python), "-c", WORKER, str(src), str(dst)],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return json.loads(dst.read_text(encoding="utf-8"))


COMPONENTS = (
    DIVISIONS + ("community", "devzone", "road", "number", "poi", "subpoi") + NUMBERS[1:] + ("village_group",)
)


PROVIDES = {
    "geoshare": COMPONENTS,
    "jionlp": ("province", "city", "district", "township", "community"),
    "cpca": ("province", "city", "district"),
}


def score(
    golds: list[dict[str, list[str]]], answers: list[dict[str, Any]], which: list[bool], parser: str
) -> dict:
    """Per component: n, accuracy, spurious (see the module docstring), over the rows selected."""
    hit: dict[str, list[bool]] = defaultdict(list)
    extra: dict[str, list[bool]] = defaultdict(list)
    for g, a, keep in zip(golds, answers, which, strict=True):
        if not keep:
            continue
        for comp in PROVIDES[parser]:
            if comp in g:
                hit[comp].append(component_ok(comp, a, g[comp]))
            elif comp in a:
                extra[comp].append(bool(a.get(comp)))
    us = sorted(a["us"] for a, keep in zip(answers, which, strict=True) if keep)
    out: dict[str, Any] = {
        comp: {
            "n": len(hit[comp]),
            "accuracy": round(sum(hit[comp]) / len(hit[comp]), 4),
            "spurious": round(sum(extra[comp]) / len(extra[comp]), 4) if extra[comp] else 0.0,
        }
        for comp in COMPONENTS
        if hit[comp]
    }
    out["us_per_string"] = {"mean": round(sum(us) / len(us), 1), "p50": round(us[len(us) // 2], 1)}
    return out


def machine() -> dict[str, str]:
    try:
        return machine_facts(ADMIN_URL)
    except Exception:  # no database here: the facts without its versions
        return {
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "cores": str(os.cpu_count()),
            "os": platform.platform(),
            "python": sys.version.split()[0],
        }


def markdown(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    lines = []
    for part, by_parser in results.items():
        lines += [
            f"### {part}",
            "",
            "| component | n | GeoShare | JioNLP | cpca |",
            "|---|---:|---:|---:|---:|",
        ]
        ours = by_parser["geoshare"]
        for comp in COMPONENTS:
            if comp not in ours:
                continue
            cells = []
            for p in ("geoshare", "jionlp", "cpca"):
                r = by_parser.get(p, {}).get(comp)
                cells.append(f"{100 * r['accuracy']:.1f}%" if r else "–")
            lines.append(f"| {comp} | {ours[comp]['n']} | " + " | ".join(cells) + " |")
        speeds = [f"{p} {by_parser[p]['us_per_string']['mean']} µs" for p in by_parser]
        lines += ["", "mean per string: " + ", ".join(speeds), ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=None, help="rows per corpus (default: all)")
    ap.add_argument("--no-others", action="store_true", help="GeoShare only (no JioNLP/cpca subprocess)")
    args = ap.parse_args()
    if not SHARED.exists():
        sys.exit(f"{SHARED} is absent: the real corpora are not on this machine")
    results: dict[str, dict[str, dict[str, Any]]] = {}
    versions: dict[str, str] = {}
    python = None if args.no_others else ensure_venv()
    for corpus in CORPORA:
        data = list(rows(SHARED / corpus, args.limit))
        texts = [r["text"] for r in data]
        golds = [gold(r) for r in data]
        held = [heldout(r["id"]) for r in data]
        print(f"{corpus}: {len(data)} rows; GeoShare …", flush=True)
        answers = {"geoshare": run_ours(texts)}
        if python is not None:
            print("  JioNLP and cpca in their venv …", flush=True)
            other = run_others(python, texts)
            versions = other["versions"]
            answers["jionlp"], answers["cpca"] = other["jionlp"], other["cpca"]
        name = corpus.removesuffix("_train.jsonl")
        for part, which in (("train", [True] * len(data)), ("heldout", held)):
            results[f"{name}.{part}"] = {p: score(golds, a, which, p) for p, a in answers.items()}
    report = {
        "benchmark": "address parsing on real labelled corpora vs JioNLP parse_location and cpca",
        "corpora": list(CORPORA),
        "limit": args.limit,
        "machine": machine() | versions,
        "results": results,
    }
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = RESULTS / f"address-parse-{stamp}.json"
    body = json.dumps(report, ensure_ascii=False, indent=2)
    out.write_text(body)
    (RESULTS / "address-parse-latest.json").write_text(body)
    print(markdown(results))
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
