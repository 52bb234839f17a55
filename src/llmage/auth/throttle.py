"""A small in-process limiter for the console: login attempts, SMS sends, code guesses.

Sliding log per key: the times of recent hits, at most `limit` kept per rule window, so a rule
`Rule(10, 3600)` admits the 10th hit in any hour and refuses the 11th until the oldest leaves the
window. Several rules apply to one key together (1 a minute AND 10 a day). Pure apart from the
clock, which is injectable: tests move time by hand.

Process-local on purpose: these limits protect against guessing and SMS cost from one machine's
point of view and need no coordination; several instances each enforce them (so a cluster admits
at most N times the limit). The API rate limits shared through Redis are a separate component.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rule:
    limit: int
    window: float  # seconds

    def __post_init__(self) -> None:
        if self.limit < 1 or self.window <= 0:
            raise ValueError("a rule needs limit >= 1 and window > 0")


class Throttle:
    def __init__(
        self, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000
    ) -> None:
        self._clock = clock
        self._max_keys = max_keys
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, key: str, rules: Sequence[Rule]) -> float | None:
        """Seconds until `key` may hit again under every rule, or None if it may now."""
        hits = self._hits.get(key)
        if not hits:
            return None
        now = self._clock()
        wait = 0.0
        for rule in rules:
            recent = [t for t in hits if t > now - rule.window]
            if len(recent) >= rule.limit:
                # The hit that must age out is the limit-th most recent one.
                oldest_blocking = recent[-rule.limit]
                wait = max(wait, oldest_blocking + rule.window - now)
        return wait if wait > 0 else None

    def hit(self, key: str, rules: Sequence[Rule]) -> float | None:
        """Record a hit if every rule admits it; else record nothing and return the wait."""
        wait = self.retry_after(key, rules)
        if wait is not None:
            return wait
        self.record(key, rules)
        return None

    def record(self, key: str, rules: Sequence[Rule]) -> None:
        """Count a hit unconditionally (e.g. a failure already made)."""
        now = self._clock()
        longest = max(r.window for r in rules)
        keep = max(r.limit for r in rules)
        hits = self._hits.get(key)
        if hits is None:
            hits = self._hits[key] = deque()
        else:
            self._hits.move_to_end(key)
        while hits and (hits[0] <= now - longest or len(hits) >= keep):
            hits.popleft()
        hits.append(now)
        if len(self._hits) > self._max_keys:
            self._hits.popitem(last=False)  # the least recently hit key

    def reset(self, key: str) -> None:
        self._hits.pop(key, None)

    def clear(self) -> None:
        self._hits.clear()
