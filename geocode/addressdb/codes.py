"""Address codes in the region-based form of GB/T 39609-2020.

``community code (12) + road code (4) + door number (4) + door suffix (2) + building (3)``: the
division code locates the region, the rest the street/compound, building and door within it.
Every part comes from a stable identifier, so re-importing the same addresses gives the same
codes whatever the row order. Units and rooms extend a building's code with ``unit (2) + room (4)``
(see :func:`room_code`); they are not stored as rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from layers.errors import InvalidInput

_SUFFIX_CODES: dict[str, int] = {"": 0, "甲": 1, "乙": 2, "丙": 3, "丁": 4, "戊": 5}
_SUFFIX_CODES.update({f"-{k}": 10 + k for k in range(1, 10)})
_SUFFIX_CODES.update({f"之{k}": 10 + k for k in range(1, 10)})


def suffix_code(suffix: str) -> int:
    try:
        return _SUFFIX_CODES[suffix]
    except KeyError:
        raise InvalidInput(f"unsupported door suffix {suffix!r}", field="door_suffix") from None


def address_codes(
    community_code: pd.Series,
    road_code: pd.Series,
    door_number: pd.Series,
    door_suffix: pd.Series,
    building_number: pd.Series,
) -> np.ndarray:
    """Codes for many addresses at once; ``building_number`` NA means the door itself (000)."""
    door = np.asarray(door_number, dtype=np.int64)
    if door.size and (door.min() < 1 or door.max() > 9999):
        raise InvalidInput("door numbers must be within 1..9999", field="door_number")
    suffix = pd.Series(door_suffix).fillna("").map(_SUFFIX_CODES)
    if suffix.isna().any():
        bad = pd.Series(door_suffix)[suffix.isna().to_numpy()].iloc[0]
        raise InvalidInput(f"unsupported door suffix {bad!r}", field="door_suffix")
    building = pd.Series(building_number).fillna(0).astype(np.int64).to_numpy()
    return (
        pd.Series(community_code, dtype=str).str.zfill(12).to_numpy(dtype=object)
        + pd.Series(road_code, dtype=str).str.zfill(4).to_numpy(dtype=object)
        + np.char.zfill(door.astype(str), 4).astype(object)
        + np.char.zfill(suffix.astype(np.int64).to_numpy().astype(str), 2).astype(object)
        + np.char.zfill(building.astype(str), 3).astype(object)
    )


def room_code(building_address_code: str, unit: int, room: int) -> str:
    return f"{building_address_code}{unit:02d}{room:04d}"
