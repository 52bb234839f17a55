"""Phone numbers as the console stores them: one spelling per number, so uniqueness holds.

Mainland China mobile numbers (the common case, and what Aliyun SMS sends to without a country
code) are stored as their 11 digits; `+86`/`0086` prefixes and separators are dropped. Other
numbers keep an explicit international form: `+` and 7–15 digits.
"""

from __future__ import annotations

import re

from llmage.domain.errors import InvalidParameter

_SEPARATORS = re.compile(r"[\s\-()]")
_MAINLAND = re.compile(r"1[3-9]\d{9}")
_INTERNATIONAL = re.compile(r"\+[1-9]\d{6,14}")


def normalize_phone(text: str, param: str = "phone") -> str:
    raw = _SEPARATORS.sub("", text.strip())
    if raw.startswith("00"):
        raw = "+" + raw[2:]
    if raw.startswith("+86"):
        raw = raw[3:]
    if _MAINLAND.fullmatch(raw) or _INTERNATIONAL.fullmatch(raw):
        return raw
    raise InvalidParameter(
        "phone must be a mainland mobile number (11 digits, e.g. 13800138000) or an "
        "international number starting with + and the country code",
        param=param,
    )


def mask_phone(phone: str) -> str:
    """What a page may show: 138****8000."""
    if len(phone) < 7:
        return "*" * len(phone)
    return f"{phone[:3]}****{phone[-4:]}"
