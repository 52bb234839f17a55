"""Seed 003: `/{platform}/v1/chat/completions` pins a chat to one upstream platform's channels."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from apihelp import account, assert_openai_error, post, sse_json

from conftest import Stack
from support.servers import FakeOpenAI

PNG_B64 = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8"
    "z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)

# The request bodies of seed 003, with `<平台模型>` filled in.
SEED_PLAIN = {"messages": [{"role": "user", "content": "<对话内容>"}]}
SEED_IMAGE = {
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "<对话内容>"},
                {"type": "image_url", "image_url": {"url": PNG_B64}},
            ],
        }
    ]
}
SEED_FILE = {
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "<对话内容>"},
                {
                    "type": "file",
                    "file": {"file_data": "data:application/pdf;base64,JVBERi0xLjQKJcfsj6IK"},
                },
            ],
        }
    ]
}
SEED_MULTI_TURN = {
    "messages": [
        {"role": "system", "content": "你是一个专业的编程助手"},
        {"role": "user", "content": "什么是 JavaScript?"},
        {"role": "assistant", "content": "JavaScript 是一种高级编程语言..."},
        {"role": "user", "content": "它和 Java 有什么关系?"},
    ]
}


def with_model(body: dict[str, Any], model: str, **extra: Any) -> dict[str, Any]:
    return {**copy.deepcopy(body), "model": model, **extra}


@pytest.mark.parametrize(
    "seed",
    [SEED_PLAIN, SEED_IMAGE, SEED_FILE, SEED_MULTI_TURN],
    ids=["plain", "image_url", "file", "multi_turn"],
)
def test_fakeplat_reaches_the_fake_upstream_unchanged(
    stack: Stack, upstream: FakeOpenAI, seed: dict[str, Any]
) -> None:
    acct = account(stack, "10")
    r = post(
        stack, "/fakeplat/v1/chat/completions", acct.key, json=with_model(seed, "deepseek-chat")
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "deepseek-chat"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "fake answer"}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}
    # OpenAI shape only: no native fields on this dialect.
    assert "finish" not in body and "llmusageid" not in body
    assert len(upstream.requests) == 1
    sent = upstream.requests[0]
    assert sent["messages"] == seed["messages"]  # multimodal parts arrive unchanged
    assert sent["model"] == "deepseek-chat"
    assert stack.wait_settled(acct.user_id) == (10_000_000 - 14 - 15, 0)


def test_fakeplat_stream(stack: Stack, upstream: FakeOpenAI) -> None:
    acct = account(stack, "10")
    r = post(
        stack,
        "/fakeplat/v1/chat/completions",
        acct.key,
        json=with_model(SEED_PLAIN, "deepseek-chat", stream=True),
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    chunks, done = sse_json(r.text)
    assert done
    assert all(ch["object"] == "chat.completion.chunk" for ch in chunks)
    assert all(ch["model"] == "deepseek-chat" for ch in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(ch["choices"][0]["delta"].get("content") or "" for ch in chunks)
    assert text == "tok0 tok1 tok2 tok3 tok4 "
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in ch for ch in chunks)  # the client did not ask for it
    assert upstream.requests[-1]["stream"] is True
    assert stack.wait_settled(acct.user_id) == (10_000_000 - 14 - 15, 0)


def test_sim_platform_serves_its_own_models(stack: Stack, upstream: FakeOpenAI) -> None:
    acct = account(stack, "10")
    r = post(stack, "/sim/v1/chat/completions", acct.key, json=with_model(SEED_PLAIN, "qwen-plus"))
    assert r.status_code == 200, r.text
    assert r.json()["model"] == "qwen-plus"
    assert upstream.requests == []


@pytest.mark.parametrize(
    ("path", "model"),
    [("/sim/v1/chat/completions", "deepseek-chat"), ("/fakeplat/v1/chat/completions", "qwen3-max")],
)
def test_known_platform_without_channel_for_model_is_503(
    stack: Stack, upstream: FakeOpenAI, path: str, model: str
) -> None:
    acct = account(stack, "10")
    r = post(stack, path, acct.key, json=with_model(SEED_PLAIN, model))
    err = assert_openai_error(r, 503, type="server_error", code="no_available_channel")
    assert model in err["message"]
    assert upstream.requests == []
    assert stack.balance(acct.user_id) == (10_000_000, 0)


def test_unknown_platform_is_404(stack: Stack, upstream: FakeOpenAI) -> None:
    acct = account(stack, "10")
    r = post(
        stack,
        "/nosuchplat/v1/chat/completions",
        acct.key,
        json=with_model(SEED_PLAIN, "deepseek-chat"),
    )
    err = assert_openai_error(r, 404, param="platform", code="not_found")
    assert "nosuchplat" in err["message"]
    assert upstream.requests == []


@pytest.mark.parametrize("reserved", ["v1", "docs", "metrics", "healthz"])
def test_reserved_segments_are_not_platforms(stack: Stack, reserved: str) -> None:
    acct = account(stack, "10")
    r = post(
        stack,
        f"/{reserved}/v1/chat/completions",
        acct.key,
        json=with_model(SEED_PLAIN, "qwen3-max"),
    )
    assert_openai_error(r, 404)


def test_platform_route_needs_a_key(stack: Stack) -> None:
    r = post(
        stack, "/fakeplat/v1/chat/completions", None, json=with_model(SEED_PLAIN, "deepseek-chat")
    )
    assert_openai_error(r, 401, code="invalid_api_key", type="authentication_error")


def test_platform_route_zero_balance_is_429_not_retried(stack: Stack) -> None:
    acct = account(stack, "0")
    r = post(stack, "/sim/v1/chat/completions", acct.key, json=with_model(SEED_PLAIN, "qwen3-max"))
    assert_openai_error(r, 429, code="insufficient_quota")
    assert r.headers["x-should-retry"] == "false"


def test_unpinned_route_picks_the_model_platform(stack: Stack, upstream: FakeOpenAI) -> None:
    """Control: the same bodies without a prefix route by model to any platform."""
    acct = account(stack, "10")
    r1 = post(stack, "/v1/chat/completions", acct.key, json=with_model(SEED_PLAIN, "deepseek-chat"))
    r2 = post(stack, "/v1/chat/completions", acct.key, json=with_model(SEED_PLAIN, "qwen3-max"))
    assert (r1.status_code, r2.status_code) == (200, 200)
    assert len(upstream.requests) == 1  # only deepseek-chat went to the fake upstream
