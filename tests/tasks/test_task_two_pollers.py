"""Two servers (two pollers) on one PostgreSQL database work through 200 tasks: every task
SUCCEEDED, every hold settled exactly once. Leases are kept short so the pollers really do
collide (a lease running out mid-step lets the other poller take the same task)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from taskhelp import SD15_T2V, ChannelSpec, TaskServer, task_env

from llmage.app import create_app
from llmage.db.repos.tasks import TaskStateChanged
from llmage.services.poller import TaskPoller

N = 200


def count_settlements(poller: TaskPoller) -> dict[str, int]:
    """Wrap the poller's final step: how many settlements it won and lost."""
    stats = {"won": 0, "lost": 0, "other": 0}
    original: Callable[..., Any] = poller._settle.succeed

    async def succeed(*args: Any) -> None:
        try:
            await original(*args)
        except TaskStateChanged:
            stats["lost"] += 1
            raise
        except (Exception, asyncio.CancelledError):
            stats["other"] += 1
            raise
        stats["won"] += 1

    poller._settle.succeed = succeed  # type: ignore[method-assign]
    return stats


def test_two_pollers_settle_each_hold_once(tmp_path: Path) -> None:
    channels = [ChannelSpec("sim-video", [SD15_T2V], {"latency_ms": 300})]
    with task_env(
        "postgres", tmp_path, channels, task_lease_seconds=0.5, task_poll_interval_ms=50.0
    ) as env:
        second = TaskServer(create_app(env.settings))
        try:
            pollers = [env.app_platform.poller, second.app.state.platform.poller]
            assert pollers[0].owner != pollers[1].owner
            stats = [count_settlements(p) for p in pollers]
            acc = env.account("10000")
            initial = env.balance(acc.user_id)[0]
            urls = [env.url, second.url]
            body = {"llmid": SD15_T2V, "prompt": "two pollers", "duration": 4, "resolution": "480p"}

            clients = [httpx.Client(base_url=u, timeout=30) for u in urls]

            def submit(i: int) -> str:
                r = clients[i % 2].post("/llmage/video", json=body, headers=env.headers(acc))
                assert r.status_code == 200, r.text
                return str(r.json()["taskid"])

            with ThreadPoolExecutor(16) as pool:
                ids = list(pool.map(submit, range(N)))
            assert len(set(ids)) == N

            statuses = env.wait_all(ids, timeout=90)
            assert set(statuses.values()) == {"SUCCEEDED"}, statuses
        finally:
            second.stop()

        won = [s["won"] for s in stats]
        assert sum(won) == N, stats  # exactly one winning settlement per task
        assert all(w > 0 for w in won), stats  # both pollers did real work
        assert sum(s["other"] for s in stats) == 0, stats

        # Exactly one terminal ledger entry per hold, straight from the tables.
        per_hold = env.sql(
            "SELECT h.id, h.state, COUNT(e.id) FROM holds h LEFT JOIN ledger_entries e"
            " ON e.hold_id = h.id AND e.kind IN ('capture', 'release')"
            " WHERE h.user_id = :u GROUP BY h.id, h.state",
            u=acc.user_id,
        )
        assert len(per_hold) == N
        assert {(state, n) for _, state, n in per_hold} == {("captured", 1)}, per_hold[:5]
        (captures,) = env.sql(
            "SELECT COUNT(*), COALESCE(SUM(delta_balance), 0) FROM ledger_entries"
            " WHERE user_id = :u AND kind = 'capture'",
            u=acc.user_id,
        )
        charged = env.sql(
            "SELECT COALESCE(SUM(charged), 0) FROM tasks WHERE user_id = :u", u=acc.user_id
        )[0][0]
        assert captures == (N, -charged)
        assert env.balance(acc.user_id) == (initial - charged, 0)
        assert env.reconcile() == []
        print(f"settlements per poller: {stats}")
