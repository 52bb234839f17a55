"""Seed 000 text generation (`/llmage/v1/chat/completions`, `/llmage/t2t`), driven with the real
`curl` binary exactly as the seed does, plus the seed's error bodies."""

from __future__ import annotations

import json
from typing import Any

import pytest
from apihelp import account, curl, post, sse_json

from conftest import Stack
from llmage.db.repos.usage import UsageRecord
from llmage.domain.money import token_cost
from llmage.domain.tokens import count_tokens
from support.servers import FakeOpenAI

NATIVE_PATHS = ["/llmage/v1/chat/completions", "/llmage/t2t"]
OPENAI_FIELDS = {"id", "object", "created", "choices", "model", "usage"}
# qwen3-max list price, micro-units per million tokens (catalog/models.json).
QWEN3_MAX_IN, QWEN3_MAX_OUT = 6_000_000, 24_000_000
DEEPSEEK_IN, DEEPSEEK_OUT = 2_000_000, 3_000_000


def seed_curl(stack: Stack, path: str, key: str, data: str, *extra: str) -> tuple[int, str]:
    """The seed's request, verbatim apart from the host and key."""
    return curl(
        "-X", "POST", f"{stack.url}{path}",
        "-H", "Content-Type: application/json",
        "-H", f"Authorization: Bearer {key}",
        "-d", data,
        *extra,
    )  # fmt: skip


def usage_record(stack: Stack, usage_id: str) -> UsageRecord:
    record = stack.admin.call(stack.platform.usage.get(usage_id))
    assert record is not None, f"no usage record {usage_id}"
    return record


# -- non-stream -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", NATIVE_PATHS)
def test_seed_curl_non_stream(stack: Stack, path: str) -> None:
    acct = account(stack, "10")
    status, text = seed_curl(
        stack, path, acct.key, '{"model":"qwen3-max","prompt":"你是谁","stream":false}'
    )
    assert status == 200, text
    body = json.loads(text)
    assert set(body) >= OPENAI_FIELDS
    assert {"reasoning_content", "content", "finish", "llmusageid"} <= set(body)
    assert body["object"] == "chat.completion"
    assert body["model"] == "qwen3-max"
    assert body["finish"] == "1"
    assert body["reasoning_content"] is None
    message = body["choices"][0]["message"]
    assert message["role"] == "assistant"
    assert body["content"] == message["content"] and body["content"]
    assert body["choices"][0]["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["prompt_tokens"] == count_tokens("你是谁") == 3
    assert usage["completion_tokens"] == count_tokens(body["content"])
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens_details"] == {"cached_tokens": 0}

    # llmusageid is the usage record, with exactly the tokens and amount charged.
    record = usage_record(stack, body["llmusageid"])
    amount = token_cost(usage["prompt_tokens"], QWEN3_MAX_IN) + token_cost(
        usage["completion_tokens"], QWEN3_MAX_OUT
    )
    assert record.user_id == acct.user_id
    assert record.model == "qwen3-max"
    assert record.llmid == "jdQBqVsYW3Aq52U7Ht7A3"
    assert record.dialect == "native"
    assert record.stream is False
    assert record.status == "ok"
    assert record.estimated is False
    assert record.prompt_tokens == usage["prompt_tokens"]
    assert record.completion_tokens == usage["completion_tokens"]
    assert record.amount == amount > 0
    assert stack.balance(acct.user_id) == (10_000_000 - amount, 0)
    assert stack.reconcile() == []


def test_stream_false_may_be_omitted(stack: Stack) -> None:
    acct = account(stack, "10")
    status, text = seed_curl(
        stack, "/llmage/v1/chat/completions", acct.key, '{"model":"qwen3-max","prompt":"你是谁"}'
    )
    assert status == 200
    assert json.loads(text)["finish"] == "1"


# -- stream -----------------------------------------------------------------------------------


def check_native_stream(text: str) -> tuple[list[dict[str, Any]], str]:
    """Seed 000 stream rules; returns the chunks and the concatenated content."""
    chunks, done = sse_json(text)
    assert done, text[-200:]
    assert len(chunks) >= 3
    *body, last = chunks
    # Every chunk but the last is a content chunk with finish "0".
    for ch in body:
        assert ch["finish"] == "0", ch
        assert ch["object"] == "chat.completion.chunk"
        assert len(ch["choices"]) == 1
        assert "content" in ch and "reasoning_content" in ch
        delta = ch["choices"][0]["delta"]
        assert ch["content"] == (delta.get("content") or "")
    # The last one is the usage chunk.
    assert last["choices"] == []
    assert last["finish"] == "1"
    usage = last["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    # One llmusageid and one completion id throughout.
    assert len({ch["llmusageid"] for ch in chunks}) == 1
    assert chunks[0]["llmusageid"]
    assert len({ch["id"] for ch in chunks}) == 1
    assert body[-1]["choices"][0]["finish_reason"] == "stop"
    return chunks, "".join(ch["content"] for ch in body)


@pytest.mark.parametrize("path", NATIVE_PATHS)
def test_seed_curl_stream(stack: Stack, path: str) -> None:
    acct = account(stack, "10")
    status, text = seed_curl(
        stack, path, acct.key, '{"model":"qwen3-max","prompt":"你是谁","stream":true}', "-N"
    )
    assert status == 200, text
    assert text.rstrip("\n").endswith("data: [DONE]")
    chunks, content = check_native_stream(text)
    assert all(ch["model"] == "qwen3-max" for ch in chunks)
    assert content.strip()
    usage = chunks[-1]["usage"]
    assert usage["prompt_tokens"] == 3
    assert usage["completion_tokens"] == count_tokens(content)

    usage_id = chunks[0]["llmusageid"]
    balance, held = stack.wait_settled(acct.user_id)
    assert held == 0
    record = usage_record(stack, usage_id)
    amount = token_cost(usage["prompt_tokens"], QWEN3_MAX_IN) + token_cost(
        usage["completion_tokens"], QWEN3_MAX_OUT
    )
    assert record.stream is True
    assert record.status == "ok"
    assert (record.prompt_tokens, record.completion_tokens) == (3, usage["completion_tokens"])
    assert record.amount == amount == 10_000_000 - balance
    assert stack.reconcile() == []


def test_stream_through_openai_upstream_ends_with_usage_chunk(
    stack: Stack, upstream: FakeOpenAI
) -> None:
    acct = account(stack, "10")
    r = post(
        stack,
        "/llmage/v1/chat/completions",
        acct.key,
        json={"model": "deepseek-chat", "prompt": "hi", "stream": True},
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    chunks, content = check_native_stream(r.text)
    assert content == "tok0 tok1 tok2 tok3 tok4 "
    assert chunks[-1]["usage"]["prompt_tokens"] == 7
    assert chunks[-1]["usage"]["completion_tokens"] == 5
    assert r.headers["x-llmage-usage-id"] == chunks[0]["llmusageid"]
    stack.wait_settled(acct.user_id)
    record = usage_record(stack, chunks[0]["llmusageid"])
    assert record.amount == token_cost(7, DEEPSEEK_IN) + token_cost(5, DEEPSEEK_OUT)


def test_stream_reasoning_content_is_lifted(stack: Stack, upstream: FakeOpenAI) -> None:
    upstream.reasoning = True
    acct = account(stack, "10")
    r = post(
        stack,
        "/llmage/t2t",
        acct.key,
        json={"model": "deepseek-reasoner", "prompt": "think", "stream": True},
    )
    chunks, content = check_native_stream(r.text)
    assert [ch["reasoning_content"] for ch in chunks[:-1] if ch["reasoning_content"]] == ["r0"]
    assert content == "tok1 tok2 tok3 tok4 "


def test_non_stream_reasoning_content_is_lifted(stack: Stack, upstream: FakeOpenAI) -> None:
    upstream.reasoning = True
    acct = account(stack, "10")
    r = post(stack, "/llmage/t2t", acct.key, json={"model": "deepseek-reasoner", "prompt": "think"})
    assert r.status_code == 200
    body = r.json()
    assert body["reasoning_content"] == "thinking"
    assert body["content"] == "fake answer"
    assert body["vendor_extra"] == {"kept": True}


def test_stream_cut_by_upstream_ends_with_error_and_is_released(
    stack: Stack, upstream: FakeOpenAI
) -> None:
    """Upstream dies after two content chunks and before its usage chunk: the client gets an
    error event (same llmusageid, finish "1", no [DONE]); an upstream failure releases the
    whole hold (DESIGN §5), and the record keeps our documented estimate of what was sent."""
    upstream.cut_after = 2
    acct = account(stack, "10")
    r = post(
        stack,
        "/llmage/v1/chat/completions",
        acct.key,
        json={"model": "deepseek-chat", "prompt": "hi", "stream": True},
    )
    assert r.status_code == 200
    chunks, done = sse_json(r.text)
    assert not done
    *body, last = chunks
    assert "".join(ch["content"] for ch in body) == "tok0 tok1 "
    assert set(last) == {"error", "llmusageid", "finish"}
    assert isinstance(last["error"], str) and last["error"]
    assert last["finish"] == "1"
    assert {ch["llmusageid"] for ch in chunks} == {r.headers["x-llmage-usage-id"]}
    balance, held = stack.wait_settled(acct.user_id)
    assert held == 0
    record = usage_record(stack, last["llmusageid"])
    assert record.status == "error"
    assert record.estimated is True
    # Estimate: "hi" -> 1 prompt token; "tok0 tok1 " (10 chars) -> 3 completion tokens.
    assert (record.prompt_tokens, record.completion_tokens) == (1, 3)
    assert record.amount == 0
    assert balance == 10_000_000
    assert stack.reconcile() == []


# -- request forms ----------------------------------------------------------------------------


def test_sys_prompt_becomes_system_message(stack: Stack, upstream: FakeOpenAI) -> None:
    acct = account(stack, "10")
    r = post(
        stack,
        "/llmage/v1/chat/completions",
        acct.key,
        json={
            "model": "deepseek-chat",
            "prompt": "你是谁",
            "sys_prompt": "你是一个有帮助的助手",
            "temperature": 0.3,
        },
    )
    assert r.status_code == 200, r.text
    sent = upstream.requests[-1]
    assert sent["messages"] == [
        {"role": "system", "content": "你是一个有帮助的助手"},
        {"role": "user", "content": "你是谁"},
    ]
    assert "prompt" not in sent and "sys_prompt" not in sent
    assert sent["temperature"] == 0.3  # "..." other fields pass through
    assert sent["model"] == "deepseek-chat"
    assert r.json()["content"] == "fake answer"


def test_without_sys_prompt_only_user_message(stack: Stack, upstream: FakeOpenAI) -> None:
    acct = account(stack, "10")
    r = post(stack, "/llmage/t2t", acct.key, json={"model": "deepseek-chat", "prompt": "hello"})
    assert r.status_code == 200
    assert upstream.requests[-1]["messages"] == [{"role": "user", "content": "hello"}]


def test_messages_form_accepted(stack: Stack, upstream: FakeOpenAI) -> None:
    acct = account(stack, "10")
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "again"},
    ]
    r = post(
        stack,
        "/llmage/v1/chat/completions",
        acct.key,
        json={"model": "deepseek-chat", "messages": messages},
    )
    assert r.status_code == 200, r.text
    assert upstream.requests[-1]["messages"] == messages
    body = r.json()
    assert body["finish"] == "1" and body["content"] == "fake answer"
    assert body["usage"]["total_tokens"] == 12


def test_model_by_llmid_on_native(stack: Stack) -> None:
    acct = account(stack, "10")
    r = post(
        stack,
        "/llmage/t2t",
        acct.key,
        json={"model": "jdQBqVsYW3Aq52U7Ht7A3", "prompt": "你是谁"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["model"] == "qwen3-max"


# -- the seed's error bodies ------------------------------------------------------------------


@pytest.mark.parametrize("path", NATIVE_PATHS)
def test_invalid_key_exact_body(stack: Stack, path: str) -> None:
    status, text = seed_curl(
        stack, path, "sk-not-a-real-key-000000000000", '{"model":"qwen3-max","prompt":"你是谁"}'
    )
    assert status == 401
    assert json.loads(text) == {"error": "Invalid API Key"}


def test_missing_authorization_exact_body(stack: Stack) -> None:
    status, text = curl(
        "-X", "POST", f"{stack.url}/llmage/v1/chat/completions",
        "-H", "Content-Type: application/json",
        "-d", '{"model":"qwen3-max","prompt":"你是谁"}',
    )  # fmt: skip
    assert status == 401
    assert json.loads(text) == {"error": "Invalid API Key"}


@pytest.mark.parametrize("path", NATIVE_PATHS)
@pytest.mark.parametrize(
    "data", ['{"model":"qwen3-max"}', '{"model":"qwen3-max","prompt":""}'], ids=["absent", "empty"]
)
def test_missing_prompt_exact_body(stack: Stack, path: str, data: str) -> None:
    acct = account(stack, "10")
    status, text = seed_curl(stack, path, acct.key, data)
    assert status == 400
    assert json.loads(text) == {"error": "Missing required parameter: prompt"}
    assert stack.balance(acct.user_id) == (10_000_000, 0)


@pytest.mark.parametrize("path", NATIVE_PATHS)
@pytest.mark.parametrize("stream", ["false", "true"])
def test_insufficient_balance_exact_body(stack: Stack, path: str, stream: str) -> None:
    acct = account(stack, "0")
    status, text = seed_curl(
        stack, path, acct.key, f'{{"model":"qwen3-max","prompt":"你是谁","stream":{stream}}}'
    )
    assert status == 429
    assert json.loads(text) == {"error": "Insufficient balance"}
    assert stack.balance(acct.user_id) == (0, 0)


def test_unknown_model_native_shape(stack: Stack) -> None:
    acct = account(stack, "10")
    r = post(stack, "/llmage/t2t", acct.key, json={"model": "no-such-model", "prompt": "x"})
    assert r.status_code == 404
    assert r.json() == {"error": "The model 'no-such-model' does not exist or is not available"}


def test_native_errors_are_plain_strings(stack: Stack) -> None:
    acct = account(stack, "10")
    r = post(
        stack,
        "/llmage/v1/chat/completions",
        acct.key,
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 400
    body = r.json()
    assert set(body) == {"error"} and isinstance(body["error"], str)
    assert "not valid JSON" in body["error"]
