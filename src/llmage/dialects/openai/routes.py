"""OpenAI-dialect routes (`/v1/...`)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from llmage.dialects import api_doc
from llmage.dialects.http import JSONBytes, authenticate, body_doc, lean, platform_of
from llmage.dialects.openai import chat
from llmage.dialects.openai.schemas import ModelList, OpenAIError
from llmage.dialects.openai.translate import models_list

router = APIRouter(prefix="/v1", tags=["OpenAI"])


@router.post(
    "/chat/completions",
    openapi_extra=body_doc(chat.ChatCompletionDoc, chat.EXAMPLE),
    responses=chat.RESPONSES,
    summary="Chat completion (OpenAI format, stream or not)",
)
@lean
async def chat_completions(request: Request) -> Response:
    return await chat.chat_completions(request)


@router.get(
    "/models",
    responses=api_doc.responses(OpenAIError, api_doc.json_ok(ModelList, "Every model name")),
    summary="Models (OpenAI format)",
)
async def list_models(request: Request) -> Response:
    await authenticate(request)
    return JSONBytes(models_list(platform_of(request).catalog))
