"""What this process knows about each channel's health: its circuit breaker, the rotation of
its key pool, and its chat concurrency slots. Chat (services/failover.py) and task submission
(services/poller.py) both route through it and report every upstream outcome to it.

Per process, on purpose: a breaker reacts to what this instance sees, with no shared store on
the hot path (every check is a dict lookup). With several instances each one opens its own
breaker after its own failures, which is what a breaker is for. Chat concurrency slots are per
process too: with N instances a channel sees up to N times `max_chat_concurrency` (set it to
the upstream's limit divided by the number of instances). Task concurrency (`max_concurrency`)
is counted in the database instead and holds across instances (db/repos/tasks.py).

Channel options read here (JSON `options` of a channel, set with `llmage channel add/update
--option` or the admin API): `breaker_failures` (consecutive channel failures that open the
breaker), `breaker_cooldown_seconds` (open this long before one probe), `key_cooldown_seconds`
(a pool key that failed for auth or balance sits out this long), `max_chat_concurrency`
(chat calls in flight to the channel), `timeout_seconds` (one chat attempt's own deadline, after
which another channel is tried; unset, an attempt may use the request's whole deadline).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from llmage.domain.breaker import BreakerState, CircuitBreaker, KeyRing
from llmage.domain.credentials import ApiKey, KeyPool, pool_size
from llmage.domain.errors import InvalidParameter, UpstreamKind
from llmage.observability import metrics
from llmage.providers.contract import Channel

log = logging.getLogger(__name__)


def _number(options: Any, name: str, default: float) -> float:
    value = options.get(name) if hasattr(options, "get") else None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return default


class ChannelHealth:
    def __init__(
        self,
        *,
        breaker_failures: int = 5,
        breaker_cooldown: float = 30.0,
        key_cooldown: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock  # tests move it to end a cool-down
        self._failures = breaker_failures
        self._cooldown = breaker_cooldown
        self._key_cooldown = key_cooldown
        # By (id, name): an id SQLite hands out again after a removal starts afresh.
        self._breakers: dict[tuple[int, str], CircuitBreaker] = {}
        self._rings: dict[tuple[int, str], KeyRing] = {}
        self._slots: dict[tuple[int, str], tuple[int, asyncio.Semaphore]] = {}

    # -- configuration --------------------------------------------------------------------------

    def sync(self, channels: Iterable[Channel]) -> None:
        """After a channel reload: options may have changed; gauges show every channel;
        removed channels are forgotten."""
        channels = list(channels)
        known = {(c.id, c.name) for c in channels}
        for gone in [k for k in self._breakers if k not in known]:
            del self._breakers[gone]
            if gone[1] not in {c.name for c in channels}:
                with contextlib.suppress(KeyError):
                    metrics.CHANNEL_BREAKER.remove(gone[1])
        for table in (self._rings, self._slots):
            for gone in [k for k in table if k not in known]:
                del table[gone]
        for ch in channels:
            b = self.breaker(ch)
            b.threshold = int(_number(ch.options, "breaker_failures", self._failures)) or 1
            b.cooldown = _number(ch.options, "breaker_cooldown_seconds", self._cooldown)
            ring = self._rings.get((ch.id, ch.name))
            size = pool_size(ch.credentials)
            if ring is not None and ring.size != size:
                del self._rings[(ch.id, ch.name)]
            elif ring is not None:
                ring.cooldown = _number(ch.options, "key_cooldown_seconds", self._key_cooldown)
            self._publish(ch, b)

    def breaker(self, channel: Channel) -> CircuitBreaker:
        b = self._breakers.get((channel.id, channel.name))
        if b is None:
            b = CircuitBreaker(
                threshold=int(_number(channel.options, "breaker_failures", self._failures)) or 1,
                cooldown=_number(channel.options, "breaker_cooldown_seconds", self._cooldown),
            )
            self._breakers[(channel.id, channel.name)] = b
        return b

    def state(self, channel: Channel) -> BreakerState:
        b = self.breaker(channel)
        if b.state is BreakerState.OPEN and b.available(self.clock()):
            return BreakerState.OPEN  # still open until a call probes it
        return b.state

    @staticmethod
    def _publish(channel: Channel, b: CircuitBreaker) -> None:
        metrics.CHANNEL_BREAKER.labels(channel.name).set(int(b.state))

    # -- routing --------------------------------------------------------------------------------

    def route(self, channels: list[Channel]) -> Iterator[Channel]:
        """The channels to try, in order, skipping those whose breaker is open. Lazy: a
        half-open channel's probe is claimed only when the caller really gets to it. If every
        candidate is open, the least recently failed one is tried anyway."""
        tried = False
        for ch in channels:
            b = self.breaker(ch)
            if b.state is BreakerState.CLOSED or b.acquire(self.clock()):
                if b.state is not BreakerState.CLOSED:
                    self._publish(ch, b)
                tried = True
                yield ch
        if not tried and channels:
            ch = min(channels, key=lambda c: self.breaker(c).opened_at)
            b = self.breaker(ch)
            b.force(self.clock())
            self._publish(ch, b)
            yield ch

    def record(self, channel: Channel, kind: UpstreamKind | None) -> None:
        """One upstream call's outcome: None for success, else the error's kind."""
        b = self.breaker(channel)
        before = b.state
        now = self.clock()
        if kind is None:
            b.success(now)
            metrics.CHANNEL_HEALTHY.labels(channel.name).set(1)
        elif kind.breaks_channel:
            b.failure(now)
            if kind.channel_problem or b.state is BreakerState.OPEN:
                metrics.CHANNEL_HEALTHY.labels(channel.name).set(0)
        else:
            b.neutral(now)
        if b.state is not before:
            self._publish(channel, b)
            if b.state is BreakerState.OPEN:
                log.warning("channel %s: circuit breaker open (%s)", channel.name, kind)
            elif b.state is BreakerState.CLOSED:
                log.info("channel %s: circuit breaker closed again", channel.name)

    # -- key pools ------------------------------------------------------------------------------

    def _ring(self, channel: Channel) -> KeyRing:
        ring = self._rings.get((channel.id, channel.name))
        if ring is None:
            ring = KeyRing(
                pool_size(channel.credentials),
                _number(channel.options, "key_cooldown_seconds", self._key_cooldown),
            )
            self._rings[(channel.id, channel.name)] = ring
        return ring

    def pick_key(self, channel: Channel, skip: frozenset[int] = frozenset()) -> int | None:
        """Which key of the channel's pool the next request uses (round robin over the keys
        not set aside); 0 for a single credential; None when no usable key is left."""
        if not isinstance(channel.credentials, KeyPool):
            return None if 0 in skip else 0
        ring = self._ring(channel)
        found = ring.pick(self.clock(), skip=skip)
        if found is None and not skip:
            return ring.pick_any(self.clock())  # all resting: the breaker decides, not the ring
        return found

    def set_aside(self, channel: Channel, index: int) -> None:
        if isinstance(channel.credentials, KeyPool):
            self._ring(channel).set_aside(index, self.clock())
            log.warning("channel %s: key #%d set aside after a key error", channel.name, index)

    def usable_keys(self, channel: Channel) -> int:
        if not isinstance(channel.credentials, KeyPool):
            return 1
        return self._ring(channel).usable(self.clock())

    @staticmethod
    def with_key(channel: Channel, index: int) -> Channel:
        """The channel as one request sees it: a pool narrowed to the key it signs with."""
        creds = channel.credentials
        if isinstance(creds, KeyPool):
            return dataclasses.replace(
                channel, credentials=ApiKey(creds.keys[index % len(creds.keys)])
            )
        return channel

    # -- chat concurrency -----------------------------------------------------------------------

    def chat_slots(self, channel: Channel) -> asyncio.Semaphore | None:
        """The channel's chat slots, None when it has no `max_chat_concurrency`."""
        limit = channel.options.get("max_chat_concurrency")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0:
            return None
        found = self._slots.get((channel.id, channel.name))
        if found is None or found[0] != limit:
            # A changed limit starts a new semaphore; calls on the old one release to it.
            found = (limit, asyncio.Semaphore(limit))
            self._slots[(channel.id, channel.name)] = found
        return found[1]


# Routing options of a channel and the smallest value each accepts (ints where the name says
# a count). Checked when an operator sets them, so a typo is a clear 400, not a silent default.
_ROUTING_OPTIONS: dict[str, tuple[type, float]] = {
    "max_concurrency": (int, 1),
    "max_chat_concurrency": (int, 1),
    "max_calls": (int, 1),
    "breaker_failures": (int, 1),
    "breaker_cooldown_seconds": (float, 0),
    "key_cooldown_seconds": (float, 0),
    "timeout_seconds": (float, 0.001),
}


def check_routing_options(options: Mapping[str, Any] | None) -> None:
    """InvalidParameter naming the option when a routing option has a value it cannot take."""
    for name, (kind, least) in _ROUTING_OPTIONS.items():
        if not options or name not in options:
            continue
        value = options[name]
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or (kind is int and not isinstance(value, int)) or value < least:
            what = "an integer" if kind is int else "a number"
            raise InvalidParameter(
                f"Channel option {name} must be {what} of at least {least:g}",
                param=f"options.{name}",
            )
