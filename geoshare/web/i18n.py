"""Portal copy in zh-CN (the default) and English: one JSON file per language, same keys.

The server renders the page chrome from it and hands the same messages to the page's script, so
text built in the browser (results, popups) speaks the page's language too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

LANGS = ("zh-CN", "en")
DEFAULT_LANG = "zh-CN"
COOKIE = "gs_lang"
_DIR = Path(__file__).resolve().parent / "i18n"


@lru_cache(maxsize=len(LANGS))
def messages(lang: str) -> dict[str, str]:
    return json.loads((_DIR / f"{lang}.json").read_text(encoding="utf-8"))


def normalise(value: str | None) -> str | None:
    """``zh-CN``/``zh``/``en``/``en-US`` … (any case) to a supported language, else None."""
    if not value:
        return None
    low = value.strip().lower()
    if low in ("zh", "zh-cn", "zh-hans", "zh_cn"):
        return "zh-CN"
    if low == "en" or low.startswith("en-"):
        return "en"
    return None


def translator(lang: str) -> Callable[..., str]:
    """``t(key, **values)`` for templates: the message, formatted; the key itself when missing."""
    table = messages(lang)

    def t(key: str, **values: object) -> str:
        text = table.get(key, key)
        return text.format(**values) if values else text

    return t
