"""A chat hold whose request died with its process is released by the sweeper, once."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from conftest import Stack
from llmage.billing.ledger import Hold
from llmage.services.platform import Platform
from llmage.services.sweeper import HoldSweeper
from llmage.settings import Settings


def test_stale_chat_hold_is_released_once(stack: Stack) -> None:
    acct = stack.account("10")
    p = stack.platform

    async def scenario() -> tuple[int, int, bool, str, int]:
        hold = await p.ledger.hold(
            user_id=acct.user_id,
            key_id=None,
            amount=1_000_000,
            purpose="chat",
            ref="usage-x1" + acct.username,
        )
        fresh = await p.ledger.hold(
            user_id=acct.user_id, key_id=None, amount=500_000, purpose="chat", ref=None
        )
        async with p.db.engine.begin() as conn:  # the first request started two hours ago
            await conn.execute(
                text("UPDATE holds SET created_at = created_at - 7200000 WHERE id = :h"),
                {"h": hold.id},
            )
        sweeper = HoldSweeper(p.holds, p.ledger, max_age_seconds=3600)
        first = await sweeper.sweep()
        second = await sweeper.sweep()
        # The "dead" request wakes up and tries to settle: nothing changes.
        late = await p.ledger.settle(Hold(hold.id, acct.user_id, None, 1_000_000), 400_000)
        record = await p.usage.get("usage-x1" + acct.username)
        assert record is not None
        await p.ledger.settle(fresh, 0)
        balance, _ = await p.accounts.balance(acct.user_id)
        return first, second, late, record.status, balance

    first, second, late, status, balance = stack.admin.call(scenario())
    assert (first, second, late) == (1, 0, False)
    assert status == "interrupted"
    assert balance == 10_000_000  # nothing charged
    assert stack.balance(acct.user_id) == (10_000_000, 0)
    assert stack.reconcile() == []


def test_default_age_is_the_longest_call_plus_the_margin(tmp_path: Path) -> None:
    """No separate magic number: the sweeper waits exactly as long as a call can last, plus the
    margin for settlement and clocks; an operator may still set the age outright."""
    s = Settings(
        data_dir=tmp_path,
        upstream_total_timeout=120,
        upstream_stream_total_timeout=900,
        chat_hold_margin_seconds=60,
    )
    assert s.chat_hold_max_age == 960
    assert Settings(data_dir=tmp_path).chat_hold_max_age == 1800 + 300
    assert Settings(data_dir=tmp_path, chat_hold_max_age_seconds=5000).chat_hold_max_age == 5000
    platform = Platform(s)
    assert platform.sweeper._max_age_ms == 960_000
