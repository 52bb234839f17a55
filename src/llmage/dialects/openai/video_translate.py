"""Pure translation for OpenAI's videos API: request fields → TaskDraft, TaskRow → Video object.

OpenAI's fields map onto the catalog's parameters:
- `seconds` ("4") → `duration`; `size` ("1280x720") → `size` ("1280*720") or `resolution` +
  `ratio`, whichever the model takes (video_sizes.py);
- `input_reference` (upload, URL, base64 / data URI, `{image_url}` object, or a list of them;
  multipart `input_reference[]` and `input_reference[image_url]` too) → the first frame
  `image1_file` for one image, the reference images `image_files` for several — unless the
  model cannot run that way (see place_references).
Any catalog parameter may also be sent directly (duration, resolution, ratio, image1_file, ...).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from llmage.dialects.openai.task_detail import task_error, unix
from llmage.dialects.openai.video_sizes import (
    SIDE_OF,
    dims,
    parse_ratio,
    parse_size,
    seconds_params,
    size_params,
)
from llmage.dialects.submission import CALLBACK_URL, controls, convert_files, to_media
from llmage.domain.catalog import Catalog, ModelEntry, ModelKind
from llmage.domain.errors import InvalidParameter
from llmage.domain.params import ParamSpec
from llmage.domain.tasks import MediaSource, TaskDraft, TaskRow, TaskStatus, openai_status

VIDEO_KINDS = (ModelKind.T2V, ModelKind.I2V, ModelKind.R2V)
# OpenAI's own fields, read here; the rest are the model's parameters.
_CONTROL = (
    ParamSpec("model", "string", required=True, max_length=128),
    ParamSpec("seconds", "string", max_length=16),
    ParamSpec("size", "string", max_length=32),
    CALLBACK_URL,
)


# -- model choice (mirrors TaskService: the inputs decide t2v / i2v / r2v) ----------------------


def _has_media(value: Any) -> bool:
    if isinstance(value, list):
        return any(isinstance(v, MediaSource) for v in value)
    return isinstance(value, MediaSource)


def candidate_entries(catalog: Catalog, model: str, kinds: Sequence[ModelKind]) -> list[ModelEntry]:
    by_id = catalog.by_llmid(model)
    if by_id is not None and by_id.kind in kinds:
        return [by_id]
    return [e for e in catalog.by_name(model) if e.kind in kinds]


def likely_video_entry(catalog: Catalog, model: str, raw: Mapping[str, Any]) -> ModelEntry | None:
    found = candidate_entries(catalog, model, VIDEO_KINDS)
    if not found:
        return None
    if _has_media(raw.get("image_files")) or _has_media(raw.get("video_files")):
        want = ModelKind.R2V
    elif any(_has_media(v) for v in raw.values()):
        want = ModelKind.I2V
    else:
        want = ModelKind.T2V
    return next((e for e in found if e.kind is want), found[0])


# -- request → draft ----------------------------------------------------------------------------


def input_reference(fields: dict[str, Any]) -> list[MediaSource]:
    """Pop every spelling of `input_reference` from `fields`; the images it names, in order."""
    values: list[Any] = []
    for key in ("input_reference", "input_reference[image_url]", "input_reference[url]"):
        value = fields.pop(key, None)
        if value is None:
            continue
        if isinstance(value, list):
            values.extend(value)
        else:
            values.append(value)
    if "input_reference[file_id]" in fields:
        raise InvalidParameter(
            "'input_reference' by file_id is not supported; send the file, a URL or base64",
            param="input_reference",
        )
    media = to_media(values, "input_reference")
    if media is None:
        return []
    return media if isinstance(media, list) else [media]


def _takes(entry: ModelEntry, slots: Sequence[str], count: int) -> bool:
    """Whether `entry` can run with exactly these file slots filled by `count` images."""
    specs = [entry.param(slot) for slot in slots]
    if any(spec is None for spec in specs):
        return False
    if any(p.is_file and p.required and p.name not in slots for p in entry.params):
        return False  # it needs some other file too (a last frame, say)
    if len(slots) > 1:
        return True
    spec = specs[0]
    assert spec is not None
    if spec.type == "image":
        return count == 1
    return spec.max_items is None or count <= spec.max_items


_PLACES: dict[int, list[tuple[str, ...]]] = {
    1: [("image1_file",), ("image_files",)],
    2: [("image_files",), ("image1_file", "image2_file")],
}


def place_references(entries: Sequence[ModelEntry], refs: list[MediaSource]) -> dict[str, Any]:
    """Reference images into the slots the model offers: one image is the first frame
    (`image1_file`) where a model can start from one frame, else a reference image; several are
    reference images (`image_files`), or first and last frame for a model taking only those."""
    count = len(refs)
    options = _PLACES.get(count, [("image_files",)])
    for slots in options:
        if any(_takes(e, slots, count) for e in entries):
            break
    else:
        slots = options[0]
    if len(slots) > 1:
        return dict(zip(slots, refs, strict=True))
    return {slots[0]: refs[0] if slots[0] == "image1_file" else refs}


def video_draft(
    fields: Mapping[str, Any],
    catalog: Catalog,
    slots: frozenset[str],
    *,
    platform: str | None = None,
) -> TaskDraft:
    control, rest = controls(fields, _CONTROL)
    refs = input_reference(rest)
    model: str = control["model"]
    seconds, size = control.get("seconds"), control.get("size")
    raw = convert_files(rest, slots)
    if refs:
        placed = place_references(candidate_entries(catalog, model, VIDEO_KINDS), refs)
        for slot, value in placed.items():
            if raw.get(slot) is not None:
                raise InvalidParameter(
                    f"'input_reference' and '{slot}' were both given", param="input_reference"
                )
            raw[slot] = value
    entry = likely_video_entry(catalog, model, raw)
    if seconds not in (None, ""):
        raw["duration"] = seconds_params(seconds, entry, raw)
    if size not in (None, "") and entry is not None:
        raw.update(size_params(size, entry, raw))
    return TaskDraft(
        kind="video",
        raw=raw,
        model=model,
        platform=platform,
        callback_url=control.get("callback_url"),
    )


# -- task → Video -------------------------------------------------------------------------------


def video_size(row: TaskRow) -> str:
    """ "WxH": measured when done, else as asked (size, or resolution and ratio)."""
    usage = row.usage or {}
    if isinstance(usage.get("width"), int) and isinstance(usage.get("height"), int):
        return f"{usage['width']}x{usage['height']}"
    params = row.params
    parsed = parse_size(params["size"]) if params.get("size") else None
    if parsed is not None:
        return f"{parsed[0]}x{parsed[1]}"
    resolution = str(params.get("resolution") or "")
    ratio = parse_ratio(params.get("ratio") or "")
    if resolution.lower() in SIDE_OF and ratio is not None:
        w, h = dims(resolution, ratio)
        return f"{w}x{h}"
    return resolution


def video_object(row: TaskRow) -> dict[str, Any]:
    status = openai_status(row.status)
    duration = row.params.get("duration")
    progress = 100 if row.status is TaskStatus.SUCCEEDED else max(0, min(99, row.progress))
    return {
        "id": row.id,
        "object": "video",
        "model": row.model,
        "status": status,
        "progress": progress,
        "created_at": unix(row.created_at),
        "completed_at": unix(row.finished_at) if row.status.terminal else None,
        # Re-hosted media lasts until the retention sweep deletes it (LLMAGE_MEDIA_RETENTION_DAYS)
        "expires_at": unix(row.media_expired_at),
        "prompt": row.params.get("prompt"),
        "seconds": None if duration is None else str(duration),
        "size": video_size(row),
        "remixed_from_video_id": row.remix_of,
        "error": task_error(row) if status == "failed" else None,
    }


def video_page(rows: Sequence[TaskRow], limit: int) -> dict[str, Any]:
    """A cursor page; `rows` is one more than `limit` when there is a next page."""
    data = [video_object(r) for r in rows[:limit]]
    return {
        "object": "list",
        "data": data,
        "has_more": len(rows) > limit,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


def deleted_object(video_id: str) -> dict[str, Any]:
    return {"id": video_id, "object": "video.deleted", "deleted": True}
