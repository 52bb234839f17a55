"""Native routes (`/llmage/...`) as in seeds 000 and 001."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import Response

from llmage.dialects import api_doc
from llmage.dialects.http import (
    SSE_DONE,
    EventStreamResponse,
    JSONBytes,
    authenticate,
    body_doc,
    lean,
    platform_of,
    read_json,
    sse,
    until_client_leaves,
)
from llmage.dialects.native import translate
from llmage.dialects.native.errors import error_message
from llmage.dialects.native.plaza import plaza
from llmage.dialects.native.schemas import Completion, NativeError, Plaza
from llmage.domain.chat import native_to_chat_body, parse_chat_body
from llmage.domain.errors import LlmageError
from llmage.services.chat import ChatStream

router = APIRouter(prefix="/llmage", tags=["Native (llmage)"])


class NativeChatDoc(BaseModel):
    """Seed 000 chat request: `prompt` (+ `sys_prompt`), or OpenAI `messages`; other OpenAI chat
    fields (and the channel's allowed vendor extras) go upstream, anything else is ignored."""

    model_config = ConfigDict(extra="allow")
    model: str
    prompt: str | None = None
    sys_prompt: str | None = None
    messages: list[dict[str, Any]] | None = None
    stream: bool | None = False


_CHAT_EXAMPLE = {"model": "qwen3-max", "prompt": "你是谁", "max_tokens": 64}
_CHAT_RESPONSES = api_doc.responses(
    NativeError,
    api_doc.json_ok(
        Completion,
        "The completion; with `stream: true`, chunks carrying content / reasoning_content / "
        "finish / llmusageid, the last one with the usage",
        stream=True,
        headers={"x-llmage-usage-id": "The usage record of this call (also `llmusageid`)"},
    ),
)


async def _events(stream: ChatStream) -> AsyncIterator[bytes]:
    chunks = stream.chunks
    last: dict[str, Any] = {}
    usage_sent = False
    try:
        async for chunk in chunks:
            last = chunk
            out = translate.stream_chunk(chunk, stream.usage_id)
            usage_sent = usage_sent or out["finish"] == "1"
            yield sse(out)
        if not usage_sent:
            u = stream.meter.usage
            usage = (
                None
                if u is None
                else {
                    "prompt_tokens": u.prompt_tokens,
                    "completion_tokens": u.completion_tokens,
                    "total_tokens": u.total_tokens,
                }
            )
            yield sse(translate.final_chunk(last, usage, stream.usage_id))
        yield SSE_DONE
    except LlmageError as exc:
        yield sse({"error": error_message(exc), "llmusageid": stream.usage_id, "finish": "1"})
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]


async def _chat(request: Request) -> Response:
    auth = await authenticate(request)
    req = parse_chat_body(native_to_chat_body(await read_json(request)))
    # The native stream always ends with the usage chunk (seed 000), whatever stream_options say.
    req.include_usage = True
    chat = platform_of(request).chat
    if req.stream:
        stream = await until_client_leaves(request, chat.stream(auth, req, dialect="native"))
        return EventStreamResponse(_events(stream), {"x-llmage-usage-id": stream.usage_id})
    result = await until_client_leaves(request, chat.complete(auth, req, dialect="native"))
    return JSONBytes(
        translate.completion(result.body, result.usage_id),
        headers={"x-llmage-usage-id": result.usage_id},
    )


@router.post(
    "/v1/chat/completions",
    openapi_extra=body_doc(NativeChatDoc, _CHAT_EXAMPLE),
    responses=_CHAT_RESPONSES,
    summary="Text generation (seed 000)",
)
@lean
async def native_chat(request: Request) -> Response:
    return await _chat(request)


@router.post(
    "/t2t",
    openapi_extra=body_doc(NativeChatDoc, _CHAT_EXAMPLE),
    responses=_CHAT_RESPONSES,
    summary="Text generation, older path (seed 001)",
)
@lean
async def native_t2t(request: Request) -> Response:
    return await _chat(request)


@router.get(
    "/models",
    responses=api_doc.responses(NativeError, api_doc.json_ok(Plaza, "Every model"), auth=False),
    summary="Model plaza: every model with its parameter schema and price",
)
async def models(request: Request) -> Response:
    return JSONBytes(plaza(platform_of(request).catalog, platform_of(request).settings.currency))
