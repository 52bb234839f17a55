"""The official `openai` SDK (sync and async) against a real llmage server, through `/v1`."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from apihelp import account

from conftest import Stack
from llmage.domain.tokens import count_tokens
from support.servers import FakeOpenAI

QWEN3_MAX_LLMID = "jdQBqVsYW3Aq52U7Ht7A3"
PROMPT = "Say hello to the test suite."


def client(stack: Stack, key: str, **kwargs: Any) -> openai.OpenAI:
    kwargs.setdefault("timeout", 20.0)
    return openai.OpenAI(base_url=stack.url + "/v1", api_key=key, **kwargs)


def aclient(stack: Stack, key: str, **kwargs: Any) -> openai.AsyncOpenAI:
    kwargs.setdefault("timeout", 20.0)
    return openai.AsyncOpenAI(base_url=stack.url + "/v1", api_key=key, **kwargs)


# -- completions ------------------------------------------------------------------------------


def test_sync_completion_on_sim(stack: Stack) -> None:
    acct = account(stack, "10")
    with client(stack, acct.key) as c:
        resp = c.chat.completions.create(
            model="qwen3-max", messages=[{"role": "user", "content": PROMPT}]
        )
    assert resp.object == "chat.completion"
    assert resp.model == "qwen3-max"
    assert len(resp.choices) == 1
    choice = resp.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    content = choice.message.content
    assert content and content.strip() == content
    assert resp.usage is not None
    assert resp.usage.prompt_tokens == count_tokens(PROMPT)
    assert resp.usage.completion_tokens == count_tokens(content)
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    assert stack.wait_settled(acct.user_id)[1] == 0


def test_model_named_by_llmid_answers_with_catalog_name(stack: Stack) -> None:
    acct = account(stack, "10")
    with client(stack, acct.key) as c:
        resp = c.chat.completions.create(
            model=QWEN3_MAX_LLMID, messages=[{"role": "user", "content": PROMPT}]
        )
    assert resp.model == "qwen3-max"


def test_sync_completion_through_fake_upstream(stack: Stack, upstream: FakeOpenAI) -> None:
    acct = account(stack, "10")
    with client(stack, acct.key) as c:
        resp = c.chat.completions.create(
            model="deepseek-chat", messages=[{"role": "user", "content": "hi"}], temperature=0.2
        )
    assert resp.model == "deepseek-chat"
    assert resp.choices[0].message.content == "fake answer"
    assert resp.usage is not None
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (7, 5)
    assert resp.usage.total_tokens == 12
    sent = upstream.requests[-1]
    assert sent["model"] == "deepseek-chat"
    assert sent["messages"] == [{"role": "user", "content": "hi"}]
    assert sent["temperature"] == 0.2
    assert upstream.headers[-1]["Authorization"] == f"Bearer {upstream.api_key}"


async def test_async_completion(stack: Stack) -> None:
    acct = account(stack, "10")
    async with aclient(stack, acct.key) as c:
        resp = await c.chat.completions.create(
            model="qwen-plus", messages=[{"role": "user", "content": PROMPT}]
        )
    assert resp.model == "qwen-plus"
    content = resp.choices[0].message.content
    assert content
    assert resp.usage is not None
    assert resp.usage.completion_tokens == count_tokens(content)


# -- streams ----------------------------------------------------------------------------------


def test_sync_stream_with_usage_chunk(stack: Stack) -> None:
    acct = account(stack, "10")
    with client(stack, acct.key) as c:
        stream = c.chat.completions.create(
            model="qwen3-max",
            messages=[{"role": "user", "content": PROMPT}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
    assert len(chunks) >= 3
    assert all(ch.object == "chat.completion.chunk" for ch in chunks)
    assert all(ch.model == "qwen3-max" for ch in chunks)
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text.strip()
    finishes = [ch.choices[0].finish_reason for ch in chunks if ch.choices]
    assert finishes[-1] == "stop"
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.completion_tokens == count_tokens(text)
    assert last.usage.prompt_tokens == count_tokens(PROMPT)
    # Only the last chunk carries usage.
    assert all(ch.usage is None for ch in chunks[:-1])
    assert stack.wait_settled(acct.user_id)[1] == 0


def test_sync_stream_without_usage_when_not_asked(stack: Stack, upstream: FakeOpenAI) -> None:
    acct = account(stack, "10")
    with client(stack, acct.key) as c:
        chunks = list(
            c.chat.completions.create(
                model="deepseek-chat", messages=[{"role": "user", "content": "hi"}], stream=True
            )
        )
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == "tok0 tok1 tok2 tok3 tok4 "
    assert all(ch.usage is None for ch in chunks)
    assert all(ch.choices for ch in chunks)
    # We asked upstream for usage on the client's behalf (it is what we bill from) ...
    assert upstream.requests[-1]["stream_options"] == {"include_usage": True}
    # ... and billed from it: 7 prompt + 5 completion tokens, not an estimate.
    balance, held = stack.wait_settled(acct.user_id)
    assert held == 0
    # deepseek-chat: 2 CNY / 3 CNY per M tokens -> ceil(7*2) + ceil(5*3) micro-units.
    assert 10_000_000 - balance == 14 + 15


async def test_async_stream_with_usage_chunk(stack: Stack, upstream: FakeOpenAI) -> None:
    acct = account(stack, "10")
    async with aclient(stack, acct.key) as c:
        stream = await c.chat.completions.create(
            model="deepseek-chat",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [ch async for ch in stream]
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == "tok0 tok1 tok2 tok3 tok4 "
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == 7
    assert chunks[-1].usage.completion_tokens == 5
    assert chunks[-1].usage.total_tokens == 12
    assert sum(1 for ch in chunks if ch.usage is not None) == 1


async def test_async_stream_without_usage(stack: Stack) -> None:
    acct = account(stack, "10")
    async with aclient(stack, acct.key) as c:
        stream = await c.chat.completions.create(
            model="qwen-plus", messages=[{"role": "user", "content": PROMPT}], stream=True
        )
        chunks = [ch async for ch in stream]
    assert chunks
    assert all(ch.usage is None and ch.choices for ch in chunks)


# -- errors -----------------------------------------------------------------------------------


def test_bad_key_is_authentication_error(stack: Stack) -> None:
    with (
        client(stack, "sk-" + "x" * 48) as c,
        pytest.raises(openai.AuthenticationError) as info,
    ):
        c.chat.completions.create(model="qwen3-max", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 401
    assert info.value.code == "invalid_api_key"
    assert info.value.body == {
        "message": "Invalid API Key",
        "type": "authentication_error",
        "param": None,
        "code": "invalid_api_key",
    }


async def test_async_bad_key_is_authentication_error(stack: Stack) -> None:
    async with aclient(stack, "not-even-a-key") as c:
        with pytest.raises(openai.AuthenticationError):
            await c.chat.completions.create(
                model="qwen3-max", messages=[{"role": "user", "content": "x"}]
            )


def test_missing_messages_is_bad_request(stack: Stack) -> None:
    acct = account(stack, "10")
    with client(stack, acct.key) as c, pytest.raises(openai.BadRequestError) as info:
        c.chat.completions.create(model="qwen3-max", messages=openai.NOT_GIVEN)  # type: ignore[arg-type]
    err = info.value
    assert err.status_code == 400
    assert err.code == "missing_required_parameter"
    assert err.param == "messages"
    assert "messages" in err.message


def _counting_client(counter: list[str]) -> openai.DefaultHttpxClient:
    def hook(request: Any) -> None:
        counter.append(str(request.url))

    return openai.DefaultHttpxClient(event_hooks={"request": [hook]})


def test_zero_balance_is_rate_limit_error_not_retried(stack: Stack) -> None:
    acct = account(stack, "0")
    sent: list[str] = []
    with (
        client(stack, acct.key, http_client=_counting_client(sent)) as c,
        pytest.raises(openai.RateLimitError) as info,
    ):
        assert c.max_retries == 2
        c.chat.completions.create(model="qwen3-max", messages=[{"role": "user", "content": "x"}])
    assert len(sent) == 1, sent
    err = info.value
    assert err.status_code == 429
    assert err.code == "insufficient_quota"
    assert err.response.headers["x-should-retry"] == "false"
    assert stack.balance(acct.user_id) == (0, 0)


def test_request_counter_does_see_sdk_retries(stack: Stack) -> None:
    """Control for the test above: a 503 (no channel on that platform) *is* retried."""
    acct = account(stack, "10")
    sent: list[str] = []
    with (
        openai.OpenAI(
            base_url=stack.url + "/sim/v1",
            api_key=acct.key,
            max_retries=1,
            timeout=20.0,
            http_client=_counting_client(sent),
        ) as c,
        pytest.raises(openai.InternalServerError) as info,
    ):
        c.chat.completions.create(
            model="deepseek-chat", messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.status_code == 503
    assert len(sent) == 2


def test_model_outside_the_key_allow_list_is_permission_denied(stack: Stack) -> None:
    acct = account(stack, "10", models=["qwen-plus"])
    with client(stack, acct.key) as c:
        ok = c.chat.completions.create(
            model="qwen-plus", messages=[{"role": "user", "content": "x"}]
        )
        assert ok.model == "qwen-plus"
        with pytest.raises(openai.PermissionDeniedError) as info:
            c.chat.completions.create(
                model="qwen3-max", messages=[{"role": "user", "content": "x"}]
            )
    assert info.value.status_code == 403
    assert info.value.code == "model_not_allowed"
    assert info.value.param == "model"


def test_key_spend_limit_is_rate_limit_error_not_retried(stack: Stack) -> None:
    acct = account(stack, "10", spend_limit=1)  # one micro-unit: no hold fits
    sent: list[str] = []
    with (
        client(stack, acct.key, http_client=_counting_client(sent)) as c,
        pytest.raises(openai.RateLimitError) as info,
    ):
        c.chat.completions.create(model="qwen3-max", messages=[{"role": "user", "content": "x"}])
    assert len(sent) == 1
    assert info.value.body["message"] == "API key spend limit reached"  # type: ignore[index]
    assert stack.balance(acct.user_id) == (10_000_000, 0)


def test_unknown_model_is_not_found(stack: Stack) -> None:
    acct = account(stack, "10")
    with client(stack, acct.key) as c, pytest.raises(openai.NotFoundError) as info:
        c.chat.completions.create(model="gpt-9-ultra", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 404
    assert info.value.code == "model_not_found"
    assert info.value.param == "model"
    assert "gpt-9-ultra" in info.value.message
    assert stack.balance(acct.user_id) == (10_000_000, 0)


# -- vendor extensions pass through -----------------------------------------------------------


def test_reasoning_content_and_unknown_fields_pass_through(
    stack: Stack, upstream: FakeOpenAI
) -> None:
    upstream.reasoning = True
    acct = account(stack, "10")
    with client(stack, acct.key) as c:
        raw = c.chat.completions.with_raw_response.create(
            model="deepseek-reasoner", messages=[{"role": "user", "content": "think"}]
        )
        resp = raw.parse()
    assert resp.model == "deepseek-reasoner"
    message = resp.choices[0].message
    assert message.content == "fake answer"
    assert message.reasoning_content == "thinking"  # type: ignore[attr-defined]
    assert resp.model_extra is not None
    assert resp.model_extra["vendor_extra"] == {"kept": True}
    body = raw.http_response.json()
    assert body["vendor_extra"] == {"kept": True}
    assert body["choices"][0]["message"]["reasoning_content"] == "thinking"
    assert raw.headers["x-llmage-usage-id"]


def test_reasoning_content_in_stream_deltas(stack: Stack, upstream: FakeOpenAI) -> None:
    upstream.reasoning = True
    acct = account(stack, "10")
    with client(stack, acct.key) as c:
        chunks = list(
            c.chat.completions.create(
                model="deepseek-reasoner",
                messages=[{"role": "user", "content": "think"}],
                stream=True,
            )
        )
    reasoning = [
        getattr(ch.choices[0].delta, "reasoning_content", None) for ch in chunks if ch.choices
    ]
    assert [r for r in reasoning if r] == ["r0"]
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == "tok1 tok2 tok3 tok4 "


async def test_async_reasoning_content(stack: Stack, upstream: FakeOpenAI) -> None:
    upstream.reasoning = True
    acct = account(stack, "10")
    async with aclient(stack, acct.key) as c:
        resp = await c.chat.completions.create(
            model="deepseek-reasoner", messages=[{"role": "user", "content": "think"}]
        )
    assert resp.choices[0].message.reasoning_content == "thinking"  # type: ignore[attr-defined]
