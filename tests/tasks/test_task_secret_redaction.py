"""Secret sentinel through the task error path: a task channel whose key is `sk-SENTINEL-<random>`
in front of an upstream that echoes the key (raw, URL-encoded, without prefix, base64) and its
own address in its error codes and messages. A small task provider registered for the test
passes that text on verbatim (as a careless adapter would), over the real transport; the real
poller stores it. The sentinel and the address must appear in no task view of any dialect, no
webhook, no database row, no log and not in /metrics.

Two failures: a submit the upstream refuses (the poller's submit path) and a job the upstream
reports failed (the poll path).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
import time
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import orjson
import pytest
from sqlalchemy import inspect, text
from taskhelp import WAN_T2V, LocalHTTP, TaskEnv, envs_for_backends, pick

from llmage.domain.errors import UpstreamError, UpstreamKind
from llmage.domain.tasks import TaskStatus
from llmage.providers.tasks import (
    BaseTaskAdapter,
    CallContext,
    PollResult,
    Submitted,
    TaskJob,
    TaskRef,
)
from llmage.providers.wire import UpstreamReply, UpstreamRequest, join_url, json_request
from support.backends import BACKENDS
from support.scripted import Request, ScriptedUpstream, whole
from support.servers import LoopThread

KEY = "sk-SENTINEL-" + secrets.token_hex(10)
CORE = KEY.removeprefix("sk-SENTINEL-")


def echo(req: Request, url: str) -> str:
    auth = req.header("authorization") or ""
    key = auth.removeprefix("Bearer ")
    host = url.split("//")[1].split("/")[0]
    return (
        f"key {key} ({quote(auth)}; {key.removeprefix('sk-')}; "
        f"{base64.b64encode(key.encode()).decode()}) rejected by {url}/tasks on {host}"
    )


async def echo_tasks(
    up: ScriptedUpstream, req: Request, r: asyncio.StreamReader, w: asyncio.StreamWriter
) -> bool:
    message = echo(req, up.url)
    code = f"Key:{(req.header('authorization') or '')[7:]}"
    if req.method == "POST" and b"reject" in req.body:
        w.write(whole(400, orjson.dumps({"code": code, "message": message}), X_Key=code))
    elif req.method == "POST":
        w.write(whole(200, b'{"id": "up-1"}'))
    else:
        w.write(whole(200, orjson.dumps({"status": "failed", "code": code, "message": message})))
    await w.drain()
    return True


class EchoAdapter(BaseTaskAdapter):
    """Passes the upstream's error text on untouched: redaction is not left to adapters."""

    name = "echo"

    def submit_request(self, ctx: CallContext, job: TaskJob) -> UpstreamRequest:
        return json_request(
            "POST", join_url(ctx.base_url, "tasks"), {"prompt": job.params.get("prompt")}
        )

    def parse_submit(self, job: TaskJob, reply: UpstreamReply) -> Submitted:
        return Submitted(str(reply.json()["id"]))

    def poll_request(self, ctx: CallContext, ref: TaskRef) -> UpstreamRequest:
        return UpstreamRequest("GET", join_url(ctx.base_url, f"tasks/{ref.upstream_id}"))

    def parse_poll(self, ref: TaskRef, reply: UpstreamReply) -> PollResult:
        data = reply.json()
        return PollResult(TaskStatus.FAILED, error_code=data["code"], error_message=data["message"])

    def classify(self, reply: UpstreamReply) -> UpstreamError | None:
        if reply.ok:
            return None
        data = reply.json()
        return UpstreamError(UpstreamKind.BAD_REQUEST, data["message"], upstream_status=400)


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedUpstream]:
    loop = LoopThread("task-sentinel-upstream")
    up = ScriptedUpstream(echo_tasks)
    loop.call(up.start())
    try:
        yield up
    finally:
        loop.call(up.stop())
        loop.stop()


@pytest.fixture(scope="module")
def receiver() -> Iterator[LocalHTTP]:
    r = LocalHTTP()
    try:
        yield r
    finally:
        r.close()


@pytest.fixture(scope="module")
def envs(
    tmp_path_factory: pytest.TempPathFactory, upstream: ScriptedUpstream, receiver: LocalHTTP
) -> Iterator[dict[str, TaskEnv | str]]:
    with envs_for_backends(
        tmp_path_factory, "task-sentinel", [], fetch_allow_hosts=[receiver.host]
    ) as out:
        for env in out.values():
            if isinstance(env, str):
                continue
            env.stop_server()  # the channel first, so the new server's cache has it at once
            env.admin.call(
                env.platform.channels.add(
                    name="echo",
                    provider="echo",
                    platform="echo",
                    base_url=upstream.url,
                    credential_enc=env.platform.box.seal(KEY),
                    models=[WAN_T2V],
                )
            )
            env.start_server()
            platform = env.app_platform
            platform.providers._tasks["echo"] = EchoAdapter()
        yield out


@pytest.fixture(params=BACKENDS)
def env(request: pytest.FixtureRequest, envs: dict[str, TaskEnv | str]) -> TaskEnv:
    return pick(envs, request.param)


def leaks(text: str, port: int) -> list[str]:
    forbidden = [
        CORE,
        "SENTINEL",
        base64.b64encode(KEY.encode()).decode()[4:-4],
        f"127.0.0.1:{port}",
        f"127.0.0.1%3A{port}",
        f"{port}/v1",
    ]
    return [f for f in forbidden if f in text]


def dump(env: TaskEnv) -> dict[str, list[str]]:
    async def work() -> dict[str, list[str]]:
        async with env.platform.db.engine.connect() as conn:
            names = await conn.run_sync(lambda c: inspect(c).get_table_names())
            return {
                n: [repr(tuple(r)) for r in (await conn.execute(text(f'SELECT * FROM "{n}"')))]
                for n in names
            }

    return env.admin.call(work())


def test_task_errors_carry_no_secret(
    env: TaskEnv,
    upstream: ScriptedUpstream,
    receiver: LocalHTTP,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="llmage")
    port = upstream.port
    acc = env.account("100")
    hook = f"/hook/sentinel-{env.backend}"
    base = {"llmid": WAN_T2V, "duration": 5, "callback_url": receiver.url + hook}
    ids = [
        env.submit(acc, {**base, "prompt": "please reject this"}),
        env.submit(acc, {**base, "prompt": "fails while running"}),
    ]
    seen = []
    for taskid in ids:
        view = env.wait(acc, taskid)
        assert view["status"] == "FAILED", view
        seen.append(json.dumps(view))
        for path in (f"/v1/videos/{taskid}", f"/v1/video/generations/{taskid}"):
            r = env.get(path, acc)
            assert r.status_code == 200, r.text
            seen.append(r.text + repr(r.headers))
    # The upstream got the sentinel and echoed it; the poller stored what was left of it.
    assert {r.header("authorization") for r in upstream.requests} == {f"Bearer {KEY}"}
    assert any("[redacted]" in s and "[upstream]" in s for s in seen), seen
    for s in seen:
        assert not leaks(s, port), s

    deadline = time.monotonic() + 15
    while len(hooks := [q for q in receiver.requests if q.path == hook]) < 2:
        assert time.monotonic() < deadline, "callbacks not delivered"
        time.sleep(0.05)
    for q in hooks:
        assert json.loads(q.body)["status"] == "FAILED"
        assert not leaks(q.body.decode() + repr(q.headers), port)

    for table, rows in dump(env).items():
        for row in rows:
            found = leaks(row, port)
            if table == "channels":  # the admin's own configuration of the channel
                found = [f for f in found if f in (CORE, "SENTINEL")]
            assert not found, (table, row)
    assert env.balance(acc.user_id) == (100_000_000, 0)
    assert not leaks(httpx.get(env.url + "/metrics").text, port)
    assert not leaks(caplog.text, port)
