"""Channel health as pure state machines with an injected clock: a circuit breaker per channel
and the rotation of a key pool, with failing keys set aside for a while.

Neither does IO nor reads the time itself: every method takes `now` (seconds, any monotonic
origin), so the cool-downs are tested by moving a number, not by sleeping.

Circuit breaker:

    CLOSED --(threshold consecutive channel failures)--> OPEN
    OPEN --(cooldown passed, next call)--> HALF_OPEN: exactly one probe call goes through
    HALF_OPEN --probe succeeds--> CLOSED
    HALF_OPEN --probe fails--> OPEN (the cool-down starts again)

A probe whose outcome never comes (its caller was cancelled) does not wedge the breaker: after
another cool-down a new probe is let through. Only channel faults are recorded as failures
(`domain.errors.UpstreamKind.breaks_channel`); the user's own bad request is neutral.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum


class BreakerState(IntEnum):
    """Values are the /metrics gauge's."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


@dataclass(slots=True)
class CircuitBreaker:
    threshold: int = 5  # consecutive channel failures that open it
    cooldown: float = 30.0  # seconds open before a probe is allowed
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0  # consecutive, while closed
    opened_at: float = 0.0  # when it last opened (least recently failed goes first when all are)
    probe_since: float | None = None  # a half-open probe is in flight since then

    def available(self, now: float) -> bool:
        """Would `acquire` let a call through now? (Read-only: routing's ordering.)"""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN:
            return now - self.opened_at >= self.cooldown
        return self.probe_since is None or now - self.probe_since >= self.cooldown

    def acquire(self, now: float) -> bool:
        """May one call go to the channel now? In half-open state this claims the one probe."""
        if self.state is BreakerState.CLOSED:
            return True
        if not self.available(now):
            return False
        self.state = BreakerState.HALF_OPEN
        self.probe_since = now
        return True

    def force(self, now: float) -> None:
        """Every candidate is open: the caller tries this one anyway, as a probe."""
        if self.state is not BreakerState.CLOSED:
            self.state = BreakerState.HALF_OPEN
            self.probe_since = now

    def success(self, now: float) -> None:
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.probe_since = None

    def failure(self, now: float) -> None:
        if self.state is BreakerState.CLOSED:
            self.failures += 1
            if self.failures < max(1, self.threshold):
                return
        self.state = BreakerState.OPEN
        self.opened_at = now
        self.probe_since = None
        self.failures = 0

    def neutral(self, now: float) -> None:
        """The call ended in a way that says nothing about the channel (the user's own bad
        request): a probe's slot is handed back, nothing else changes."""
        if self.state is BreakerState.HALF_OPEN:
            self.probe_since = None


@dataclass(slots=True)
class KeyRing:
    """Round-robin over a pool's keys; a key that failed for a key problem (auth, upstream
    balance) sits out `cooldown` seconds. When every key sits out, the one free soonest is used
    (the channel's breaker, not the ring, decides whether the channel is tried at all)."""

    size: int
    cooldown: float = 60.0
    next_index: int = 0
    resting: dict[int, float] = field(default_factory=dict)  # index -> usable again at

    def pick(self, now: float, *, skip: frozenset[int] = frozenset()) -> int | None:
        """The next key to use, None when every key is resting or in `skip`."""
        for step in range(self.size):
            index = (self.next_index + step) % self.size
            until = self.resting.get(index)
            if index in skip or (until is not None and until > now):
                continue
            self.resting.pop(index, None)
            self.next_index = (index + 1) % self.size
            return index
        return None

    def pick_any(self, now: float) -> int:
        found = self.pick(now)
        if found is not None:
            return found
        return min(self.resting, key=lambda i: self.resting[i]) if self.resting else 0

    def set_aside(self, index: int, now: float) -> None:
        self.resting[index % max(1, self.size)] = now + self.cooldown

    def usable(self, now: float) -> int:
        return sum(
            1 for i in range(self.size) if (until := self.resting.get(i)) is None or until <= now
        )
