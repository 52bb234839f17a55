"""`callback_url`: one signed POST of the native task view when a task ends, retried with backoff
when the receiver fails; only through the guarded fetcher."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from taskhelp import (
    SD15_T2V,
    WAN_T2V,
    Account,
    ChannelSpec,
    LocalHTTP,
    Received,
    TaskEnv,
    envs_for_backends,
    pick,
)

from llmage.services.webhooks import signature
from support.backends import BACKENDS

CHANNELS = [
    ChannelSpec("sim-video", [SD15_T2V], {"latency_ms": 200}),
    ChannelSpec("sim-fails", [WAN_T2V], {"latency_ms": 200, "failure_rate": 1}),
]
BODY = {"llmid": SD15_T2V, "prompt": "hook", "duration": 4, "resolution": "480p"}


@dataclass
class Receivers:
    good: LocalHTTP
    flaky: LocalHTTP
    blocked: LocalHTTP  # not allow-listed


@pytest.fixture(scope="module")
def receivers() -> Iterator[Receivers]:
    r = Receivers(LocalHTTP(), LocalHTTP(), LocalHTTP())
    try:
        yield r
    finally:
        for x in (r.good, r.flaky, r.blocked):
            x.close()


@pytest.fixture(scope="module")
def envs(
    tmp_path_factory: pytest.TempPathFactory, receivers: Receivers
) -> Iterator[dict[str, TaskEnv | str]]:
    with envs_for_backends(
        tmp_path_factory,
        "hooks",
        CHANNELS,
        fetch_allow_hosts=[receivers.good.host, receivers.flaky.host],
        webhook_retry_base_seconds=0.2,
    ) as out:
        yield out


@pytest.fixture(params=BACKENDS)
def env(request: pytest.FixtureRequest, envs: dict[str, TaskEnv | str]) -> TaskEnv:
    return pick(envs, request.param)


def posts_to(receiver: LocalHTTP, path: str) -> list[Received]:
    return [r for r in receiver.requests if r.method == "POST" and r.path == path]


def wait_posts(receiver: LocalHTTP, path: str, n: int, timeout: float = 15) -> list[Received]:
    deadline = time.monotonic() + timeout
    while len(found := posts_to(receiver, path)) < n:
        assert time.monotonic() < deadline, f"{len(found)} of {n} callbacks to {path}"
        time.sleep(0.05)
    return found


def tenant_secret(env: TaskEnv, acc: Account) -> bytes:
    return env.admin.call(env.platform.webhook_secrets.signing_key(acc.user_id))


def check_signature(env: TaskEnv, req: Received, acc: Account) -> dict[str, object]:
    header = req.headers["X-Llmage-Signature"]
    parts = dict(p.split("=", 1) for p in header.split(","))
    ts = int(parts["t"])
    assert abs(time.time() - ts) < 60
    # Signed with the task owner's own secret, not one secret for the whole deployment.
    secret = tenant_secret(env, acc)
    assert secret.startswith(b"whsec_")
    assert signature(secret, req.body, ts) == header
    assert signature(env.platform.webhook_secret, req.body, ts) != header
    assert signature(b"another secret", req.body, ts) != header
    assert req.headers["Content-Type"].startswith("application/json")
    return json.loads(req.body)  # type: ignore[no-any-return]


def delivery(env: TaskEnv, taskid: str) -> tuple[int, object, object]:
    ((attempts, delivered, failed),) = env.sql(
        "SELECT attempts, delivered_at, failed_at FROM webhook_deliveries WHERE task_id = :t",
        t=taskid,
    )
    return int(attempts), delivered, failed


def wait_delivered(env: TaskEnv, taskid: str, timeout: float = 10) -> tuple[int, object, object]:
    deadline = time.monotonic() + timeout
    while (found := delivery(env, taskid))[1] is None:
        assert time.monotonic() < deadline, found
        time.sleep(0.05)
    return found


def test_one_signed_callback_on_success(env: TaskEnv, receivers: Receivers) -> None:
    acc = env.account("100")
    path = f"/hook/ok-{env.backend}"
    taskid = env.submit(acc, {**BODY, "callback_url": receivers.good.url + path})
    view = env.wait(acc, taskid)
    assert view["status"] == "SUCCEEDED"
    (req,) = wait_posts(receivers.good, path, 1)
    payload = check_signature(env, req, acc)
    assert payload["taskid"] == taskid
    assert payload["status"] == "SUCCEEDED"
    assert payload["usage"] == view["usage"]
    assert isinstance(payload["video"], str) and "/media/" in payload["video"]
    assert req.headers["X-Llmage-Event"] == "task.finished"
    attempts, delivered, failed = wait_delivered(env, taskid)
    assert (attempts, failed) == (1, None) and delivered is not None
    time.sleep(0.3)
    assert len(posts_to(receivers.good, path)) == 1  # exactly one


def test_failed_task_calls_back_too(env: TaskEnv, receivers: Receivers) -> None:
    acc = env.account("100")
    path = f"/hook/failed-{env.backend}"
    taskid = env.submit(
        acc,
        {"llmid": WAN_T2V, "prompt": "x", "duration": 5, "callback_url": receivers.good.url + path},
    )
    assert env.wait(acc, taskid)["status"] == "FAILED"
    (req,) = wait_posts(receivers.good, path, 1)
    payload = check_signature(env, req, acc)
    assert payload["status"] == "FAILED" and payload["usage"] is None


def test_receiver_failing_twice_gets_three_attempts(env: TaskEnv, receivers: Receivers) -> None:
    acc = env.account("100")
    path = f"/hook/flaky-{env.backend}"
    receivers.flaky.statuses[:] = [500, 500]
    taskid = env.submit(acc, {**BODY, "callback_url": receivers.flaky.url + path})
    assert env.wait(acc, taskid)["status"] == "SUCCEEDED"
    reqs = wait_posts(receivers.flaky, path, 3, timeout=20)
    payloads = [check_signature(env, req, acc) for req in reqs]
    # The same event each time (media links are signed afresh per attempt, so they differ).
    same = [{k: p[k] for k in ("taskid", "status", "usage")} for p in payloads]
    assert same[0] == same[1] == same[2] and same[0]["taskid"] == taskid, same
    gaps = [b.at - a.at for a, b in itertools.pairwise(reqs)]
    assert all(g >= 0.2 for g in gaps), gaps  # backed off between attempts
    attempts, delivered, failed = wait_delivered(env, taskid)
    assert (attempts, failed) == (3, None) and delivered is not None
    time.sleep(0.3)
    assert len(posts_to(receivers.flaky, path)) == 3  # delivered on the third: no more


def test_callback_to_private_address_is_never_made(env: TaskEnv, receivers: Receivers) -> None:
    acc = env.account("100")
    path = f"/hook/blocked-{env.backend}"
    r = env.post("/llmage/video", acc, json={**BODY, "callback_url": receivers.blocked.url + path})
    if r.status_code == 400:  # refused at submit: fine
        assert "callback_url" in r.json()["error"]
        return
    assert r.status_code == 200, r.text
    taskid = r.json()["taskid"]
    assert env.wait(acc, taskid)["status"] == "SUCCEEDED"
    deadline = time.monotonic() + 10
    while True:  # until the sender tried (and was refused) at least twice
        ((attempts, delivered, error),) = env.sql(
            "SELECT attempts, delivered_at, last_error FROM webhook_deliveries WHERE task_id = :t",
            t=taskid,
        )
        if attempts >= 2 and error:
            break
        assert time.monotonic() < deadline, (attempts, error)
        time.sleep(0.05)
    assert delivered is None
    assert posts_to(receivers.blocked, path) == []
    assert receivers.blocked.requests == []


def test_each_tenant_signs_with_its_own_secret_and_rotation_changes_it(
    env: TaskEnv, receivers: Receivers
) -> None:
    a, b = env.account("100"), env.account("100")
    secret_a, secret_b = tenant_secret(env, a), tenant_secret(env, b)
    assert secret_a != secret_b
    path_a, path_b = f"/hook/tenant-a-{env.backend}", f"/hook/tenant-b-{env.backend}"
    task_a = env.submit(a, {**BODY, "callback_url": receivers.good.url + path_a})
    task_b = env.submit(b, {**BODY, "callback_url": receivers.good.url + path_b})
    (req_a,) = wait_posts(receivers.good, path_a, 1)
    (req_b,) = wait_posts(receivers.good, path_b, 1)

    def ts(req: Received) -> int:
        return int(req.headers["X-Llmage-Signature"].split(",")[0].removeprefix("t="))

    # A verifies A's callback; A's secret cannot verify (or forge) B's, and vice versa.
    assert signature(secret_a, req_a.body, ts(req_a)) == req_a.headers["X-Llmage-Signature"]
    assert signature(secret_a, req_b.body, ts(req_b)) != req_b.headers["X-Llmage-Signature"]
    assert signature(secret_b, req_b.body, ts(req_b)) == req_b.headers["X-Llmage-Signature"]
    assert signature(secret_b, req_a.body, ts(req_a)) != req_a.headers["X-Llmage-Signature"]
    assert json.loads(req_a.body)["taskid"] == task_a
    assert json.loads(req_b.body)["taskid"] == task_b

    rotated = env.admin.call(env.platform.webhook_secrets.rotate(a.user_id)).encode()
    assert rotated not in (secret_a, secret_b) and tenant_secret(env, a) == rotated
    assert tenant_secret(env, b) == secret_b  # rotating A leaves B alone
    path_a2 = f"/hook/tenant-a2-{env.backend}"
    env.submit(a, {**BODY, "callback_url": receivers.good.url + path_a2})
    (req_a2,) = wait_posts(receivers.good, path_a2, 1)
    header = req_a2.headers["X-Llmage-Signature"]
    assert signature(rotated, req_a2.body, ts(req_a2)) == header
    assert signature(secret_a, req_a2.body, ts(req_a2)) != header  # the old secret is dead
