"""Query normalisation: one canonical spelling before any lookup.

Full-width forms become half-width (NFKC), 號 becomes 号, building words (栋/幢/座/#) become 号楼,
Chinese numerals that count doors, buildings, units, rooms and floors become digits (二十七号 → 27号,
一〇八号 → 108号) while numerals inside names stay (三里屯路, 头条), and separators go. What is left
is a string of Han characters, digits, ASCII letters and ``-`` between numbers.

Before that, :func:`clean` drops what people (and the systems they copy from) put around an
address: labels (注册地址：), ``null``, six-digit postcodes, phone numbers, 电联, and dashes used as
separators between names (浙江省-金华市-义乌市); a dash between numbers (7-6-1046) stays.
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
_COUNTED = "号楼|号院|号|栋|幢|座|单元|室|层|楼|户|院|期|组"
_CN_NUMBER_RE = re.compile(rf"(?<![{_NUMERAL}])([{_NUMERAL}]+)(?=(?:{_COUNTED}))")
_SEPARATORS_RE = re.compile(r"[\s,，。.、;；:：!！?？\"'“”‘’`()（）\[\]【】{}<>《》「」『』|/\\_~*&^%$@=+]+")
_DASHES_RE = re.compile(r"(?<=\d)\s*[-－—–~～之一/_]\s*(?=\d)")  # 7-6-1046, 17一10一6, 139幢4/1268
_HASH_RE = re.compile(r"(?<=\d)#")
_BUILDING_WORD_RE = re.compile(r"(?<=\d)(?:号?栋|号?幢|号?座|号楼)")
_TYPO_BUILDING_RE = re.compile(r"(?<=[\dA-Za-z])[懂撞桩]")  # 栋 mistyped by pinyin input (dong, zhuang)
_REPEATED_PREFIX_RE = re.compile(r"^([\u4e00-\u9fff][\u4e00-\u9fff\d]{1,11}?)\1")
_TYPO_NUMERAL_BUILDING_RE = re.compile(r"(?<=[一二两三四五六七八九十])懂")
_LABEL_RE = re.compile(
    r"(?:[\u4e00-\u9fff]{0,6}(?:地址|住址|住所|场所|地点|位置)|邮编|邮政编码|电话|手机|联系电话|联系方式|tel|TEL|Tel)\s*[:：]"
    # a label that opens the text needs no colon (收货地址 北京市…)
    r"|^\s*[\u4e00-\u9fff]{0,4}(?:地址|住址|住所|场所)\s+"
)
_JUNK_WORD_RE = re.compile(r"(?<![A-Za-z])(?:null|NULL|Null|None|none|undefined|nan|NaN)(?![A-Za-z])|电联")
_PHONE_RE = re.compile(
    r"(?:(?:联系)?电话|手机|tel|TEL|Tel)?\s*(?<!\d)(?:1[3-9]\d{9}|0\d{2,3}-?\d{7,8})(?!\d)"
)
_POSTCODE_RE = re.compile(
    r"(?:^|(?<=[\s,;:、。]))\d{6}(?=[\s,;:、。]|$|[\u4e00-\u9fff](?<![号栋幢楼室层单元]))"
)
_JUNK_RE = re.compile("|".join(f"(?:{r.pattern})" for r in (_LABEL_RE, _JUNK_WORD_RE, _PHONE_RE)))
_SIX_DIGITS_RE = re.compile(r"\d{6}")
_NAME_DASH_RE = re.compile(r"(?<![0-9A-Za-z])-+|-+(?![0-9A-Za-z])")
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


def clean(text: str) -> str:
    """Labels, ``null``, postcodes, phone numbers and name-separating dashes removed (NFKC first)."""
    text = unicodedata.normalize("NFKC", text[: MAX_QUERY_CHARS * 2]).translate(_CHAR_MAP)
    text = _JUNK_RE.sub(" ", text)
    if _SIX_DIGITS_RE.search(text):  # most addresses have no six digits in a row: skip the postcode rule
        text = _POSTCODE_RE.sub(" ", text.strip())
    if "-" in text or "之" in text or "一" in text or "/" in text or "_" in text or "~" in text:
        text = _DASHES_RE.sub("-", text)
    return _NAME_DASH_RE.sub(" ", text) if "-" in text else text


def normalize(text: str) -> str:
    """The canonical form the parser works on; empty when nothing usable is left."""
    text = _SEPARATORS_RE.sub("", clean(text))
    text = _REPEATED_PREFIX_RE.sub(r"\1", text)  # 丰台丰台长辛店三街: a prefix pasted twice
    text = _TYPO_NUMERAL_BUILDING_RE.sub("栋", text)  # 四懂: a numeral then 栋 mistyped
    text = _CN_NUMBER_RE.sub(_numeral, text)
    text = _HASH_RE.sub("号楼", _TYPO_BUILDING_RE.sub("栋", text))
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
