"""OpenAI chat completions and models; also mounted under /{platform}/v1 by the platform dialect."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import Response

from llmage.dialects import api_doc
from llmage.dialects.http import (
    SSE_DONE,
    EventStreamResponse,
    JSONBytes,
    authenticate,
    platform_of,
    read_json,
    sse,
    until_client_leaves,
)
from llmage.dialects.openai.errors import error_body
from llmage.dialects.openai.schemas import ChatCompletion, OpenAIError
from llmage.dialects.openai.translate import stream_chunk
from llmage.domain.chat import parse_chat_body
from llmage.domain.errors import LlmageError
from llmage.services.chat import ChatStream


class ChatCompletionDoc(BaseModel):
    """OpenAI chat completion request (documentation). Upstream receives OpenAI's documented
    fields plus the channel's allowed vendor extras (e.g. enable_thinking, thinking); any other
    field is accepted and not forwarded."""

    model_config = ConfigDict(extra="allow")
    model: str
    messages: list[dict[str, Any]]
    stream: bool | None = False
    max_tokens: int | None = None
    stream_options: dict[str, Any] | None = None


EXAMPLE = {"model": "qwen3-max", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 64}
RESPONSES = api_doc.responses(
    OpenAIError,
    api_doc.json_ok(
        ChatCompletion,
        "The completion; with `stream: true`, `chat.completion.chunk` events",
        stream=True,
        headers={"x-llmage-usage-id": "The usage record of this call"},
    ),
)


async def _events(stream: ChatStream, include_usage: bool) -> AsyncIterator[bytes]:
    chunks = stream.chunks
    try:
        async for chunk in chunks:
            out = stream_chunk(chunk, include_usage)
            if out is not None:
                yield sse(out)
        yield SSE_DONE
    except LlmageError as exc:
        # Mid-stream failure: the SDK raises APIError on an event carrying `error`.
        yield sse(error_body(exc))
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]


async def chat_completions(request: Request, platform: str | None = None) -> Response:
    auth = await authenticate(request)
    req = parse_chat_body(await read_json(request))
    chat = platform_of(request).chat
    headers = {"x-llmage-usage-id": ""}
    if req.stream:
        stream = await until_client_leaves(
            request, chat.stream(auth, req, dialect="openai", platform=platform)
        )
        headers["x-llmage-usage-id"] = stream.usage_id
        return EventStreamResponse(_events(stream, req.include_usage), headers)
    result = await until_client_leaves(
        request, chat.complete(auth, req, dialect="openai", platform=platform)
    )
    headers["x-llmage-usage-id"] = result.usage_id
    return JSONBytes(result.body, headers=headers)
