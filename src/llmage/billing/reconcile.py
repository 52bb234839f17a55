"""Invariant checks over the whole ledger. Each check (db/money/invariants.py) finds the rows
that break one rule; `llmage reconcile` prints them and exits non-zero if any rule has a row."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from llmage.db.money.invariants import CHECKS, broken_rows

__all__ = ["CHECKS", "Violation", "reconcile"]


@dataclass(frozen=True, slots=True)
class Violation:
    rule: str
    rows: list[tuple[object, ...]]


async def reconcile(engine: AsyncEngine, limit: int = 20) -> list[Violation]:
    found = await broken_rows(engine, limit)
    return [Violation(rule, rows) for rule, rows in found.items()]
