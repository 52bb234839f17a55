"""OpenAI images API (`/v1/images/generations`, `/v1/images/edits`), and the handlers the
platform-prefixed mirror shares.

Synchronous by default: the image task runs and the request waits for it (up to
SYNC_WAIT_SECONDS; past that the task is cancelled, nothing is charged, and the answer is a 504).
`?async=true` answers at once with an `image.task` to read back from `GET .../images/{task_id}`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from llmage.dialects import api_doc
from llmage.dialects.http import JSONBytes, authenticate, platform_of
from llmage.dialects.openai.image_translate import (
    b64_item,
    failure,
    image_draft,
    image_task,
    images_response,
    is_async,
    response_format,
)
from llmage.dialects.openai.schemas import ImagesResponse, ImageTask, OpenAIError
from llmage.dialects.openai.videos import base_url, detail_of, owned_task, wants_detail
from llmage.dialects.submission import file_slots, idempotency_key, read_submission
from llmage.domain.errors import UpstreamError, UpstreamKind
from llmage.domain.stored_files import slot_files
from llmage.domain.tasks import TaskRow, TaskStatus

router = APIRouter(prefix="/v1", tags=["OpenAI"])

SYNC_WAIT_SECONDS = 300.0
DOC = {
    "requestBody": {
        "content": {
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
                        "n": {"type": ["integer", "null"], "minimum": 1},
                        "size": {"type": ["string", "null"]},
                        "response_format": {"enum": ["b64_json", "url", None]},
                    },
                    "additionalProperties": True,
                },
                "example": {
                    "model": "qwen-image",
                    "prompt": "a lighthouse",
                    "size": "1328*1328",
                    "response_format": "url",
                },
            },
            "multipart/form-data": {"schema": {"type": "object", "additionalProperties": True}},
        },
        "description": "`model`, `prompt`, optional `n`, `size`, `response_format` "
        "(b64_json | url, default b64_json); edits also `image` (file, URL or base64; several "
        "as `image[]` or a list). Query `?async=true` answers with a task at once.",
    },
    **api_doc.params(
        api_doc.query("async", api_doc.BOOLEAN, "Answer at once with an `image.task` to poll")
    ),
}
CREATE_RESPONSES = api_doc.responses(
    OpenAIError,
    api_doc.json_ok(
        ImagesResponse | ImageTask, "The images, or with `?async=true` the task to poll"
    ),
)
TASK_DOC = api_doc.params(
    api_doc.query(
        "response_format", {"type": "string", "enum": ["b64_json", "url"]}, "How images come"
    ),
    api_doc.query("detail", api_doc.BOOLEAN, "Add the task's metadata as `detail`"),
)
TASK_RESPONSES = api_doc.responses(OpenAIError, api_doc.json_ok(ImageTask, "The image task"))


async def image_items(
    request: Request, row: TaskRow, fmt: str, *, data_uri: bool
) -> list[dict[str, Any]]:
    p = platform_of(request)
    images = row.outputs.get("images")
    files = slot_files(images) if images is not None else ()
    if fmt == "url":
        root = base_url(request)
        return [{"url": p.media.url(f, root, f"image{i + 1}")} for i, f in enumerate(files)]
    return [b64_item(await p.media.read_all(f), f.content_type, data_uri=data_uri) for f in files]


async def create_image(
    request: Request, *, edit: bool, platform: str | None = None, data_uri: bool = False
) -> Response:
    auth = await authenticate(request)
    p = platform_of(request)
    fields = await read_submission(request, p.settings.max_upload_bytes)
    fmt = response_format(fields.get("response_format"))
    run_async = is_async(request.query_params.get("async"), fields.get("async"))
    slots = file_slots(p.catalog)
    draft = image_draft(fields, p.catalog, slots, edit=edit, platform=platform)
    row = await p.tasks.submit(
        auth, draft, dialect="openai", idempotency_key=idempotency_key(request)
    )
    if run_async:
        return JSONBytes(image_task(row, None))
    row = await p.tasks.wait(auth, row.id, SYNC_WAIT_SECONDS)
    if not row.status.terminal:
        row = await p.tasks.cancel(auth, row.id)
        if not row.status.terminal or row.status is TaskStatus.CANCELLED:
            raise UpstreamError(
                UpstreamKind.TIMEOUT,
                f"The image was not ready within {int(SYNC_WAIT_SECONDS)} s; nothing was "
                "charged. Use ?async=true for long jobs.",
            )
    if row.status is not TaskStatus.SUCCEEDED:
        raise failure(row)
    return JSONBytes(images_response(row, await image_items(request, row, fmt, data_uri=data_uri)))


async def get_image_task(request: Request, task_id: str, *, data_uri: bool = False) -> Response:
    _, row = await owned_task(request, task_id, "image")
    fmt = response_format(request.query_params.get("response_format"))
    items = None
    if row.status is TaskStatus.SUCCEEDED:
        items = await image_items(request, row, fmt, data_uri=data_uri)
    body = image_task(row, items)
    if wants_detail(request):
        body["detail"] = detail_of(request, row)
    return JSONBytes(body)


# -- /v1 routes ---------------------------------------------------------------------------------


@router.post(
    "/images/generations",
    openapi_extra=DOC,
    responses=CREATE_RESPONSES,
    summary="Generate images (OpenAI)",
)
async def generations(request: Request) -> Response:
    return await create_image(request, edit=False)


@router.post(
    "/images/edits",
    openapi_extra=DOC,
    responses=CREATE_RESPONSES,
    summary="Edit images (OpenAI; JSON or multipart)",
)
async def edits(request: Request) -> Response:
    return await create_image(request, edit=True)


@router.get(
    "/images/{task_id}",
    openapi_extra=TASK_DOC,
    responses=TASK_RESPONSES,
    summary="An image task started with ?async=true",
)
async def image_task_status(task_id: str, request: Request) -> Response:
    return await get_image_task(request, task_id)
