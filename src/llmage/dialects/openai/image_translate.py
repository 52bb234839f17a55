"""Pure translation for OpenAI's images API (and seed 003's platform-prefixed variant).

Generations and edits become image tasks. Edits take `image` (multipart `image` for one file,
`image[]` for several, as the official SDK sends them; JSON a URL / base64 string or a list) as
the image-to-image model's `image_files`. `size` "1328x1328" is given to a model whose sizes
read "1328*1328" in that spelling. OpenAI-only knobs the model has no parameter for (quality,
style, background, ...) are dropped rather than sent upstream; `mask` and `stream` are refused.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

from llmage.dialects.openai.task_detail import task_error, unix
from llmage.dialects.openai.video_translate import candidate_entries
from llmage.dialects.submission import CALLBACK_URL, bool_param, controls, convert_files, to_media
from llmage.domain.catalog import Catalog, ModelEntry, ModelKind
from llmage.domain.errors import InvalidParameter, LlmageError, UpstreamError, UpstreamKind
from llmage.domain.params import ParamSpec, check_value, read_fields
from llmage.domain.tasks import MediaSource, TaskDraft, TaskRow, openai_status

IMAGE_KINDS = (ModelKind.T2I, ModelKind.I2I)
RESPONSE_FORMATS = ("b64_json", "url")
_RESPONSE_FORMAT = ParamSpec("response_format", "string", enum=RESPONSE_FORMATS)
# OpenAI's own fields, read here; the rest are the model's parameters.
_CONTROL = (
    ParamSpec("model", "string", required=True, max_length=128),
    _RESPONSE_FORMAT,
    ParamSpec("async", "boolean"),
    CALLBACK_URL,
)
# OpenAI-only knobs with no parameter in the model: checked, then dropped rather than sent
# upstream (unless the model has a parameter of that name: then its own spec rules).
_OPENAI_ONLY = (
    *(
        ParamSpec(name, "string")
        for name in (
            "quality",
            "style",
            "background",
            "output_format",
            "moderation",
            "user",
            "input_fidelity",
            "safety_identifier",
            "complexity",
        )
    ),
    *(
        ParamSpec(name, "integer", minimum=0)
        for name in ("output_compression", "partial_images", "frame_count", "frame_duration_ms")
    ),
    ParamSpec("svg", "boolean"),
)
# OpenAI fields passed on to the model: checked here when the model has no spec of its own.
_OPENAI_TYPED = (
    ParamSpec("prompt", "string"),
    ParamSpec("size", "string", max_length=32),
    ParamSpec("n", "integer", minimum=1, maximum=10),
)
_REFUSED = ("mask", "markup")


def response_format(value: Any) -> str:
    if value in (None, ""):
        return "b64_json"
    return str(check_value(_RESPONSE_FORMAT, value))


def is_async(query_value: str | None, body_value: Any) -> bool:
    value = query_value if query_value is not None else body_value
    return False if value is None else bool_param(value, "async")


def _has_media(value: Any) -> bool:
    if isinstance(value, list):
        return any(isinstance(v, MediaSource) for v in value)
    return isinstance(value, MediaSource)


def likely_image_entry(catalog: Catalog, model: str, raw: Mapping[str, Any]) -> ModelEntry | None:
    found = candidate_entries(catalog, model, IMAGE_KINDS)
    if not found:
        return None
    want = ModelKind.I2I if any(_has_media(v) for v in raw.values()) else ModelKind.T2I
    return next((e for e in found if e.kind is want), found[0])


def _claimed(entries: Sequence[ModelEntry]) -> set[str]:
    return {name for e in entries for spec in e.params for name in spec.names}


def size_value(size: Any, entry: ModelEntry | None) -> Any:
    """OpenAI's "WxH" in the model's own spelling when only that differs."""
    spec = entry.param("size") if entry else None
    if spec is None or spec.enum is None or not isinstance(size, str) or size in spec.enum:
        return size
    for form in (size.replace("x", "*"), size.replace("*", "x")):
        if form in spec.enum:
            return form
    return size  # normalize_params names `size` and lists the allowed values


def image_draft(
    fields: Mapping[str, Any],
    catalog: Catalog,
    slots: frozenset[str],
    *,
    edit: bool,
    platform: str | None = None,
) -> TaskDraft:
    control, body = controls(fields, _CONTROL)
    model: str = control["model"]
    for name in _REFUSED:
        if body.pop(name, None) not in (None, ""):
            raise InvalidParameter(f"'{name}' is not supported", param=name)
    stream = body.pop("stream", None)
    if stream not in (None, "") and bool_param(stream, "stream"):
        raise InvalidParameter("Streaming image generation is not supported", param="stream")
    claimed = _claimed(candidate_entries(catalog, model, IMAGE_KINDS))
    read_fields([s for s in (*_OPENAI_ONLY, *_OPENAI_TYPED) if s.name not in claimed], body)
    dropped = {spec.name for spec in _OPENAI_ONLY} - claimed
    raw = {k: v for k, v in body.items() if k not in dropped}
    if edit:
        image = raw.pop("image", None)
        media = to_media(image, "image")
        if media is None:
            raise InvalidParameter("Missing required parameter: image", param="image")
        images = media if isinstance(media, list) else [media]
        if raw.get("image_files") not in (None, "", []):
            raise InvalidParameter("'image' and 'image_files' were both given", param="image")
        raw["image_files"] = images
    raw = convert_files(raw, slots)
    if model and raw.get("size") not in (None, ""):
        raw["size"] = size_value(raw["size"], likely_image_entry(catalog, model, raw))
    return TaskDraft(
        kind="image",
        raw=raw,
        model=model,
        platform=platform,
        callback_url=control.get("callback_url"),
    )


# -- task → response ----------------------------------------------------------------------------


def b64_item(data: bytes, content_type: str, *, data_uri: bool) -> dict[str, Any]:
    """OpenAI sends raw base64 (what its SDK decodes); seed 003 shows a data URI."""
    encoded = base64.b64encode(data).decode()
    return {"b64_json": f"data:{content_type};base64,{encoded}" if data_uri else encoded}


def images_response(row: TaskRow, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {"created": unix(row.created_at), "data": [dict(i) for i in items]}


def image_task(row: TaskRow, items: Sequence[Mapping[str, Any]] | None) -> dict[str, Any]:
    """Seed 003's async answer; `data` once the images are there."""
    status = openai_status(row.status)
    out: dict[str, Any] = {
        "id": row.id,
        "object": "image.task",
        "status": status,
        "model": row.model,
        "created_at": unix(row.created_at),
    }
    if row.status.terminal:
        out["completed_at"] = unix(row.finished_at)
    if items is not None:
        out["data"] = [dict(i) for i in items]
    if status == "failed":
        out["error"] = task_error(row)
    return out


def failure(row: TaskRow) -> LlmageError:
    """A failed task as the error a synchronous caller gets: the user's own mistakes (bad
    request, content policy) are 400, anything else 502 — with the task's own code."""
    code = row.error_code or "upstream_failed"
    kind = next((k for k in UpstreamKind if k.value == code), UpstreamKind.UPSTREAM_BUG)
    err = UpstreamError(kind, row.error_message or "The image generation failed")
    err.code = code
    return err
