"""Failures and cancels release the whole hold: an upstream generation failure, a submit that
keeps failing (retried, then FAILED), and a user's cancel that no later poll can overturn.

Both backends run side by side: the submit-failure task (≈15 s of retry backoff) is started when
the module starts and checked by the last test, so its wait overlaps the others. The failing and
the slow channels are gated (taskhelp.Gate): what a test checks "while it runs" stays true
until the test opens the gate, however slow the machine.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from taskhelp import (
    SD15_T2V,
    VIDU_T2V,
    WAN_T2V,
    ChannelSpec,
    Gate,
    TaskEnv,
    assert_released,
    envs_for_backends,
    pick,
)

from conftest import Account
from llmage.db.repos.tasks import TaskStateChanged
from llmage.providers.wire import UpstreamReply, UpstreamRequest
from support.backends import BACKENDS

SUBMIT_ATTEMPTS = 5  # services/poller.py _SUBMIT_ATTEMPTS


@dataclass
class Early:
    """The submit-failure task, started when the module starts."""

    acc: Account
    taskid: str
    balance: int
    started: float


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> Gate:
    return Gate(tmp_path_factory.mktemp("failures-gate"))


@pytest.fixture(scope="module")
def envs(
    tmp_path_factory: pytest.TempPathFactory, gate: Gate
) -> Iterator[dict[str, TaskEnv | str]]:
    channels = [
        ChannelSpec("sim-fails", [WAN_T2V], {"latency_ms": 0, "failure_rate": 1, **gate.option}),
        ChannelSpec("sim-submit-fails", [VIDU_T2V], {"latency_ms": 200, "submit_failure_rate": 1}),
        ChannelSpec("sim-gated", [SD15_T2V], {"latency_ms": 0, **gate.option}),
    ]
    with envs_for_backends(tmp_path_factory, "failures", channels) as out:
        yield out


@pytest.fixture(scope="module")
def early(envs: dict[str, TaskEnv | str]) -> dict[str, Early]:
    out = {}
    for backend, env in envs.items():
        if isinstance(env, str):
            continue
        acc = env.account("100")
        balance = env.balance(acc.user_id)[0]
        taskid = env.submit(acc, {"llmid": VIDU_T2V, "prompt": "never starts", "duration": 2})
        out[backend] = Early(acc, taskid, balance, time.monotonic())
    return out


@pytest.fixture(params=BACKENDS)
def env(request: pytest.FixtureRequest, envs: dict[str, TaskEnv | str], early: object) -> TaskEnv:
    return pick(envs, request.param)


def test_generation_failure_releases_everything(env: TaskEnv, gate: Gate) -> None:
    gate.close()
    acc = env.account("100")
    before = env.balance(acc.user_id)[0]
    taskid = env.submit(acc, {"llmid": WAN_T2V, "prompt": "fails", "duration": 5})
    assert env.balance(acc.user_id)[1] > 0  # held while it runs
    gate.open()
    view = env.wait(acc, taskid)
    assert view["status"] == "FAILED", view
    assert view["usage"] is None
    assert view["video"] is None and view["image"] is None
    assert view["error"]["code"] == "sim_failure", view
    row = env.task(taskid)
    assert row.charged == 0
    assert row.usage is None
    assert_released(env, acc, row, before)


def test_cancel_open_task_releases_and_no_later_poll_settles(env: TaskEnv, gate: Gate) -> None:
    gate.close()
    acc = env.account("100")
    before = env.balance(acc.user_id)[0]
    taskid = env.submit(acc, {"llmid": SD15_T2V, "prompt": "cancel me", "duration": 4})
    deadline = time.monotonic() + 10
    while not (stale := env.task(taskid)).upstream_id:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert stale.status.value in ("PENDING", "RUNNING")
    assert env.balance(acc.user_id) == (before, stale.quoted)

    r = env.post("/llmage/tasks/cancel", acc, params={"taskid": taskid})
    assert r.status_code == 200, r.text
    view = r.json()
    assert view["status"] == "CANCELLED", view
    assert view["usage"] is None
    row = env.task(taskid)
    assert row.status.value == "CANCELLED"
    assert_released(env, acc, row, before)

    # A worker that leased the task before the cancel polls after the upstream finished: the
    # provider says SUCCEEDED, but the compare-and-swap from the old status must lose.
    gate.open()
    with pytest.raises(TaskStateChanged):
        env.admin.call(env.platform.poller._advance(stale))
    # And the server's own poller has nothing to do with it any more.
    time.sleep(0.5)
    assert env.status(acc, taskid)["status"] == "CANCELLED"
    row = env.task(taskid)
    assert row.charged == 0 and row.outputs == {}
    assert_released(env, acc, row, before)

    # Cancelling again changes nothing.
    r = env.post("/llmage/tasks/cancel", acc, params={"taskid": taskid})
    assert r.status_code == 200 and r.json()["status"] == "CANCELLED"
    assert_released(env, acc, env.task(taskid), before)


def test_cancel_before_submit_upstream(env: TaskEnv) -> None:
    """A task cancelled while still CREATED never reaches the upstream."""
    acc = env.account("100")
    before = env.balance(acc.user_id)[0]
    env.stop_server()  # no poller: the task stays CREATED
    try:
        env.start_server(task_workers=False)
        taskid = env.submit(acc, {"llmid": SD15_T2V, "prompt": "too late", "duration": 4})
        r = env.post("/llmage/tasks/cancel", acc, params={"taskid": taskid})
        assert r.status_code == 200 and r.json()["status"] == "CANCELLED", r.text
    finally:
        env.stop_server()
        env.start_server()
    time.sleep(0.5)  # a working poller again: it must leave the task alone
    row = env.task(taskid)
    assert row.status.value == "CANCELLED" and row.upstream_id is None
    assert_released(env, acc, row, before)


def test_cancel_racing_the_upstream_submit_stops_the_upstream_job(env: TaskEnv) -> None:
    """A worker leased the task (CREATED) and is submitting it upstream when the user cancels.
    The worker's submit succeeds upstream, then its compare-and-swap loses to the cancel: the
    money is right (released), and the job it just started upstream must be told to stop —
    otherwise it runs (and is billed to us) with nobody ever reading it."""
    acc = env.account("100")
    before = env.balance(acc.user_id)[0]
    env.stop_server()
    env.start_server(task_workers=False)  # nobody but this test steps the task
    taskid = env.submit(acc, {"llmid": SD15_T2V, "prompt": "race", "duration": 4})
    leased = env.task(taskid)
    assert leased.status.value == "CREATED"

    # The cancel lands while the create is at the upstream (the task is SUBMITTING): the
    # upstream seam answers the create only after the user's cancel went through.
    sim_media = env.platform.sim_media
    started: list[str] = []
    cancelled: list[str] = []
    stop_sent = threading.Event()
    real_send = sim_media.send

    async def send(request: UpstreamRequest, **kw: Any) -> UpstreamReply:
        reply = await real_send(request, **kw)
        if request.method == "POST" and request.url.endswith("/tasks"):
            started.append(reply.json()["id"])
            row = await env.platform.task_repo.get(taskid)
            assert row is not None and row.status.value == "SUBMITTING"
            r = await asyncio.to_thread(
                env.post, "/llmage/tasks/cancel", acc, params={"taskid": taskid}
            )
            assert r.json()["status"] == "CANCELLED", r.text
        elif request.url.endswith("/cancel"):
            cancelled.append(request.url.rsplit("/", 2)[-2])
            stop_sent.set()
        return reply

    sim_media.send = send  # type: ignore[method-assign]
    try:
        with pytest.raises(TaskStateChanged):
            env.admin.call(env.platform.poller._advance(leased))
        # The best-effort upstream cancel runs in the background: wait for it, not a timer.
        stop_sent.wait(30)
    finally:
        del sim_media.send  # type: ignore[method-assign]
        env.stop_server()
        env.start_server()
    assert len(started) == 1  # the upstream job exists
    row = env.task(taskid)
    assert row.status.value == "CANCELLED" and row.upstream_id is None
    assert_released(env, acc, row, before)
    assert cancelled == started, "upstream job started after the cancel was never stopped"


def test_cancel_after_success_changes_nothing(env: TaskEnv, gate: Gate) -> None:
    gate.open()
    acc = env.account("100")
    taskid = env.submit(acc, {"llmid": SD15_T2V, "prompt": "done", "duration": 4})
    assert env.wait(acc, taskid)["status"] == "SUCCEEDED"
    row = env.task(taskid)
    balance = env.balance(acc.user_id)
    r = env.post("/llmage/tasks/cancel", acc, params={"taskid": taskid})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "SUCCEEDED"
    assert env.balance(acc.user_id) == balance
    assert env.terminal_entries(row.hold_id) == [("capture", -(row.charged or 0), -row.quoted)]
    assert env.reconcile() == []


def test_submit_failures_are_retried_then_fail_released(
    env: TaskEnv, early: dict[str, Early]
) -> None:
    e = early[env.backend]
    view = env.wait(e.acc, e.taskid, timeout=40)
    elapsed = time.monotonic() - e.started
    assert view["status"] == "FAILED", view
    assert view["usage"] is None
    assert view["error"]["code"], view
    row = env.task(e.taskid)
    assert row.upstream_id is None  # never accepted upstream
    assert row.polls == SUBMIT_ATTEMPTS, row.polls  # tried that many times, then gave up
    assert elapsed > 5, elapsed  # with backoff between the tries
    assert_released(env, e.acc, row, e.balance)
