"""Pure translation of the OpenAI-compatible adapter (error classification, credential scrubbing,
the request body) and the `sim` provider's deterministic, token-exact replies.

The bodies under fixtures/openai_compat/ are upstream error replies as the providers document
them, one file per case with the kind, status and message we must turn it into."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from llmage.domain.credentials import ApiKey
from llmage.domain.errors import UpstreamError, UpstreamKind
from llmage.domain.tokens import count_tokens
from llmage.providers.contract import Channel
from llmage.providers.openai_compat import OpenAICompatProvider, classify
from llmage.providers.sim import SimProvider
from llmage.providers.transport import scrub

FIXTURES = Path(__file__).parent / "fixtures" / "openai_compat"
CASES = sorted(FIXTURES.glob("*.json"))


def load(path: Path) -> dict[str, Any]:
    case: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return case


def raw_body(case: dict[str, Any]) -> bytes:
    body = case["body"]
    return body.encode() if isinstance(body, str) else orjson.dumps(body)


# -- classify ---------------------------------------------------------------------------------


def test_fixtures_cover_the_statuses() -> None:
    statuses = {load(p)["status"] for p in CASES}
    assert {400, 401, 402, 403, 404, 418, 429, 500} <= statuses


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_classify_recorded_errors(path: Path) -> None:
    case = load(path)
    err = classify(case["status"], raw_body(case))
    expect = case["expect"]
    assert isinstance(err, UpstreamError)
    assert err.kind == UpstreamKind(expect["kind"]), case["source"]
    assert err.status == expect["status"]
    assert err.message == expect["message"]
    assert err.upstream_status == case["status"]
    assert err.code == expect["kind"]
    # Only the user's own mistakes are 4xx, and they are `invalid_request_error`s.
    assert (err.status == 400) == (err.type == "invalid_request_error")
    # Retry on another channel only for what another channel could fix.
    retry_elsewhere = expect["kind"] in ("retryable", "upstream_quota", "auth")
    assert err.retryable == retry_elsewhere, case["source"]
    assert "sk-" not in err.message


def test_classify_keeps_no_credential_even_when_the_upstream_echoes_it() -> None:
    body = orjson.dumps({"error": {"message": "Incorrect API key provided: sk-live-1234567890"}})
    for status in (400, 401, 403, 404, 422, 429, 500):
        assert "1234567890" not in classify(status, body).message


def test_classify_non_json_and_odd_shapes() -> None:
    assert classify(400, b"plain text problem").message == "plain text problem"
    assert classify(400, b'["a", "list"]').kind is UpstreamKind.BAD_REQUEST
    assert classify(400, b'{"code": "InvalidParameter"}').message == "InvalidParameter"
    assert classify(400, b'{"message": "top-level message"}').message == "top-level message"
    assert classify(413, b"{}").kind is UpstreamKind.BAD_REQUEST
    assert classify(422, b"{}").kind is UpstreamKind.BAD_REQUEST
    assert classify(503, b"").kind is UpstreamKind.RETRYABLE
    # Kept longer than shown: the service redacts the channel's secrets first, then cuts to 500.
    long = classify(400, orjson.dumps({"error": {"message": "x" * 5000}}))
    assert len(long.message) == 4000
    assert len(long.redact(channel().redact).message) == 500


# -- scrub ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Incorrect API key provided: sk-proj-Ab12Cd34_Ef56-Gh78.", "Ab12Cd34"),
        ("key=sk-0123456789abcdef0123456789abcdef", "0123456789abcdef"),
        ("Authorization: Bearer sk-upstream-secret", "upstream-secret"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig", "eyJhbGci"),
        ("access key AKLTMjM0NTY3ODkwYWJjZGVm rejected", "MjM0NTY3"),
        ("SK-UPPERCASE0123456789 is not valid", "UPPERCASE"),
        ("masked sk-abc***********xyz still shown", "abc***"),
    ],
)
def test_scrub_removes_keys(text: str, secret: str) -> None:
    out = scrub(text)
    assert secret not in out
    assert "[redacted]" in out


def test_scrub_keeps_ordinary_text_and_caps_length() -> None:
    text = "Invalid 'temperature': expected a value <= 2, but got 9 instead."
    assert scrub(text) == text
    assert scrub("你好, sk") == "你好, sk"
    assert len(scrub("y" * 2000)) == 500
    assert scrub("y" * 2000, limit=20) == "y" * 20


def test_scrub_leaves_words_ending_in_sk_alone() -> None:
    """`sk-` inside a word is not a key: 'task-1234' or 'risk-free' must survive intact."""
    text = "Unknown parameter 'task-level' for the risk-free tier"
    assert scrub(text) == text


# -- the upstream request body ----------------------------------------------------------------


def channel(**overrides: Any) -> Channel:
    values: dict[str, Any] = {
        "id": 1,
        "name": "c",
        "provider": "openai_compat",
        "platform": "p",
        "base_url": "http://upstream.invalid/v1/",
        "api_key": "sk-upstream",
        "models": frozenset({"qwen3-max"}),
        "model_map": {},
        "options": {},
    }
    values.update(overrides)
    key = values.pop("api_key")
    values["credentials"] = ApiKey(key) if key else None
    return Channel(**values)


def test_body_maps_the_model_and_always_asks_for_stream_usage() -> None:
    ch = channel(model_map={"qwen3-max": "qwen3-max-2025-09-23"})
    body = {
        "model": "qwen3-max",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": False, "vendor_opt": 1},
        "enable_thinking": False,
    }
    original = json.loads(json.dumps(body))
    out = orjson.loads(OpenAICompatProvider._body(ch, body, True))
    assert out["model"] == "qwen3-max-2025-09-23"
    assert out["stream_options"] == {"include_usage": True, "vendor_opt": 1}
    assert out["enable_thinking"] is False  # allowed vendor fields pass
    assert out["messages"] == body["messages"]
    assert body == original  # the canonical request is not mutated

    plain = orjson.loads(OpenAICompatProvider._body(channel(), {"model": "qwen3-max"}, False))
    assert plain == {"model": "qwen3-max"}


STEERING = {
    "api_base": "http://evil.invalid/v1",
    "base_url": "http://evil.invalid/v1",
    "api_key": "sk-evil",
    "extra_headers": {"X-Evil": "1"},
    "extra_body": {"x": 1},
    "azure_endpoint": "https://evil.invalid",
    "custom_llm_provider": "evil",
    "llmid": "CrEMkFQfRCmbmopZsCqLj",
    "service_tier": "priority",
}


def test_body_forwards_documented_fields_and_allowed_extras_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = {
        "model": "qwen3-max",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.2,
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "reasoning_effort": "low",
        "enable_thinking": True,
        "thinking_budget": 100,
        "thinking": {"type": "enabled"},
        "vendor_knob": 1,
        **STEERING,
    }
    with caplog.at_level("DEBUG", logger="llmage.providers.openai_compat"):
        out = orjson.loads(OpenAICompatProvider._body(channel(), body, False))
    assert set(out) == {
        "model",
        "messages",
        "temperature",
        "tools",
        "reasoning_effort",
        "enable_thinking",
        "thinking_budget",
        "thinking",
    }
    # Which fields stayed behind is logged (names only, never values).
    assert "api_key" in caplog.text and "extra_headers" in caplog.text
    assert "sk-evil" not in caplog.text and "evil.invalid" not in caplog.text
    # An admin may allow more per channel; never by request.
    allowing = channel(options={"extra_fields": ["vendor_knob"]})
    out = orjson.loads(OpenAICompatProvider._body(allowing, body, False))
    assert out["vendor_knob"] == 1 and "api_key" not in out


def test_url_and_headers() -> None:
    ch = channel()
    assert OpenAICompatProvider._url(ch) == "http://upstream.invalid/v1/chat/completions"
    h = OpenAICompatProvider._headers(ch, True)
    assert h["Authorization"] == "Bearer sk-upstream"
    assert h["Accept"] == "text/event-stream"
    assert "Authorization" not in OpenAICompatProvider._headers(channel(api_key=None), False)


# -- sim --------------------------------------------------------------------------------------


def sim_channel(**options: Any) -> Channel:
    return channel(provider="sim", platform="sim", base_url="", api_key=None, options=options)


def chat_body(prompt: str, **extra: Any) -> dict[str, Any]:
    return {"model": "qwen3-max", "messages": [{"role": "user", "content": prompt}], **extra}


async def test_sim_is_deterministic_and_counts_real_tokens() -> None:
    sim = SimProvider()
    ch = sim_channel()
    first = await sim.chat(ch, chat_body("你是谁"))
    again = await sim.chat(ch, chat_body("你是谁"))
    other = await sim.chat(ch, chat_body("tell me about the weather, please"))
    content = first["choices"][0]["message"]["content"]
    assert content == again["choices"][0]["message"]["content"]
    assert content != other["choices"][0]["message"]["content"]
    assert first["id"] != again["id"]
    assert first["object"] == "chat.completion"
    assert first["choices"][0]["finish_reason"] == "stop"
    usage = first["usage"]
    assert usage["prompt_tokens"] == count_tokens("你是谁") == 3
    assert usage["completion_tokens"] == count_tokens(content)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    for reply in (again, other):
        text = reply["choices"][0]["message"]["content"]
        assert reply["usage"]["completion_tokens"] == count_tokens(text)


async def test_sim_max_tokens_truncates_with_length() -> None:
    sim = SimProvider()
    ch = sim_channel()
    full = (await sim.chat(ch, chat_body("truncate me")))["choices"][0]["message"]["content"]
    assert count_tokens(full) > 3
    for key in ("max_tokens", "max_completion_tokens"):
        cut = await sim.chat(ch, chat_body("truncate me", **{key: 3}))
        text = cut["choices"][0]["message"]["content"]
        assert cut["choices"][0]["finish_reason"] == "length"
        assert cut["usage"]["completion_tokens"] == 3 == count_tokens(text)
        assert full.startswith(text)
    roomy = await sim.chat(ch, chat_body("truncate me", max_tokens=10_000))
    assert roomy["choices"][0]["finish_reason"] == "stop"
    assert roomy["choices"][0]["message"]["content"] == full


async def test_sim_stream_matches_the_completion() -> None:
    sim = SimProvider()
    ch = sim_channel()
    full = await sim.chat(ch, chat_body("stream me", max_tokens=4))
    chunks = [c async for c in sim.chat_stream(ch, chat_body("stream me", max_tokens=4))]
    assert len({c["id"] for c in chunks}) == 1
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == full["choices"][0]["message"]["content"]
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "length" and set(finishes[:-1]) == {None}
    last = chunks[-1]
    assert last["choices"] == []
    assert last["usage"] == full["usage"]
    assert last["usage"]["completion_tokens"] == 4 == count_tokens(text)


async def test_sim_reasoning_exhaust_n_and_model_map() -> None:
    sim = SimProvider()
    ch = sim_channel(reasoning=True, exhaust_max_tokens=True)
    reply = await sim.chat(ch, chat_body("think", max_tokens=40, n=2))
    assert len(reply["choices"]) == 2
    msg = reply["choices"][0]["message"]
    assert msg["reasoning_content"] == "Let me think about that."
    assert reply["choices"][0]["finish_reason"] == "length"
    per_choice = count_tokens(msg["content"]) + count_tokens(msg["reasoning_content"])
    assert per_choice == 40
    assert reply["usage"]["completion_tokens"] == 2 * 40

    mapped = channel(provider="sim", model_map={"qwen3-max": "qwen3-max-preview"})
    assert (await sim.chat(mapped, chat_body("x")))["model"] == "qwen3-max-preview"


async def test_sim_injected_failure_is_retryable() -> None:
    sim = SimProvider()
    with pytest.raises(UpstreamError) as info:
        await sim.chat(sim_channel(failure_rate=1.0), chat_body("x"))
    assert info.value.kind is UpstreamKind.RETRYABLE and info.value.retryable
    with pytest.raises(UpstreamError):
        await anext(sim.chat_stream(sim_channel(failure_rate=1.0), chat_body("x")))
