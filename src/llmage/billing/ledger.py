"""The ledger: every money movement as an append-only entry plus one conditional update.

Two numbers per account: `balance` (settled money) and `held` (open holds). Available = balance −
held and the schema refuses it below zero. Each ledger entry carries the change to both, so
`balance == Σ delta_balance` and `held == Σ delta_held` for every user — `reconcile` checks it.

  top-up / adjust   +balance                       ref = order number / operator reference
  hold              +held      (admission: WHERE balance - held >= amount)
  capture           −balance by the charge, −held by the whole hold (the rest is released)
  release           −held by the whole hold (nothing charged)

A hold reaches exactly one terminal state: the settle program flips `holds.state` from 'open'
with a compare-and-swap and its ledger ref `settle:<hold id>` is unique, so a second settle of the
same hold (two pollers, a retry after restart) changes nothing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from llmage.db.money import DuplicateRef, MoneyStore, Stmt
from llmage.db.money.ledger import (
    HoldAlreadySettled,
    KeyRefused,
    UnknownAccount,
    credit_stmts,
    held_key,
    hold_stmts,
    key_state,
    settle_stmts,
)
from llmage.domain.clock import now_ms
from llmage.domain.errors import InvalidApiKey, SpendLimitExceeded
from llmage.domain.ids import public_id

__all__ = ["Hold", "HoldAlreadySettled", "KeyRefused", "Ledger", "UnknownAccount"]


@dataclass(frozen=True, slots=True)
class Hold:
    id: str
    user_id: int
    key_id: int | None
    amount: int


class Ledger:
    def __init__(self, store: MoneyStore) -> None:
        self._store = store

    def hold_program(
        self, *, user_id: int, key_id: int | None, amount: int, purpose: str, ref: str | None
    ) -> tuple[Hold, list[Stmt]]:
        hold = Hold(public_id(), user_id, key_id, amount)
        stmts = hold_stmts(
            hold_id=hold.id,
            user_id=user_id,
            key_id=key_id,
            amount=amount,
            purpose=purpose,
            ref=ref,
            now=now_ms(),
        )
        return hold, stmts

    async def hold(
        self,
        *,
        user_id: int,
        key_id: int | None,
        amount: int,
        purpose: str,
        ref: str | None = None,
        extra: list[Stmt] | None = None,
    ) -> Hold:
        """Commit a hold (plus `extra` statements, atomically) before the upstream call."""
        hold, stmts = self.hold_program(
            user_id=user_id, key_id=key_id, amount=amount, purpose=purpose, ref=ref
        )
        await self.run([*stmts, *(extra or [])], user_id)
        return hold

    def settle_program(
        self, hold: Hold, captured: int, extra: list[Stmt] | None = None
    ) -> list[Stmt]:
        """Capture `captured` (clamped to the hold) and release the rest, plus `extra` statements
        (the usage record) in the same transaction."""
        stmts = settle_stmts(
            hold_id=hold.id,
            user_id=hold.user_id,
            key_id=hold.key_id,
            amount=hold.amount,
            captured=max(0, min(captured, hold.amount)),
            now=now_ms(),
        )
        stmts.extend(extra or [])
        return stmts

    async def settle(self, hold: Hold, captured: int, extra: list[Stmt] | None = None) -> bool:
        """True if this call settled the hold; False if it was already settled (idempotent)."""
        try:
            await self._store.run(self.settle_program(hold, captured, extra), hold.user_id)
        except (HoldAlreadySettled, DuplicateRef):
            return False
        return True

    async def credit(
        self, user_id: int, amount: int, ref: str, *, kind: str = "topup", memo: str | None = None
    ) -> bool:
        """Add (or, for kind='adjust', possibly subtract) money once per `ref`. False if `ref`
        was already credited — a payment notification delivered twice credits once."""
        stmts = credit_stmts(
            user_id=user_id, amount=amount, ref=ref, kind=kind, memo=memo, now=now_ms()
        )
        try:
            await self._store.run(stmts, user_id, durable=True)
        except DuplicateRef:
            return False
        return True

    async def run(self, stmts: list[Stmt], lock_order: int) -> None:
        """Run a prepared program (a hold or settle plus its extras) and wait for the commit."""
        try:
            await self._store.run(stmts, lock_order)
        except KeyRefused:
            raise await self._key_refusal(stmts) from None

    async def _key_refusal(self, stmts: list[Stmt]) -> Exception:
        """Which of the key's conditions failed (rare path: a second look, outside the hold)."""
        key_id = held_key(stmts)
        state = None if key_id is None else await key_state(self._store, key_id)
        if state is None or state[0] is not None or (state[1] is not None and state[1] <= now_ms()):
            return InvalidApiKey()
        return SpendLimitExceeded()

    def submit(self, stmts: list[Stmt], lock_order: int) -> asyncio.Future[None]:
        """Queue a prepared program without waiting: settlement from a cancelled task."""
        return self._store.submit(stmts, lock_order)
