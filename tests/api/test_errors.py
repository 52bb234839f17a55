"""Bad input and upstream failures: always a clear 4xx/5xx in the dialect's error shape, never a
500, never a leaked upstream credential, and the hold always released."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from apihelp import TIMEOUT, account, assert_openai_error, post, sse_json

from conftest import Account, Stack, make_settings
from llmage.app import create_app
from llmage.services.platform import Platform
from support.servers import FakeOpenAI, LlmageServer, LoopThread

CHAT = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def acct(stack: Stack) -> Account:
    """For tests that only need a valid key (balance-sensitive tests make their own)."""
    return account(stack, "1000")


# -- malformed requests -----------------------------------------------------------------------


def test_malformed_json_names_the_problem(stack: Stack, acct: Account) -> None:
    r = post(
        stack, CHAT, acct.key, content=b'{"model": "qwen3-max", "messages": [',
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    err = assert_openai_error(r, 400, type="invalid_request_error")
    assert "not valid JSON" in err["message"]


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"model": "qwen3-max", "messages": "hello"}, "messages", "non-empty array"),
        ({"model": "qwen3-max", "messages": []}, "messages", "non-empty array"),
        ({"model": "qwen3-max", "messages": ["hello"]}, "messages[0]", "role"),
        ({"model": "qwen3-max", "messages": HELLO, "stream": "yes"}, "stream", "boolean"),
        ({"model": "qwen3-max", "messages": HELLO, "max_tokens": -1}, "max_tokens", "positive"),
        ({"model": "qwen3-max", "messages": HELLO, "max_tokens": 1.5}, "max_tokens", "positive"),
        ({"model": "qwen3-max", "messages": HELLO, "max_tokens": True}, "max_tokens", "positive"),
        (
            {"model": "qwen3-max", "messages": HELLO, "max_completion_tokens": 0},
            "max_completion_tokens",
            "positive",
        ),
        ({"model": "qwen3-max", "messages": HELLO, "n": 17}, "n", "at most 16"),
        (
            {"model": "qwen3-max", "messages": HELLO, "stream_options": "x"},
            "stream_options",
            "object",
        ),
        ({"model": 42, "messages": HELLO}, "model", "string"),
        ({"model": "", "messages": HELLO}, "model", "Missing required parameter"),
        ({"messages": HELLO}, "model", "Missing required parameter"),
        ({"model": "qwen3-max"}, "messages", "Missing required parameter"),
    ],
)
def test_wrong_types_are_400_with_param(
    stack: Stack, acct: Account, body: dict[str, Any], param: str, words: str
) -> None:
    r = post(stack, CHAT, acct.key, json=body)
    err = assert_openai_error(r, 400, type="invalid_request_error", param=param)
    assert words in err["message"]


@pytest.mark.parametrize("content", [b"", b"   \n"], ids=["empty", "blank"])
def test_empty_body(stack: Stack, acct: Account, content: bytes) -> None:
    r = post(stack, CHAT, acct.key, content=content, headers={"Content-Type": "application/json"})
    err = assert_openai_error(r, 400)
    assert "empty" in err["message"]


@pytest.mark.parametrize("content", [b"[]", b"null", b'"hello"', b"42"])
def test_body_not_an_object(stack: Stack, acct: Account, content: bytes) -> None:
    r = post(stack, CHAT, acct.key, content=content, headers={"Content-Type": "application/json"})
    err = assert_openai_error(r, 400)
    assert "JSON object" in err["message"]


def test_deeply_nested_json_is_400(stack: Stack, acct: Account) -> None:
    r = post(stack, CHAT, acct.key, content=b"[" * 5000 + b"]" * 5000)
    assert_openai_error(r, 400)


def test_invalid_utf8_is_400(stack: Stack, acct: Account) -> None:
    r = post(stack, CHAT, acct.key, content=b'{"model": "qwen3-max\xff\xfe"}')
    assert_openai_error(r, 400)


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "bearer sk-", "Basic dXNlcjpwYXNz", "sk-abc", "Bearer not-a-key"],
)
def test_bad_authorization_headers_are_401(stack: Stack, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    r = httpx.post(
        stack.url + CHAT,
        headers=headers,
        json={"model": "qwen3-max", "messages": HELLO},
        timeout=TIMEOUT,
    )
    assert_openai_error(r, 401, type="authentication_error", code="invalid_api_key")


@pytest.mark.parametrize("max_tokens", [10**18, 2**64 - 1])
def test_huge_max_tokens_is_not_a_server_error(stack: Stack, max_tokens: int) -> None:
    """A max_tokens whose worst-case hold overflows int64 micro-units (10**18 qwen3-max tokens
    at 24 micro-units each is 2.4e19): refuse it cleanly (400 or 429), never 500, and leave
    the account untouched."""
    acct = account(stack, "10")
    r = post(
        stack,
        CHAT,
        acct.key,
        json={"model": "qwen3-max", "messages": HELLO, "max_tokens": max_tokens},
    )
    assert r.status_code in (400, 429), (r.status_code, r.text)
    assert_openai_error(r, r.status_code)
    assert stack.balance(acct.user_id) == (10_000_000, 0)


def test_large_but_sane_max_tokens_is_429(stack: Stack) -> None:
    """The hold is sized for max_tokens: 10M qwen3-max tokens (240 CNY) do not fit in 10 CNY."""
    acct = account(stack, "10")
    r = post(
        stack,
        CHAT,
        acct.key,
        json={"model": "qwen3-max", "messages": HELLO, "max_tokens": 10_000_000},
    )
    assert_openai_error(r, 429, code="insufficient_quota")
    assert stack.balance(acct.user_id) == (10_000_000, 0)


# -- unknown routes and methods ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nope"),
        ("GET", "/v1/nope"),
        ("POST", "/v1/chat/completion"),
        ("GET", "/fakeplat/v1/models/extra"),
        ("GET", "/fakeplat/v1"),
        ("DELETE", "/nope/deeper"),
    ],
)
def test_unknown_routes_are_json_404(stack: Stack, method: str, path: str) -> None:
    r = httpx.request(method, stack.url + path, timeout=TIMEOUT)
    err = assert_openai_error(r, 404, code="not_found")
    assert "<html" not in r.text.lower()
    assert path in err["message"]


def test_unknown_native_route_is_native_404(stack: Stack) -> None:
    r = httpx.get(stack.url + "/llmage/nope", timeout=TIMEOUT)
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == {"error": "No route /llmage/nope"}


@pytest.mark.parametrize("path", [CHAT, "/fakeplat/v1/chat/completions"])
def test_wrong_method_is_json_405(stack: Stack, path: str) -> None:
    r = httpx.get(stack.url + path, timeout=TIMEOUT)
    assert_openai_error(r, 405)


# -- upstream failures (fake upstream on platform "fakeplat") --------------------------------


def test_upstream_500_is_502_and_hold_released(stack: Stack, upstream: FakeOpenAI) -> None:
    upstream.status = 500
    acct = account(stack, "10")
    r = post(stack, CHAT, acct.key, json={"model": "deepseek-chat", "messages": HELLO})
    err = assert_openai_error(r, 502, type="upstream_error", code="retryable")
    assert "500" in err["message"]
    assert len(upstream.requests) == 1
    assert stack.balance(acct.user_id) == (10_000_000, 0)
    assert stack.reconcile() == []


def test_upstream_503_on_stream_is_502_and_hold_released(
    stack: Stack, upstream: FakeOpenAI
) -> None:
    upstream.status = 503
    acct = account(stack, "10")
    r = post(
        stack, CHAT, acct.key, json={"model": "deepseek-chat", "messages": HELLO, "stream": True}
    )
    assert_openai_error(r, 502, code="retryable")
    assert stack.balance(acct.user_id) == (10_000_000, 0)
    assert stack.reconcile() == []


def test_upstream_500_native_shape(stack: Stack, upstream: FakeOpenAI) -> None:
    upstream.status = 500
    acct = account(stack, "10")
    r = post(stack, "/llmage/t2t", acct.key, json={"model": "deepseek-chat", "prompt": "x"})
    assert r.status_code == 502
    assert r.json() == {"error": "Upstream error 500"}
    assert stack.balance(acct.user_id) == (10_000_000, 0)


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_400_is_400_with_upstream_message(
    stack: Stack, upstream: FakeOpenAI, stream: bool
) -> None:
    upstream.status = 400
    upstream.error_body = {
        "error": {
            "message": "Invalid 'temperature': decimal above maximum value. Expected <= 2.",
            "type": "invalid_request_error",
            "param": "temperature",
            "code": "invalid_value",
        }
    }
    acct = account(stack, "10")
    r = post(
        stack,
        CHAT,
        acct.key,
        json={"model": "deepseek-chat", "messages": HELLO, "temperature": 9, "stream": stream},
    )
    err = assert_openai_error(r, 400, type="invalid_request_error", code="bad_request")
    assert err["message"] == "Invalid 'temperature': decimal above maximum value. Expected <= 2."
    assert stack.balance(acct.user_id) == (10_000_000, 0)
    assert stack.reconcile() == []


def test_upstream_content_policy_is_400(stack: Stack, upstream: FakeOpenAI) -> None:
    upstream.status = 400
    upstream.error_body = {
        "error": {
            "code": "data_inspection_failed",
            "param": None,
            "message": "Input data may contain inappropriate content.",
            "type": "data_inspection_failed",
        }
    }
    acct = account(stack, "10")
    r = post(stack, CHAT, acct.key, json={"model": "deepseek-chat", "messages": HELLO})
    err = assert_openai_error(r, 400, code="content_policy")
    assert err["message"] == "Input data may contain inappropriate content."


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_401_is_502_without_the_upstream_key(
    stack: Stack, upstream: FakeOpenAI, stream: bool
) -> None:
    upstream.status = 401
    upstream.error_body = {
        "error": {
            "message": f"Incorrect API key provided: {upstream.api_key}. You can find your "
            "API key at https://platform.openai.com/account/api-keys.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }
    acct = account(stack, "10")
    r = post(
        stack, CHAT, acct.key, json={"model": "deepseek-chat", "messages": HELLO, "stream": stream}
    )
    err = assert_openai_error(r, 502, type="upstream_error", code="auth")
    # The operator's problem, not the user's: no 401 (SDKs would blame the user's key) ...
    assert err["message"] == "Upstream rejected our credentials"
    # ... and the upstream credential appears nowhere in the response.
    assert upstream.api_key not in r.text
    assert "upstream-secret" not in r.text
    assert all(upstream.api_key not in v for v in r.headers.values())
    # We did send it upstream (so the fake really saw our credential).
    assert upstream.headers[-1]["Authorization"] == f"Bearer {upstream.api_key}"
    assert stack.balance(acct.user_id) == (10_000_000, 0)


def test_upstream_400_echoing_a_key_is_scrubbed(stack: Stack, upstream: FakeOpenAI) -> None:
    upstream.status = 400
    upstream.error_body = {"error": {"message": f"bad request for key {upstream.api_key}"}}
    acct = account(stack, "10")
    r = post(stack, CHAT, acct.key, json={"model": "deepseek-chat", "messages": HELLO})
    err = assert_openai_error(r, 400)
    assert upstream.api_key not in r.text
    assert "[redacted]" in err["message"]


def test_upstream_unexpected_status_is_502(stack: Stack, upstream: FakeOpenAI) -> None:
    upstream.status = 418
    upstream.error_body = {"error": {"message": "I'm a teapot"}}
    acct = account(stack, "10")
    r = post(stack, CHAT, acct.key, json={"model": "deepseek-chat", "messages": HELLO})
    err = assert_openai_error(r, 502, code="upstream_bug")
    assert "teapot" not in err["message"]  # upstream text is shown only for the user's mistakes
    assert stack.balance(acct.user_id) == (10_000_000, 0)


def test_stream_cut_mid_way_reports_error_and_settles(stack: Stack, upstream: FakeOpenAI) -> None:
    upstream.cut_after = 2
    acct = account(stack, "10")
    r = post(
        stack, CHAT, acct.key, json={"model": "deepseek-chat", "messages": HELLO, "stream": True}
    )
    assert r.status_code == 200
    chunks, done = sse_json(r.text)
    assert not done  # no [DONE] after a broken stream
    assert "error" in chunks[-1]
    assert upstream.api_key not in r.text
    balance, held = stack.wait_settled(acct.user_id)
    assert held == 0
    assert 10_000_000 - balance >= 0
    assert stack.reconcile() == []


# -- a small server of our own: tiny body limit and a short upstream timeout ------------------


STALL = 20.0  # how long the fake upstream goes quiet when a test wants the timeout to fire


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("small")
    settings = make_settings(
        tmp,
        f"sqlite+aiosqlite:///{tmp / 'llmage.db'}",
        max_body_bytes=1000,
        # Wide apart: a loaded machine's pauses are far below the timeout, and the stalls
        # below far above it.
        upstream_read_timeout=1.0,
    )
    app = create_app(settings)

    async def boom() -> None:
        # Stands in for any bug: the reply must not show this text or a trace.
        raise RuntimeError("kaboom: internal detail sk-leakedleakedleaked")

    app.add_api_route("/boom", boom)
    app.add_api_route("/llmage/boom", boom)
    server = LlmageServer(app)  # its lifespan migrates the database
    admin = LoopThread("small-admin")
    platform = Platform(settings)
    fake = FakeOpenAI()
    try:
        admin.call(platform.start(migrate=False))
        admin.call(fake.start())
        admin.call(
            platform.channels.add(
                name="fake", provider="openai_compat", platform="fakeplat", base_url=fake.url,
                credential_enc=platform.box.seal(fake.api_key), models=["deepseek-chat"],
            )
        )  # fmt: skip
        yield Stack("sqlite", server.url, settings, server, admin, platform, fake)
    finally:
        server.stop()
        admin.call(fake.stop())
        admin.call(platform.close())
        admin.stop()


@pytest.fixture
def small_upstream(small: Stack) -> Iterator[FakeOpenAI]:
    up = small.upstream
    yield up
    up.delay = 0.0
    up.chunk_delay = 0.0
    up.requests.clear()


def test_body_over_limit_is_413(small: Stack) -> None:
    acct = account(small, "10")
    big = {"model": "deepseek-chat", "messages": [{"role": "user", "content": "x" * 2000}]}
    r = post(small, CHAT, acct.key, json=big)
    err = assert_openai_error(r, 413, code="payload_too_large")
    assert "1000" in err["message"]
    r = post(small, "/llmage/t2t", acct.key, json={"model": "deepseek-chat", "prompt": "x" * 2000})
    assert r.status_code == 413
    assert r.json() == {"error": "Request body exceeds 1000 bytes"}
    assert small.balance(acct.user_id) == (10_000_000, 0)


def test_chunked_body_over_limit_is_413(small: Stack) -> None:
    """No Content-Length to trust: the limit is enforced while reading."""
    acct = account(small, "10")

    def body() -> Iterator[bytes]:
        yield b'{"model": "deepseek-chat", "messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"y" * 200
        yield b'"}]}'

    r = post(small, CHAT, acct.key, content=body(), headers={"Content-Type": "application/json"})
    assert "content-length" not in r.request.headers
    assert_openai_error(r, 413, code="payload_too_large")


def test_body_under_limit_passes(small: Stack, small_upstream: FakeOpenAI) -> None:
    acct = account(small, "10")
    r = post(small, CHAT, acct.key, json={"model": "deepseek-chat", "messages": HELLO})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_timeout_is_504_and_hold_released(
    small: Stack, small_upstream: FakeOpenAI, stream: bool
) -> None:
    small_upstream.delay = STALL
    acct = account(small, "10")
    r = post(
        small, CHAT, acct.key, json={"model": "deepseek-chat", "messages": HELLO, "stream": stream}
    )
    err = assert_openai_error(r, 504, code="timeout")
    assert "timed out" in err["message"]
    assert small.balance(acct.user_id) == (10_000_000, 0)
    assert small.reconcile() == []


def test_upstream_timeout_native_shape(small: Stack, small_upstream: FakeOpenAI) -> None:
    small_upstream.delay = STALL
    acct = account(small, "10")
    r = post(small, "/llmage/t2t", acct.key, json={"model": "deepseek-chat", "prompt": "x"})
    assert r.status_code == 504
    assert r.json() == {"error": "Upstream timed out"}


def test_stream_stalling_mid_way_ends_with_error_and_settles(
    small: Stack, small_upstream: FakeOpenAI
) -> None:
    small_upstream.chunk_delay = STALL
    small_upstream.stream_chunks = 2
    acct = account(small, "10")
    try:
        r = post(
            small,
            CHAT,
            acct.key,
            json={"model": "deepseek-chat", "messages": HELLO, "stream": True},
        )
    finally:
        small_upstream.stream_chunks = 5
    assert r.status_code == 200
    chunks, done = sse_json(r.text)
    assert not done
    assert chunks[-1]["error"]["code"] == "timeout"
    assert small.wait_settled(acct.user_id)[1] == 0
    assert small.reconcile() == []


# -- bugs: a plain 500, counted --------------------------------------------------------------


def test_a_bug_is_a_plain_500_without_details(small: Stack) -> None:
    r = httpx.get(small.url + "/boom", timeout=TIMEOUT)
    assert r.json() == {
        "error": {
            "message": "Internal server error",
            "type": "server_error",
            "param": None,
            "code": "internal_error",
        }
    }
    assert r.status_code == 500
    assert "kaboom" not in r.text and "sk-leaked" not in r.text and "Traceback" not in r.text
    r = httpx.get(small.url + "/llmage/boom", timeout=TIMEOUT)
    assert (r.status_code, r.json()) == (500, {"error": "Internal server error"})


def _served(url: str) -> list[tuple[str, str, float]]:
    """(route, status, count) of every llmage_requests_total sample."""
    text = httpx.get(url + "/metrics", timeout=TIMEOUT).text
    pattern = r'^llmage_requests_total\{route="([^"]*)",status="(\d+)"\} (\S+)$'
    return [(a, b, float(c)) for a, b, c in re.findall(pattern, text, re.M)]


def test_a_500_is_counted_in_request_metrics(small: Stack) -> None:
    before = sum(c for route, st, c in _served(small.url) if (route, st) == ("/boom", "500"))
    r = httpx.get(small.url + "/boom", timeout=TIMEOUT)
    assert r.status_code == 500
    after = sum(c for route, st, c in _served(small.url) if (route, st) == ("/boom", "500"))
    assert after == before + 1


# -- never a 500 ------------------------------------------------------------------------------


def test_no_response_was_ever_a_500(stack: Stack) -> None:
    """Every request this process served so far (all suites run before this one): no 500."""
    served = _served(stack.url)
    statuses = {st for _, st, _ in served}
    assert {"200", "400"} <= statuses, served
    assert [x for x in served if x[1] == "500" and not x[0].endswith("/boom")] == []
