"""Query normalisation: one canonical spelling before any lookup.

Full-width forms become half-width (NFKC), 號 becomes 号, building words (栋/幢/座/#) become 号楼,
Chinese numerals that count doors, buildings, units, rooms and floors become digits (二十七号 → 27号,
一〇八号 → 108号) while numerals inside names stay (三里屯路, 头条), and separators go. What is left
is a string of Han characters, digits, ASCII letters and ``-`` between numbers.
"""

from __future__ import annotations

import re
import unicodedata

MAX_QUERY_CHARS = 200
"""Longer queries are not addresses; the API rejects them before they get here."""

_CN_DIGITS = {
    "零": 0,
    "〇": 0,
    "○": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_CN_UNITS = {"十": 10, "百": 100, "千": 1000}
_NUMERAL = "零〇○一二两三四五六七八九十百千"
_COUNTED = "号楼|号院|号|栋|幢|座|单元|室|层|楼|户|院"
_CN_NUMBER_RE = re.compile(rf"(?<![{_NUMERAL}])([{_NUMERAL}]+)(?=(?:{_COUNTED}))")
_SEPARATORS_RE = re.compile(r"[\s,，。.、;；:：!！?？\"'“”‘’`()（）\[\]【】{}<>《》「」『』|/\\_~*&^%$@=+]+")
_DASHES_RE = re.compile(r"(?<=\d)\s*[-－—–~～之]\s*(?=\d)")
_HASH_RE = re.compile(r"(?<=\d)#")
_BUILDING_WORD_RE = re.compile(r"(?<=\d)(?:号?栋|号?幢|号?座|号楼)")
_KEEP_RE = re.compile(r"[^\u3400-\u9fff\uf900-\ufaff0-9A-Za-z\-]+")

_TRADITIONAL = (
    "號号東东區区門门華华內内興兴豐丰臺台灣湾園园樓楼單单層层裡里莊庄鎮镇鄉乡縣县廣广陽阳義义慶庆雲云長长橋桥龍龙"
    "鳳凤寧宁頭头條条廠厂嶺岭綫线線线紅红車车馬马島岛灘滩溝沟營营渦涡壩坝塢坞壇坛壽寿豐丰觀观閣阁館馆廟庙欄栏"
    "苑苑國国開开發发農农場场電电鐵铁廣广衛卫學学滙汇匯汇寶宝順顺興兴濱滨灤滦灣湾衚胡衕同體体育育羅罗鑫鑫萬万"
)
_CHAR_MAP = str.maketrans(
    {
        **dict(zip(_TRADITIONAL[::2], _TRADITIONAL[1::2], strict=True)),
        "—": "-",
        "－": "-",
        "–": "-",
    }
)


def cn_to_int(text: str) -> int | None:
    """二十七 → 27, 一〇八 → 108, 三 → 3; None when the numeral is malformed."""
    if all(ch in _CN_DIGITS for ch in text):
        # digit by digit (一〇八); a lone 十 is handled below
        return int("".join(str(_CN_DIGITS[ch]) for ch in text))
    total, current = 0, 0
    for ch in text:
        if ch in _CN_DIGITS:
            current = _CN_DIGITS[ch]
        elif ch in _CN_UNITS:
            total += (current or 1) * _CN_UNITS[ch]
            current = 0
        else:
            return None
    return total + current


def _numeral(match: re.Match[str]) -> str:
    value = cn_to_int(match.group(1))
    return match.group(1) if value is None else str(value)


def normalize(text: str) -> str:
    """The canonical form the parser works on; empty when nothing usable is left."""
    text = unicodedata.normalize("NFKC", text[: MAX_QUERY_CHARS * 2]).translate(_CHAR_MAP)
    text = _SEPARATORS_RE.sub("", _DASHES_RE.sub("-", text))
    text = _CN_NUMBER_RE.sub(_numeral, text)
    text = _HASH_RE.sub("号楼", text)
    text = _BUILDING_WORD_RE.sub("号楼", text)
    return _KEEP_RE.sub("", text)


def split_segments(text: str) -> list[str]:
    """Pieces between separators, each normalised: "将台东路22号 朝阳区" → two segments.

    Separators carry meaning only for word order (an admin name written after the road);
    the parser uses them to find such trailing admin names.
    """
    text = unicodedata.normalize("NFKC", text[: MAX_QUERY_CHARS * 2])
    pieces = re.split(r"[\s,，。;；、|/]+", text)
    return [p for p in (normalize(piece) for piece in pieces) if p]
