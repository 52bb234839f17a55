"""The pure window math and the in-process buckets, on a clock driven by hand."""

from __future__ import annotations

import pytest

from llmage.domain.limits import (
    BucketState,
    Dim,
    LimitPolicy,
    Limits,
    Refusal,
    Rule,
    corrected,
    duration,
    gcra,
    plan,
    refusal_headers,
    remaining,
    retry_after_ms,
)
from llmage.limits.memory import MemoryBuckets


def test_gcra_allows_a_full_minute_burst_then_one_per_interval() -> None:
    tat, now = 0.0, 1_000_000.0
    for i in range(5):
        ok, tat = gcra(tat, now, 1, 5)
        assert ok, i
    assert remaining(tat, now, 5) == 0
    ok, _ = gcra(tat, now, 1, 5)
    assert not ok
    assert retry_after_ms(tat, now, 1, 5) == pytest.approx(12_000)
    ok, _ = gcra(tat, now + 11_999, 1, 5)
    assert not ok
    ok, _ = gcra(tat, now + 12_000, 1, 5)
    assert ok
    assert remaining(tat, now + 60_000, 5) == 5


def test_token_cost_and_correction() -> None:
    now = 0.0
    ok, tat = gcra(0.0, now, 900, 1000)
    assert ok and remaining(tat, now, 1000) == 100
    assert not gcra(tat, now, 200, 1000)[0]
    # The request used 100 tokens of the 900 held: 800 come back.
    tat = corrected(tat, now, -800, 1000)
    assert remaining(tat, now, 1000) == 900
    # Using more than held counts from now, also on a full bucket.
    assert remaining(corrected(now - 5_000, now, 300, 1000), now, 1000) == 700


def test_plan_uses_model_overrides_in_their_own_buckets() -> None:
    key = LimitPolicy(Limits(rpm=10, tpm=1000), (("qwen3-max", Limits(rpm=2)),))
    user = LimitPolicy(Limits(concurrency=3))
    rules = plan([("k1", key), ("u7", user)], ("qwen3-max", "LLMID"))
    assert rules == (
        Rule("k1:m:qwen3-max:rpm", Dim.REQUESTS, 2),
        Rule("k1:tpm", Dim.TOKENS, 1000),
        Rule("u7:concurrency", Dim.CONCURRENCY, 3),
    )
    assert plan([("k1", key)], ("other",))[0] == Rule("k1:rpm", Dim.REQUESTS, 10)
    assert plan([("k1", None)], ("x",)) == ()


def test_policy_columns_round_trip_and_empty_is_none() -> None:
    assert LimitPolicy.from_columns(None, None, None, None, None) is None
    p = LimitPolicy.from_columns(5, None, None, 2, {"m": {"tpm": 10}})
    assert p is not None and p.base == Limits(rpm=5, tasks=2)
    assert p.models_json() == {"m": {"tpm": 10}}
    assert p.with_model("m", Limits()).models == ()
    with pytest.raises(ValueError, match="unknown limit"):
        Limits().merged({"rps": 1})
    with pytest.raises(ValueError, match="0 or more"):
        Limits().merged({"rpm": -2})


def test_memory_buckets_check_all_then_apply() -> None:
    b = MemoryBuckets()
    rules = (Rule("k:rpm", Dim.REQUESTS, 3), Rule("k:tpm", Dim.TOKENS, 100))
    assert b.acquire(rules, 60, 0.0) is None
    refusal = b.acquire(rules, 60, 0.0)  # the tokens do not fit: nothing is counted
    assert refusal is not None and refusal.dim is Dim.TOKENS
    assert refusal.retry_after_ms == pytest.approx(12_000)
    b.settle(rules, -50, 0.0)  # used 10 of 60
    assert b.acquire(rules, 60, 0.0) is None  # the refused request was not counted: 2 of 3
    assert b.acquire(rules, 1, 0.0) is None  # 3 of 3 requests, 81 of 100 tokens
    refusal = b.acquire(rules, 1, 0.0)
    assert refusal is not None and refusal.dim is Dim.REQUESTS


def test_memory_concurrency_slots() -> None:
    b = MemoryBuckets()
    rules = (Rule("u:concurrency", Dim.CONCURRENCY, 2),)
    assert b.acquire(rules, 0, 0.0) is None
    assert b.acquire(rules, 0, 0.0) is None
    refusal = b.acquire(rules, 0, 0.0)
    assert refusal is not None and refusal.dim is Dim.CONCURRENCY
    b.settle(rules, 0, 0.0)
    assert b.acquire(rules, 0, 0.0) is None


def test_headers_follow_openai_names() -> None:
    r = Refusal(Dim.REQUESTS, 5, 12_000.0, (BucketState(Dim.REQUESTS, 5, 0, 60_000.0),))
    h = refusal_headers(r)
    assert h["retry-after"] == "12"
    assert h["retry-after-ms"] == "12000"
    assert h["x-ratelimit-limit-requests"] == "5"
    assert h["x-ratelimit-remaining-requests"] == "0"
    assert h["x-ratelimit-reset-requests"] == "1m0s"
    assert "x-should-retry" not in h
    assert refusal_headers(Refusal(Dim.TOKENS, 10, 0, (), retryable=False)) == {
        "x-should-retry": "false"
    }
    assert duration(20) == "20ms" and duration(1500) == "1.5s" and duration(360_000) == "6m0s"
