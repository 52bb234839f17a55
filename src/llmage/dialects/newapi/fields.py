"""Field helpers for the new-api translation: one value from several places, media inputs, and
`size` / `width` + `height` turned into what a model's schema takes. Pure functions."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from llmage.dialects.submission import to_media
from llmage.domain.catalog import ModelEntry, canonical_value
from llmage.domain.errors import InvalidParameter, LlmageError
from llmage.domain.params import ParamSpec
from llmage.domain.tasks import MediaSource

# (label as the client wrote it, value): the label names the field in error messages.
Sourced = tuple[str, Any]

_SIZE_RE = re.compile(r"^\s*(\d{1,5})\s*[*xX×]\s*(\d{1,5})\s*$")
_RATIO_RE = re.compile(r"^\s*(\d{1,3})\s*:\s*(\d{1,3})\s*$")
RATIO_TOLERANCE = 0.02  # 854x480 is 16:9


def present(value: Any) -> bool:
    return value is not None and value != "" and value != []


def agree(found: Sequence[Sourced], spec: ParamSpec | None = None) -> Sourced | None:
    """The one value several places give for a field; 400 when they disagree. With `spec`,
    spellings of one value (5 and "5", 720P and 720p) agree."""
    found = [(label, value) for label, value in found if present(value)]
    if not found:
        return None
    first_label, first = found[0]
    for label, value in found[1:]:
        same = (
            canonical_value(spec, value) == canonical_value(spec, first)
            if spec is not None
            else value == first
        )
        if not same:
            raise InvalidParameter(
                f"'{first_label}' and '{label}' give different values ({first!r}, {value!r})",
                param=label,
            )
    return found[0]


def _to_media(value: Any, label: str) -> MediaSource | list[MediaSource] | None:
    try:
        return to_media(value, label)
    except LlmageError as exc:  # e.g. bad inline base64: say which field it was
        exc.param = exc.param or label
        raise


def one_media(found: Sequence[Sourced]) -> tuple[str, MediaSource] | None:
    files: list[Sourced] = []
    for label, value in found:
        media = _to_media(value, label)
        if isinstance(media, list):
            if len(media) > 1:
                raise InvalidParameter(f"'{label}' takes one image, got {len(media)}", param=label)
            media = media[0] if media else None
        if media is not None:
            files.append((label, media))
    picked = agree(files)
    return (picked[0], picked[1]) if picked else None


def media_list(found: Sequence[Sourced]) -> tuple[str, list[MediaSource]] | None:
    lists: list[Sourced] = []
    for label, value in found:
        media = _to_media(value, label)
        if media is not None:
            lists.append((label, media if isinstance(media, list) else [media]))
    picked = agree(lists)
    return (picked[0], picked[1]) if picked else None


@dataclass(slots=True)
class Inputs:
    """The request's images, before they are placed into the chosen model's file slots."""

    first: MediaSource | None = None
    last: MediaSource | None = None
    refs: list[MediaSource] = field(default_factory=list)
    last_label: str = "last_image"


def first_slot(entry: ModelEntry) -> ParamSpec | None:
    spec = entry.param("image1_file")
    if spec is not None:
        return spec
    return next((s for s in entry.params if s.type in ("image", "images")), None)


def place(entry: ModelEntry, inputs: Inputs, *, strict: bool) -> dict[str, Any] | None:
    """File params for `entry`, or None when it cannot take these inputs (`strict`: or lacks
    one it requires)."""
    out: dict[str, Any] = {}
    if inputs.first is not None:
        slot = first_slot(entry)
        if slot is None:
            return None
        out[slot.name] = inputs.first if slot.type == "image" else [inputs.first]
    if inputs.last is not None:
        if entry.param("image2_file") is None:
            return None
        out["image2_file"] = inputs.last
    if inputs.refs:
        if entry.param("image_files") is None:
            return None
        out["image_files"] = list(inputs.refs)
    required = {s.name for s in entry.params if s.is_file and s.required}
    if strict and not required <= out.keys():
        return None
    return out


# -- size ---------------------------------------------------------------------------------------


def parse_dims(text: object) -> tuple[int, int] | None:
    match = _SIZE_RE.match(str(text))
    if match is None:
        return None
    width, height = int(match[1]), int(match[2])
    return (width, height) if width > 0 and height > 0 else None


def requested_dims(
    size: Sourced | None, width: Sourced | None, height: Sourced | None
) -> tuple[int, int] | None:
    """`size` ("1920x1080", "1920*1080") or `width` + `height`, which must agree if both."""
    dims: tuple[int, int] | None = None
    if size is not None:
        dims = parse_dims(size[1])
        if dims is None:
            raise InvalidParameter(
                f"Invalid value for parameter '{size[0]}': {size[1]!r}; expected WIDTHxHEIGHT "
                "such as 1920x1080",
                param=size[0],
            )
    if width is None and height is None:
        return dims
    if width is None or height is None:
        missing = "width" if width is None else "height"
        raise InvalidParameter("width and height go together; give both", param=missing)
    wh = (_positive_int(*width), _positive_int(*height))
    if dims is not None and dims != wh:
        raise InvalidParameter(
            f"size {dims[0]}x{dims[1]} and width/height {wh[0]}x{wh[1]} disagree", param="size"
        )
    return wh


def _positive_int(label: str, value: Any) -> int:
    number = 0
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    if number <= 0:
        raise InvalidParameter(
            f"Invalid value for parameter '{label}': {value!r} is not a positive integer",
            param=label,
        )
    return number


def _no_match(entry_label: str, what: str, dims: tuple[int, int], spec: ParamSpec) -> Exception:
    return InvalidParameter(
        f"size {dims[0]}x{dims[1]} matches no {what} of model '{entry_label}'",
        param="size",
        allowed=spec.enum,
    )


def size_value(model: str, spec: ParamSpec, dims: tuple[int, int]) -> object:
    if not spec.enum:
        return f"{dims[0]}x{dims[1]}"
    for allowed in spec.enum:
        if parse_dims(allowed) == dims:
            return allowed
    raise _no_match(model, "size", dims, spec)


def ratio_value(model: str, spec: ParamSpec, dims: tuple[int, int]) -> object:
    width, height = dims
    g = math.gcd(width, height)
    exact = f"{width // g}:{height // g}"
    if not spec.enum:
        return exact
    want = width / height
    best: tuple[float, object] | None = None
    for allowed in spec.enum:
        match = _RATIO_RE.match(str(allowed))
        if match is None or int(match[2]) == 0:
            continue
        off = abs(int(match[1]) / int(match[2]) - want) / want
        if off <= RATIO_TOLERANCE and (best is None or off < best[0]):
            best = (off, allowed)
    if best is None:
        raise _no_match(model, "aspect ratio", dims, spec)
    return best[1]


def resolution_value(model: str, spec: ParamSpec, dims: tuple[int, int]) -> object:
    label = f"{min(dims)}p"
    if not spec.enum:
        return label
    for allowed in spec.enum:
        if str(allowed).casefold() == label:
            return allowed
    raise _no_match(model, "resolution", dims, spec)


def fill_from_dims(
    model: str,
    entry: ModelEntry,
    dims: tuple[int, int],
    raw: dict[str, Any],
    keep: Mapping[str, object],
) -> bool:
    """Set the size-like params `raw` (and the alias's fixed `keep`) leave open; False when
    the model has none, so the caller can pass `size` through as it is."""
    spec = entry.param("size")
    if spec is not None:
        if not _given(spec, raw):
            raw[spec.name] = size_value(model, spec, dims)
        return True
    used = False
    for name, derive in (("ratio", ratio_value), ("resolution", resolution_value)):
        spec = entry.param(name)
        if spec is None:
            continue
        used = True
        if not _given(spec, raw) and name not in keep:
            raw[spec.name] = derive(model, spec, dims)
    return used


def _given(spec: ParamSpec, raw: Mapping[str, Any]) -> bool:
    return any(present(raw.get(key)) for key in spec.names)
