"""Rate and concurrency limits, pure: who is limited by what, the window math, the headers.

A subject (an API key or a user) may have requests per minute (rpm), tokens per minute (tpm),
concurrent requests (concurrency) and concurrent open tasks (tasks), each optional, plus
per-model overrides: a limit set for a model replaces the subject's general limit of the same
kind for requests to that model, in its own bucket (a cheap model may get more, a dear one less).

rpm and tpm are GCRA token buckets over one minute: a bucket of `limit` units refilled
continuously at `limit` per minute, stored as one number, the theoretical arrival time (TAT).
A request of cost c is admitted iff `max(tat, now) + c·T − now ≤ 60 s` with `T = 60 s / limit`;
the full minute's burst is allowed, then one unit every T. One number per bucket is what makes
the Redis script a single round trip, and a correction (tokens held vs. used) is just `tat += d·T`.
Every function takes `now` (milliseconds) from the caller: tests drive a clock by hand.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

PERIOD_MS = 60_000.0


class Dim(StrEnum):
    REQUESTS = "requests"  # rpm
    TOKENS = "tokens"  # tpm
    CONCURRENCY = "concurrency"  # requests in flight
    TASKS = "tasks"  # open tasks (enforced in the submit transaction, see services/tasks.py)


_FIELD_DIM = {
    "rpm": Dim.REQUESTS,
    "tpm": Dim.TOKENS,
    "concurrency": Dim.CONCURRENCY,
    "tasks": Dim.TASKS,
}


@dataclass(frozen=True, slots=True)
class Limits:
    """One subject's limits; None means unlimited. 0 refuses every request of that kind."""

    rpm: int | None = None
    tpm: int | None = None
    concurrency: int | None = None
    tasks: int | None = None

    @property
    def empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))

    def merged(self, changes: Mapping[str, int | None]) -> Limits:
        """These limits with `changes` applied (a value of None clears that limit)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for name, value in changes.items():
            if name not in values:
                raise ValueError(f"unknown limit {name!r} (allowed: {', '.join(values)})")
            if value is not None and value < 0:
                raise ValueError(f"limit {name} must be 0 or more")
            values[name] = value
        return Limits(**values)

    def as_dict(self) -> dict[str, int]:
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Limits:
        return cls().merged({k: (None if v is None else int(v)) for k, v in data.items()})


@dataclass(frozen=True, slots=True)
class LimitPolicy:
    """A subject's limits and its per-model overrides (model name or llmid → limits)."""

    base: Limits = Limits()
    models: tuple[tuple[str, Limits], ...] = ()

    @property
    def empty(self) -> bool:
        return self.base.empty and all(lim.empty for _, lim in self.models)

    def override(self, names: Iterable[str]) -> tuple[str, Limits] | None:
        wanted = set(names)
        for name, lim in self.models:
            if name in wanted:
                return name, lim
        return None

    def with_model(self, model: str, limits: Limits) -> LimitPolicy:
        others = tuple((n, lim) for n, lim in self.models if n != model)
        return LimitPolicy(self.base, others if limits.empty else (*others, (model, limits)))

    def models_json(self) -> dict[str, dict[str, int]] | None:
        return {n: lim.as_dict() for n, lim in self.models} or None

    @classmethod
    def from_columns(
        cls,
        rpm: int | None,
        tpm: int | None,
        concurrency: int | None,
        tasks: int | None,
        models: Mapping[str, Mapping[str, Any]] | None,
    ) -> LimitPolicy | None:
        """From stored columns; None when nothing is limited (the hot path then skips limits)."""
        policy = cls(
            Limits(rpm, tpm, concurrency, tasks),
            tuple((n, Limits.from_dict(v)) for n, v in sorted((models or {}).items())),
        )
        return None if policy.empty else policy


@dataclass(frozen=True, slots=True)
class Rule:
    """One bucket a request must pass: `bucket` names it (subject, model override, kind)."""

    bucket: str
    dim: Dim
    limit: int


def plan(
    subjects: Iterable[tuple[str, LimitPolicy | None]], names: Iterable[str]
) -> tuple[Rule, ...]:
    """Every rpm / tpm / concurrency bucket a request for a model (any of `names`) must pass.
    `subjects` are (prefix, policy), e.g. ("k12", key policy), ("u3", user policy)."""
    names = tuple(names)
    rules: list[Rule] = []
    for prefix, policy in subjects:
        if policy is None:
            continue
        found = policy.override(names)
        for attr in ("rpm", "tpm", "concurrency"):
            dim = _FIELD_DIM[attr]
            if found is not None and getattr(found[1], attr) is not None:
                rules.append(Rule(f"{prefix}:m:{found[0]}:{attr}", dim, getattr(found[1], attr)))
            elif getattr(policy.base, attr) is not None:
                rules.append(Rule(f"{prefix}:{attr}", dim, getattr(policy.base, attr)))
    return tuple(rules)


# -- the window math ------------------------------------------------------------------------------


def interval_ms(limit: int) -> float:
    return PERIOD_MS / limit


def gcra(tat: float, now: float, cost: float, limit: int) -> tuple[bool, float]:
    """(admitted, the bucket's TAT after admitting). Refused: the TAT to keep is unchanged."""
    new = max(tat, now) + cost * interval_ms(limit)
    return new - now <= PERIOD_MS, new


def remaining(tat: float, now: float, limit: int) -> int:
    """Whole units left in the bucket at `now`."""
    used = max(tat - now, 0.0)
    return max(0, min(limit, math.floor((PERIOD_MS - used) / interval_ms(limit) + 1e-9)))


def retry_after_ms(tat: float, now: float, cost: float, limit: int) -> float:
    """How long until a request of `cost` would be admitted."""
    return max(0.0, max(tat, now) + cost * interval_ms(limit) - now - PERIOD_MS)


def corrected(tat: float, now: float, delta: float, limit: int) -> float:
    """The TAT after `delta` units more (negative: given back) than were admitted."""
    # Extra use counts from now on (a bucket already full has nothing to give back from the past).
    return (max(tat, now) if delta > 0 else tat) + delta * interval_ms(limit)


# -- the outcome ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BucketState:
    dim: Dim
    limit: int
    remaining: int
    reset_ms: float  # until the bucket is full again (concurrency: unknown, 0)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request was refused, with what the client needs to back off."""

    dim: Dim
    limit: int
    retry_after_ms: float
    states: tuple[BucketState, ...]
    retryable: bool = True  # False: no wait helps (a zero limit, a request larger than a limit)

    def message(self) -> str:
        what = {
            Dim.REQUESTS: "requests per minute",
            Dim.TOKENS: "tokens per minute",
            Dim.CONCURRENCY: "concurrent requests",
            Dim.TASKS: "open tasks",
        }[self.dim]
        if not self.retryable:
            return f"Rate limit exceeded: this request cannot fit the limit of {self.limit} {what}"
        wait = max(1, math.ceil(self.retry_after_ms / 1000))
        return f"Rate limit reached: {self.limit} {what}. Please try again in {wait}s."


def duration(ms: float) -> str:
    """OpenAI's reset format: `20ms`, `1s`, `6m0s`."""
    if ms < 1000:
        return f"{max(0, math.ceil(ms))}ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.3g}s"
    minutes = int(seconds // 60)
    return f"{minutes}m{int(seconds - minutes * 60)}s"


def refusal_headers(refusal: Refusal) -> dict[str, str]:
    """Retry-After (whole seconds), retry-after-ms (what the OpenAI SDKs read first), and the
    OpenAI-style x-ratelimit-* of the tightest bucket of each kind."""
    headers: dict[str, str] = {}
    if refusal.retryable:
        wait = max(refusal.retry_after_ms, 1.0)
        headers["retry-after"] = str(max(1, math.ceil(wait / 1000)))
        headers["retry-after-ms"] = str(math.ceil(wait))
    else:
        headers["x-should-retry"] = "false"
    seen: set[Dim] = set()
    for st in sorted(refusal.states, key=lambda s: s.remaining):
        if st.dim in seen:
            continue
        seen.add(st.dim)
        name = st.dim.value
        headers[f"x-ratelimit-limit-{name}"] = str(st.limit)
        headers[f"x-ratelimit-remaining-{name}"] = str(st.remaining)
        if st.dim in (Dim.REQUESTS, Dim.TOKENS):
            headers[f"x-ratelimit-reset-{name}"] = duration(st.reset_ms)
    return headers
