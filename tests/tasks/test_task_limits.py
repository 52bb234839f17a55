"""Open-task limits counted in the submit transaction (exact under a race, on both databases)
and the rpm limit on task submits, in the native and new-api error shapes."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from taskhelp import SD15_T2V, ChannelSpec, TaskEnv, envs_for_backends, pick

from support.backends import BACKENDS

# Long jobs: every task stays open for the whole module.
CHANNELS = [ChannelSpec("sim-slow", [SD15_T2V], {"latency_ms": 60_000})]
BODY = {"llmid": SD15_T2V, "prompt": "limits", "duration": 4, "resolution": "480p"}


@pytest.fixture(scope="module")
def envs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, TaskEnv | str]]:
    with envs_for_backends(tmp_path_factory, "task-limits", CHANNELS) as out:
        yield out


@pytest.mark.parametrize("backend", BACKENDS)
def test_open_task_limit_is_exact_under_a_race(
    backend: str, envs: dict[str, TaskEnv | str]
) -> None:
    env = pick(envs, backend)
    acc = env.account("1000", limits={"tasks": 3})
    before = env.balance(acc.user_id)[0]

    def submit(_: int) -> httpx.Response:
        return env.post("/llmage/video", acc, json=BODY)

    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(submit, range(12)))
    ok = [r for r in results if r.status_code == 200]
    refused = [r for r in results if r.status_code != 200]
    assert len(ok) == 3, [r.status_code for r in results]
    for r in refused:
        assert r.status_code == 429, r.text
        assert "3 open tasks" in r.json()["error"]
        assert r.headers["retry-after"] == "5"
        assert r.headers["x-ratelimit-limit-tasks"] == "3"
        assert r.headers["x-ratelimit-remaining-tasks"] == "0"
    # The refused submits were rolled back whole: holds only for the three tasks.
    holds = env.holds_of(acc.user_id)
    assert len(holds) == 3 and {state for _, _, state, _ in holds} == {"open"}
    assert env.balance(acc.user_id) == (before, sum(a for _, a, _, _ in holds))
    assert len(env.tasks_of(acc.user_id)) == 3
    assert env.reconcile() == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_user_open_task_limit_spans_keys_and_cancel_frees_a_slot(
    backend: str, envs: dict[str, TaskEnv | str]
) -> None:
    env = pick(envs, backend)
    acc = env.account("1000")

    async def limit_and_second_key() -> str:
        from llmage.services.accounts import AccountService

        svc = AccountService(env.platform)
        await svc.update_user_limits(acc.user_id, {"tasks": 1})
        return (await svc.create_key(acc.user_id, name="second")).key

    other_key = env.admin.call(limit_and_second_key())
    first = env.submit(acc, BODY)
    other = type(acc)(acc.user_id, other_key, acc.username)
    r = env.post("/llmage/video", other, json=BODY)
    assert r.status_code == 429, r.text
    assert env.post("/llmage/tasks/cancel", acc, params={"taskid": first}).status_code == 200
    env.submit(other, BODY)


@pytest.mark.parametrize("backend", BACKENDS)
def test_rpm_on_submits_in_the_newapi_shape(backend: str, envs: dict[str, TaskEnv | str]) -> None:
    env = pick(envs, backend)
    acc = env.account("1000", limits={"rpm": 1})
    body = {"model": "doubao-seedance-1-5-pro-251215", "prompt": "p", "duration": 4}
    r = env.post("/v1/video/generations", acc, json=body)
    assert r.status_code == 200, r.text
    r = env.post("/v1/video/generations", acc, json=body)
    assert r.status_code == 429, r.text
    assert r.json()["code"] == "rate_limit_exceeded"
    assert r.json()["type"] == "requests"
    assert r.headers["x-ratelimit-limit-requests"] == "1"
    assert int(r.headers["retry-after"]) > 0
