"""`Idempotency-Key` on /llmage/video: the same submit sent 20 times at once is one task and one
hold; the same key with a different body is a 409.

The sim channel is gated (taskhelp.Gate): a task stays open until a test opens the gate, so the
checks made while it runs hold however slowly the 20 submits are served."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from taskhelp import (
    HH_I2V,
    SD15_T2V,
    ChannelSpec,
    Gate,
    TaskEnv,
    envs_for_backends,
    jpeg_bytes,
    pick,
)

from conftest import Account
from support.backends import BACKENDS

N = 20


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> Gate:
    return Gate(tmp_path_factory.mktemp("idem-gate"))


@pytest.fixture(scope="module")
def envs(
    tmp_path_factory: pytest.TempPathFactory, gate: Gate
) -> Iterator[dict[str, TaskEnv | str]]:
    channels = [ChannelSpec("sim-video", [SD15_T2V, HH_I2V], {"latency_ms": 300, **gate.option})]
    with envs_for_backends(tmp_path_factory, "idem", channels) as out:
        yield out


@pytest.fixture(params=BACKENDS)
def env(request: pytest.FixtureRequest, envs: dict[str, TaskEnv | str]) -> TaskEnv:
    return pick(envs, request.param)


def concurrently(env: TaskEnv, acc: Account, idem: str, **request: Any) -> list[httpx.Response]:
    """N identical submits released at the same moment, each on its own connection."""
    barrier = threading.Barrier(N)
    clients = [httpx.Client(base_url=env.url, timeout=30) for _ in range(N)]
    for c in clients:  # connect first, so the requests themselves start together
        c.get("/healthz")

    def one(i: int) -> httpx.Response:
        barrier.wait()
        return clients[i].post(
            "/llmage/video", headers=env.headers(acc, **{"Idempotency-Key": idem}), **request
        )

    try:
        with ThreadPoolExecutor(N) as pool:
            return list(pool.map(one, range(N)))
    finally:
        for c in clients:
            c.close()


def hold_entries(env: TaskEnv, acc: Account) -> int:
    return int(
        env.sql(
            "SELECT COUNT(*) FROM ledger_entries WHERE user_id = :u AND kind = 'hold'",
            u=acc.user_id,
        )[0][0]
    )


def test_same_submit_twenty_times_is_one_task_one_hold(env: TaskEnv, gate: Gate) -> None:
    gate.close()
    acc = env.account("100")
    body = {"llmid": SD15_T2V, "prompt": "once", "duration": 4, "resolution": "480p"}
    responses = concurrently(env, acc, "idem-json-1", json=body)
    assert [r.status_code for r in responses] == [200] * N, [r.text for r in responses]
    ids = {r.json()["taskid"] for r in responses}
    assert len(ids) == 1, ids
    (taskid,) = ids
    assert len(env.holds_of(acc.user_id)) == 1
    assert hold_entries(env, acc) == 1
    assert [t for t, _ in env.tasks_of(acc.user_id)] == [taskid]
    row = env.task(taskid)
    (hold,) = env.holds_of(acc.user_id)
    assert (hold[1], hold[2]) == (row.quoted, "open")  # the gate keeps the task running
    assert env.balance(acc.user_id)[1] == row.quoted  # held once, not 20 times

    # Same key, different body: refused, nothing new held.
    r = env.post(
        "/llmage/video",
        acc,
        json={**body, "duration": 5},
        headers={"Idempotency-Key": "idem-json-1"},
    )
    assert r.status_code == 409, r.text
    assert set(r.json()) == {"error"} and "Idempotency-Key" in r.json()["error"]
    assert len(env.holds_of(acc.user_id)) == 1

    # After it finished, the same submit still answers with the same task, charged once.
    gate.open()
    assert env.wait(acc, taskid)["status"] == "SUCCEEDED"
    r = env.post("/llmage/video", acc, json=body, headers={"Idempotency-Key": "idem-json-1"})
    assert r.status_code == 200 and r.json()["taskid"] == taskid, r.text
    row = env.task(taskid)
    assert env.terminal_entries(row.hold_id) == [("capture", -(row.charged or 0), -row.quoted)]
    assert env.balance(acc.user_id) == (100 * 1_000_000 - (row.charged or 0), 0)
    assert env.reconcile() == []


def test_multipart_same_files_same_task_other_file_conflict(env: TaskEnv) -> None:
    acc = env.account("100")
    data = {"llmid": HH_I2V, "prompt": "frames", "duration": "3", "resolution": "720P"}
    frame = jpeg_bytes(color=(10, 120, 200))
    responses = concurrently(
        env, acc, "idem-form-1", data=data, files={"image1_file": ("a.jpg", frame, "image/jpeg")}
    )
    assert [r.status_code for r in responses] == [200] * N, [r.text for r in responses]
    assert len({r.json()["taskid"] for r in responses}) == 1
    assert len(env.holds_of(acc.user_id)) == 1
    assert hold_entries(env, acc) == 1
    other = jpeg_bytes(color=(200, 120, 10))
    r = env.post(
        "/llmage/video",
        acc,
        data=data,
        files={"image1_file": ("a.jpg", other, "image/jpeg")},
        headers={"Idempotency-Key": "idem-form-1"},
    )
    assert r.status_code == 409, r.text
    assert len(env.holds_of(acc.user_id)) == 1
    assert env.reconcile() == []


def test_keys_are_per_user(env: TaskEnv, gate: Gate) -> None:
    """Another user's identical key is another task (and another user's money)."""
    gate.close()  # env.submit expects the task still open when it answers
    a, b = env.account("100"), env.account("100")
    body = {"llmid": SD15_T2V, "prompt": "mine", "duration": 4, "resolution": "480p"}
    ta = env.submit(a, body, headers={"Idempotency-Key": "shared-key"})
    tb = env.submit(b, body, headers={"Idempotency-Key": "shared-key"})
    assert ta != tb
    assert len(env.holds_of(a.user_id)) == len(env.holds_of(b.user_id)) == 1
