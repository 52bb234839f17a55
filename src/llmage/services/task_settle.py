"""The terminal moves of a task, each in ONE transaction with its hold's settlement and its
callback: succeed (charge what the provider reports, priced by the catalog, never above the
hold), fail (release everything). Also the non-terminal reschedule. Used by the poller only.

Exactly once: the task's compare-and-swap on its status and the hold's own compare-and-swap
share the transaction, so two workers, a restart or a cancel racing a finish end with one
terminal state and one charge.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from llmage.billing.ledger import Hold, Ledger
from llmage.db.money import Stmt
from llmage.db.repos.tasks import advance_stmt
from llmage.db.repos.webhooks import delivery_insert
from llmage.domain.catalog import Catalog
from llmage.domain.clock import now_ms
from llmage.domain.errors import LlmageError
from llmage.domain.media_pricing import quote_media
from llmage.domain.money import format_amount
from llmage.domain.redaction import Redactor
from llmage.domain.tasks import ACTION_TYPE, TaskRow, TaskStatus
from llmage.domain.usage import Usage
from llmage.observability import metrics


class TaskSettler:
    def __init__(
        self,
        *,
        catalog: Catalog,
        ledger: Ledger,
        currency: str,
        redactor: Callable[[], Awaitable[Redactor]],
    ) -> None:
        self._catalog = catalog
        self._ledger = ledger
        self._currency = currency
        self._redactor = redactor

    async def move(
        self,
        row: TaskRow,
        status: TaskStatus,
        fields: dict[str, Any],
        delay_ms: int,
        guards: Sequence[Stmt] = (),
    ) -> None:
        """A non-terminal move (or staying put) with the next poll in `delay_ms`; `guards`
        run first in the same transaction and may refuse it (a channel's free slot)."""
        now = now_ms()
        values = {
            **fields,
            "status": status.value,
            "updated_at": now,
            # Never later than the deadline: a task that runs out of time fails on time.
            "next_poll_at": min(now + max(0, delay_ms), row.deadline_at),
        }
        await self._ledger.run([*guards, advance_stmt(row.id, row.status, values)], row.user_id)

    def charge(self, row: TaskRow, usage: Usage) -> int:
        """Priced again from what the provider reports it produced; never above the hold."""
        entry = self._catalog.any_by_llmid(row.llmid)
        if entry is None:
            return row.quoted
        try:
            measured = {**row.params, **usage.pricing_params(), "model": row.model}
            actual = quote_media(entry, measured)
        except (LlmageError, TypeError, ValueError):  # a reported value the prices cannot read
            actual = row.quoted
        return max(0, min(actual, row.quoted))

    def usage_record(self, row: TaskRow, usage: Usage, charge: int) -> dict[str, Any]:
        entry = self._catalog.any_by_llmid(row.llmid)
        action = entry.kind.value if entry else row.kind
        record: dict[str, Any] = {
            "action": action,
            "type": ACTION_TYPE.get(action, action),
            "model": row.model,
        }
        for name in ("duration", "resolution", "ratio", "size", "off_peak", "n"):
            if name in row.params:
                record[name] = row.params[name]
        record.update(usage.record())
        record["amount"] = format_amount(charge)
        record["currency"] = self._currency
        return record

    @staticmethod
    def _callback(row: TaskRow) -> list[Stmt]:
        # Queued in the same transaction as the terminal state: no finish without its callback.
        return [delivery_insert(row.id, row.callback_url, now_ms())] if row.callback_url else []

    async def succeed(
        self, row: TaskRow, usage: Usage, outputs: dict[str, Any], extra: dict[str, Any]
    ) -> None:
        charge = self.charge(row, usage)
        now = now_ms()
        fields = {
            **extra,
            "status": TaskStatus.SUCCEEDED.value,
            "progress": 100,
            "outputs": outputs,
            "usage": self.usage_record(row, usage, charge),
            "charged": charge,
            "updated_at": now,
            "finished_at": now,
        }
        settle = self._ledger.settle_program(
            Hold(row.hold_id, row.user_id, row.key_id, row.quoted), charge
        )
        await self._ledger.run(
            [advance_stmt(row.id, row.status, fields), *settle, *self._callback(row)],
            row.user_id,
        )
        metrics.HOLDS.labels("captured" if charge else "released").inc()
        metrics.CHARGED.labels("task").inc(charge)

    async def fail(self, row: TaskRow, code: str, message: str) -> None:
        now = now_ms()
        # Provider text is kept (and shown, and sent to webhooks) only without our secrets:
        # every channel's, since the text's channel is not always certain.
        redact = await self._redactor()
        fields = {
            "status": TaskStatus.FAILED.value,
            "error_code": redact(code, 64),
            "error_message": redact(message),
            "charged": 0,
            "updated_at": now,
            "finished_at": now,
        }
        settle = self._ledger.settle_program(
            Hold(row.hold_id, row.user_id, row.key_id, row.quoted), 0
        )
        await self._ledger.run(
            [advance_stmt(row.id, row.status, fields), *settle, *self._callback(row)],
            row.user_id,
        )
        metrics.HOLDS.labels("released").inc()
