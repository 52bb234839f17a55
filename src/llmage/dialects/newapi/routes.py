"""new-api style video generation (`/v1/video/generations`, seeds 002 and 004).

`POST /v1/video/generations` submits (JSON, or multipart with `image` uploads); the reply is the
`video.generation.job` object with status `queued`. `GET /v1/video/generations/{task_id}` reads
it back (any video task of the caller, whichever dialect created it). `Idempotency-Key` is
honoured. Errors use seed 004's top-level `{code, message, param, type}` (see errors.py).
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from llmage.dialects import api_doc
from llmage.dialects.http import JSONBytes, authenticate, platform_of
from llmage.dialects.newapi.errors import in_client_terms
from llmage.dialects.newapi.schemas import Job, NewApiError
from llmage.dialects.newapi.translate import translate_submit
from llmage.dialects.newapi.views import DIALECT, job_view, submit_view
from llmage.dialects.submission import idempotency_key, read_submission
from llmage.domain.errors import LlmageError

router = APIRouter(prefix="/v1/video", tags=["new-api style video"])

_SUBMIT_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["model", "prompt"],
                    "properties": {
                        "model": {"type": "string"},
                        "prompt": {"type": "string"},
                        "image": {"type": "string", "description": "first frame: URL or base64"},
                        "last_image": {"type": "string", "description": "last frame"},
                        "reference_image_urls": {"type": "array", "items": {"type": "string"}},
                        "aspect_ratio": {"type": "string"},
                        "duration": {"type": ["number", "string"]},
                        "size": {"type": "string", "example": "1920x1080"},
                        "width": {"type": "integer"},
                        "height": {"type": "integer"},
                        "fps": {"type": "integer"},
                        "seed": {"type": "integer"},
                        "n": {"type": "integer", "enum": [1]},
                        "metadata": {"type": "object", "additionalProperties": True},
                        "extra_body": {"type": "object", "additionalProperties": True},
                    },
                    "additionalProperties": True,
                },
                "example": {"model": "viduq3-pro", "prompt": "a cat", "duration": 5},
            }
        },
    }
}
_JOB_RESPONSES = api_doc.responses(NewApiError, api_doc.json_ok(Job, "The job"))


def _base_url(request: Request) -> str:
    return platform_of(request).settings.public_base_url or str(request.base_url)


@router.post(
    "/generations",
    openapi_extra=_SUBMIT_DOC,
    responses=_JOB_RESPONSES,
    summary="Submit a video task (seeds 002, 004)",
)
async def create_generation(request: Request) -> Response:
    auth = await authenticate(request)
    p = platform_of(request)
    body = await read_submission(request, p.settings.max_upload_bytes)
    try:
        submit = translate_submit(body, p.catalog)
        row = await p.tasks.submit(
            auth,
            submit.draft,
            dialect=DIALECT,
            idempotency_key=idempotency_key(request),
        )
    except LlmageError as exc:
        in_client_terms(exc)
        raise
    return JSONBytes(submit_view(row, submit.requested))


@router.get(
    "/generations/{task_id}", responses=_JOB_RESPONSES, summary="A video task (seeds 002, 004)"
)
async def get_generation(request: Request, task_id: str) -> Response:
    auth = await authenticate(request)
    p = platform_of(request)
    row = await p.tasks.get(auth, task_id, kind="video")
    return JSONBytes(job_view(row, p.media, _base_url(request), p.catalog))
