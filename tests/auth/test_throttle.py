"""The in-process console limiter on its own, with a hand-moved clock."""

from __future__ import annotations

import pytest

from llmage.auth.throttle import Rule, Throttle


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_sliding_window_admits_limit_then_waits_for_the_oldest() -> None:
    clock = Clock()
    t = Throttle(clock)
    rule = (Rule(3, 60),)
    for step in (0, 10, 20):
        clock.t = 1000 + step
        assert t.hit("k", rule) is None
    clock.t = 1030
    assert t.hit("k", rule) == 30  # the hit at 1000 leaves the window at 1060
    clock.t = 1059.5
    assert t.hit("k", rule) == pytest.approx(0.5)
    clock.t = 1060
    assert t.hit("k", rule) is None  # admitted; now the hits at 1010, 1020, 1060 count
    assert t.hit("k", rule) == 10


def test_refused_hits_are_not_counted() -> None:
    clock = Clock()
    t = Throttle(clock)
    rule = (Rule(1, 60),)
    assert t.hit("k", rule) is None
    for _ in range(50):
        clock.t += 1
        assert t.hit("k", rule) is not None  # hammering does not extend the wait
    clock.t = 1060
    assert t.hit("k", rule) is None


def test_several_rules_at_once_and_keys_apart() -> None:
    clock = Clock()
    t = Throttle(clock)
    rules = (Rule(1, 60), Rule(3, 3600))
    for i in range(3):
        clock.t = 1000 + i * 61
        assert t.hit("a", rules) is None
    clock.t = 1000 + 3 * 61
    assert t.hit("a", rules) == 3600 - 3 * 61  # the hourly rule decides now
    assert t.hit("b", rules) is None  # other keys are untouched
    assert t.retry_after("b", rules) == 60


def test_record_counts_unconditionally_and_reset_forgets() -> None:
    clock = Clock()
    t = Throttle(clock)
    rule = (Rule(2, 100),)
    t.record("k", rule)
    t.record("k", rule)
    t.record("k", rule)  # past the limit: still recorded (a failure that happened)
    assert t.retry_after("k", rule) == 100
    t.reset("k")
    assert t.retry_after("k", rule) is None


def test_memory_is_bounded() -> None:
    clock = Clock()
    t = Throttle(clock, max_keys=100)
    rule = (Rule(5, 60),)
    for i in range(1000):
        t.hit(f"k{i}", rule)
    assert len(t._hits) == 100
    assert t.retry_after("k0", rule) is None  # the oldest keys were dropped
    hits = t._hits["k999"]
    for _ in range(100):
        t.record("k999", rule)
    assert len(hits) == 5  # per key: never more than the largest limit


def test_rules_are_checked() -> None:
    with pytest.raises(ValueError):
        Rule(0, 10)
    with pytest.raises(ValueError):
        Rule(1, 0)
