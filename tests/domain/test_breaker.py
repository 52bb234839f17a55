"""The circuit breaker and the key ring as pure state machines, on a clock that is a number."""

from __future__ import annotations

from llmage.domain.breaker import BreakerState, CircuitBreaker, KeyRing
from llmage.domain.errors import UpstreamKind


def test_opens_after_threshold_consecutive_failures_only() -> None:
    b = CircuitBreaker(threshold=3, cooldown=10)
    b.failure(0)
    b.failure(1)
    b.success(2)  # a success in between: the count starts again
    b.failure(3)
    b.failure(4)
    assert b.state is BreakerState.CLOSED and b.acquire(4)
    b.failure(5)
    assert b.state is BreakerState.OPEN
    assert not b.acquire(5) and not b.acquire(14.9)


def test_half_open_lets_exactly_one_probe_through_then_closes_on_success() -> None:
    b = CircuitBreaker(threshold=1, cooldown=10)
    b.failure(100)
    assert not b.available(109) and b.available(110)
    assert b.acquire(110)
    assert b.state is BreakerState.HALF_OPEN
    assert not b.acquire(110.5)  # the probe is out: nobody else
    b.success(111)
    assert b.state is BreakerState.CLOSED
    assert b.acquire(111) and b.acquire(111)


def test_a_failed_probe_opens_it_again_for_a_whole_cooldown() -> None:
    b = CircuitBreaker(threshold=2, cooldown=10)
    b.failure(0)
    b.failure(0)
    assert b.acquire(10)
    b.failure(12)  # one failure is enough while half-open
    assert b.state is BreakerState.OPEN and b.opened_at == 12
    assert not b.acquire(21) and b.acquire(22)


def test_a_lost_probe_does_not_wedge_it() -> None:
    b = CircuitBreaker(threshold=1, cooldown=5)
    b.failure(0)
    assert b.acquire(5)  # the probe's caller is cancelled and never reports
    assert not b.acquire(9)
    assert b.acquire(10)  # another cool-down later, a new probe


def test_neutral_outcome_hands_the_probe_back_and_changes_nothing_else() -> None:
    b = CircuitBreaker(threshold=1, cooldown=5)
    b.failure(0)
    assert b.acquire(5)
    b.neutral(5.5)  # e.g. the user's own bad request
    assert b.state is BreakerState.HALF_OPEN
    assert b.acquire(5.6)
    closed = CircuitBreaker(threshold=2)
    closed.failure(0)
    closed.neutral(1)
    closed.failure(2)
    assert closed.state is BreakerState.OPEN  # neutral does not reset the failure count


def test_force_probes_an_open_breaker_when_nothing_else_is_left() -> None:
    b = CircuitBreaker(threshold=1, cooldown=60)
    b.failure(0)
    b.force(1)
    assert b.state is BreakerState.HALF_OPEN
    b.success(2)
    assert b.state is BreakerState.CLOSED


def test_only_channel_faults_break_a_channel() -> None:
    breaking = {k for k in UpstreamKind if k.breaks_channel}
    assert breaking == {
        UpstreamKind.RETRYABLE,
        UpstreamKind.TIMEOUT,
        UpstreamKind.UPSTREAM_BUG,
        UpstreamKind.AUTH,
        UpstreamKind.MODEL_NOT_ENABLED,
        UpstreamKind.QUOTA,
    }
    for kind in UpstreamKind:
        if kind.user_fault:
            assert not kind.breaks_channel
    assert {k for k in UpstreamKind if k.key_problem} == {UpstreamKind.AUTH, UpstreamKind.QUOTA}


def test_key_ring_rotates_and_sets_a_failing_key_aside_for_its_cooldown() -> None:
    ring = KeyRing(3, cooldown=60)
    assert [ring.pick(0) for _ in range(4)] == [0, 1, 2, 0]
    ring.set_aside(1, now=10)
    assert [ring.pick(11) for _ in range(4)] == [2, 0, 2, 0]
    assert ring.usable(11) == 2
    assert ring.pick(70) == 1  # back after its cool-down
    assert ring.pick(70, skip=frozenset({2, 0})) == 1
    assert ring.pick(70, skip=frozenset({0, 1, 2})) is None


def test_key_ring_with_every_key_resting_uses_the_one_free_soonest() -> None:
    ring = KeyRing(2, cooldown=60)
    ring.set_aside(0, now=5)
    ring.set_aside(1, now=0)
    assert ring.pick(10) is None
    assert ring.pick_any(10) == 1
