"""OpenAI videos API (`/v1/videos...`), and the handlers the platform-prefixed mirror shares.

Create, list, retrieve, delete, download (`/content?variant=video|thumbnail`) and remix, over
the task engine. Retrieve and create answer `openai-poll-after-ms` while the video is open, so
the official SDK's `create_and_poll` paces itself. Another user's video is a 404 everywhere.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from llmage.dialects import api_doc
from llmage.dialects.http import JSONBytes, authenticate, platform_of
from llmage.dialects.media.routes import serve
from llmage.dialects.openai.schemas import OpenAIError, Video, VideoDeleted, VideoList
from llmage.dialects.openai.task_detail import task_detail
from llmage.dialects.openai.video_translate import (
    deleted_object,
    video_draft,
    video_object,
    video_page,
)
from llmage.dialects.submission import (
    bool_param,
    file_slots,
    idempotency_key,
    read_submission,
)
from llmage.domain.errors import InvalidParameter, InvalidRequest, NotFound
from llmage.domain.params import ParamSpec, read_fields
from llmage.domain.principal import KeyAuth
from llmage.domain.stored_files import StoredFile
from llmage.domain.tasks import TaskRow, TaskStatus

router = APIRouter(prefix="/v1", tags=["OpenAI"])

POLL_AFTER_MS = "1000"
_REMIX = (ParamSpec("prompt", "string", required=True),)
VARIANTS = {"video": "video", "thumbnail": "cover"}
CREATE_DOC: dict[str, Any] = {
    "requestBody": {
        "content": {
            "multipart/form-data": {"schema": {"type": "object", "additionalProperties": True}},
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["model", "prompt"],
                    "properties": {
                        "model": {"type": "string"},
                        "prompt": {
                            "type": ["string", "number"],
                            "description": "A number is read as its text",
                        },
                        "seconds": {"type": ["string", "integer", "null"]},
                        "size": {"type": ["string", "null"], "example": "1280x720"},
                    },
                    "additionalProperties": True,
                },
                "example": {
                    "model": "doubao-seedance-1-5-pro-251215",
                    "prompt": "a cat chasing a mouse",
                    "seconds": "5",
                    "size": "864x480",
                },
            },
        },
        "description": "`model` (catalog name or llmid), `prompt`, `seconds` (→ duration), "
        "`size` WxH (→ size, or resolution + ratio), `input_reference` (file, URL, base64, "
        "`{image_url}`; several → reference images), or any of the model's own parameters.",
    }
}


_POLL_AFTER = {"openai-poll-after-ms": "While the video is open: when to ask again (ms)"}
VIDEO_RESPONSES = api_doc.responses(
    OpenAIError, api_doc.json_ok(Video, "The video", headers=_POLL_AFTER)
)
LIST_RESPONSES = api_doc.responses(OpenAIError, api_doc.json_ok(VideoList, "A page of your videos"))
DELETE_RESPONSES = api_doc.responses(OpenAIError, api_doc.json_ok(VideoDeleted, "Deleted"))
CONTENT_RESPONSES = api_doc.responses(
    OpenAIError,
    api_doc.binary_ok(
        "The file (video/mp4, or the thumbnail image)",
        ("video/mp4", "image/jpeg", "image/png", "image/webp", "application/octet-stream"),
    ),
)
LIST_DOC = api_doc.params(
    api_doc.query("after", {"type": "string"}, "The last id of the previous page"),
    api_doc.query(
        "limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}, "Page size"
    ),
    api_doc.query("order", {"type": "string", "enum": ["asc", "desc"]}, "By creation time"),
)
DETAIL_DOC = api_doc.params(
    api_doc.query("detail", api_doc.BOOLEAN, "Add the task's metadata as `detail`")
)
CONTENT_DOC = api_doc.params(
    api_doc.query(
        "variant",
        {"type": "string", "enum": ["video", "thumbnail"], "default": "video"},
        "Which file",
    )
)
REMIX_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["prompt"],
                    "properties": {"prompt": {"type": "string"}},
                    "additionalProperties": True,
                }
            },
            "multipart/form-data": {"schema": {"type": "object", "additionalProperties": True}},
        },
        "description": "A new `prompt` (and optionally new `input_reference` images)",
    }
}


def base_url(request: Request) -> str:
    return platform_of(request).settings.public_base_url or str(request.base_url)


def _headers(row: TaskRow) -> dict[str, str]:
    return {} if row.status.terminal else {"openai-poll-after-ms": POLL_AFTER_MS}


async def owned_task(request: Request, task_id: str, kind: str) -> tuple[KeyAuth, TaskRow]:
    """The caller's own, not deleted, task of `kind`; anything else is a 404."""
    auth = await authenticate(request)
    try:
        row = await platform_of(request).tasks.get(auth, task_id, kind=kind)
    except NotFound:
        row = None
    if row is None or row.deleted_at is not None:
        raise NotFound(f"No {kind} '{task_id}'", param=f"{kind}_id")
    return auth, row


def detail_of(request: Request, row: TaskRow) -> dict[str, Any]:
    p = platform_of(request)
    root = base_url(request)

    def url_of(file: StoredFile, name: str) -> str:
        return p.media.url(file, root, name)

    return task_detail(row, p.settings.currency, url_of)


def wants_detail(request: Request) -> bool:
    value = request.query_params.get("detail")
    return value is not None and bool_param(value, "detail")


# -- handlers (shared with /{platform}/v1) ------------------------------------------------------


async def create_video(request: Request, platform: str | None = None) -> Response:
    auth = await authenticate(request)
    p = platform_of(request)
    fields = await read_submission(request, p.settings.max_upload_bytes)
    draft = video_draft(fields, p.catalog, file_slots(p.catalog), platform=platform)
    row = await p.tasks.submit(
        auth, draft, dialect="openai", idempotency_key=idempotency_key(request)
    )
    return JSONBytes(video_object(row), headers=_headers(row))


async def list_videos(request: Request) -> Response:
    auth = await authenticate(request)
    q = request.query_params
    try:
        limit = int(q.get("limit") or 20)
    except ValueError:
        limit = 0
    if not 1 <= limit <= 100:
        raise InvalidParameter("'limit' must be an integer from 1 to 100", param="limit")
    order = q.get("order") or "desc"
    if order not in ("asc", "desc"):
        raise InvalidParameter(
            f"Invalid value for parameter 'order': {order}", param="order", allowed=("asc", "desc")
        )
    rows = await platform_of(request).tasks.page(
        auth, kind="video", limit=limit + 1, after=q.get("after") or None, ascending=order == "asc"
    )
    return JSONBytes(video_page(rows, limit))


async def retrieve_video(request: Request, video_id: str) -> Response:
    _, row = await owned_task(request, video_id, "video")
    body = video_object(row)
    if wants_detail(request):
        body["detail"] = detail_of(request, row)
    return JSONBytes(body, headers=_headers(row))


async def delete_video(request: Request, video_id: str) -> Response:
    auth, row = await owned_task(request, video_id, "video")
    await platform_of(request).tasks.delete(auth, row.id, kind="video")
    return JSONBytes(deleted_object(row.id))


async def video_content(request: Request, video_id: str) -> Response:
    """The stored file itself, with byte ranges, through the signed-media route's streamer."""
    _, row = await owned_task(request, video_id, "video")
    variant = request.query_params.get("variant") or "video"
    if variant not in (*VARIANTS, "spritesheet"):
        raise InvalidParameter(
            f"Invalid value for parameter 'variant': {variant}",
            param="variant",
            allowed=tuple(VARIANTS),
        )
    if row.media_expired_at is not None:
        raise NotFound(f"The files of video '{video_id}' expired and were deleted")
    outputs = row.outputs if row.status is TaskStatus.SUCCEEDED else {}
    file = outputs.get(VARIANTS.get(variant, ""))
    if not isinstance(file, StoredFile):
        if row.status is TaskStatus.SUCCEEDED:
            raise NotFound(f"Video '{video_id}' has no {variant}", param="variant")
        raise NotFound(f"Video '{video_id}' is not ready (status {row.status.value})")
    links = platform_of(request).media.links
    name = row.id if variant == "video" else f"{row.id}-{variant}"
    return await serve(await links.describe(links.grant(file, name)), request)


async def remix_video(request: Request, video_id: str, platform: str | None = None) -> Response:
    """A new video from a finished one: same model and parameters, a new prompt (and, as seed
    003 allows, new reference images)."""
    auth, original = await owned_task(request, video_id, "video")
    p = platform_of(request)
    fields = await read_submission(request, p.settings.max_upload_bytes)
    prompt = read_fields(_REMIX, fields)["prompt"]
    if original.status is not TaskStatus.SUCCEEDED:
        raise InvalidRequest(
            f"Video '{video_id}' cannot be remixed until it has completed", param="video_id"
        )
    new_refs = any(k.startswith("input_reference") for k in fields)
    if new_refs:
        body = {
            **original.params,
            **{k: v for k, v in fields.items() if k.startswith("input_reference")},
            "model": original.model,
            "prompt": prompt,
        }
        draft = video_draft(body, p.catalog, file_slots(p.catalog))
    else:
        # The original's own stored inputs, read back from its records.
        files = {name: await p.media.reopen(slot) for name, slot in original.inputs.items()}
        draft = video_draft(
            {**original.params, **files, "model": original.model, "prompt": prompt},
            p.catalog,
            frozenset(),
        )
        draft.llmid = original.llmid  # exactly the original's entry
    draft.remix_of = original.id
    draft.platform = platform or original.platform
    row = await p.tasks.submit(
        auth, draft, dialect="openai", idempotency_key=idempotency_key(request)
    )
    return JSONBytes(video_object(row), headers=_headers(row))


# -- /v1 routes ---------------------------------------------------------------------------------


@router.post(
    "/videos",
    openapi_extra=CREATE_DOC,
    responses=VIDEO_RESPONSES,
    summary="Create a video (OpenAI videos API)",
)
async def create(request: Request) -> Response:
    return await create_video(request)


@router.get(
    "/videos",
    openapi_extra=LIST_DOC,
    responses=LIST_RESPONSES,
    summary="List your videos (cursor page: after, limit, order)",
)
async def list_(request: Request) -> Response:
    return await list_videos(request)


@router.get(
    "/videos/{video_id}",
    openapi_extra=DETAIL_DOC,
    responses=VIDEO_RESPONSES,
    summary="Retrieve a video (?detail=true adds task metadata)",
)
async def retrieve(video_id: str, request: Request) -> Response:
    return await retrieve_video(request, video_id)


@router.delete(
    "/videos/{video_id}",
    responses=DELETE_RESPONSES,
    summary="Delete a video (cancels it if still running)",
)
async def delete(video_id: str, request: Request) -> Response:
    return await delete_video(request, video_id)


@router.get(
    "/videos/{video_id}/content",
    summary="Download the video or its thumbnail (?variant=video|thumbnail; byte ranges)",
    response_class=Response,
    openapi_extra=CONTENT_DOC,
    responses=CONTENT_RESPONSES,
)
async def content(video_id: str, request: Request) -> Response:
    return await video_content(request, video_id)


@router.post(
    "/videos/{video_id}/remix",
    openapi_extra=REMIX_DOC,
    responses=VIDEO_RESPONSES,
    summary="Remix a completed video with a new prompt",
)
async def remix(video_id: str, request: Request) -> Response:
    return await remix_video(request, video_id)
