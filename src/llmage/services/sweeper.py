"""Ends chat holds whose request died with its process.

A chat hold is settled by the request that opened it. If that process was killed mid-call the
hold would stay open forever, locking the user's money. Anything still open after any request
could still be running is released here (nothing charged: we cannot know what the upstream
produced), with a usage record that says so. How long that is follows from the upstream
deadlines: a request's calls end by its total deadline, so by default the age is the longest
total plus a margin (`Settings.chat_hold_max_age`). Should the request somehow still be alive,
its own settlement then finds the hold settled and changes nothing: still one terminal state.
Task holds are not touched: the task poller owns them.
"""

from __future__ import annotations

import asyncio
import logging

from llmage.billing.ledger import Hold, HoldAlreadySettled, Ledger
from llmage.db.money import DuplicateRef
from llmage.db.repos.holds import HoldRepo
from llmage.db.repos.usage import UsageRecord, usage_insert
from llmage.domain.clock import now_ms
from llmage.services.background import BackgroundLoop

log = logging.getLogger(__name__)


class HoldSweeper(BackgroundLoop):
    name = "hold-sweeper"

    def __init__(
        self,
        holds: HoldRepo,
        ledger: Ledger,
        *,
        max_age_seconds: float,
        interval_seconds: float = 60.0,
    ) -> None:
        super().__init__()
        self._holds = holds
        self._ledger = ledger
        self._max_age_ms = int(max_age_seconds * 1000)
        self._interval = interval_seconds

    async def _loop(self) -> None:
        while True:
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("hold sweep failed")
            await asyncio.sleep(self._interval)

    async def sweep(self) -> int:
        """Release stale open chat holds; returns how many this call settled."""
        cutoff = now_ms() - self._max_age_ms
        rows = await self._holds.stale_open("chat", cutoff, 500)
        settled = 0
        for r in rows:
            hold = Hold(r.id, r.user_id, r.key_id, r.amount)
            record = UsageRecord(
                id=r.ref or hold.id,
                user_id=r.user_id,
                key_id=r.key_id,
                hold_id=hold.id,
                model="unknown",
                llmid=None,
                channel_id=None,
                dialect="unknown",
                stream=False,
                status="interrupted",
                prompt_tokens=0,
                completion_tokens=0,
                cached_tokens=0,
                amount=0,
                estimated=False,
                latency_ms=0,
                error="request ended without settling (process stopped); hold released",
                created_at=now_ms(),
            )
            try:
                await self._ledger.run(
                    self._ledger.settle_program(hold, 0, [usage_insert(record)]), r.user_id
                )
            except (HoldAlreadySettled, DuplicateRef):
                continue
            settled += 1
        if settled:
            log.warning("released %d stale chat holds", settled)
        return settled
