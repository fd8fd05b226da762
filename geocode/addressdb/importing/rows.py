"""Row verdicts (rejects with line numbers and reasons) and door / building number parsing."""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pandas as pd

from geocode.normalize import cn_to_int

Reasons = str | np.ndarray | Callable[[np.ndarray], list[str]]


class Verdicts:
    """Per row: the first problem found (rows without one are accepted) and its reason."""

    def __init__(self, problem: np.ndarray, reason: np.ndarray) -> None:
        self.problem = problem.copy()
        self.reason = reason.copy()

    @property
    def ok(self) -> np.ndarray:
        return pd.isna(self.problem)

    def reject(self, mask: np.ndarray, problem: str, reason: Reasons) -> None:
        """Reject rows in ``mask`` not rejected yet; a callable builds reasons for just those rows."""
        rows = np.flatnonzero(np.asarray(mask, dtype=bool) & self.ok)
        if not len(rows):
            return
        self.problem[rows] = problem
        if callable(reason):
            self.reason[rows] = np.array(reason(rows), dtype=object)
        elif isinstance(reason, np.ndarray):  # one reason per row of the file
            self.reason[rows] = reason[rows]
        else:
            self.reason[rows] = reason


_NUMERAL = r"\d+|[零〇○一二两三四五六七八九十百千]+"
_DOOR_RE = re.compile(
    rf"^(?P<pre>[甲乙丙丁戊])?(?P<num>{_NUMERAL})(?:(?P<sep>[-之])(?P<sub>\d+))?(?P<post>[甲乙丙丁戊])?号?院?$"
)
_BUILDING_RE = re.compile(rf"^第?(?P<num>{_NUMERAL})(?:号楼|号|栋|幢|座|#|楼)?$")
_DASHES = str.maketrans({"—": "-", "–": "-", "‐": "-", "－": "-", "~": "-", "號": "号"})
_STEMS = ("甲", "乙", "丙", "丁", "戊")


def _to_int(text: str | None) -> int | None:
    if not text:
        return None
    return int(text) if text.isdigit() else cn_to_int(text)


def _parse_door(value: str) -> tuple[int | None, str, str | None, str | None]:
    m = _DOOR_RE.match(value.translate(_DASHES))
    number = _to_int(m["num"]) if m else None
    if m is None or number is None or (m["pre"] and m["post"]):
        return None, "", "no_door_number", f"no usable door number in {value!r}"
    if not 1 <= number <= 9999:
        return None, "", "door_number_out_of_range", f"door number {number} is outside 1..9999"
    suffix = m["pre"] or m["post"] or ""
    if m["sep"]:
        sub = int(m["sub"])
        if suffix or not 1 <= sub <= 9:
            return None, "", "unsupported_door_suffix", f"door suffix in {value!r} is not supported"
        suffix = f"{m['sep']}{sub}"
    return number, suffix, None, None


def _parse_building(value: str) -> tuple[int | None, str | None, str | None]:
    m = _BUILDING_RE.match(value)
    number = _to_int(m["num"]) if m else None
    if number is None:
        return None, "bad_building_number", f"no usable building number in {value!r}"
    if not 1 <= number <= 999:
        return None, "bad_building_number", f"building number {number} is outside 1..999"
    return number, None, None


def _per_distinct(
    values: pd.Series, parse: Callable[[str], tuple], blank: tuple, columns: list[str]
) -> pd.DataFrame:
    """Parse each distinct value once (a city has far fewer distinct doors than rows)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    table = pd.DataFrame([parse(str(u)) for u in uniques] + [blank], columns=columns)
    out = table.iloc[codes].reset_index(drop=True)
    out.index = values.index
    return out


def parse_doors(doors: pd.Series) -> pd.DataFrame:
    """ "甲12号" → (12, "甲"), "12-1号" → (12, "-1"), "12" → (12, ""); else a problem and reason."""
    blank = (None, "", "no_door_number", "the door number is empty")
    return _per_distinct(doors, _parse_door, blank, ["number", "suffix", "problem", "reason"])


def parse_buildings(buildings: pd.Series) -> pd.DataFrame:
    """ "3号楼", "3栋", "3", "三号楼" → 3; blank → NA (a door address); else a problem and reason."""
    return _per_distinct(buildings, _parse_building, (None, None, None), ["number", "problem", "reason"])


def door_text(number: np.ndarray, suffix: np.ndarray) -> np.ndarray:
    """The door as addresses write it: 12号, 甲12号, 12-1号, 12之1号."""
    n = np.asarray(number, dtype=np.int64).astype(str).astype(object)
    s = np.asarray(suffix, dtype=object)
    return np.where(np.isin(s, _STEMS), s + n + "号", n + s + "号")
