"""Native generation routes (seed 000): `POST /llmage/video`, `GET|POST /llmage/tasks`,
plus cancel and a price estimate."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from llmage.dialects import api_doc
from llmage.dialects.http import JSONBytes, authenticate, platform_of
from llmage.dialects.native.schemas import Estimate, NativeError, Submitted, Task
from llmage.dialects.submission import (
    CALLBACK_URL,
    controls,
    convert_files,
    file_slots,
    idempotency_key,
    read_submission,
)
from llmage.domain.errors import LlmageError
from llmage.domain.money import format_amount
from llmage.domain.params import ParamSpec, read_fields
from llmage.domain.tasks import MediaSource, TaskDraft
from llmage.services.task_views import native_view

router = APIRouter(prefix="/llmage", tags=["Native (llmage)"])

# The fields read here; everything else is the model's parameters.
_CONTROL = (
    ParamSpec("llmid", "string", required=True, max_length=64),
    ParamSpec("model", "string", max_length=128),
    CALLBACK_URL,
)
_TASKID = (ParamSpec("taskid", "string", required=True, max_length=64),)
# What /openapi.json says of them (the model's own parameters: GET /llmage/models).
_CONTROL_FIELDS = {
    "llmid": {"type": "string", "description": "The catalog entry (GET /llmage/models)"},
    "model": {"type": ["string", "null"], "description": "One of the entry's model names"},
    "prompt": {"type": ["string", "number"], "description": "A number is read as its text"},
    "callback_url": {
        "type": ["string", "null"],
        "description": "http(s) URL called when the task ends (empty: none)",
    },
}
_FORM_DOC = {
    "requestBody": {
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["llmid", "prompt"],
                    "properties": _CONTROL_FIELDS,
                    "additionalProperties": True,
                },
                "example": {
                    "llmid": "CrEMkFQfRCmbmopZsCqLj",
                    "prompt": "小猫在抓老鼠",
                    "duration": 5,
                    "ratio": "16:9",
                    "resolution": "480p",
                },
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": _CONTROL_FIELDS,
                    "additionalProperties": True,
                }
            },
        },
        "description": "`llmid`, optional `model`, and the model's parameters (see "
        "GET /llmage/models). Files: image1_file, image2_file (aliases image_file1/2), "
        "image_files (≤9), video_files, audio_files — uploads, URLs or base64.",
    }
}


def _spill_numbered(fields: dict[str, Any]) -> None:
    """Seed quirk: `-F image1_file=@a -F image1_file=@b` means first and last frame."""
    first = fields.get("image1_file")
    if (
        isinstance(first, list)
        and len(first) == 2
        and "image2_file" not in fields
        and "image_file2" not in fields
    ):
        fields["image1_file"], fields["image2_file"] = first


async def _draft(request: Request) -> TaskDraft:
    p = platform_of(request)
    fields = await read_submission(request, p.settings.max_upload_bytes)
    _spill_numbered(fields)
    control, rest = controls(fields, _CONTROL)
    llmid = control["llmid"]
    raw = convert_files(rest, file_slots(p.catalog))
    entry = p.catalog.by_llmid(llmid)
    kind = "image" if entry is not None and entry.kind.is_image else "video"
    return TaskDraft(
        kind=kind,
        raw=raw,
        llmid=llmid,
        model=control.get("model"),
        callback_url=control.get("callback_url"),
    )


def base_url(request: Request) -> str:
    return platform_of(request).settings.public_base_url or str(request.base_url)


@router.post(
    "/video",
    openapi_extra=_FORM_DOC,
    responses=api_doc.responses(NativeError, api_doc.json_ok(Submitted, "The task, just created")),
    summary="Submit a generation task (seed 000): a video, or images for an image llmid",
)
async def submit_video(request: Request) -> Response:
    auth = await authenticate(request)
    draft = await _draft(request)
    row = await platform_of(request).tasks.submit(
        auth, draft, dialect="native", idempotency_key=idempotency_key(request)
    )
    # The seed's example answers the submit with a lower-case status.
    return JSONBytes({"taskid": row.id, "status": row.status.public.value.lower()})


@router.post(
    "/estimate",
    openapi_extra=_FORM_DOC,
    responses=api_doc.responses(NativeError, api_doc.json_ok(Estimate, "The price it would hold")),
    summary="Price of a /llmage/video request, without running it",
)
async def estimate(request: Request) -> Response:
    await authenticate(request)
    draft = await _draft(request)
    q = platform_of(request).tasks.quote(draft)
    params = {
        k: (
            "<file>"
            if isinstance(v, MediaSource)
            else ["<file>"] * len(v)
            if isinstance(v, list) and v and isinstance(v[0], MediaSource)
            else v
        )
        for k, v in q.params.items()
    }
    return JSONBytes(
        {
            "llmid": q.entry.llmid,
            "model": q.model,
            "amount": format_amount(q.amount),
            "amount_micros": q.amount,
            "currency": platform_of(request).settings.currency,
            "params": params,
        }
    )


async def _taskid(request: Request) -> str:
    fields: dict[str, Any] = {}
    given = [v for v in request.query_params.getlist("taskid") if v]
    if given:
        fields["taskid"] = given[0] if len(given) == 1 else given
    elif request.method == "POST":
        try:
            fields = await read_submission(request, 1 << 16)
        except LlmageError:  # no body, or not one we can read: it just carries no taskid
            fields = {}
    return str(read_fields(_TASKID, fields)["taskid"])


async def task_status(request: Request) -> Response:
    auth = await authenticate(request)
    row = await platform_of(request).tasks.get(auth, await _taskid(request))
    return JSONBytes(native_view(row, platform_of(request).media, base_url(request)))


async def task_cancel(request: Request) -> Response:
    auth = await authenticate(request)
    row = await platform_of(request).tasks.cancel(auth, await _taskid(request))
    return JSONBytes(native_view(row, platform_of(request).media, base_url(request)))


def _taskid_doc(method: str) -> dict[str, Any]:
    """`taskid` in the query; a POST may carry it in a JSON or form body instead."""
    in_query = api_doc.query(
        "taskid", {"type": "string"}, "The task's id (from the submit)", required=method != "POST"
    )
    doc = api_doc.params(in_query)
    if method == "POST":
        body = {"type": "object", "properties": {"taskid": {"type": "string"}}}
        doc["requestBody"] = {
            "required": False,
            "content": {
                "application/json": {"schema": body},
                "application/x-www-form-urlencoded": {"schema": body},
            },
        }
    return doc


_TASK_RESPONSES = api_doc.responses(NativeError, api_doc.json_ok(Task, "The task"))

# The seed documents the status query as GET in one place and POST in another: both work.
for _method in ("GET", "POST"):
    router.add_api_route(
        "/tasks",
        task_status,
        methods=[_method],
        summary="Task status (seed 000)",
        operation_id=f"native_task_status_{_method.lower()}",
        openapi_extra=_taskid_doc(_method),
        responses=_TASK_RESPONSES,
    )
for _method in ("POST", "DELETE"):
    router.add_api_route(
        "/tasks/cancel",
        task_cancel,
        methods=[_method],
        summary="Cancel an open task; its hold is released in full",
        operation_id=f"native_task_cancel_{_method.lower()}",
        openapi_extra=_taskid_doc(_method),
        responses=_TASK_RESPONSES,
    )
