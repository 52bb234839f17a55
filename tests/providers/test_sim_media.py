"""The sim media upstream through its adapter and the shared executor: timeline, real outputs,
injected failures, restart safety, render cache."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from llmage.domain.errors import UpstreamError, UpstreamKind
from llmage.domain.tasks import TaskStatus
from llmage.domain.usage import Usage
from llmage.providers.contract import Channel
from llmage.providers.executor import TaskExecutor
from llmage.providers.sim_media import MediaCache, SimMediaUpstream, video_size
from llmage.providers.sim_tasks import SimTaskAdapter
from llmage.providers.tasks import PollResult, TaskJob, TaskRef
from llmage.storage.video_tools import SimRenderer, probe


class SimMediaProvider:
    """The sim upstream driven the way the poller drives it: adapter + executor."""

    def __init__(self, **kwargs: Any) -> None:
        self.upstream = SimMediaUpstream(**kwargs)
        self._exec = TaskExecutor(self.upstream)
        self._adapter = SimTaskAdapter()

    async def submit(self, ch: Channel, submission: TaskJob) -> str:
        return (await self._exec.submit(self._adapter, ch, submission)).upstream_id

    async def poll(self, ch: Channel, upstream_id: str, submission: TaskJob) -> PollResult:
        return await self._exec.poll(self._adapter, ch, TaskRef(upstream_id, {}, submission))

    async def cancel(self, ch: Channel, upstream_id: str) -> bool:
        ref = TaskRef(upstream_id, {}, job())
        return await self._exec.cancel(self._adapter, ch, ref)


def sim(**kwargs: Any) -> SimMediaProvider:
    return SimMediaProvider(renderer=SimRenderer(), **kwargs)


class Clock:
    """The sim's wall clock, moved by the test: timelines do not depend on the machine's speed."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def channel(**options: Any) -> Channel:
    return Channel(
        id=1,
        name="sim",
        provider="sim",
        platform="sim",
        base_url="",
        credentials=None,
        models=frozenset(),
        model_map={},
        options=options,
    )


def job(kind: str = "video", **params: Any) -> TaskJob:
    return TaskJob(
        task_id="t1",
        kind=kind,
        mode=kind,
        model="sim-model",
        params={"prompt": "a cat", **params},
        media={},
    )


async def until_done(
    provider: SimMediaProvider, ch: Channel, upstream_id: str, submission: TaskJob
) -> PollResult:
    for _ in range(200):
        result = await provider.poll(ch, upstream_id, submission)
        if result.status.terminal:
            return result
        await asyncio.sleep(0.02)
    raise AssertionError("sim task never finished")


@pytest.mark.parametrize(("params", "size"), [
    ({}, (1280, 720)),
    ({"resolution": "720p", "ratio": "9:16"}, (720, 1280)),
    ({"resolution": "720P", "ratio": "16:9"}, (1280, 720)),
    ({"resolution": "480p", "ratio": "16:9"}, (854, 480)),
    ({"resolution": "480p", "ratio": "21:9"}, (1120, 480)),
    ({"resolution": "540p", "ratio": "16:9"}, (960, 540)),
    ({"resolution": "720p", "ratio": "4:3"}, (960, 720)),
    ({"resolution": "720p", "ratio": "3:4"}, (720, 960)),
    ({"resolution": "1080p", "ratio": "1:1"}, (1080, 1080)),
    ({"resolution": "1080p", "ratio": "adaptive"}, (1920, 1080)),
    ({"resolution": "1080p", "ratio": "keep_ratio"}, (1920, 1080)),
    ({"resolution": "1080p", "ratio": "21:9"}, (1920, 822)),
    ({"resolution": "1080p", "ratio": "9:21"}, (822, 1920)),
    ({"size": "1280*720"}, (1280, 720)),
    ({"size": "832x480"}, (832, 480)),
    ({"size": "1440*1440"}, (1440, 1440)),
    ({"size": "3840*2160"}, (1920, 1080)),
])  # fmt: skip
def test_video_size_table(params: Mapping[str, Any], size: tuple[int, int]) -> None:
    width, height = video_size(params)
    assert (width, height) == size
    assert width % 2 == 0 and height % 2 == 0


async def test_video_lifecycle_and_outputs() -> None:
    clock = Clock()
    provider = sim(cache=MediaCache(), clock=clock)
    ch = channel(latency_ms=200)
    submission = job(duration=3, resolution="480p", ratio="9:16")
    upstream_id = await provider.submit(ch, submission)
    assert upstream_id.startswith("sim-")

    first = await provider.poll(ch, upstream_id, submission)
    assert first.status is TaskStatus.PENDING
    assert first.poll_after is not None and first.poll_after > 0
    clock.advance(0.1)
    middle = await provider.poll(ch, upstream_id, submission)
    assert middle.status is TaskStatus.RUNNING
    assert middle.progress == 50
    clock.advance(0.15)
    done = await provider.poll(ch, upstream_id, submission)
    assert done.status is TaskStatus.SUCCEEDED, done

    outputs = {o.kind: o for o in done.outputs}
    assert outputs["video"].content_type == "video/mp4"
    assert outputs["cover"].content_type == "image/jpeg"
    video, cover = outputs["video"].data, outputs["cover"].data
    assert video is not None and cover is not None
    info = await probe(video)
    assert info.codec == "h264"
    assert abs(info.duration - 3) <= 0.1
    assert (info.width, info.height) == (480, 854)
    assert cover[:2] == b"\xff\xd8"
    with Image.open(io.BytesIO(cover)) as image:
        assert image.size == (480, 854)
    assert done.usage == Usage(seconds=3, resolution="480p", width=480, height=854)


async def test_video_by_size_reports_a_resolution_tier() -> None:
    provider = sim(latency_ms=0, cache=MediaCache())
    ch = channel()
    submission = job(size="624*624", duration=1)
    done = await until_done(provider, ch, await provider.submit(ch, submission), submission)
    assert done.status is TaskStatus.SUCCEEDED
    assert done.usage == Usage(seconds=1, resolution="480p", width=624, height=624)


async def test_image_job_gives_n_pngs() -> None:
    provider = sim(latency_ms=0, cache=MediaCache())
    ch = channel()
    submission = job("image", size="512x256", n=2)
    done = await until_done(provider, ch, await provider.submit(ch, submission), submission)
    assert done.status is TaskStatus.SUCCEEDED
    assert done.usage == Usage(images=2)
    assert [o.kind for o in done.outputs] == ["image", "image"]
    datas = [o.data for o in done.outputs]
    assert datas[0] != datas[1]  # n images are n different pictures
    for data in datas:
        assert data is not None and data.startswith(b"\x89PNG")
        with Image.open(io.BytesIO(data)) as image:
            assert image.size == (512, 256)


async def test_image_default_and_preset_sizes() -> None:
    provider = sim(latency_ms=0, cache=MediaCache())
    ch = channel()
    for params, size in (
        ({}, (1024, 1024)),
        ({"size": "1K"}, (1024, 1024)),
        ({"size": "1328*1328"}, (1328, 1328)),
    ):
        submission = job("t2i", **params)
        done = await until_done(provider, ch, await provider.submit(ch, submission), submission)
        data = done.outputs[0].data
        assert data is not None
        with Image.open(io.BytesIO(data)) as image:
            assert image.size == size
        assert done.usage == Usage(images=1)


async def test_failure_rate_fails_the_job() -> None:
    provider = sim(latency_ms=0, cache=MediaCache())
    ch = channel(failure_rate=1)
    submission = job(duration=1)
    upstream_id = await provider.submit(ch, submission)
    for _ in range(2):  # every poll tells the same story
        result = await provider.poll(ch, upstream_id, submission)
        assert result.status is TaskStatus.FAILED
        assert result.error_code == "sim_failure"
        assert result.error_message
        assert not result.outputs


async def test_submit_failure_rate_raises() -> None:
    provider = sim(submit_failure_rate=1)
    with pytest.raises(UpstreamError) as caught:
        await provider.submit(channel(), job())
    assert caught.value.kind is UpstreamKind.RATE_LIMITED  # certainly nothing created
    assert caught.value.retryable
    # Channel options override the constructor defaults.
    assert await sim(submit_failure_rate=1).submit(channel(submit_failure_rate=0), job())


async def test_bad_parameters_are_refused_at_submit() -> None:
    provider = sim()
    for kind, params in (
        ("video", {"size": "big"}),
        ("video", {"ratio": "5:1"}),
        ("image", {"size": "huge"}),
        ("audio", {}),
    ):
        with pytest.raises(UpstreamError) as caught:
            await provider.submit(channel(), job(kind, **params))
        assert caught.value.kind is UpstreamKind.BAD_REQUEST


async def test_restart_safety() -> None:
    # The job was submitted by a process that is gone; a fresh instance (with another default
    # latency) still knows when it ends and what it produces.
    clock = Clock()
    before = sim(latency_ms=150, cache=MediaCache(), clock=clock)
    submission = job(duration=1, resolution="720p", ratio="1:1")
    upstream_id = await before.submit(channel(), submission)
    after = sim(latency_ms=60_000, cache=MediaCache(), clock=clock)
    assert (await after.poll(channel(), upstream_id, submission)).status is TaskStatus.PENDING
    clock.advance(0.15)
    done = await until_done(after, channel(), upstream_id, submission)
    assert done.status is TaskStatus.SUCCEEDED
    assert done.usage.width == done.usage.height == 720


async def test_gate_file_holds_jobs_until_it_exists(tmp_path: Path) -> None:
    clock = Clock()
    provider = sim(cache=MediaCache(), clock=clock)
    gate = tmp_path / "release"
    ch = channel(latency_ms=100, gate_file=str(gate))
    submission = job(duration=1, resolution="480p", ratio="1:1")
    upstream_id = await provider.submit(ch, submission)
    clock.advance(3600)  # long past its latency: the gate alone keeps it open
    held = await provider.poll(ch, upstream_id, submission)
    assert (held.status, held.progress) == (TaskStatus.RUNNING, 99)
    gate.touch()
    done = await provider.poll(ch, upstream_id, submission)
    assert done.status is TaskStatus.SUCCEEDED
    # A gate opened before the latency ran out changes nothing: the timeline still applies.
    early = await provider.submit(ch, submission)
    assert (await provider.poll(ch, early, submission)).status is TaskStatus.PENDING


async def test_unknown_id_and_cancel() -> None:
    provider = sim(latency_ms=10_000, cache=MediaCache())
    ch = channel()
    submission = job(duration=1)
    with pytest.raises(UpstreamError) as lost:
        await provider.poll(ch, "sim-nonsense", submission)
    assert lost.value.kind is UpstreamKind.TASK_GONE  # the poller ends such a task
    upstream_id = await provider.submit(ch, submission)
    assert await provider.cancel(ch, upstream_id) is True
    cancelled = await provider.poll(ch, upstream_id, submission)
    assert (cancelled.status, cancelled.error_code) == (TaskStatus.FAILED, "cancelled")


async def test_cache_renders_identical_jobs_once() -> None:
    cache = MediaCache()
    provider = sim(latency_ms=0, cache=cache)
    ch = channel()
    submission = job(duration=2, resolution="480p", ratio="16:9")
    ids = [await provider.submit(ch, submission) for _ in range(200)]
    results = await asyncio.gather(*(provider.poll(ch, i, submission) for i in ids))
    assert all(r.status is TaskStatus.SUCCEEDED for r in results)
    assert cache.renders == 1
    assert len({r.outputs[0].data for r in results}) == 1
    # A different duration is a different key; a repeat is a hit.
    other = job(duration=1, resolution="480p", ratio="16:9")
    await provider.poll(ch, await provider.submit(ch, other), other)
    await provider.poll(ch, ids[0], submission)
    assert cache.renders == 2


async def test_cache_is_bounded() -> None:
    cache = MediaCache(max_entries=2)
    for n in range(4):

        async def render(n: int = n) -> tuple[bytes, ...]:
            return (bytes([n]) * 10,)

        await cache.get(("k", n), render)
    assert len(cache) == 2
    assert cache.renders == 4


async def test_cancelled_waiter_does_not_abort_the_shared_render() -> None:
    cache = MediaCache()
    gate = asyncio.Event()

    async def render() -> tuple[bytes, ...]:
        await gate.wait()
        return (b"done",)

    impatient = asyncio.create_task(cache.get(("k",), render))
    patient = asyncio.create_task(cache.get(("k",), render))
    await asyncio.sleep(0.01)
    impatient.cancel()
    gate.set()
    assert await patient == (b"done",)
    assert cache.renders == 1


class BrokenRenderer(SimRenderer):
    def __init__(self, problem: str | None = None) -> None:
        self.problem = problem

    def unavailable(self) -> str | None:
        return self.problem

    async def video(self, seconds: int, width: int, height: int, fps: int, label: str) -> bytes:
        raise RuntimeError("encoder crashed")


async def test_renderer_problems() -> None:
    submission = job(duration=1, resolution="720p", ratio="3:4")
    # No renderer at all, or no ffmpeg: refused at submit as a channel (retryable) problem.
    for provider in (
        SimMediaProvider(latency_ms=0),
        SimMediaProvider(latency_ms=0, renderer=BrokenRenderer("ffmpeg not installed")),
    ):
        with pytest.raises(UpstreamError) as caught:
            await provider.submit(channel(), submission)
        assert caught.value.kind.transient
    # ffmpeg vanished after submit: the job ends instead of being polled forever.
    upstream_id = await sim(latency_ms=0).submit(channel(), submission)
    gone = SimMediaProvider(renderer=BrokenRenderer("ffmpeg not installed"), cache=MediaCache())
    result = await gone.poll(channel(), upstream_id, submission)
    assert (result.status, result.error_code) == (TaskStatus.FAILED, "sim_unavailable")
    # A failed render is a failed poll (the poller retries later), not a failed job.
    crashing = SimMediaProvider(renderer=BrokenRenderer(), cache=MediaCache())
    with pytest.raises(UpstreamError, match="encoder crashed") as caught:
        await crashing.poll(channel(), upstream_id, submission)
    assert caught.value.kind.transient
