"""Pure translation to the native chat shape of seed 000: the OpenAI fields plus top-level
`reasoning_content`, `content`, `finish` ("0" while streaming, "1" on the final usage chunk and
on a whole completion) and `llmusageid`."""

from __future__ import annotations

from typing import Any


def stream_chunk(chunk: dict[str, Any], usage_id: str) -> dict[str, Any]:
    out = dict(chunk)
    choices = chunk.get("choices")
    if not choices and "usage" in chunk:
        out["finish"] = "1"
        out["llmusageid"] = usage_id
        return out
    delta = (choices[0].get("delta") or {}) if choices else {}
    out["reasoning_content"] = delta.get("reasoning_content")
    out["content"] = delta.get("content") or ""
    out["finish"] = "0"
    out["llmusageid"] = usage_id
    return out


def completion(body: dict[str, Any], usage_id: str) -> dict[str, Any]:
    out = dict(body)
    choices = body.get("choices") or []
    message = (choices[0].get("message") or {}) if choices else {}
    out["reasoning_content"] = message.get("reasoning_content")
    out["content"] = message.get("content")
    out["finish"] = "1"
    out["llmusageid"] = usage_id
    return out


def final_chunk(
    template: dict[str, Any], usage: dict[str, Any] | None, usage_id: str
) -> dict[str, Any]:
    """The closing usage chunk, for an upstream that ended its stream without one."""
    return {
        "id": template.get("id"),
        "object": "chat.completion.chunk",
        "created": template.get("created"),
        "choices": [],
        "model": template.get("model"),
        "finish": "1",
        "usage": usage,
        "llmusageid": usage_id,
    }
