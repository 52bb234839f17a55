"""Pure: OpenAI's `size` ("WxH") and `seconds` in the terms of a catalog model's schema.

`size` goes to the model's own `size` ("1280*720") when it has one, else to `resolution` from
the short side (480 → 480p, 540 → 540p, 720 → 720p, 1080 → 1080p) and `ratio` from the reduced
W:H (within 2 %, so 854x480 reads as 16:9). A size the model cannot do is a 400 naming `size`
with the sizes it can; `seconds` is checked against `duration` with errors naming `seconds`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from llmage.domain.catalog import ModelEntry
from llmage.domain.errors import InvalidParameter
from llmage.domain.params import ParamSpec

SHORT_SIDE = {480: "480p", 540: "540p", 720: "720p", 1080: "1080p"}
SIDE_OF = {v: k for k, v in SHORT_SIDE.items()}
_SIZE_RE = re.compile(r"^\s*(\d{1,5})\s*[xX*×]\s*(\d{1,5})\s*$")
_RATIO_RE = re.compile(r"^\s*(\d{1,3})\s*:\s*(\d{1,3})\s*$")
_RATIO_TOLERANCE = 0.02
# Ratios offered by size when a model takes `resolution` but no `ratio` (the image decides).
_FREE_RATIOS = ("16:9", "9:16", "1:1")


def parse_size(text: Any) -> tuple[int, int] | None:
    match = _SIZE_RE.match(str(text))
    if match is None:
        return None
    width, height = int(match[1]), int(match[2])
    return (width, height) if width > 0 and height > 0 else None


def parse_ratio(text: Any) -> tuple[int, int] | None:
    match = _RATIO_RE.match(str(text))
    if match is None or int(match[1]) == 0 or int(match[2]) == 0:
        return None
    return int(match[1]), int(match[2])


def _even(n: float) -> int:
    return 2 * round(n / 2)


def dims(resolution: str, ratio: tuple[int, int]) -> tuple[int, int]:
    """Pixel size of a resolution tier at a ratio (short side fixed, long side even)."""
    short = SIDE_OF[resolution.lower()]
    a, b = ratio
    return (_even(short * a / b), short) if a >= b else (short, _even(short * b / a))


def _match_ratio(width: int, height: int, allowed: Sequence[object]) -> str | None:
    g = math.gcd(width, height)
    exact = f"{width // g}:{height // g}"
    for value in allowed:
        if str(value) == exact:
            return str(value)
    for value in allowed:
        parsed = parse_ratio(value)
        if parsed and abs((width / height) / (parsed[0] / parsed[1]) - 1) <= _RATIO_TOLERANCE:
            return str(value)
    return None


def _match_enum(value: str, spec: ParamSpec) -> str | None:
    if spec.enum is None:
        return value
    return next((str(v) for v in spec.enum if str(v).lower() == value.lower()), None)


def allowed_sizes(entry: ModelEntry) -> list[str]:
    size = entry.param("size")
    if size is not None:
        return [str(v).replace("*", "x") for v in size.enum or ()]
    res, ratio = entry.param("resolution"), entry.param("ratio")
    tiers = [str(v) for v in (res.enum if res and res.enum else ()) if str(v).lower() in SIDE_OF]
    ratios = [r for v in (ratio.enum or ()) if (r := parse_ratio(v))] if ratio else []
    if not ratios:
        ratios = [r for v in _FREE_RATIOS if (r := parse_ratio(v))]
    if not tiers:  # ratio only: any tier will do; show 720p
        tiers = ["720p"]
    out: list[str] = []
    for tier in tiers:
        for r in ratios:
            w, h = dims(tier, r)
            if f"{w}x{h}" not in out:
                out.append(f"{w}x{h}")
    return out


def size_params(size: Any, entry: ModelEntry, raw: Mapping[str, Any]) -> dict[str, Any]:
    """The catalog parameters that ask `entry` for an OpenAI `size`."""

    def bad(why: str = "") -> InvalidParameter:
        msg = f"Invalid value for parameter 'size': {size}" + (f" ({why})" if why else "")
        return InvalidParameter(
            f"{msg}; model '{entry.default_name}' supports other sizes",
            param="size",
            allowed=allowed_sizes(entry),
        )

    parsed = parse_size(size)
    if parsed is None:
        raise InvalidParameter(
            f"Invalid value for parameter 'size': {size} is not WIDTHxHEIGHT",
            param="size",
            allowed=allowed_sizes(entry),
        )
    width, height = parsed
    spec = entry.param("size")
    if spec is not None:
        for form in (f"{width}*{height}", f"{width}x{height}"):
            if spec.enum is None or form in spec.enum:
                return {"size": form}
        raise bad()
    res, ratio = entry.param("resolution"), entry.param("ratio")
    if res is None and ratio is None:
        raise InvalidParameter(
            f"Model '{entry.default_name}' does not take a size", param="size", allowed=()
        )
    out: dict[str, Any] = {}
    if res is not None:
        tier = SHORT_SIDE.get(min(width, height))
        picked = _match_enum(tier, res) if tier else None
        if picked is None:
            raise bad("unsupported resolution")
        out["resolution"] = picked
    if ratio is not None:
        picked = _match_ratio(width, height, ratio.enum or ())
        if picked is None:
            if ratio.enum is not None:
                raise bad("unsupported aspect ratio")
            g = math.gcd(width, height)
            picked = f"{width // g}:{height // g}"
        out["ratio"] = picked
    for name, value in out.items():
        given = raw.get(name)
        if given not in (None, "") and str(given).lower() != str(value).lower():
            raise InvalidParameter(f"'size' {size} conflicts with '{name}' {given}", param="size")
    return out


def seconds_params(seconds: Any, entry: ModelEntry | None, raw: Mapping[str, Any]) -> int:
    """OpenAI `seconds` (a string) as the catalog's `duration`, checked with errors that name
    `seconds`."""
    spec = entry.param("duration") if entry else None
    allowed = spec.enum if spec else None
    try:
        number = float(str(seconds).strip())
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or not number.is_integer():
        raise InvalidParameter(
            f"Invalid value for parameter 'seconds': {seconds} is not a whole number",
            param="seconds",
            allowed=allowed,
        )
    value = int(number)
    if spec is not None:
        if spec.enum is not None and value not in spec.enum:
            raise InvalidParameter(
                f"Invalid value for parameter 'seconds': {seconds}",
                param="seconds",
                allowed=allowed,
            )
        low, high = spec.minimum, spec.maximum
        if (low is not None and value < low) or (high is not None and value > high):
            rule = " and ".join(
                f"{word} {int(bound)}"
                for word, bound in (("at least", low), ("at most", high))
                if bound is not None
            )
            raise InvalidParameter(
                f"Invalid value for parameter 'seconds': {seconds} must be {rule}",
                param="seconds",
            )
    given = raw.get("duration")
    if given not in (None, "") and str(given).strip() != str(value):
        raise InvalidParameter(
            f"'seconds' {seconds} conflicts with 'duration' {given}", param="seconds"
        )
    return value
