"""Limit buckets in this process: a dict of TATs and a dict of in-flight counts.

Used alone without Redis, and as the fallback while Redis is unreachable (then each instance
counts for itself). Same semantics as the Redis script (limits/redis_buckets.py), same math
(domain/limits.py); synchronous, so the hot path pays a few dict operations and no await.
"""

from __future__ import annotations

from collections.abc import Sequence

from llmage.domain.limits import (
    BucketState,
    Dim,
    Refusal,
    Rule,
    corrected,
    gcra,
    remaining,
    retry_after_ms,
)

CONCURRENCY_RETRY_MS = 1000.0  # a slot frees when some request ends: nobody knows when
_MAX_BUCKETS = 200_000


class MemoryBuckets:
    def __init__(self) -> None:
        self._tat: dict[str, float] = {}
        self._inflight: dict[str, int] = {}

    def acquire(self, rules: Sequence[Rule], tokens: int, now: float) -> Refusal | None:
        """Admit (and count) a request in every bucket, or in none. The states a refusal
        carries describe the buckets as they are, without the refused request."""
        states: list[BucketState] = []
        new_tats: list[tuple[str, float]] = []
        refused: tuple[Rule, float] | None = None
        for r in rules:
            if r.dim is Dim.CONCURRENCY:
                n = self._inflight.get(r.bucket, 0)
                ok = n < r.limit
                states.append(BucketState(r.dim, r.limit, max(0, r.limit - n), 0.0))
                if not ok and (refused is None or refused[1] < CONCURRENCY_RETRY_MS):
                    refused = (r, CONCURRENCY_RETRY_MS)
                continue
            cost = 1 if r.dim is Dim.REQUESTS else tokens
            tat = self._tat.get(r.bucket, 0.0)
            ok, new = gcra(tat, now, cost, r.limit)
            reset = max(tat - now, 0.0)
            states.append(BucketState(r.dim, r.limit, remaining(tat, now, r.limit), reset))
            if ok:
                new_tats.append((r.bucket, new))
            else:
                wait = retry_after_ms(tat, now, cost, r.limit)
                if refused is None or refused[1] < wait:
                    refused = (r, wait)
        if refused is not None:
            return Refusal(refused[0].dim, refused[0].limit, refused[1], tuple(states))
        for bucket, new in new_tats:
            self._tat[bucket] = new
        for r in rules:
            if r.dim is Dim.CONCURRENCY:
                self._inflight[r.bucket] = self._inflight.get(r.bucket, 0) + 1
        if len(self._tat) > _MAX_BUCKETS:
            self._prune(now)
        return None

    def settle(self, rules: Sequence[Rule], token_delta: int, now: float) -> None:
        """The request ended: correct token buckets by `token_delta`, free concurrency slots."""
        for r in rules:
            if r.dim is Dim.TOKENS and token_delta:
                tat = self._tat.get(r.bucket, 0.0)
                self._tat[r.bucket] = corrected(tat, now, token_delta, r.limit)
            elif r.dim is Dim.CONCURRENCY:
                n = self._inflight.get(r.bucket, 0) - 1
                if n > 0:
                    self._inflight[r.bucket] = n
                else:
                    self._inflight.pop(r.bucket, None)

    def _prune(self, now: float) -> None:
        # A TAT in the past is a full bucket: the same as no entry at all.
        for bucket in [b for b, tat in self._tat.items() if tat <= now]:
            del self._tat[bucket]
