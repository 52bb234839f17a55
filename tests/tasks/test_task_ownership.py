"""Ownership: user A's task is a 404 to user B on every route that reads or changes a task, in
every dialect; a 404 indistinguishable from a task that never existed. The price estimate is
not an object read and works for both.

Dialect routes are checked where the running app has them; a missing one is skipped with a
reason naming it (see the -ra summary), never passed silently.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from taskhelp import SD15_T2V, ChannelSpec, TaskEnv, envs_for_backends, pick

from conftest import Account
from llmage.auth.keys import hash_key
from llmage.domain.clock import now_ms
from llmage.domain.tasks import TaskDraft
from support.backends import BACKENDS

IMAGE_MODEL = "qwen-image"
PLATFORM = "sim"
CHANNELS = [
    ChannelSpec("sim-media", [SD15_T2V, IMAGE_MODEL], {"latency_ms": 200}, platform=PLATFORM),
]
SECRET_PROMPT = "the secret prompt of user A"
BODY = {"llmid": SD15_T2V, "prompt": SECRET_PROMPT, "duration": 4, "resolution": "480p"}


@dataclass
class Owned:
    env: TaskEnv
    a: Account
    b: Account
    video: str  # A's finished video task
    image: str  # A's finished image task


@pytest.fixture(scope="module")
def envs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, TaskEnv | str]]:
    with envs_for_backends(tmp_path_factory, "owner", CHANNELS) as out:
        yield out


def _image_task(env: TaskEnv, acc: Account) -> str:
    async def work() -> str:
        auth = await env.platform.accounts.key_auth(hash_key(acc.key), now_ms())
        assert auth is not None
        draft = TaskDraft(kind="image", raw={"prompt": SECRET_PROMPT}, model=IMAGE_MODEL)
        row = await env.platform.tasks.submit(auth, draft, dialect="openai")
        return row.id

    return env.admin.call(work())


@pytest.fixture(scope="module")
def owned_all(envs: dict[str, TaskEnv | str]) -> dict[str, Owned]:
    out = {}
    for backend, env in envs.items():
        if isinstance(env, str):
            continue
        a, b = env.account("100"), env.account("100")
        video = env.submit(a, BODY)
        image = _image_task(env, a)
        out[backend] = Owned(env, a, b, video, image)
    for o in out.values():
        o.env.wait_all([o.video, o.image], timeout=30)
    return out


@pytest.fixture(params=BACKENDS)
def owned(
    request: pytest.FixtureRequest, envs: dict[str, TaskEnv | str], owned_all: dict[str, Owned]
) -> Owned:
    pick(envs, request.param)
    return owned_all[request.param]


def _norm(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


def route_exists(env: TaskEnv, method: str, template: str) -> bool:
    """From the served OpenAPI document: the app's own list of routes and methods."""
    paths = env.get("/openapi.json", None).json()["paths"]
    want = _norm(template)
    return any(_norm(path) == want and method.lower() in ops for path, ops in paths.items())


def require_route(env: TaskEnv, method: str, template: str) -> None:
    if not route_exists(env, method, template):
        pytest.skip(f"route {method} {template} does not exist in the app")


def assert_not_found(r: Any, *, task_id: str) -> None:
    assert r.status_code == 404, (r.status_code, r.text)
    assert SECRET_PROMPT not in r.text
    assert "/media/" not in r.text  # no link to A's files


def still_untouched(o: Owned, task_id: str) -> None:
    row = o.env.task(task_id)
    assert row.status.value == "SUCCEEDED", row.status
    assert row.deleted_at is None


# -- native ---------------------------------------------------------------------------------------


def test_native_status_get_and_post(owned: Owned) -> None:
    env = owned.env
    for method in (env.get, env.post):
        r = method("/llmage/tasks", owned.b, params={"taskid": owned.video})
        assert_not_found(r, task_id=owned.video)
        missing = method("/llmage/tasks", owned.b, params={"taskid": "no-such-task-id-000000"})
        assert missing.status_code == 404
        # Same answer as for a task that does not exist (modulo the id itself).
        assert r.json().keys() == missing.json().keys() == {"error"}
        assert r.text.replace(owned.video, "X") == missing.text.replace(
            "no-such-task-id-000000", "X"
        )
        mine = method("/llmage/tasks", owned.a, params={"taskid": owned.video})
        assert mine.status_code == 200 and mine.json()["status"] == "SUCCEEDED"
    # The taskid in a POST body (form) is read the same way.
    r = env.post("/llmage/tasks", owned.b, data={"taskid": owned.video})
    assert_not_found(r, task_id=owned.video)


def test_native_cancel(owned: Owned) -> None:
    env = owned.env
    open_task = env.submit(owned.a, {**BODY, "prompt": SECRET_PROMPT + " (open)"})
    for method in ("POST", "DELETE"):
        r = (
            env.post("/llmage/tasks/cancel", owned.b, params={"taskid": open_task})
            if method == "POST"
            else httpx_delete(env, owned.b, open_task)
        )
        assert_not_found(r, task_id=open_task)
    assert env.wait(owned.a, open_task)["status"] == "SUCCEEDED"  # B's cancel did nothing
    r = env.post("/llmage/tasks/cancel", owned.b, params={"taskid": owned.video})
    assert_not_found(r, task_id=owned.video)
    still_untouched(owned, owned.video)
    assert env.reconcile() == []


def httpx_delete(env: TaskEnv, acc: Account, task_id: str) -> Any:
    import httpx

    return httpx.delete(
        env.url + "/llmage/tasks/cancel",
        params={"taskid": task_id},
        headers=env.headers(acc),
        timeout=30,
    )


def test_estimate_works_for_both(owned: Owned) -> None:
    amounts = []
    for acc in (owned.a, owned.b):
        r = owned.env.post("/llmage/estimate", acc, json=BODY)
        assert r.status_code == 200, r.text
        amounts.append(r.json()["amount_micros"])
    assert amounts[0] == amounts[1] == owned.env.task(owned.video).quoted


# -- other dialects -------------------------------------------------------------------------------

READS = [
    ("GET", "/v1/videos/{video_id}", "video"),
    ("GET", "/v1/videos/{video_id}/content", "video"),
    ("GET", "/v1/video/generations/{task_id}", "video"),
    ("GET", "/{platform}/v1/videos/{task_id}", "video"),
    ("GET", "/{platform}/v1/videos/{task_id}/content", "video"),
    ("GET", "/v1/images/{task_id}", "image"),
    ("GET", "/{platform}/v1/images/{task_id}", "image"),
]
CHANGES = [
    ("DELETE", "/v1/videos/{video_id}", None),
    ("POST", "/v1/videos/{video_id}/remix", {"prompt": "remix it"}),
    ("DELETE", "/{platform}/v1/videos/{task_id}", None),
    ("POST", "/{platform}/v1/videos/{task_id}/remix", {"prompt": "remix it"}),
]


def _url(template: str, task_id: str) -> str:
    path = template.replace("{platform}", PLATFORM)
    return re.sub(r"\{(video_id|task_id)\}", task_id, path)


def _call(env: TaskEnv, method: str, path: str, acc: Account, body: Any = None) -> Any:
    import httpx

    return httpx.request(method, env.url + path, headers=env.headers(acc), json=body, timeout=30)


@pytest.mark.parametrize(("method", "template", "which"), READS, ids=[r[1] for r in READS])
def test_dialect_reads_are_404_to_others(
    owned: Owned, method: str, template: str, which: str
) -> None:
    require_route(owned.env, method, template)
    task_id = owned.video if which == "video" else owned.image
    path = _url(template, task_id)
    assert_not_found(_call(owned.env, method, path, owned.b), task_id=task_id)
    mine = _call(owned.env, method, path, owned.a)
    assert 200 <= mine.status_code < 300, (mine.status_code, mine.text[:300])


@pytest.mark.parametrize(("method", "template", "body"), CHANGES, ids=[c[1] for c in CHANGES])
def test_dialect_changes_are_404_to_others(
    owned: Owned, method: str, template: str, body: Any
) -> None:
    require_route(owned.env, method, template)
    tasks_before = owned.env.tasks_of(owned.b.user_id)
    money_before = owned.env.balance(owned.b.user_id)
    r = _call(owned.env, method, _url(template, owned.video), owned.b, body)
    assert_not_found(r, task_id=owned.video)
    still_untouched(owned, owned.video)
    assert owned.env.tasks_of(owned.b.user_id) == tasks_before  # no remix for B
    assert owned.env.balance(owned.b.user_id) == money_before


@pytest.mark.parametrize("template", ["/v1/videos", "/{platform}/v1/videos"])
def test_lists_show_only_own_tasks(owned: Owned, template: str) -> None:
    require_route(owned.env, "GET", template)
    path = template.replace("{platform}", PLATFORM) + "?limit=100"
    theirs = _call(owned.env, "GET", path, owned.b)
    assert theirs.status_code == 200, theirs.text
    assert owned.video not in theirs.text and SECRET_PROMPT not in theirs.text
    mine = _call(owned.env, "GET", path, owned.a)
    assert mine.status_code == 200 and owned.video in mine.text, mine.text[:300]
