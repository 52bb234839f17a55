"""What a chat request costs, through real HTTP: the usage record, failures, cut streams, the
hold as a hard ceiling, and the key's own limits (spend limit, allow-list, revocation, expiry)."""

from __future__ import annotations

import time
from typing import Any

import httpx
from sqlalchemy import text

from conftest import Account, Stack
from llmage.db.repos.usage import UsageRecord
from llmage.domain.catalog import ChatPrice
from llmage.domain.money import token_cost
from llmage.domain.tokens import estimate_tokens, prompt_text, prompt_token_ceiling
from llmage.services.accounts import AccountService
from support.servers import FakeOpenAI

MAX_TOKENS = 16
MESSAGES = [{"role": "user", "content": "How much does this cost?"}]
OPENAI = "/v1/chat/completions"
NATIVE = "/llmage/v1/chat/completions"


def price(stack: Stack, model: str = "deepseek-chat") -> ChatPrice:
    found = stack.platform.catalog.chat_model(model)
    assert found is not None
    p = found[0].price
    assert isinstance(p, ChatPrice)
    return p


def charge(stack: Stack, prompt: int, completion: int) -> int:
    p = price(stack)
    return token_cost(prompt, p.input_per_mtok) + token_cost(completion, p.output_per_mtok)


def hold_for(stack: Stack, messages: list[dict[str, Any]], max_tokens: int) -> int:
    p = price(stack)
    ceiling = prompt_token_ceiling(messages, stack.settings.image_token_estimate)
    return token_cost(ceiling, p.input_per_mtok) + token_cost(max_tokens, p.output_per_mtok)


def body(stream: bool = False, model: str = "deepseek-chat", **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "messages": MESSAGES,
        "max_tokens": MAX_TOKENS,
        "stream": stream,
        **extra,
    }


def post(
    stack: Stack, acct: Account, payload: dict[str, Any], path: str = OPENAI
) -> httpx.Response:
    return httpx.post(stack.url + path, headers=stack.headers(acct), json=payload, timeout=30)


def usage(stack: Stack, usage_id: str) -> UsageRecord:
    rec = stack.admin.call(stack.platform.usage.get(usage_id))
    assert rec is not None, f"no usage record {usage_id}"
    return rec


def records(stack: Stack, acct: Account) -> list[UsageRecord]:
    return stack.admin.call(stack.platform.usage.list(acct.user_id))


def channel_id(stack: Stack, name: str) -> int:
    rows = stack.admin.call(stack.platform.channels.list())
    return next(c.id for c in rows if c.name == name)


def key_id(stack: Stack, acct: Account) -> int:
    keys = stack.admin.call(stack.platform.accounts.list_keys(acct.user_id))
    assert len(keys) == 1
    return keys[0].id


TEN = 10_000_000


# -- the usage record ---------------------------------------------------------------------------


def test_usage_record_per_request_openai(stack: Stack, upstream: FakeOpenAI) -> None:
    upstream.usage = {"prompt_tokens": 23, "completion_tokens": 11}
    upstream.delay = 0.06
    acct = stack.account("10")
    r = post(stack, acct, body())
    assert r.status_code == 200, r.text
    uid = r.headers["x-llmage-usage-id"]
    rec = usage(stack, uid)
    expected = charge(stack, 23, 11)
    assert expected == token_cost(23, 2_000_000) + token_cost(11, 3_000_000) == 79
    assert expected < hold_for(stack, MESSAGES, MAX_TOKENS)  # not clamped: the real price
    assert (rec.user_id, rec.model, rec.status, rec.dialect) == (
        acct.user_id,
        "deepseek-chat",
        "ok",
        "openai",
    )
    assert (rec.prompt_tokens, rec.completion_tokens, rec.amount) == (23, 11, expected)
    assert rec.channel_id == channel_id(stack, "fake")
    assert rec.key_id == key_id(stack, acct)
    assert rec.estimated is False and rec.stream is False and rec.error is None
    assert rec.latency_ms >= 60  # the upstream took at least that long
    assert rec.hold_id
    assert stack.balance(acct.user_id) == (TEN - expected, 0)
    assert r.json()["usage"]["prompt_tokens"] == 23
    assert stack.reconcile() == []


def test_usage_record_id_is_native_llmusageid(stack: Stack, upstream: FakeOpenAI) -> None:
    acct = stack.account("10")
    r = httpx.post(
        stack.url + NATIVE,
        headers=stack.headers(acct),
        json={"model": "deepseek-chat", "prompt": "hello", "max_tokens": MAX_TOKENS},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["llmusageid"] == r.headers["x-llmage-usage-id"]
    rec = usage(stack, out["llmusageid"])
    assert rec.dialect == "native" and rec.status == "ok"
    assert (rec.prompt_tokens, rec.completion_tokens) == (7, 5)
    assert rec.amount == charge(stack, 7, 5)
    assert stack.balance(acct.user_id) == (TEN - rec.amount, 0)


def test_each_request_gets_its_own_record(stack: Stack, upstream: FakeOpenAI) -> None:
    acct = stack.account("10")
    ids = []
    for completion in (1, 2, 3):
        upstream.usage = {"prompt_tokens": 10, "completion_tokens": completion}
        r = post(stack, acct, body())
        assert r.status_code == 200, r.text
        ids.append(r.headers["x-llmage-usage-id"])
    assert len(set(ids)) == 3
    amounts = [usage(stack, i).amount for i in ids]
    assert amounts == [charge(stack, 10, c) for c in (1, 2, 3)]
    assert {u.id for u in records(stack, acct)} == set(ids)
    assert stack.balance(acct.user_id) == (TEN - sum(amounts), 0)


def test_sim_stream_usage_is_charged_from_reported_usage(stack: Stack) -> None:
    acct = stack.account("10")
    with httpx.stream(
        "POST",
        stack.url + NATIVE,
        headers=stack.headers(acct),
        json={"model": "qwen3-max", "prompt": "你好", "stream": True},
        timeout=30,
    ) as r:
        assert r.status_code == 200
        uid = r.headers["x-llmage-usage-id"]
        text = r.read().decode()
    assert '"finish":"1"' in text
    balance, held = stack.wait_settled(acct.user_id)
    assert held == 0
    rec = usage(stack, uid)
    assert rec.status == "ok" and rec.stream is True and rec.estimated is False
    assert rec.completion_tokens > 0 and rec.amount > 0
    assert balance == TEN - rec.amount
    assert rec.channel_id == channel_id(stack, "sim")


# -- failures release the hold ------------------------------------------------------------------


def test_upstream_failure_releases_hold(stack: Stack, upstream: FakeOpenAI) -> None:
    upstream.status = 500
    acct = stack.account("10")
    r = post(stack, acct, body())
    assert r.status_code == 502, r.text
    assert stack.balance(acct.user_id) == (TEN, 0)
    [rec] = records(stack, acct)
    assert rec.status == "error" and rec.amount == 0 and rec.error
    assert rec.channel_id == channel_id(stack, "fake")
    assert stack.reconcile() == []


def test_upstream_bad_request_releases_hold(stack: Stack, upstream: FakeOpenAI) -> None:
    upstream.status = 400
    upstream.error_body = {"error": {"message": "messages too long", "code": "bad"}}
    acct = stack.account("10")
    r = post(stack, acct, body())
    assert r.status_code == 400, r.text
    assert "messages too long" in r.json()["error"]["message"]
    assert stack.balance(acct.user_id) == (TEN, 0)
    [rec] = records(stack, acct)
    assert rec.status == "error" and rec.amount == 0


def test_upstream_failure_on_stream_open_releases_hold(stack: Stack, upstream: FakeOpenAI) -> None:
    upstream.status = 503
    acct = stack.account("10")
    r = post(stack, acct, body(stream=True))
    assert r.status_code == 502, r.text
    assert stack.balance(acct.user_id) == (TEN, 0)
    [rec] = records(stack, acct)
    assert rec.status == "error" and rec.amount == 0 and rec.stream is True


# -- cut streams ----------------------------------------------------------------------------------


def test_stream_cut_by_client_is_charged_from_a_marked_estimate(
    stack: Stack, upstream: FakeOpenAI
) -> None:
    # The upstream sends 6 chunks, then only keep-alive comments until its connection is
    # closed: the stream cannot end unless the client's leaving ends it.
    upstream.stream_chunks = 50
    upstream.stall_after = 6
    acct = stack.account("10")
    with httpx.stream(
        "POST", stack.url + OPENAI, headers=stack.headers(acct), json=body(stream=True), timeout=30
    ) as r:
        assert r.status_code == 200
        uid = r.headers["x-llmage-usage-id"]
        lines = []
        for line in r.iter_lines():
            if line.startswith("data:"):
                lines.append(line)
            if len(lines) >= 4:
                break
    assert any("tok1" in line for line in lines)
    balance, held = stack.wait_settled(acct.user_id)
    assert held == 0
    assert upstream.stall_ended.wait(30), "the upstream stream was never closed"
    rec = usage(stack, uid)
    assert rec.status == "cancelled"
    assert rec.estimated is True
    # The documented estimate: prompt text at 1 token per CJK char / 4 other chars.
    assert rec.prompt_tokens == estimate_tokens(prompt_text(MESSAGES))
    # "tok0 ", "tok1 ", ... each 5 characters: at least the chunks we read, at most the 6 sent.
    assert 2 <= rec.completion_tokens <= estimate_tokens("".join(f"tok{i} " for i in range(6)))
    assert balance == TEN - rec.amount


def test_stream_cut_by_upstream_settles(stack: Stack, upstream: FakeOpenAI) -> None:
    upstream.cut_after = 2
    upstream.stream_chunks = 10
    acct = stack.account("10")
    with httpx.stream(
        "POST", stack.url + OPENAI, headers=stack.headers(acct), json=body(stream=True), timeout=30
    ) as r:
        assert r.status_code == 200
        uid = r.headers["x-llmage-usage-id"]
        text = r.read().decode()
    # The client is told: an error event, and no [DONE] pretending it completed.
    assert '"error"' in text
    assert "[DONE]" not in text
    balance, held = stack.wait_settled(acct.user_id)
    assert held == 0
    rec = usage(stack, uid)
    assert rec.status == "error"
    assert rec.amount == 0  # an upstream failure releases the whole hold (DESIGN §5)
    assert balance == TEN
    assert stack.reconcile() == []


# -- the hold is a ceiling ------------------------------------------------------------------------


def test_charge_never_exceeds_hold_even_with_absurd_usage(
    stack: Stack, upstream: FakeOpenAI
) -> None:
    upstream.usage = {"prompt_tokens": 7, "completion_tokens": 10**9}
    acct = stack.account("10")
    hold = hold_for(stack, MESSAGES, MAX_TOKENS)
    r = post(stack, acct, body())
    assert r.status_code == 200, r.text
    rec = usage(stack, r.headers["x-llmage-usage-id"])
    assert rec.amount == hold
    assert rec.completion_tokens == 10**9  # recorded as reported, charged at most the hold
    assert stack.balance(acct.user_id) == (TEN - hold, 0)
    assert stack.reconcile() == []


def test_stream_charge_never_exceeds_hold(stack: Stack, upstream: FakeOpenAI) -> None:
    upstream.usage = {"prompt_tokens": 10**9, "completion_tokens": 10**9}
    acct = stack.account("10")
    hold = hold_for(stack, MESSAGES, MAX_TOKENS)
    with httpx.stream(
        "POST", stack.url + OPENAI, headers=stack.headers(acct), json=body(stream=True), timeout=30
    ) as r:
        assert r.status_code == 200
        uid = r.headers["x-llmage-usage-id"]
        r.read()
    assert stack.wait_settled(acct.user_id) == (TEN - hold, 0)
    rec = usage(stack, uid)
    assert rec.amount == hold and rec.estimated is False


def test_default_max_tokens_is_sent_upstream_and_sizes_the_hold(
    stack: Stack, upstream: FakeOpenAI
) -> None:
    """Without max_tokens the hold covers the model's whole output budget, and the upstream is
    told that budget, so it cannot produce more than was held."""
    acct = stack.account("100")
    payload = {"model": "deepseek-chat", "messages": MESSAGES}
    upstream.usage = {"prompt_tokens": 10**6, "completion_tokens": 10**6}
    r = post(stack, acct, payload)
    assert r.status_code == 200, r.text
    found = stack.platform.catalog.chat_model("deepseek-chat")
    assert found is not None
    budget = found[0].max_output_tokens or stack.settings.chat_default_max_tokens
    assert upstream.requests[-1]["max_tokens"] == budget
    hold = hold_for(stack, MESSAGES, budget)
    assert usage(stack, r.headers["x-llmage-usage-id"]).amount == hold


# -- the key's own limits -------------------------------------------------------------------------


def test_key_spend_limit_refuses_once_exhausted(stack: Stack, upstream: FakeOpenAI) -> None:
    hold = hold_for(stack, MESSAGES, MAX_TOKENS)
    ceiling = prompt_token_ceiling(MESSAGES, stack.settings.image_token_estimate)
    upstream.usage = {"prompt_tokens": ceiling, "completion_tokens": MAX_TOKENS}  # capture = hold
    acct = stack.account("10", spend_limit=2 * hold + hold // 2)
    assert post(stack, acct, body()).status_code == 200
    assert post(stack, acct, body()).status_code == 200
    r = post(stack, acct, body())
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "insufficient_quota"
    assert "spend limit" in r.json()["error"]["message"]
    assert len(upstream.requests) == 2
    assert stack.balance(acct.user_id) == (TEN - 2 * hold, 0)
    # The account still has money: another key of the same user is not limited.
    other = stack.admin.call(AccountService(stack.platform).create_key(acct.user_id, name="second"))
    r = post(stack, Account(acct.user_id, other.key, acct.username), body())
    assert r.status_code == 200, r.text


def test_key_allow_list(stack: Stack, upstream: FakeOpenAI) -> None:
    acct = stack.account("10", models=["qwen3-max"])
    r = post(stack, acct, body())
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "model_not_allowed"
    r = post(stack, acct, {"model": "deepseek-chat", "prompt": "x"}, NATIVE)
    assert r.status_code == 403, r.text
    assert upstream.requests == []
    assert stack.balance(acct.user_id) == (TEN, 0)
    assert records(stack, acct) == []
    r = post(stack, acct, body(model="qwen3-max"))
    assert r.status_code == 200, r.text
    assert stack.balance(acct.user_id)[0] < TEN


def test_revoked_key_is_refused_while_cached_and_never_charged(
    stack: Stack, upstream: FakeOpenAI
) -> None:
    keys = stack.server.app.state.platform.keys  # the server's own key cache
    acct = stack.account("10")
    frozen = time.monotonic()
    keys.clock = lambda: frozen  # nothing cached expires until the clock is given back
    try:
        r = post(stack, acct, body())  # the server now has the key cached as valid
        assert r.status_code == 200, r.text
        after_first = stack.balance(acct.user_id)
        stack.admin.call(AccountService(stack.platform).revoke_key(key_id(stack, acct)))
        # Still cached as valid: the hold's own key check refuses it, before any upstream call.
        statuses = [post(stack, acct, body()).status_code for _ in range(3)]
        assert statuses == [401, 401, 401]
    finally:
        keys.clock = time.monotonic
    time.sleep(stack.settings.key_cache_ttl + 0.1)  # past the TTL: refused at authentication
    r = post(stack, acct, body())
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_api_key"
    assert len(upstream.requests) == 1
    assert stack.balance(acct.user_id) == after_first
    assert len(records(stack, acct)) == 1


def expire_now(stack: Stack, acct: Account) -> None:
    """Move a key's expiry into the past in the database (the server's cache keeps the old one)."""

    async def work() -> None:
        async with stack.platform.db.engine.begin() as conn:
            await conn.execute(
                text("UPDATE api_keys SET expires_at = 1 WHERE user_id = :u"), {"u": acct.user_id}
            )

    stack.admin.call(work())


def test_expired_key_is_refused(stack: Stack, upstream: FakeOpenAI) -> None:
    already = stack.account("10", expires_in_days=-1)
    assert post(stack, already, body()).status_code == 401
    # A key that expires while cached as valid: the hold's key check refuses it.
    soon = stack.account("10", expires_in_days=1)
    assert post(stack, soon, body()).status_code == 200
    spent = stack.balance(soon.user_id)
    expire_now(stack, soon)
    r = post(stack, soon, body())
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "invalid_api_key"
    assert len(upstream.requests) == 1
    assert stack.balance(already.user_id) == (TEN, 0)
    assert stack.balance(soon.user_id) == spent
    assert records(stack, already) == []


# -- bugs found while writing this suite ---------------------------------------------------------


def test_usage_beyond_the_column_range_still_settles(stack: Stack, upstream: FakeOpenAI) -> None:
    """An upstream reporting usage that does not fit the usage record's INTEGER column (int32 on
    PostgreSQL, int64 on SQLite) must still end the hold: charge at most the hold, held back to
    0. Otherwise the settle program fails as a whole and the hold stays open for ever."""
    # Still a JSON integer the relay parses as one (orjson: up to 2**64 - 1).
    too_big = 3 * 10**9 if stack.backend == "postgres" else 2**63 + 1
    upstream.usage = {"prompt_tokens": 7, "completion_tokens": too_big}
    acct = stack.account("10")
    hold = hold_for(stack, MESSAGES, MAX_TOKENS)
    r = post(stack, acct, body())
    assert stack.balance(acct.user_id)[1] == 0, f"the hold never settled ({r.status_code})"
    assert r.status_code == 200, r.text
    assert stack.balance(acct.user_id) == (TEN - hold, 0)
    assert usage(stack, r.headers["x-llmage-usage-id"]).amount == hold


def test_hold_covers_tool_definitions(stack: Stack, upstream: FakeOpenAI) -> None:
    """Tool definitions are prompt tokens too. The hold must be sized for them (DESIGN §5: the
    hold covers the worst case), or the charge is clamped to a hold that ignored them and the
    tokens are given away."""
    tools = [
        {
            "type": "function",
            "function": {
                "name": f"tool_{i}",
                "description": "Looks something up. " * 40,
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
            },
        }
        for i in range(10)
    ]
    messages = [{"role": "user", "content": "hi"}]
    # What the upstream counts for ~9 KB of tool schema, and a short answer.
    upstream.usage = {"prompt_tokens": 2_000, "completion_tokens": 5}
    acct = stack.account("10")
    r = post(
        stack,
        acct,
        {"model": "deepseek-chat", "messages": messages, "tools": tools, "max_tokens": MAX_TOKENS},
    )
    assert r.status_code == 200, r.text
    assert upstream.requests[-1]["tools"] == tools  # relayed: the upstream really saw them
    rec = usage(stack, r.headers["x-llmage-usage-id"])
    assert rec.prompt_tokens == 2_000
    assert rec.amount == charge(stack, 2_000, 5), "charge clamped to a hold that ignored tools"
