"""Reading a generation submit: JSON or multipart, files and URLs and base64 alike.

Every file-like value becomes a MediaSource: an uploaded part (bytes), an http(s) URL (fetched
later, only through the guarded fetcher), or a data URI / bare base64 string (decoded here).
Repeated multipart fields become lists, in order.

The fields a dialect reads itself (model, llmid, callback_url, ...) are declared as ParamSpecs and
read with `controls`, by the same rules as model parameters: a list (a JSON array, a form field
sent twice) or an object where one value is expected is a 400 naming the field, before anything
reaches a service.
"""

from __future__ import annotations

import binascii
import contextlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
from starlette.datastructures import UploadFile
from starlette.requests import Request

from llmage.dialects.http import read_json
from llmage.domain.catalog import Catalog
from llmage.domain.errors import InvalidParameter, InvalidRequest, PayloadTooLarge
from llmage.domain.params import ParamSpec, read_fields
from llmage.domain.tasks import MediaSource
from llmage.net.fetch import FetchError, decode_data_uri

MAX_FILES = 32
IDEMPOTENCY_KEY_MAX = 200  # the column's width

CALLBACK_URL = ParamSpec(
    "callback_url",
    "string",
    format="uri",
    max_length=2048,
    description="http(s) URL that receives the finished task (a signed webhook)",
)


def controls(
    fields: Mapping[str, Any], specs: Sequence[ParamSpec]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the fields `specs` name, checked and under their canonical names; every other field)."""
    names = {name for spec in specs for name in spec.names}
    return read_fields(specs, fields), {k: v for k, v in fields.items() if k not in names}


def idempotency_key(request: Request) -> str | None:
    values = request.headers.getlist("idempotency-key")
    if not values or values == [""]:
        return None
    if len(values) > 1:
        raise InvalidParameter(
            "'Idempotency-Key' was sent more than once; send one value", param="Idempotency-Key"
        )
    value = values[0]
    if len(value) > IDEMPOTENCY_KEY_MAX or not value.isprintable():
        raise InvalidParameter(
            f"'Idempotency-Key' must be at most {IDEMPOTENCY_KEY_MAX} printable characters",
            param="Idempotency-Key",
        )
    return value


def file_slots(catalog: Catalog, extra: Iterable[str] = ()) -> frozenset[str]:
    """Every parameter name (and alias) that holds files somewhere in the catalog."""
    names = set(extra)
    for entry in catalog.entries():
        for spec in entry.params:
            if spec.is_file:
                names.update(spec.names)
    return frozenset(names)


def media_from_string(value: str, param: str) -> MediaSource:
    text = value.strip()
    if text.startswith(("http://", "https://")):
        return MediaSource(url=text)
    try:
        data, ctype = decode_data_uri(text)
    except (ValueError, binascii.Error, FetchError) as exc:
        raise InvalidParameter(
            f"'{param}' must be a file upload, an http(s) URL, or base64 / a data URI",
            param=param,
        ) from exc
    return MediaSource(data=data, content_type=ctype)


def to_media(value: Any, param: str) -> MediaSource | list[MediaSource] | None:
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, MediaSource):
        return value
    if isinstance(value, str):
        return media_from_string(value, param)
    if isinstance(value, dict):
        # OpenAI-style objects: {"image_url": "..."} / {"url": "..."} / {"b64_json": "..."}.
        inner = value.get("image_url") or value.get("url") or value.get("b64_json")
        if isinstance(inner, dict):
            inner = inner.get("url")
        if isinstance(inner, str):
            return media_from_string(inner, param)
        raise InvalidParameter(f"'{param}' object needs an 'image_url' or 'url'", param=param)
    if isinstance(value, list):
        out: list[MediaSource] = []
        for i, item in enumerate(value):
            one = to_media(item, f"{param}[{i}]")
            if isinstance(one, list):
                out.extend(one)
            elif one is not None:
                out.append(one)
        return out
    raise InvalidParameter(f"'{param}' must be a file, URL or base64 string", param=param)


async def _upload(part: UploadFile) -> MediaSource:
    return MediaSource(
        data=await part.read(), filename=part.filename, content_type=part.content_type
    )


async def read_submission(request: Request, max_bytes: int) -> dict[str, Any]:
    """Fields of a JSON or multipart/form-urlencoded body; `name[]` is read as `name`."""
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        body = await read_json(request)
        if not isinstance(body, dict):
            raise InvalidRequest("Request body must be a JSON object")
        return body
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"Request body exceeds {max_bytes} bytes")
    try:
        form = await request.form(max_files=MAX_FILES, max_fields=256)
    except Exception as exc:  # malformed multipart: the parser's own words
        raise InvalidRequest(f"Malformed form body: {exc}") from exc
    fields: dict[str, Any] = {}
    for name, value in form.multi_items():
        key = name[:-2] if name.endswith("[]") else name
        item: Any = await _upload(value) if isinstance(value, UploadFile) else value
        if isinstance(item, str) and item[:1] in "[{" and key in ("metadata", "extra_body"):
            with contextlib.suppress(orjson.JSONDecodeError):
                item = orjson.loads(item)
        if key in fields:
            prev = fields[key]
            fields[key] = [*prev, item] if isinstance(prev, list) else [prev, item]
        else:
            fields[key] = [item] if name.endswith("[]") else item
    return fields


def convert_files(fields: dict[str, Any], slots: frozenset[str]) -> dict[str, Any]:
    """File-slot values (strings, objects, uploads) to MediaSource, everything else unchanged."""
    out = dict(fields)
    for name in slots & out.keys():
        media = to_media(out[name], name)
        if media is None:
            out.pop(name)
        else:
            out[name] = media
    return out


def bool_param(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no", ""):
        return value.lower() in ("true", "1", "yes")
    raise InvalidParameter(f"'{name}' must be true or false", param=name)
