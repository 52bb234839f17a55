"""Request parameters: validation, normalisation and JSON Schema rendering.

Pure functions over `ParamSpec` tuples: the catalog's per-model parameters, and the fields each
dialect reads itself (model, callback_url, response_format, ...), which go through the same
rules (`read_fields`). Requests arrive as JSON (typed values) or as multipart forms (every scalar
is a string, a field sent twice is a list), so validation coerces before it checks; a list or an
object where one value is expected is a 400 that names the field. The normalised dict is what
providers and pricing read, so it always uses canonical names and values.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from llmage.domain.errors import InvalidParameter, MissingParameter

SCALAR_TYPES = frozenset({"string", "integer", "number", "boolean"})
SINGLE_FILE_TYPES = frozenset({"image", "video", "audio"})
MULTI_FILE_TYPES = frozenset({"images", "videos", "audios"})
FILE_TYPES = SINGLE_FILE_TYPES | MULTI_FILE_TYPES
PARAM_TYPES = SCALAR_TYPES | FILE_TYPES
FORMATS = frozenset({"uri"})  # "uri": an absolute http(s) URL (webhooks, callbacks)
JSON_TYPES = frozenset({"string", "integer", "number", "boolean", "object", "array"})

# Spellings accepted for yes/no values: JSON booleans, form strings, and the seed's `Y`/`N`.
_TRUE = frozenset({"y", "yes", "true", "1", "on"})
_FALSE = frozenset({"n", "no", "false", "0", "off"})


class MissingParameterError(MissingParameter):
    """Wording matches the documented 400 body of seed 000."""


class InvalidParameterError(InvalidParameter):
    def __init__(self, param: str, message: str, allowed: Sequence[object] | None = None) -> None:
        super().__init__(message, param=param, allowed=allowed)


@dataclass(frozen=True, slots=True)
class ParamSpec:
    name: str
    type: str
    required: bool = False
    default: object = None
    enum: tuple[object, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    aliases: tuple[str, ...] = ()
    max_items: int | None = None
    description: str = ""
    case_insensitive: bool = False
    format: str | None = None  # strings only: one of FORMATS
    max_length: int | None = None  # strings only

    def __post_init__(self) -> None:
        if self.type not in PARAM_TYPES:
            raise ValueError(f"parameter {self.name!r}: unknown type {self.type!r}")
        if self.format is not None and (self.type != "string" or self.format not in FORMATS):
            raise ValueError(f"parameter {self.name!r}: bad format {self.format!r}")

    @property
    def is_file(self) -> bool:
        return self.type in FILE_TYPES

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


def _fmt(value: object) -> str:
    return value if isinstance(value, str) else repr(value)


def _fmt_allowed(allowed: Sequence[object]) -> str:
    return ", ".join(str(v) for v in allowed)


def _fmt_num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _absent(spec: ParamSpec, value: object) -> bool:
    """Whether a supplied value counts as "not given".

    JSON null is absent; so is an empty form field for anything but free text, because HTML forms
    and curl scripts send `duration=` for "use the default" (and `callback_url=` for "none").
    """
    if value is None:
        return True
    if isinstance(value, str) and not value.strip():
        return (
            spec.type != "string"
            or spec.enum is not None
            or spec.required
            or spec.format is not None
        )
    if isinstance(value, list | tuple) and not value:
        return spec.is_file
    return False


def _yes_no(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    return None


def _is_yn_enum(spec: ParamSpec) -> bool:
    return spec.enum is not None and {str(v) for v in spec.enum} == {"Y", "N"}


def _coerce(spec: ParamSpec, value: object, label: str) -> object:
    def bad(kind: str) -> InvalidParameterError:
        msg = f"Invalid value for parameter '{label}': {_fmt(value)} is not {kind}"
        return InvalidParameterError(spec.name, msg, spec.enum)

    if isinstance(value, list | tuple | dict | Mapping):
        # JSON arrays and objects, and multipart fields sent more than once (read as lists).
        raise InvalidParameterError(spec.name, _not_one_value(spec, value, label), spec.enum)
    if spec.type == "string":
        if _is_yn_enum(spec):
            # Vidu's off_peak is documented as "Y"/"N" but clients also send JSON booleans.
            flag = _yes_no(value)
            if flag is not None:
                return "Y" if flag else "N"
        if isinstance(value, str):
            return value.strip() if spec.enum is not None else value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise bad("a string")
    if spec.type == "integer":
        if isinstance(value, bool):
            raise bad("an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            text = value.strip()
            try:
                return int(text)
            except ValueError:
                try:
                    number = float(text)
                except ValueError:
                    raise bad("an integer") from None
                if number.is_integer():
                    return int(number)
        raise bad("an integer")
    if spec.type == "number":
        if isinstance(value, bool):
            raise bad("a number")
        if isinstance(value, int | float):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                raise bad("a number") from None
        else:
            raise bad("a number")
        if not math.isfinite(number):
            raise bad("a finite number")
        return int(number) if isinstance(value, int) else number
    # boolean
    flag = _yes_no(value)
    if flag is None:
        raise bad("a boolean (true/false, Y/N)")
    return flag


def _not_one_value(spec: ParamSpec, value: object, label: str) -> str:
    if isinstance(value, dict | Mapping):
        got = "a JSON object"
    else:
        n = len(value)  # type: ignore[arg-type]
        got = f"a list of {n} value{'' if n == 1 else 's'} (a JSON array, or a form field sent"
        got += " more than once)"
    return f"Invalid value for parameter '{label}': expected a single {spec.type}, got {got}"


# An absolute http(s) URL with a host; no whitespace or control characters anywhere.
_URI = re.compile(r"^https?://[^\s/?#@]+(?:@[^\s/?#@]+)?(?:[/?#]\S*)?$", re.IGNORECASE)


def _check_string(spec: ParamSpec, value: object, label: str) -> None:
    if not isinstance(value, str):
        return
    if spec.max_length is not None and len(value) > spec.max_length:
        raise InvalidParameterError(
            spec.name,
            f"Invalid value for parameter '{label}': longer than {spec.max_length} characters",
        )
    if spec.format == "uri" and (
        _URI.match(value) is None or any(ord(c) < 0x20 or c == "\x7f" for c in value)
    ):
        raise InvalidParameterError(
            spec.name, f"Invalid value for parameter '{label}': expected an http(s) URL"
        )


def _check_enum(spec: ParamSpec, value: object, label: str) -> object:
    assert spec.enum is not None
    for allowed in spec.enum:
        if value == allowed and type(value) is not bool:
            return allowed
    if spec.case_insensitive and isinstance(value, str):
        folded = value.casefold()
        for allowed in spec.enum:
            if isinstance(allowed, str) and allowed.casefold() == folded:
                return allowed  # canonical spelling, so pricing and providers see one form
    raise InvalidParameterError(
        spec.name,
        f"Invalid value for parameter '{label}': {_fmt(value)}. "
        f"Allowed values: {_fmt_allowed(spec.enum)}",
        spec.enum,
    )


def _check_range(spec: ParamSpec, value: object, label: str) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return
    low, high = spec.minimum, spec.maximum
    if (low is None or value >= low) and (high is None or value <= high):
        return
    if low is not None and high is not None:
        rule = f"must be between {_fmt_num(low)} and {_fmt_num(high)}"
    elif low is not None:
        rule = f"must be at least {_fmt_num(low)}"
    else:
        assert high is not None
        rule = f"must be at most {_fmt_num(high)}"
    raise InvalidParameterError(
        spec.name, f"Invalid value for parameter '{label}': {_fmt(value)} {rule}", None
    )


def _check_files(spec: ParamSpec, value: object, label: str) -> None:
    # The value is opaque (bytes, upload objects, URLs); only the number of files matters here.
    count = len(value) if isinstance(value, list | tuple) else 1
    limit = 1 if spec.type in SINGLE_FILE_TYPES else spec.max_items
    if limit is not None and count > limit:
        what = "one file" if limit == 1 else f"at most {limit} files"
        raise InvalidParameterError(
            spec.name,
            f"Too many files for parameter '{label}': got {count}, accepts {what}",
            None,
        )


def _pick(spec: ParamSpec, raw: Mapping[str, object]) -> tuple[str, object] | None:
    """The (key, value) a request gives for `spec`, looking at its name and aliases."""
    found = [(key, raw[key]) for key in spec.names if key in raw and not _absent(spec, raw[key])]
    if not found:
        return None
    if len(found) > 1 and any(v != found[0][1] for _, v in found[1:]):
        keys = ", ".join(f"'{k}'" for k, _ in found)
        raise InvalidParameterError(
            spec.name,
            f"Parameter '{spec.name}' given more than once with different values ({keys})",
            None,
        )
    return found[0]


def normalize_params(specs: Sequence[ParamSpec], raw: Mapping[str, object]) -> dict[str, object]:
    """Validate `raw` against `specs`; return it with canonical names, coerced values, defaults.

    Keys that no spec claims are passed through untouched: upstream-specific extras (seed,
    watermark, ...) are the provider's business, not a validation error.
    """
    claimed: set[str] = set()
    out: dict[str, object] = {}
    for spec in specs:
        claimed.update(spec.names)
        picked = _pick(spec, raw)
        if picked is None:
            if spec.required:
                raise MissingParameterError(spec.name)
            if spec.default is not None and not spec.is_file:
                out[spec.name] = spec.default
            continue
        key, value = picked
        label = spec.name if key == spec.name else f"{spec.name}' (sent as '{key}"
        out[spec.name] = check_value(spec, value, label)
    for key, value in raw.items():
        if key not in claimed:
            out[key] = value
    return out


def check_value(spec: ParamSpec, value: object, label: str | None = None) -> object:
    """One given value by `spec`'s rules: coerced to its type, then its allowed values, range,
    length and format. `label` names the field in errors (default: the spec's name)."""
    label = label or spec.name
    if spec.is_file:
        _check_files(spec, value, label)
        return value
    value = _coerce(spec, value, label)
    if spec.enum is not None:
        value = _check_enum(spec, value, label)
    _check_range(spec, value, label)
    _check_string(spec, value, label)
    return value


def read_fields(specs: Sequence[ParamSpec], raw: Mapping[str, object]) -> dict[str, object]:
    """Only the fields `specs` name, checked like model parameters: canonical name → value.

    For the fields a dialect reads itself. An absent field is left out (or takes its default);
    a missing required one is a 400.
    """
    out: dict[str, object] = {}
    for spec in specs:
        picked = _pick(spec, raw)
        if picked is None:
            if spec.required:
                raise MissingParameterError(spec.name)
            if spec.default is not None:
                out[spec.name] = spec.default
            continue
        key, value = picked
        label = spec.name if key == spec.name else f"{spec.name}' (sent as '{key}"
        out[spec.name] = check_value(spec, value, label)
    return out


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    return "object" if isinstance(value, dict | Mapping) else type(value).__name__


def check_json_types(body: Mapping[str, object], types: Mapping[str, tuple[str, ...]]) -> None:
    """JSON bodies relayed as they are (chat): each field `types` names, when given and not
    null, must have one of its JSON types (an integer is a number too); else a 400 naming it."""
    # Over the body's fields (a handful) rather than every typed field (dozens).
    for name, value in body.items():
        allowed = types.get(name)
        if allowed is None or value is None:
            continue
        got = _json_type(value)
        if got in allowed or (got == "integer" and "number" in allowed):
            continue
        raise InvalidParameterError(
            name,
            f"Invalid type for parameter '{name}': expected {' or '.join(allowed)}, got {got}",
        )


def _file_schema(spec: ParamSpec) -> dict[str, object]:
    media = spec.type.rstrip("s")
    item: dict[str, object] = {
        "type": "string",
        "format": "binary",
        "contentMediaType": f"{media}/*",
    }
    if spec.type in SINGLE_FILE_TYPES:
        return item
    arr: dict[str, object] = {"type": "array", "items": item}
    if spec.max_items is not None:
        arr["maxItems"] = spec.max_items
    if spec.required:
        arr["minItems"] = 1
    return arr


def param_schema(spec: ParamSpec) -> dict[str, object]:
    """JSON Schema of one parameter; `x-` keys carry what JSON Schema cannot say."""
    schema: dict[str, object] = _file_schema(spec) if spec.is_file else {"type": spec.type}
    if spec.description:
        schema["description"] = spec.description
    if spec.enum is not None:
        schema["enum"] = list(spec.enum)
    if spec.minimum is not None:
        schema["minimum"] = spec.minimum
    if spec.maximum is not None:
        schema["maximum"] = spec.maximum
    if spec.default is not None:
        schema["default"] = list(spec.default) if isinstance(spec.default, tuple) else spec.default
    if spec.aliases:
        schema["x-aliases"] = list(spec.aliases)
    if spec.case_insensitive:
        schema["x-case-insensitive"] = True
    if spec.format is not None:
        schema["format"] = spec.format
    if spec.max_length is not None:
        schema["maxLength"] = spec.max_length
    return schema


def json_schema(specs: Sequence[ParamSpec]) -> dict[str, object]:
    """A draft 2020-12 object schema for a request with these parameters."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {spec.name: param_schema(spec) for spec in specs},
        "required": [spec.name for spec in specs if spec.required],
        "additionalProperties": True,
    }
