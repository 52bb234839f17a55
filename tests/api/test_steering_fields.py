"""Clients cannot steer the upstream call: fields that would redirect it or hand it a key
(`api_base`, `base_url`, `api_key`, `extra_headers`, `extra_body`, `azure_endpoint`,
`custom_llm_provider`, ...) never reach the (recording) fake upstream, through any chat dialect,
stream or not; documented OpenAI fields and the provider's allowed extras still do."""

from __future__ import annotations

from typing import Any

import pytest
from apihelp import account, post

from conftest import Stack
from support.servers import FakeOpenAI

STEERING: dict[str, Any] = {
    "api_base": "http://evil.invalid/v1",
    "base_url": "http://evil.invalid/v1",
    "api_key": "sk-evil",
    "api_version": "2024-01-01",
    "extra_headers": {"X-Evil": "1", "Authorization": "Bearer sk-evil"},
    "extra_body": {"api_key": "sk-evil"},
    "extra_query": {"key": "sk-evil"},
    "azure_endpoint": "https://evil.invalid",
    "custom_llm_provider": "evil",
    "organization": "org-evil",
    "headers": {"X-Evil": "1"},
}
ALLOWED: dict[str, Any] = {
    "temperature": 0.5,
    "top_p": 0.9,
    "seed": 7,
    "user": "u-1",
    "reasoning_effort": "low",
    "enable_thinking": False,
    "thinking_budget": 64,
    "thinking": {"type": "disabled"},
}
ROUTES = {
    "openai": ("/v1/chat/completions", "messages"),
    "platform": ("/fakeplat/v1/chat/completions", "messages"),
    "native": ("/llmage/v1/chat/completions", "prompt"),
}


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
@pytest.mark.parametrize("dialect", list(ROUTES))
def test_steering_fields_never_reach_the_upstream(
    stack: Stack, upstream: FakeOpenAI, dialect: str, stream: bool
) -> None:
    acct = account(stack, "10")
    path, text_field = ROUTES[dialect]
    body: dict[str, Any] = {"model": "deepseek-chat", "stream": stream, **STEERING, **ALLOWED}
    if text_field == "prompt":
        body["prompt"] = "hi"
    else:
        body["messages"] = [{"role": "user", "content": "hi"}]
    r = post(stack, path, acct.key, json=body)
    assert r.status_code == 200, r.text
    (sent,) = upstream.requests
    (headers,) = upstream.headers
    assert not set(STEERING) & set(sent), sorted(set(STEERING) & set(sent))
    assert "evil" not in repr(sent)
    assert {k: sent[k] for k in ALLOWED} == ALLOWED
    assert headers["Authorization"] == f"Bearer {upstream.api_key}"
    assert "X-Evil" not in headers
