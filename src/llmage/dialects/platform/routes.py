"""Platform-prefixed mirrors of the OpenAI routes (seed 003): `/{platform}/v1/...` pins the request
to channels of one upstream platform (a channel's `platform`, e.g. aliyun, volcengine, sim)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from llmage.dialects import api_doc
from llmage.dialects.http import body_doc, lean
from llmage.dialects.openai import chat
from llmage.domain.errors import NotFound

router = APIRouter(tags=["Platform-prefixed (OpenAI format)"])

# Path segments that belong to other dialects and can never be a platform name.
RESERVED = frozenset({"v1", "llmage", "docs", "metrics", "healthz", "openapi.json", "redoc"})


PLATFORM_PARAM = {
    "name": "platform",
    "in": "path",
    "required": True,
    "description": "An upstream platform some enabled channel belongs to (e.g. aliyun, sim)",
    "schema": {"type": "string"},
    "example": "sim",
}


def _platform(platform: str) -> str:
    if platform in RESERVED:
        raise NotFound(f"Unknown platform '{platform}'", param="platform")
    return platform


@router.post(
    "/{platform}/v1/chat/completions",
    # A lean route takes only the request: its path parameter is declared here.
    openapi_extra=api_doc.merge(
        api_doc.params(PLATFORM_PARAM), body_doc(chat.ChatCompletionDoc, chat.EXAMPLE)
    ),
    responses=chat.RESPONSES,
    summary="Chat completion on one platform's channels (seed 003)",
)
@lean
async def platform_chat(request: Request) -> Response:
    return await chat.chat_completions(request, platform=_platform(request.path_params["platform"]))
