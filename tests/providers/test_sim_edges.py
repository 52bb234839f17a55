"""The built-in sim provider's remaining branches: chat replies cut at the token limit (with
and without reasoning), its latency and per-token delay options, the sim media server's
refusals (bad JSON, unknown routes, kinds, durations, counts, file names and arguments, a
renderer that fails or is missing), its bounded cancel memory and cache, and the sim task
adapter's reading of odd replies."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from llmage.domain.errors import UpstreamError, UpstreamKind
from llmage.domain.tasks import TaskStatus
from llmage.providers.contract import Channel
from llmage.providers.sim import SimProvider
from llmage.providers.sim_media import MediaCache, SimMediaUpstream, image_count, video_seconds
from llmage.providers.sim_tasks import SimTaskAdapter
from llmage.providers.tasks import TaskJob, TaskRef
from llmage.providers.wire import UpstreamReply, UpstreamRequest

BODY = {"model": "m", "messages": [{"role": "user", "content": "hello there"}]}


def channel(**options: Any) -> Channel:
    return Channel(
        id=1, name="sim", provider="sim", platform="sim", base_url="", credentials=None,
        models=frozenset({"*"}), model_map={}, options=options,
    )  # fmt: skip


async def test_a_reply_filled_to_the_limit_ends_for_length() -> None:
    sim = SimProvider()
    full = await sim.chat(channel(exhaust_max_tokens=True), {**BODY, "max_tokens": 40})
    assert full["choices"][0]["finish_reason"] == "length"
    assert full["usage"]["completion_tokens"] == 40
    short = await sim.chat(channel(reasoning=True), {**BODY, "max_tokens": 2})
    assert short["usage"]["completion_tokens"] == 2  # the reasoning alone is cut to the limit
    assert short["choices"][0]["finish_reason"] == "length"


async def test_latency_and_token_delay_options_still_answer() -> None:
    sim = SimProvider()
    slow = channel(latency_ms=1, token_delay_ms=1)
    chunks = [c async for c in sim.chat_stream(slow, dict(BODY))]
    assert chunks[-1]["usage"]["completion_tokens"] == len(chunks) - 3
    assert (await sim.chat(slow, dict(BODY)))["choices"][0]["message"]["content"]


def request(method: str, path: str, body: Any = None, raw: bytes | None = None) -> UpstreamRequest:
    data = raw if raw is not None else (orjson.dumps(body) if body is not None else b"")
    return UpstreamRequest(method, f"sim://media/{path}", body=data)


async def send(up: SimMediaUpstream, req: UpstreamRequest) -> UpstreamReply:
    return await up.send(req, deadline=30, max_bytes=1 << 20)


class FailingRenderer:
    def unavailable(self) -> str | None:
        return None

    async def video(self, seconds: int, width: int, height: int, fps: int, label: str) -> bytes:
        raise RuntimeError("render timed out")

    async def cover(self, video: bytes) -> bytes:
        raise AssertionError("never reached")

    async def image(self, width: int, height: int, seed: int) -> bytes:
        raise RuntimeError("render timed out")


@pytest.mark.parametrize(
    ("req", "status", "code"),
    [
        (request("POST", "tasks", raw=b"{nope"), 400, "bad_json"),
        (request("PUT", "tasks"), 404, "not_found"),
        (request("POST", "tasks/x/explode", {}), 404, "not_found"),
        (request("POST", "tasks", {"kind": "audio"}), 400, "bad_request"),
        (request("GET", "files/video?seconds=1&width=x&height=2"), 400, "bad_request"),
        (request("GET", "files/video?width=2&height=2"), 400, "bad_request"),
        (request("GET", "files/sound?seconds=1"), 404, "not_found"),
        (request("GET", "files/video?seconds=1&width=64&height=36"), 503, "sim_render_failed"),
        (request("GET", "files/image?width=64&height=36&seed=1"), 503, "sim_render_failed"),
    ],
)
async def test_the_sim_server_refuses_what_it_cannot_do(
    req: UpstreamRequest, status: int, code: str
) -> None:
    up = SimMediaUpstream(renderer=FailingRenderer(), cache=MediaCache())
    reply = await send(up, req)
    assert reply.status == status and reply.json()["error"]["code"] == code, reply.json()


async def test_files_need_a_renderer_and_lists_are_empty() -> None:
    up = SimMediaUpstream(cache=MediaCache())
    reply = await send(up, request("GET", "files/image?width=2&height=2&seed=1"))
    assert reply.status == 503 and "no media renderer" in reply.json()["error"]["message"]
    assert (await send(up, request("GET", "tasks"))).json() == {"data": []}


async def test_cancels_are_remembered_up_to_a_bound() -> None:
    up = SimMediaUpstream(cache=MediaCache())
    for n in range(10_002):
        assert (await send(up, request("POST", f"tasks/id{n}/cancel", {}))).status == 200
    assert len(up._cancelled) == 10_000 and "id0" not in up._cancelled


def test_a_bad_option_falls_back_to_the_default() -> None:
    up = SimMediaUpstream(latency_ms=7, cache=MediaCache())
    assert up._opt({"latency_ms": "soon"}, "latency_ms") == 7


def test_bad_durations_and_counts() -> None:
    with pytest.raises(UpstreamError, match="bad duration"):
        video_seconds({"duration": "long"})
    with pytest.raises(UpstreamError, match="bad n"):
        image_count({"n": "many"})


async def test_an_output_larger_than_the_cache_is_not_kept() -> None:
    cache = MediaCache(max_bytes=4)

    async def render() -> tuple[bytes, ...]:
        return (b"12345",)

    assert await cache.get(("k",), render) == (b"12345",)
    assert len(cache) == 0


def test_the_sim_adapter_reads_odd_replies() -> None:
    adapter = SimTaskAdapter()
    job = TaskJob(task_id="T", kind="video", mode="t2v", model="m", params={}, media={})
    with pytest.raises(UpstreamError, match="no id") as caught:
        adapter.parse_submit(job, UpstreamReply(200, {}, b'{"status": "queued"}'))
    assert caught.value.kind is UpstreamKind.UPSTREAM_BUG
    odd = adapter.parse_poll(TaskRef("u", {}, job), UpstreamReply(200, {}, b'{"status": "x"}'))
    assert odd.status is TaskStatus.RUNNING
    from llmage.providers.executor import TaskExecutor
    from llmage.providers.upstream import MockUpstream

    ctx = TaskExecutor(MockUpstream(lambda r: UpstreamReply(200, {}, b"{}"))).context(
        adapter, channel()
    )
    probe = adapter.probe_request(ctx)
    assert probe is not None and probe.url == "sim://media/tasks"
