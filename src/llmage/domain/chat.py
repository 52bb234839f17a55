"""The canonical chat request and usage, and the pure parsing every dialect shares.

The canonical body *is* an OpenAI chat body: every upstream we relay to speaks it. The client's
dict is kept as sent, but only its documented OpenAI fields, plus the extras a provider (or an
admin, per channel) allows, ever reach an upstream (`forwardable`): a client cannot hand the
upstream a key, a base URL or headers of its choosing.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from llmage.domain.errors import InvalidParameter, InvalidRequest, MissingParameter
from llmage.domain.params import check_json_types

_S, _N, _I, _B, _O, _A = "string", "number", "integer", "boolean", "object", "array"

# The request fields of OpenAI's chat completions API, with their JSON types: the only fields an
# upstream sees (plus allowed extras), and each is typed at the edge (`parse_chat_body`).
# `service_tier` is left out on purpose: it picks a dearer upstream price than the one our
# catalog charges.
OPENAI_CHAT_FIELD_TYPES: dict[str, tuple[str, ...]] = {
    "model": (_S,),
    "messages": (_A,),
    "audio": (_O,),
    "frequency_penalty": (_N,),
    "function_call": (_S, _O),
    "functions": (_A,),
    "logit_bias": (_O,),
    "logprobs": (_B,),
    "max_completion_tokens": (_I,),
    "max_tokens": (_I,),
    "metadata": (_O,),
    "modalities": (_A,),
    "n": (_I,),
    "parallel_tool_calls": (_B,),
    "prediction": (_O,),
    "presence_penalty": (_N,),
    "prompt_cache_key": (_S,),
    "prompt_cache_retention": (_S,),
    "reasoning_effort": (_S,),
    "response_format": (_O,),
    "safety_identifier": (_S,),
    "seed": (_I,),
    "stop": (_S, _A),
    "store": (_B,),
    "stream": (_B,),
    "stream_options": (_O,),
    "temperature": (_N,),
    "tool_choice": (_S, _O),
    "tools": (_A,),
    "top_logprobs": (_I,),
    "top_p": (_N,),
    "user": (_S,),
    "verbosity": (_S,),
    "web_search_options": (_O,),
}
OPENAI_CHAT_FIELDS = frozenset(OPENAI_CHAT_FIELD_TYPES)
# Vendor switches some providers allow as extras (providers/openai_compat.py): typed whenever
# given, whichever channel the call ends up on.
VENDOR_CHAT_FIELD_TYPES: dict[str, tuple[str, ...]] = {
    "enable_thinking": (_B,),
    "thinking_budget": (_I,),
    "thinking": (_O,),
    "top_k": (_I,),
    "repetition_penalty": (_N,),
    "min_p": (_N,),
}


def forwardable(
    body: Mapping[str, Any], extras: Collection[str] = ()
) -> tuple[dict[str, Any], list[str]]:
    """(the fields an upstream may see, the names of those it may not). Everything else, such
    as `api_key`, `api_base`, `base_url`, `extra_headers` or `extra_body`, stays here."""
    out: dict[str, Any] = {}
    dropped: list[str] = []
    for name, value in body.items():
        if name in OPENAI_CHAT_FIELDS or name in extras:
            out[name] = value
        else:
            dropped.append(name)
    return out, dropped


@dataclass(slots=True)
class ChatRequest:
    model: str  # as the client named it: a model name or an llmid
    body: dict[str, Any]  # OpenAI chat body; `model` is rewritten per channel by the adapter
    stream: bool
    include_usage: bool  # did the client ask for the final usage chunk?
    max_tokens: int | None
    n: int = 1


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def from_openai(cls, usage: Mapping[str, Any] | None) -> Usage | None:
        if not isinstance(usage, Mapping):
            return None
        details = usage.get("prompt_tokens_details")
        cached = details.get("cached_tokens") if isinstance(details, Mapping) else None
        return cls(
            prompt_tokens=_int(usage.get("prompt_tokens")),
            completion_tokens=_int(usage.get("completion_tokens")),
            cached_tokens=_int(cached),
        )


_MAX_TOKENS_REPORTED = 2**31 - 1


def _int(value: object) -> int:
    """A token count as reported upstream: absurd values are clamped (the charge is capped by
    the hold anyway), floats such as 1e20 are not silently taken for zero."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    if isinstance(value, float) and not math.isfinite(value):
        return _MAX_TOKENS_REPORTED if value > 0 else 0
    return max(0, min(int(value), _MAX_TOKENS_REPORTED))


_MAX_COUNT = 10_000_000


def _positive_int(body: Mapping[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidParameter(f"'{name}' must be a positive integer", param=name)
    if value > _MAX_COUNT:
        # No model generates this much; unbounded values would overflow the hold's arithmetic.
        raise InvalidParameter(
            f"'{name}' must be at most {_MAX_COUNT}", param=name, allowed=(1, _MAX_COUNT)
        )
    return value


def parse_chat_body(body: Any) -> ChatRequest:
    """Validate the parts of an OpenAI chat body that billing and routing depend on."""
    if not isinstance(body, dict):
        raise InvalidRequest("Request body must be a JSON object")
    model = body.get("model")
    if model is None or model == "":
        raise MissingParameter("model")
    if not isinstance(model, str):
        raise InvalidParameter("'model' must be a string", param="model")
    messages = body.get("messages")
    if messages is None:
        raise MissingParameter("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidParameter("'messages' must be a non-empty array", param="messages")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or not isinstance(msg.get("role"), str):
            raise InvalidParameter(
                f"'messages[{i}]' must be an object with a string 'role'", param=f"messages[{i}]"
            )
        if not isinstance(msg.get("content"), str | list | None):
            raise InvalidParameter(
                f"'messages[{i}].content' must be a string or an array of content parts",
                param=f"messages[{i}].content",
            )
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise InvalidParameter("'stream' must be a boolean", param="stream")
    opts = body.get("stream_options")
    if opts is not None and not isinstance(opts, dict):
        raise InvalidParameter("'stream_options' must be an object", param="stream_options")
    include_usage = bool(opts and opts.get("include_usage"))
    max_tokens = _positive_int(body, "max_completion_tokens") or _positive_int(body, "max_tokens")
    n = _positive_int(body, "n") or 1
    if n > 16:
        raise InvalidParameter("'n' must be at most 16", param="n", allowed=(1, 16))
    # The rest, after the checks above with their own words.
    check_json_types(body, OPENAI_CHAT_FIELD_TYPES)
    check_json_types(body, VENDOR_CHAT_FIELD_TYPES)
    return ChatRequest(model, body, stream, include_usage, max_tokens, n)


def native_to_chat_body(body: Any) -> dict[str, Any]:
    """Seed 000/001 form: `prompt` (+ `sys_prompt`) instead of `messages`; other fields pass."""
    if not isinstance(body, dict):
        raise InvalidRequest("Request body must be a JSON object")
    if "messages" in body:
        return body
    prompt = body.get("prompt")
    if prompt is None or prompt == "":
        raise MissingParameter("prompt")
    if not isinstance(prompt, str):
        raise InvalidParameter("'prompt' must be a string", param="prompt")
    sys_prompt = body.get("sys_prompt")
    if sys_prompt is not None and not isinstance(sys_prompt, str):
        raise InvalidParameter("'sys_prompt' must be a string", param="sys_prompt")
    messages: list[dict[str, Any]] = []
    if sys_prompt:
        messages.append({"role": "system", "content": sys_prompt})
    messages.append({"role": "user", "content": prompt})
    out = {k: v for k, v in body.items() if k not in ("prompt", "sys_prompt")}
    out["messages"] = messages
    return out
