"""A restart in the middle: the server is stopped while 20 tasks run upstream, a new server
(new Platform, new poller) starts on the same database; every task finishes SUCCEEDED and each
hold is captured exactly once. The sim channel is gated (taskhelp.Gate): no task can finish
before the restart, however slow the machine."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from taskhelp import SD15_T2V, ChannelSpec, Gate, task_env

from support.backends import BACKENDS

N = 20


@pytest.mark.parametrize("backend", BACKENDS)
def test_restart_resumes_every_open_task(backend: str, tmp_path: Path) -> None:
    gate = Gate(tmp_path)
    channels = [ChannelSpec("sim-gated", [SD15_T2V], {"latency_ms": 200, **gate.option})]
    with task_env(
        backend, tmp_path, channels, task_lease_seconds=1.0, task_stop_grace_seconds=0.5
    ) as env:
        acc = env.account("1000")
        initial = env.balance(acc.user_id)
        assert initial == (1000 * 1_000_000, 0)
        body = {"llmid": SD15_T2V, "prompt": "restart", "duration": 4, "resolution": "480p"}
        with ThreadPoolExecutor(10) as pool:
            ids = list(pool.map(lambda _: env.submit(acc, body), range(N)))
        assert len(set(ids)) == N

        # Wait until every task was submitted upstream and is running there (the closed gate
        # keeps them running: they cannot finish before the restart).
        deadline = time.monotonic() + 60
        while True:
            rows = [env.task(t) for t in ids]
            if all(r.upstream_id and r.status.value in ("PENDING", "RUNNING") for r in rows):
                break
            assert time.monotonic() < deadline, [r.status for r in rows]
            time.sleep(0.05)
        upstream_before = {r.id: r.upstream_id for r in rows}
        first_owner = env.app_platform.poller.owner
        env.stop_server()

        # While no server runs nothing moves: all 20 are still open, no hold settled.
        rows = [env.task(t) for t in ids]
        assert all(not r.status.terminal for r in rows), [r.status for r in rows]
        assert env.balance(acc.user_id)[1] == sum(r.quoted for r in rows)
        assert all(env.terminal_entries(r.hold_id) == [] for r in rows)
        gate.open()  # the upstream jobs are done now; only the new server can learn it
        env.start_server()
        assert env.app_platform.poller.owner != first_owner
        statuses = env.wait_all(ids, timeout=30)
        assert set(statuses.values()) == {"SUCCEEDED"}, statuses

        rows = [env.task(t) for t in ids]
        charges = 0
        for r in rows:
            assert r.upstream_id == upstream_before[r.id]  # polled again, not resubmitted
            entries = env.terminal_entries(r.hold_id)
            assert entries == [("capture", -(r.charged or 0), -r.quoted)], (r.id, entries)
            assert r.charged is not None and 0 < r.charged <= r.quoted
            charges += r.charged
        holds = env.holds_of(acc.user_id)
        assert len(holds) == N
        assert {h[2] for h in holds} == {"captured"}
        assert env.balance(acc.user_id) == (initial[0] - charges, 0)
        assert env.reconcile() == []
