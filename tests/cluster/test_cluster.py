"""Several instances on PostgreSQL, Redis and S3 (see clusterhelp.py): limits shared, changes
applied everywhere within a second, media served by any instance, money exact across
instances, and the cluster carrying on when one instance is killed mid-load."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from clusterhelp import SD15_T2V, Cluster, Instance, running_cluster

from conftest import Account
from llmage.domain.catalog import ChatPrice
from llmage.domain.money import token_cost
from llmage.domain.tokens import prompt_token_ceiling
from llmage.services.accounts import AccountService
from llmage.services.invalidation import CHANNELS

TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("cluster")) as c:
        yield c


def chat(inst: Instance, acc: Account, model: str = "qwen3-max", **extra: Any) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
    return httpx.post(
        inst.url + "/v1/chat/completions", json=body, headers=Cluster.headers(acc), timeout=30
    )


def wait_until(check: Any, seconds: float, what: str) -> float:
    """Poll `check()` until true; returns the time it took; fails past the deadline."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < seconds, f"{what}: not within {seconds} s"
        time.sleep(0.01)
    return time.monotonic() - start


def test_roles(cluster: Cluster) -> None:
    acc = cluster.account()
    for inst in cluster.apis:
        assert httpx.get(inst.url + "/v1/models", headers=cluster.headers(acc)).status_code == 200
    # The poller-only instance serves no API, only health and metrics.
    p = cluster.poller.url
    assert httpx.get(p + "/v1/models", headers=cluster.headers(acc)).status_code == 404
    assert httpx.get(p + "/healthz").status_code == 200
    assert cluster.a.metric("llmage_limits_backend", {"backend": "redis"}) == 1.0
    assert cluster.b.metric("llmage_invalidation_connected") == 1.0


def test_rpm_limit_of_5_is_shared_by_both_instances(cluster: Cluster) -> None:
    acc = cluster.account("10", limits={"rpm": 5})
    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(lambda i: chat(cluster.apis[i % 2], acc), range(20)))
    codes = [r.status_code for r in results]
    assert codes.count(200) == 5, codes
    assert codes.count(429) == 15, codes
    for r in results:
        if r.status_code == 429:
            assert r.headers["x-ratelimit-limit-requests"] == "5"
            assert r.headers["x-ratelimit-remaining-requests"] == "0"
            assert int(r.headers["retry-after"]) >= 1
    # Both instances answered some of the refusals: the count was one, not two of five.
    assert {r.url.port for r in results if r.status_code == 429} == {
        cluster.a.port,
        cluster.b.port,
    }


def test_overdraft_race_across_instances_with_limits_on(cluster: Cluster) -> None:
    """A balance for exactly 10 calls, 200 calls at once over both instances (limits on, and
    wide enough to admit them all): exactly 10 reach the upstream, none overdraws."""
    found = cluster.platform.catalog.chat_model("deepseek-chat")
    assert found is not None and isinstance(found[0].price, ChatPrice)
    price = found[0].price
    messages = [{"role": "user", "content": "Say something short about money."}]
    ceiling = prompt_token_ceiling(messages, cluster.settings.image_token_estimate)
    hold = token_cost(ceiling, price.input_per_mtok) + token_cost(16, price.output_per_mtok)
    cluster.upstream.usage = {"prompt_tokens": ceiling, "completion_tokens": 16}
    cluster.upstream.delay = 0.05
    cluster.upstream.requests.clear()
    acc = cluster.account("0", limits={"rpm": 1000, "tpm": 1_000_000, "concurrency": 500})
    cluster.credit_micros(acc.user_id, 10 * hold)
    body = {"model": "deepseek-chat", "messages": messages, "max_tokens": 16}

    async def race() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=250, max_keepalive_connections=250)
        async with httpx.AsyncClient(headers=cluster.headers(acc), limits=limits, timeout=60) as c:
            return await asyncio.gather(
                *(
                    c.post(cluster.apis[i % 2].url + "/v1/chat/completions", json=body)
                    for i in range(200)
                )
            )

    try:
        responses = asyncio.run(race())
    finally:
        cluster.upstream.delay = 0.0
    ok = [r for r in responses if r.status_code == 200]
    assert len(ok) == 10, sorted({r.status_code for r in responses})
    for r in responses:
        if r.status_code != 200:
            assert r.status_code == 429 and r.json()["error"]["code"] == "insufficient_quota"
    assert len(cluster.upstream.requests) == 10
    assert cluster.balance(acc.user_id) == (0, 0)
    assert cluster.reconcile() == []


def test_changes_reach_the_other_instance_within_a_second(cluster: Cluster) -> None:
    acc = cluster.account("10")
    other = cluster.account("10")
    for inst in cluster.apis:  # both instances have the keys cached (for ten minutes)
        assert chat(inst, acc).status_code == 200
        assert chat(inst, other).status_code == 200

    def models(inst: Instance, who: Account) -> int:
        return httpx.get(inst.url + "/v1/models", headers=cluster.headers(who)).status_code

    # A key revoked (through the admin platform, as the CLI does) stops on both instances,
    # on a read path that no hold re-checks.
    keys = cluster.admin.call(cluster.platform.accounts.list_keys(acc.user_id))
    cluster.admin.call(AccountService(cluster.platform).revoke_key(keys[0].id))
    took = wait_until(
        lambda: models(cluster.a, acc) == 401 and models(cluster.b, acc) == 401,
        1.0,
        "revoked key refused by both instances",
    )
    print(f"revocation seen by both instances after {took * 1000:.0f} ms")

    # A disabled user: the hold does not look at users, only the caches do.
    cluster.admin.call(AccountService(cluster.platform).set_user_disabled(other.user_id, True))
    wait_until(
        lambda: (
            chat(cluster.a, other).status_code == 401 and chat(cluster.b, other).status_code == 401
        ),
        1.0,
        "disabled user refused by both instances",
    )

    # A channel switched off: its model is no longer served, anywhere.
    fresh = cluster.account("10")
    assert chat(cluster.b, fresh, "qwen-plus").status_code == 200
    cluster.admin.call(cluster.platform.channels.set_enabled("sim-chat", False))
    cluster.admin.call(cluster.platform.invalidate(CHANNELS))
    try:
        wait_until(
            lambda: (
                chat(cluster.a, fresh, "qwen-plus").status_code == 503
                and chat(cluster.b, fresh, "qwen-plus").status_code == 503
            ),
            1.0,
            "disabled channel dropped by both instances",
        )
    finally:
        cluster.admin.call(cluster.platform.channels.set_enabled("sim-chat", True))
        cluster.admin.call(cluster.platform.invalidate(CHANNELS))
    wait_until(lambda: chat(cluster.a, fresh, "qwen-plus").status_code == 200, 5, "re-enabled")


def submit_video(inst: Instance, acc: Account) -> str:
    body = {"llmid": SD15_T2V, "prompt": "cluster", "duration": 4, "resolution": "480p"}
    r = httpx.post(inst.url + "/llmage/video", json=body, headers=Cluster.headers(acc), timeout=30)
    assert r.status_code == 200, r.text
    return str(r.json()["taskid"])


def task_view(inst: Instance, acc: Account, task_id: str) -> dict[str, Any]:
    r = httpx.get(
        inst.url + "/llmage/tasks", params={"taskid": task_id}, headers=Cluster.headers(acc)
    )
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def wait_tasks(cluster: Cluster, ids: list[str], seconds: float) -> dict[str, str]:
    deadline = time.monotonic() + seconds
    while True:
        rows = cluster.sql("SELECT id, status FROM tasks")
        got = {str(i): str(s) for i, s in rows if i in set(ids)}
        if len(got) == len(ids) and set(got.values()) <= TERMINAL:
            return got
        assert time.monotonic() < deadline, {i: s for i, s in got.items() if s not in TERMINAL}
        time.sleep(0.1)


def test_media_minted_on_one_instance_is_served_by_the_other(cluster: Cluster) -> None:
    acc = cluster.account("100")
    task_id = submit_video(cluster.b, acc)  # submitted to the API-only instance
    assert wait_tasks(cluster, [task_id], 60) == {task_id: "SUCCEEDED"}
    view = task_view(cluster.a, acc, task_id)
    for field in ("video", "image"):
        link = view[field]
        assert link.startswith(cluster.a.url + "/media/")
        here = httpx.get(link, timeout=30)
        there = httpx.get(link.replace(cluster.a.url, cluster.b.url), timeout=30)
        assert here.status_code == there.status_code == 200, there.text
        assert here.content == there.content and len(there.content) > 100
    # The OpenAI download route of the other instance too.
    r = httpx.get(
        f"{cluster.b.url}/v1/videos/{task_id}/content", headers=cluster.headers(acc), timeout=30
    )
    assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"


def test_an_instance_killed_mid_load_leaves_the_others_serving(cluster: Cluster) -> None:
    """api-a (API + workers) is killed while tasks and chats run through both API instances:
    api-b keeps answering, the poller takes over api-a's leased tasks when their leases run
    out, every task ends and every hold ends once."""
    acc = cluster.account("1000")
    ids = [submit_video(cluster.apis[i % 2], acc) for i in range(10)]
    # api-a has leased some of them by now (it polls every 100 ms): kill it mid-flight.
    wait_until(
        lambda: bool(cluster.sql("SELECT 1 FROM tasks WHERE lease_owner IS NOT NULL")),
        10,
        "a task leased",
    )
    with ThreadPoolExecutor(8) as pool:
        chats = [pool.submit(chat, cluster.apis[i % 2], acc) for i in range(8)]
        cluster.a.kill()
        after = [pool.submit(chat, cluster.b, acc) for _ in range(8)]
        ids += [submit_video(cluster.b, acc) for _ in range(5)]
    assert all(f.result().status_code == 200 for f in after)  # api-b never missed a beat
    for f in chats:  # a call to api-a may have died with it; none may have been wrong
        with contextlib.suppress(httpx.HTTPError):
            assert f.result().status_code == 200

    statuses = wait_tasks(cluster, ids, 90)
    assert set(statuses.values()) == {"SUCCEEDED"}, statuses
    per_hold = cluster.sql(
        "SELECT h.id, h.state, COUNT(e.id) FROM holds h LEFT JOIN ledger_entries e"
        " ON e.hold_id = h.id AND e.kind IN ('capture', 'release')"
        " WHERE h.user_id = :u AND h.purpose = 'task' GROUP BY h.id, h.state",
        u=acc.user_id,
    )
    assert len(per_hold) == len(ids)
    assert {(state, n) for _, state, n in per_hold} == {("captured", 1)}

    # A chat hold open in the killed process is released by the stale-hold sweep (its age
    # limit is an hour by default; swept here at once, now that no request is in flight).
    from llmage.services.sweeper import HoldSweeper

    sweeper = HoldSweeper(cluster.platform.holds, cluster.platform.ledger, max_age_seconds=0)
    cluster.admin.call(sweeper.sweep())
    assert cluster.balance(acc.user_id)[1] == 0
    assert cluster.reconcile() == []

    cluster.a.start()  # back for anything after this test
    cluster.a.wait_ready(time.monotonic() + 60)
