"""The fonts labels are drawn with: a CJK face found on the machine at run time, then Mapnik's own.

Nothing is configured by path: the standard font directories (XDG data dirs, the user's font dirs)
are searched once per process, plus any listed in ``GEOSHARE_FONT_DIRS`` (``os.pathsep``-separated).
Any Debian CJK font package works (``fonts-noto-cjk``, ``fonts-wqy-microhei``, ``fonts-wqy-zenhei``).
Without one, Chinese labels would be drawn as empty boxes: a warning says so.
"""

from __future__ import annotations

import logging
import os
import threading
from functools import cache
from pathlib import Path

from layers.render import engine

log = logging.getLogger("geoshare.render")

#: preferred faces first: Noto/Source Han (the best CJK coverage), then WenQuanYi, then the rest
CJK_PREFERRED = (
    "Noto Sans CJK SC Regular",
    "Source Han Sans SC Regular",
    "Source Han Sans CN Regular",
    "WenQuanYi Micro Hei Regular",
    "WenQuanYi Zen Hei Regular",
    "Noto Sans SC Regular",
    "Droid Sans Fallback Regular",
    "AR PL UMing CN Light",
)
_CJK_HINTS = ("CJK", "WenQuanYi", "Han Sans", "Hei", "Song", "Kai", "Ming", "Fallback")
LATIN_FALLBACK = "DejaVu Sans Book"
_lock = threading.Lock()


def font_dirs() -> list[Path]:
    """Standard font directories that exist, user ones first."""
    home = Path.home()
    data_home = os.environ.get("XDG_DATA_HOME") or str(home / ".local" / "share")
    data_dirs = (os.environ.get("XDG_DATA_DIRS") or "/usr/local/share:/usr/share").split(":")
    extra = [d for d in os.environ.get("GEOSHARE_FONT_DIRS", "").split(os.pathsep) if d]
    candidates = [*map(Path, extra), Path(data_home) / "fonts", home / ".fonts"]
    candidates += [Path(d) / "fonts" for d in data_dirs if d]
    seen: list[Path] = []
    for path in candidates:
        if path.is_dir() and path not in seen:
            seen.append(path)
    return seen


def pick_cjk(faces: list[str]) -> str | None:
    """The best CJK face among ``faces`` (None when there is none)."""
    available = set(faces)
    for face in CJK_PREFERRED:
        if face in available:
            return face
    hinted = sorted(f for f in faces if any(h in f for h in _CJK_HINTS) and "Bold" not in f)
    return hinted[0] if hinted else None


@cache
def label_faces() -> tuple[str, ...]:
    """Faces of the label font set, best first: a CJK face (when one is installed), then Latin."""
    with _lock:
        for directory in font_dirs():
            engine.register_fonts(str(directory))
        faces = engine.face_names()
    cjk = pick_cjk(faces)
    if cjk is None:
        log.warning("no CJK font found in %s: Chinese labels cannot be drawn", font_dirs())
    latin = LATIN_FALLBACK if LATIN_FALLBACK in faces else (faces[0] if faces else None)
    return tuple(f for f in (cjk, latin) if f)
