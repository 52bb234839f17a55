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

from llmage.db.money_store import DuplicateRef, MoneyStore, Stmt, now_ms
from llmage.domain.errors import InsufficientBalance, InvalidApiKey, SpendLimitExceeded
from llmage.domain.ids import public_id


class HoldAlreadySettled(Exception):
    pass


class UnknownAccount(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Hold:
    id: str
    user_id: int
    key_id: int | None
    amount: int


_KEY_HOLD = (
    "UPDATE api_keys SET last_used_at = :now, spent = spent + :amount WHERE id = :key"
    " AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > :now)"
    " AND (spend_limit IS NULL OR spent + :amount <= spend_limit)"
)
_KEY_STATE = "SELECT revoked_at, expires_at FROM api_keys WHERE id = :key"


class KeyRefused(Exception):
    """The key is revoked, expired or over its spend limit; `Ledger.hold` says which."""


_ACCOUNT_HOLD = (
    "UPDATE accounts SET held = held + :amount WHERE user_id = :user AND balance - held >= :amount"
)
_INSERT_HOLD = (
    "INSERT INTO holds (id, user_id, key_id, amount, state, purpose, ref, created_at)"
    " VALUES (:hold, :user, :key, :amount, 'open', :purpose, :ref, :now)"
)
_INSERT_ENTRY = (
    "INSERT INTO ledger_entries (user_id, kind, delta_balance, delta_held, ref, hold_id, memo,"
    " created_at) VALUES (:user, :kind, :db, :dh, :ref, :hold, :memo, :now)"
)
_SETTLE_HOLD = (
    "UPDATE holds SET state = :state, captured = :captured, settled_at = :now"
    " WHERE id = :hold AND state = 'open' AND amount >= :captured"
)
_ACCOUNT_SETTLE = (
    "UPDATE accounts SET balance = balance - :captured, held = held - :amount WHERE user_id = :user"
)
_KEY_SETTLE = "UPDATE api_keys SET spent = spent - :unused WHERE id = :key"
_ACCOUNT_CREDIT = "UPDATE accounts SET balance = balance + :amount WHERE user_id = :user"


class Ledger:
    def __init__(self, store: MoneyStore) -> None:
        self._store = store

    def hold_program(
        self, *, user_id: int, key_id: int | None, amount: int, purpose: str, ref: str | None
    ) -> tuple[Hold, list[Stmt]]:
        hold = Hold(public_id(), user_id, key_id, amount)
        p = {
            "now": now_ms(),
            "key": key_id,
            "amount": amount,
            "user": user_id,
            "hold": hold.id,
            "purpose": purpose,
            "ref": ref,
            "kind": "hold",
            "db": 0,
            "dh": amount,
            "memo": None,
        }
        stmts: list[Stmt] = []
        if key_id is not None:
            # Revocation, expiry and the spend limit are enforced here, inside the hold, so a
            # stale auth cache can never let a dead key spend.
            stmts.append(Stmt(_KEY_HOLD, p, KeyRefused))
        stmts.append(Stmt(_ACCOUNT_HOLD, p, InsufficientBalance))
        stmts.append(Stmt(_INSERT_HOLD, p))
        stmts.append(Stmt(_INSERT_ENTRY, {**p, "ref": f"hold:{hold.id}"}))
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
        captured = max(0, min(captured, hold.amount))
        p = {
            "now": now_ms(),
            "hold": hold.id,
            "user": hold.user_id,
            "key": hold.key_id,
            "amount": hold.amount,
            "captured": captured,
            "unused": hold.amount - captured,
            "state": "captured" if captured else "released",
            "kind": "capture" if captured else "release",
            "db": -captured,
            "dh": -hold.amount,
            "ref": f"settle:{hold.id}",
            "memo": None,
        }
        stmts = [
            Stmt(_SETTLE_HOLD, p, HoldAlreadySettled),
            Stmt(_ACCOUNT_SETTLE, p, UnknownAccount),
            Stmt(_INSERT_ENTRY, p),
        ]
        if hold.key_id is not None:
            stmts.append(Stmt(_KEY_SETTLE, p))
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
        p = {
            "now": now_ms(),
            "user": user_id,
            "amount": amount,
            "kind": kind,
            "db": amount,
            "dh": 0,
            "ref": ref,
            "hold": None,
            "memo": memo,
        }
        try:
            await self._store.run(
                [Stmt(_INSERT_ENTRY, p), Stmt(_ACCOUNT_CREDIT, p, UnknownAccount)],
                user_id,
                durable=True,
            )
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
        key_id = next(s.params["key"] for s in stmts if s.sql is _KEY_HOLD)
        state = await self._store.fetch_one(_KEY_STATE, {"key": key_id})
        if state is None or state[0] is not None or (state[1] is not None and state[1] <= now_ms()):
            return InvalidApiKey()
        return SpendLimitExceeded()

    def submit(self, stmts: list[Stmt], lock_order: int) -> asyncio.Future[None]:
        """Queue a prepared program without waiting: settlement from a cancelled task."""
        return self._store.submit(stmts, lock_order)
