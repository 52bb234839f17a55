"""The ledger's invariants as SQL. Each query returns the rows that break one rule (see
billing/reconcile.py, which reports them)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

CHECKS: dict[str, str] = {
    "balance equals the sum of its ledger entries": """
        SELECT a.user_id, a.balance, COALESCE(SUM(e.delta_balance), 0) AS ledger
        FROM accounts a LEFT JOIN ledger_entries e ON e.user_id = a.user_id
        GROUP BY a.user_id, a.balance HAVING a.balance <> COALESCE(SUM(e.delta_balance), 0)""",
    "held equals the sum of its ledger entries": """
        SELECT a.user_id, a.held, COALESCE(SUM(e.delta_held), 0) AS ledger
        FROM accounts a LEFT JOIN ledger_entries e ON e.user_id = a.user_id
        GROUP BY a.user_id, a.held HAVING a.held <> COALESCE(SUM(e.delta_held), 0)""",
    "held equals the open holds": """
        SELECT a.user_id, a.held, COALESCE(SUM(h.amount), 0) AS open_holds
        FROM accounts a LEFT JOIN holds h ON h.user_id = a.user_id AND h.state = 'open'
        GROUP BY a.user_id, a.held HAVING a.held <> COALESCE(SUM(h.amount), 0)""",
    "no balance or available balance below zero": """
        SELECT user_id, balance, held FROM accounts WHERE balance < 0 OR held < 0
        OR balance - held < 0""",
    "every hold has exactly one opening entry": """
        SELECT h.id, COUNT(e.id) AS entries FROM holds h
        LEFT JOIN ledger_entries e ON e.hold_id = h.id AND e.kind = 'hold'
        GROUP BY h.id HAVING COUNT(e.id) <> 1""",
    "settled holds have one terminal entry, open holds none": """
        SELECT h.id, h.state, COUNT(e.id) AS terminal FROM holds h
        LEFT JOIN ledger_entries e ON e.hold_id = h.id AND e.kind IN ('capture', 'release')
        GROUP BY h.id, h.state
        HAVING (h.state = 'open' AND COUNT(e.id) <> 0)
            OR (h.state <> 'open' AND COUNT(e.id) <> 1)""",
    "terminal entries match their hold (charge ≤ hold, whole hold released)": """
        SELECT h.id, h.amount, h.captured, e.delta_balance, e.delta_held FROM holds h
        JOIN ledger_entries e ON e.hold_id = h.id AND e.kind IN ('capture', 'release')
        WHERE e.delta_held <> -h.amount OR e.delta_balance <> -COALESCE(h.captured, -1)
           OR h.captured > h.amount""",
    "usage records charge what their hold captured": """
        SELECT u.id, u.amount, h.captured FROM usage_records u JOIN holds h ON h.id = u.hold_id
        WHERE h.state <> 'open' AND u.amount <> COALESCE(h.captured, 0)""",
    "key spend equals its captures plus open holds": """
        SELECT k.id, k.spent, COALESCE(SUM(CASE WHEN h.state = 'open' THEN h.amount
                                             ELSE COALESCE(h.captured, 0) END), 0) AS used
        FROM api_keys k LEFT JOIN holds h ON h.key_id = k.id
        GROUP BY k.id, k.spent
        HAVING k.spent <> COALESCE(SUM(CASE WHEN h.state = 'open' THEN h.amount
                                       ELSE COALESCE(h.captured, 0) END), 0)""",
    "a paid top-up order has one credit of its amount, an unpaid one none": """
        SELECT o.out_trade_no, o.status, o.amount, COUNT(e.id) AS entries,
               COALESCE(SUM(e.delta_balance), 0) AS credited
        FROM topup_orders o LEFT JOIN ledger_entries e ON e.ref = 'topup:' || o.out_trade_no
        GROUP BY o.out_trade_no, o.status, o.amount
        HAVING (o.status = 'paid' AND (COUNT(e.id) <> 1 OR SUM(e.delta_balance) <> o.amount))
            OR (o.status <> 'paid' AND COUNT(e.id) <> 0)""",
    "every top-up credit belongs to a paid order of its user": """
        SELECT e.id, e.ref, e.user_id FROM ledger_entries e
        LEFT JOIN topup_orders o ON 'topup:' || o.out_trade_no = e.ref
            AND o.user_id = e.user_id AND o.status = 'paid'
        WHERE e.ref LIKE 'topup:%' AND o.out_trade_no IS NULL""",
    "a redeemed code has one credit of its amount to its redeemer, an unused one none": """
        SELECT c.id, c.redeemed_by, c.amount, COUNT(e.id) AS entries
        FROM redeem_codes c
        LEFT JOIN ledger_entries e ON e.ref = 'redeem:' || CAST(c.id AS VARCHAR(20))
        GROUP BY c.id, c.redeemed_by, c.amount
        HAVING (c.redeemed_by IS NOT NULL AND (COUNT(e.id) <> 1
                OR SUM(e.delta_balance) <> c.amount OR MIN(e.user_id) <> c.redeemed_by))
            OR (c.redeemed_by IS NULL AND COUNT(e.id) <> 0)""",
}


async def broken_rows(engine: AsyncEngine, limit: int = 20) -> dict[str, list[tuple[object, ...]]]:
    """For each rule with offending rows, up to `limit` of them (rules in CHECKS order)."""
    out: dict[str, list[tuple[object, ...]]] = {}
    async with engine.connect() as conn:
        for rule, sql in CHECKS.items():
            rows = (await conn.execute(text(sql + f" LIMIT {int(limit)}"))).all()
            if rows:
                out[rule] = [tuple(r) for r in rows]
    return out
