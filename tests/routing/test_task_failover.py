"""Task submission that survives bad channels, end to end on the real server (SQLite and
PostgreSQL) against two fake Vidu upstreams serving one model.

The preferred channel refuses connections, answers creates with 500s (outcome unknown: the
upstream list proves nothing was made, and only then another channel takes the task) or
rejects our key: every task still succeeds through the other channel, is recorded on it, and
is charged once. The breaker opens, and after its cool-down (the server's injected clock) a
probe task closes it again. A channel limited to 2 concurrent tasks given 10 never runs more
than 2 upstream, and all 10 finish.
"""

from __future__ import annotations

import secrets
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import Account, Stack
from llmage.domain.credentials import ApiKey, Credentials, KeyPool, dump_secret
from llmage.domain.tasks import TaskRow
from support.fakes import FakeTask, Lifecycle
from support.servers import free_socket

sys.path.insert(0, str(Path(__file__).parents[1] / "providers" / "vidu"))
from vidu_fake import ViduFake

R0ILL = "r0ill7L0s6PtBS8mkmg-7"  # seed 000 t2v viduq3-pro
T2V = {"llmid": R0ILL, "prompt": "a lighthouse", "duration": 4, "resolution": "720p"}
TIMEOUT = httpx.Timeout(60.0)
ENDED = ("SUCCEEDED", "FAILED", "CANCELLED")


class CountingVidu(ViduFake):
    """Counts the tasks it is running (created, not yet at their end) at every create."""

    def __init__(self) -> None:
        super().__init__()
        self.most_running = 0

    def new_task(self, body: Any, *, external_id: str | None = None, prefix: str = "t") -> FakeTask:
        task = super().new_task(body, external_id=external_id, prefix=prefix)
        running = sum(1 for t in self.tasks.values() if not t.finished)
        self.most_running = max(self.most_running, running)
        return task


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


@dataclass
class Env:
    stack: Stack
    a: CountingVidu
    b: CountingVidu
    clock: Clock
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    ids: list[int] = field(default_factory=list)

    def channel(
        self,
        name: str,
        url: str,
        creds: Credentials,
        *,
        priority: int,
        options: dict[str, Any] | None = None,
    ) -> tuple[str, int]:
        full = f"{name}-{self.tag}"
        p = self.stack.platform
        cid = int(
            self.stack.admin.call(
                p.channels.add(
                    name=full,
                    provider="vidu",
                    platform=full,
                    base_url=url,
                    credential_enc=p.box.seal(dump_secret(creds)),
                    credential_type=creds.type,
                    models=["viduq3-pro"],
                    options={"poll_interval_ms": 50, **(options or {})},
                    priority=priority,
                )
            )
        )
        self.ids.append(cid)
        return full, cid

    def ready(self) -> None:
        time.sleep(self.stack.settings.channel_cache_ttl + 0.1)  # the server's cache reloads

    def submit(self, acc: Account, prefix: str = "") -> str:
        headers = {"Authorization": f"Bearer {acc.key}"}
        if prefix:  # pinned to one platform: the OpenAI route under `/{platform}`
            body = {"model": "viduq3-pro", "prompt": "x", "seconds": "4"}
            r = httpx.post(
                f"{self.stack.url}{prefix}/v1/videos", data=body, headers=headers, timeout=TIMEOUT
            )
            assert r.status_code == 200, r.text
            return str(r.json()["id"])
        r = httpx.post(self.stack.url + "/llmage/video", json=T2V, headers=headers, timeout=TIMEOUT)
        assert r.status_code == 200, r.text
        return str(r.json()["taskid"])

    def finish(self, acc: Account, taskid: str, timeout: float = 90) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            r = httpx.get(
                self.stack.url + "/llmage/tasks",
                params={"taskid": taskid},
                headers={"Authorization": f"Bearer {acc.key}"},
                timeout=TIMEOUT,
            )
            assert r.status_code == 200, r.text
            view: dict[str, Any] = r.json()
            if view["status"] in ENDED:
                return view
            assert time.monotonic() < deadline, view
            time.sleep(0.05)

    def row(self, taskid: str) -> TaskRow:
        found = self.stack.admin.call(self.stack.platform.task_repo.get(taskid))
        assert found is not None
        return found

    def metrics(self) -> str:
        return httpx.get(self.stack.url + "/metrics", timeout=TIMEOUT).text

    def breaker(self, name: str) -> float:
        line = f'llmage_channel_breaker_state{{channel="{name}"}} '
        for row in self.metrics().splitlines():
            if row.startswith(line):
                return float(row[len(line) :])
        raise AssertionError(f"no breaker gauge for {name}")

    def run(self, acc: Account, prefix: str = "") -> tuple[dict[str, Any], TaskRow]:
        taskid = self.submit(acc, prefix)
        return self.finish(acc, taskid), self.row(taskid)


@pytest.fixture(scope="module")
def fakes(stack: Stack) -> Iterator[tuple[CountingVidu, CountingVidu]]:
    a, b = CountingVidu(), CountingVidu()
    stack.admin.call(a.start())
    stack.admin.call(b.start())
    # Result URLs point at the fakes on 127.0.0.1: the operator allow-list lets the server's
    # guarded fetcher copy them (as support/fakes/drive.py's wire_channel does).
    fetcher = stack.server.app.state.platform.fetcher
    fetcher.allow_hosts = fetcher.allow_hosts | {a.host_port, b.host_port}
    yield a, b
    stack.admin.call(a.stop())
    stack.admin.call(b.stop())


@pytest.fixture
def env(stack: Stack, fakes: tuple[CountingVidu, CountingVidu]) -> Iterator[Env]:
    a, b = fakes
    for up in (a, b):
        up.reset()
        up.lifecycle = Lifecycle.succeeding(1)
        up.most_running = 0
    health = stack.app_platform.directory.health
    clock = Clock()
    real = health.clock
    health.clock = clock
    e = Env(stack, a, b, clock)
    try:
        yield e
    finally:
        health.clock = real
        for cid in e.ids:
            stack.admin.call(stack.platform.channels.remove(cid))
        e.ready()


def _creates(up: ViduFake) -> list[Any]:
    return [s for s in up.requests if s.op == "create"]


def _charged_once(e: Env, acc: Account, before: int, rows: list[TaskRow]) -> None:
    after, held = e.stack.wait_settled(acc.user_id)
    assert held == 0
    charged = [r.charged for r in rows]
    assert all(c is not None and c > 0 for c in charged), charged
    assert before - after == sum(c for c in charged if c is not None)
    assert e.stack.reconcile() == []


def test_lost_creates_fail_over_then_the_breaker_opens_and_a_probe_closes_it(env: Env) -> None:
    e = env
    opts = {"breaker_failures": 2, "breaker_cooldown_seconds": 30}
    a, a_id = e.channel("a", e.a.url, ApiKey(e.a.api_key), priority=20, options=opts)
    _, b_id = e.channel("b", e.b.url, ApiKey(e.b.api_key), priority=10)
    e.ready()
    e.a.fail_next("create", 500, {"code": 500, "reason": "InternalServiceFailure",
                                  "message": "internal error"}, times=2)  # fmt: skip
    acc = e.stack.account()
    before = e.stack.balance(acc.user_id)[0]
    rows = []
    for _ in range(3):
        done, row = e.run(acc)
        assert done["status"] == "SUCCEEDED", done
        assert row.channel_id == b_id  # the task ended on the channel that made it
        rows.append(row)
    # Two 500s, each looked up in A's list (nothing there) before B took the task; then the
    # breaker was open and the third task went to B directly.
    assert len(_creates(e.a)) == 2 and e.a.creates == 0
    assert len([s for s in e.a.requests if s.op == "list"]) == 2
    assert e.b.creates == 3
    assert e.breaker(a) == 2.0

    e.clock.offset += 31  # cool-down over; A answers again: the next task probes it
    done, row = e.run(acc)
    assert done["status"] == "SUCCEEDED" and row.channel_id == a_id
    rows.append(row)
    assert e.breaker(a) == 0.0
    _charged_once(e, acc, before, rows)


def test_a_refused_connection_fails_over_at_once(env: Env) -> None:
    e = env
    sock = free_socket()
    dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()
    e.channel("a", dead, ApiKey("vidu-unused-key"), priority=20)
    _, b_id = e.channel("b", e.b.url, ApiKey(e.b.api_key), priority=10)
    e.ready()
    acc = e.stack.account()
    before = e.stack.balance(acc.user_id)[0]
    done, row = e.run(acc)
    assert done["status"] == "SUCCEEDED", done
    assert row.channel_id == b_id and e.b.creates == 1
    _charged_once(e, acc, before, [row])


def test_wrong_credential_fails_over_and_alone_charges_nothing(env: Env) -> None:
    e = env
    a, _ = e.channel("a", e.a.url, ApiKey("vidu-wrong-key-000000000000"), priority=20)
    _, b_id = e.channel("b", e.b.url, ApiKey(e.b.api_key), priority=10)
    e.ready()
    acc = e.stack.account()
    before = e.stack.balance(acc.user_id)[0]
    done, row = e.run(acc)
    assert done["status"] == "SUCCEEDED", done
    assert row.channel_id == b_id
    assert len(_creates(e.a)) == 1 and e.a.creates == 0
    _charged_once(e, acc, before, [row])
    scrape = e.metrics()
    assert f'llmage_channel_healthy{{channel="{a}"}} 0.0' in scrape
    assert f'llmage_channel_calls_total{{channel="{a}",op="submit",outcome="auth"}}' in scrape

    # Only the wrong channel (its own platform): FAILED, the hold released, nothing charged.
    mid = e.stack.balance(acc.user_id)[0]
    done, row = e.run(acc, prefix=f"/{a}")
    assert done["status"] == "FAILED" and done["error"]["code"] == "auth"
    assert "vidu-wrong" not in str(done)
    assert row.charged == 0
    assert e.stack.wait_settled(acc.user_id) == (mid, 0)
    assert e.stack.reconcile() == []


def test_a_bad_key_of_a_pool_is_set_aside(env: Env) -> None:
    e = env
    pool = KeyPool(("vidu-revoked-key-0000000000", e.a.api_key))
    _, a_id = e.channel("a", e.a.url, pool, priority=20)
    e.ready()
    acc = e.stack.account()
    before = e.stack.balance(acc.user_id)[0]
    rows = []
    for _ in range(4):
        done, row = e.run(acc)
        assert done["status"] == "SUCCEEDED", done
        assert row.channel_id == a_id and row.key_index == 1  # polled with the key that worked
        rows.append(row)
    sent = [s.headers["Authorization"] for s in _creates(e.a)]
    assert sent.count("Token vidu-revoked-key-0000000000") == 1
    assert sent.count(f"Token {e.a.api_key}") == 4
    _charged_once(e, acc, before, rows)


def test_a_channel_limited_to_two_tasks_runs_ten_two_at_a_time(env: Env) -> None:
    e = env
    e.channel("a", e.a.url, ApiKey(e.a.api_key), priority=20, options={"max_concurrency": 2})
    e.ready()
    settings = e.stack.app_platform.poller._s
    retry = settings.task_slot_retry_ms
    settings.task_slot_retry_ms = 100  # look for a free slot often (default 1 s)
    try:
        acc = e.stack.account("1000")
        before = e.stack.balance(acc.user_id)[0]
        ids = [e.submit(acc) for _ in range(10)]
        views = [e.finish(acc, t, timeout=180) for t in ids]
    finally:
        settings.task_slot_retry_ms = retry
    assert [v["status"] for v in views] == ["SUCCEEDED"] * 10
    assert e.a.creates == 10
    assert e.a.most_running <= 2
    _charged_once(e, acc, before, [e.row(t) for t in ids])
