"""`sim` for tasks: the built-in offline video/image upstream. It really produces H.264 MP4 videos
(with a JPEG cover cut from the first frame) and PNG images, on a configurable timeline. Options
come from the channel options, with defaults from the constructor (like the chat sim):

  latency_ms           how long a job runs, from submit to SUCCEEDED (PENDING for the first 20%)
  failure_rate         probability (0..1) that a job ends FAILED (error_code "sim_failure")
  submit_failure_rate  probability (0..1) that submit raises a retryable UpstreamError
  gate_file            a path: jobs stay RUNNING (progress ≤ 99) until that file exists, then
                       finish as their latency says; lets a test or a demo release jobs on cue
                       instead of racing a timer (the file is only tested for existence)

Restart-safe: the upstream id carries the submit time and the latency, and the poller passes the
same TaskSubmission on every poll, so any instance (a fresh process included) can answer a poll.
The failure draw is a hash of the id, so every poll of one job tells the same story.

Video size, when `size` ("1280*720" / "1280x720") is absent: the resolution is the short side
(480p → 480, 540p → 540, 720p → 720, 1080p → 1080; default 720p) and the long side follows the
ratio, rounded to an even number; adaptive / keep_ratio read as 16:9. Sides above 1920 are scaled
down keeping the ratio. Examples: 720p 16:9 → 1280x720, 720p 9:16 → 720x1280, 480p 16:9 → 854x480,
1080p 4:3 → 1440x1080, 1080p 21:9 → 1920x822. Durations are clamped to 1..16 s.
Image size: "W*H", "WxH" or 1K/2K/4K (square), default 1024*1024; sides above 4096 are scaled down.

Rendering itself (ffmpeg, Pillow) lives in llmage.storage, which this layer may not import (DESIGN
§2, import-linter): the services layer passes a `MediaRenderer` in, normally
`llmage.storage.video_tools.SimRenderer()`.

Many simultaneous jobs must stay cheap: rendered outputs are cached in a bounded LRU keyed by
(kind, seconds, width, height) (images: by size and seed) and rendered once per key however many
jobs wait for it, with a cap on concurrent renders.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import random
import re
import secrets
import time
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from llmage.domain.errors import UpstreamError, UpstreamKind
from llmage.domain.tasks import TaskStatus
from llmage.providers.contract import Channel
from llmage.providers.tasks import TaskOutput, TaskPoll, TaskSubmission

VIDEO_KINDS = frozenset({"video", "t2v", "i2v", "r2v"})
IMAGE_KINDS = frozenset({"image", "t2i", "i2i"})
MAX_VIDEO_SIDE = 1920
MAX_VIDEO_SECONDS = 16
MAX_IMAGE_SIDE = 4096
MAX_IMAGES = 10
DEFAULT_SECONDS = 5
DEFAULT_RESOLUTION = "720p"
DEFAULT_IMAGE_SIZE = (1024, 1024)
PENDING_SHARE = 0.2  # the first 20% of the latency reads as queued upstream

RESOLUTION_SHORT_SIDE = {"480p": 480, "540p": 540, "720p": 720, "1080p": 1080}
RATIOS: dict[str, tuple[int, int]] = {
    f"{a}:{b}": (a, b) for a, b in ((16, 9), (9, 16), (4, 3), (3, 4), (1, 1), (21, 9), (9, 21))
}
# "Match the input image": the sim has no image to match, so it takes the common case.
RATIOS |= {"adaptive": (16, 9), "keep_ratio": (16, 9)}
_IMAGE_PRESETS = {"1k": 1024, "2k": 2048, "4k": 4096}
_SIZE_RE = re.compile(r"^\s*(\d{1,5})\s*[*xX×]\s*(\d{1,5})\s*$")
_ID_RE = re.compile(r"^sim-([0-9a-f]{1,16})-([0-9a-f]{1,16})-([0-9a-f]{12})$")

Rendered = tuple[bytes, ...]


class MediaRenderer(Protocol):
    """What the sim needs to make real files (llmage.storage.video_tools.SimRenderer). Any
    exception from a render is a failed poll, retried later."""

    # Why it cannot render on this machine (no ffmpeg), or None.
    def unavailable(self) -> str | None: ...
    # An H.264 MP4 of exactly `seconds` at width x height; its first frame as a JPEG; a PNG
    # that is a pure function of its arguments.
    async def video(self, seconds: int, width: int, height: int, fps: int, label: str) -> bytes: ...
    async def cover(self, video: bytes) -> bytes: ...
    async def image(self, width: int, height: int, seed: int) -> bytes: ...


def _even(n: float) -> int:
    return max(16, 2 * round(n / 2))


def _fit(width: float, height: float, limit: int, *, even: bool = True) -> tuple[int, int]:
    """Scale down (keeping the ratio) so neither side exceeds `limit`; even sides for video
    (yuv420p needs them), exact sides for images."""
    scale = min(1.0, limit / max(width, height))
    if not even:
        return max(1, min(round(width * scale), limit)), max(1, min(round(height * scale), limit))
    return min(_even(width * scale), limit), min(_even(height * scale), limit)


def _parse_size(raw: object) -> tuple[int, int] | None:
    match = _SIZE_RE.match(str(raw))
    if match is None:
        return None
    width, height = int(match[1]), int(match[2])
    return (width, height) if width > 0 and height > 0 else None


def video_size(params: Mapping[str, Any]) -> tuple[int, int]:
    """(width, height) for a video job; see the module docstring for the table."""
    if params.get("size"):
        parsed = _parse_size(params["size"])
        if parsed is None:
            raise UpstreamError(UpstreamKind.BAD_REQUEST, f"sim: bad size {params['size']!r}")
        return _fit(*parsed, MAX_VIDEO_SIDE)
    resolution = str(params.get("resolution") or DEFAULT_RESOLUTION).lower()
    ratio = str(params.get("ratio") or "16:9").lower()
    if resolution not in RESOLUTION_SHORT_SIDE or ratio not in RATIOS:
        raise UpstreamError(
            UpstreamKind.BAD_REQUEST, f"sim: unsupported resolution/ratio {resolution} {ratio}"
        )
    short = RESOLUTION_SHORT_SIDE[resolution]
    a, b = RATIOS[ratio]
    width, height = (short * a / b, short) if a >= b else (short, short * b / a)
    return _fit(width, height, MAX_VIDEO_SIDE)


def video_seconds(params: Mapping[str, Any]) -> int:
    raw = params.get("duration")
    try:
        seconds = round(float(raw)) if raw is not None else DEFAULT_SECONDS
    except (TypeError, ValueError):
        raise UpstreamError(UpstreamKind.BAD_REQUEST, f"sim: bad duration {raw!r}") from None
    return max(1, min(MAX_VIDEO_SECONDS, seconds))


def resolution_label(params: Mapping[str, Any], width: int, height: int) -> str:
    """The billing tier: the requested resolution, or the tier nearest in pixel count."""
    asked = str(params.get("resolution") or "").lower()
    if asked in RESOLUTION_SHORT_SIDE:
        return asked
    tiers = {"480p": 854 * 480, "540p": 960 * 540, "720p": 1280 * 720, "1080p": 1920 * 1080}
    area = width * height
    return min(tiers, key=lambda tier: abs(math.log(area / tiers[tier])))


def image_size(params: Mapping[str, Any]) -> tuple[int, int]:
    raw = params.get("size")
    if not raw:
        return DEFAULT_IMAGE_SIZE
    preset = _IMAGE_PRESETS.get(str(raw).strip().lower())
    parsed = (preset, preset) if preset else _parse_size(raw)
    if parsed is None:
        raise UpstreamError(UpstreamKind.BAD_REQUEST, f"sim: bad size {raw!r}")
    return _fit(*parsed, MAX_IMAGE_SIDE, even=False)


def image_count(params: Mapping[str, Any]) -> int:
    try:
        return max(1, min(MAX_IMAGES, int(params.get("n") or 1)))
    except (TypeError, ValueError):
        raise UpstreamError(UpstreamKind.BAD_REQUEST, "sim: bad n") from None


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


class MediaCache:
    """A bounded LRU of rendered outputs with single flight per key: while one render of a key
    runs, every other caller for that key awaits the same task instead of starting ffmpeg."""

    def __init__(
        self, *, max_entries: int = 128, max_bytes: int = 256 << 20, concurrency: int | None = None
    ) -> None:
        self._entries: OrderedDict[tuple[Any, ...], Rendered] = OrderedDict()
        self._bytes = 0
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._concurrency = concurrency or max(2, (os.cpu_count() or 2) // 2)
        # asyncio primitives belong to one event loop; keep them per loop so a cache shared by
        # several loops (tests, embedded servers) never trips over another loop's future.
        self._loops: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop,
            tuple[asyncio.Semaphore, dict[tuple[Any, ...], asyncio.Task[Rendered]]],
        ] = weakref.WeakKeyDictionary()
        self.renders = 0  # renders actually run (tests and metrics read it)

    def __len__(self) -> int:
        return len(self._entries)

    def _lookup(self, key: tuple[Any, ...]) -> Rendered | None:
        hit = self._entries.get(key)
        if hit is not None:
            self._entries.move_to_end(key)
        return hit

    def _store(self, key: tuple[Any, ...], value: Rendered) -> None:
        size = sum(len(part) for part in value)
        if size > self._max_bytes:
            return  # would evict everything and still not fit
        self._entries[key] = value
        self._bytes += size
        while len(self._entries) > self._max_entries or self._bytes > self._max_bytes:
            _, old = self._entries.popitem(last=False)
            self._bytes -= sum(len(part) for part in old)

    async def get(
        self, key: tuple[Any, ...], render: Callable[[], Awaitable[Rendered]]
    ) -> Rendered:
        hit = self._lookup(key)
        if hit is not None:
            return hit
        loop = asyncio.get_running_loop()
        state = self._loops.get(loop)
        if state is None:
            state = (asyncio.Semaphore(self._concurrency), {})
            self._loops[loop] = state
        limit, inflight = state
        task = inflight.get(key)
        if task is None:

            async def run() -> Rendered:
                try:
                    async with limit:
                        value = await render()
                    self.renders += 1
                    self._store(key, value)
                    return value
                finally:
                    inflight.pop(key, None)

            task = loop.create_task(run())
            # Mark a failure as seen even when every waiter was cancelled before it ended.
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            inflight[key] = task
        # Shielded: one impatient caller being cancelled must not abort everyone's render.
        return await asyncio.shield(task)


_DEFAULT_CACHE = MediaCache()


class SimMediaProvider:
    name = "sim"

    def __init__(
        self,
        *,
        latency_ms: float = 1000.0,
        failure_rate: float = 0.0,
        submit_failure_rate: float = 0.0,
        cache: MediaCache | None = None,
        renderer: MediaRenderer | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._defaults = {
            "latency_ms": latency_ms,
            "failure_rate": failure_rate,
            "submit_failure_rate": submit_failure_rate,
        }
        self.cache = cache if cache is not None else _DEFAULT_CACHE
        self._renderer = renderer
        self._clock = clock  # wall-clock seconds: the upstream id carries a wall-clock start
        # Ids cancelled through this instance: best effort, like a real upstream's cancel.
        self._cancelled: OrderedDict[str, None] = OrderedDict()

    def _opt(self, channel: Channel, name: str) -> float:
        return float(channel.options.get(name, self._defaults.get(name, 0.0)))

    @staticmethod
    def _kind(job: TaskSubmission) -> str:
        kind = job.kind.lower()
        if kind in VIDEO_KINDS:
            return "video"
        if kind in IMAGE_KINDS:
            return "image"
        raise UpstreamError(UpstreamKind.BAD_REQUEST, f"sim: unsupported task kind {job.kind!r}")

    def _unavailable(self) -> str | None:
        if self._renderer is None:
            return "no media renderer configured (pass renderer=SimRenderer())"
        return self._renderer.unavailable()

    async def submit(self, channel: Channel, job: TaskSubmission) -> str:
        kind = self._kind(job)
        problem = self._unavailable()
        if problem is not None:
            # An operator problem on this channel: another channel may still serve the job.
            raise UpstreamError(UpstreamKind.RETRYABLE, f"sim: {problem}")
        # Validate now, as a real upstream would at submit, rather than fail at the end.
        if kind == "video":
            video_size(job.params)
            video_seconds(job.params)
        else:
            image_size(job.params)
            image_count(job.params)
        if random.random() < self._opt(channel, "submit_failure_rate"):
            raise UpstreamError(
                UpstreamKind.RETRYABLE, "sim: injected submit failure", upstream_status=503
            )
        start_ms = int(self._clock() * 1000)
        latency_ms = max(0, int(self._opt(channel, "latency_ms")))
        return f"sim-{start_ms:x}-{latency_ms:x}-{secrets.token_hex(6)}"

    async def poll(self, channel: Channel, upstream_id: str, job: TaskSubmission) -> TaskPoll:
        match = _ID_RE.match(upstream_id)
        if match is None:
            return TaskPoll(
                status=TaskStatus.FAILED,
                error_code="not_found",
                error_message=f"sim: no such task {upstream_id!r}",
            )
        if upstream_id in self._cancelled:
            return TaskPoll(
                status=TaskStatus.FAILED, error_code="cancelled", error_message="sim: cancelled"
            )
        start_ms, latency_ms = int(match[1], 16), int(match[2], 16)
        elapsed_ms = self._clock() * 1000 - start_ms
        remaining = max(latency_ms - elapsed_ms, 0.0) / 1000
        hint = min(max(remaining, 0.05), 5.0)
        if elapsed_ms < latency_ms * PENDING_SHARE:
            return TaskPoll(status=TaskStatus.PENDING, progress=0, poll_after=hint)
        if elapsed_ms < latency_ms:
            progress = max(1, min(99, int(100 * elapsed_ms / latency_ms)))
            return TaskPoll(status=TaskStatus.RUNNING, progress=progress, poll_after=hint)
        gate = channel.options.get("gate_file")
        if gate and not await asyncio.to_thread(Path(str(gate)).exists):
            return TaskPoll(status=TaskStatus.RUNNING, progress=99, poll_after=0.1)
        # A uniform draw fixed per job (a hash of its id), so every poll agrees on its fate.
        if _hash64(upstream_id) / 2**64 < self._opt(channel, "failure_rate"):
            return TaskPoll(
                status=TaskStatus.FAILED,
                error_code="sim_failure",
                error_message="sim: injected generation failure",
            )
        problem = self._unavailable()
        if self._renderer is None or problem is not None:
            # Retrying cannot help a machine without ffmpeg: end the job (the hold is released).
            return TaskPoll(
                status=TaskStatus.FAILED,
                error_code="sim_unavailable",
                error_message=f"sim: {problem}",
            )
        try:
            if self._kind(job) == "video":
                return await self._video_result(self._renderer, job)
            return await self._image_result(self._renderer, job)
        except UpstreamError:
            raise
        except Exception as exc:
            # Most likely a render timeout under load: a failed poll is retried later.
            raise UpstreamError(UpstreamKind.RETRYABLE, f"sim: render failed: {exc}") from None

    async def cancel(self, channel: Channel, upstream_id: str) -> bool:
        self._cancelled[upstream_id] = None
        while len(self._cancelled) > 10_000:
            self._cancelled.popitem(last=False)
        return True

    async def _video_result(self, renderer: MediaRenderer, job: TaskSubmission) -> TaskPoll:
        width, height = video_size(job.params)
        seconds = video_seconds(job.params)
        # Long clips at 12 fps: half the encode time, and nobody watches a sim clip for motion.
        fps = 24 if seconds <= DEFAULT_SECONDS else 12

        async def render() -> Rendered:
            label = f"llmage sim {width}x{height} {seconds}s"
            video = await renderer.video(seconds, width, height, fps, label)
            return video, await renderer.cover(video)

        video, cover = await self.cache.get(("video", seconds, width, height), render)
        return TaskPoll(
            status=TaskStatus.SUCCEEDED,
            progress=100,
            outputs=(
                TaskOutput(kind="video", content_type="video/mp4", data=video),
                TaskOutput(kind="cover", content_type="image/jpeg", data=cover),
            ),
            usage={
                "duration": seconds,
                "resolution": resolution_label(job.params, width, height),
                "width": width,
                "height": height,
            },
        )

    async def _image_result(self, renderer: MediaRenderer, job: TaskSubmission) -> TaskPoll:
        width, height = image_size(job.params)
        count = image_count(job.params)
        prompt = str(job.params.get("prompt") or "")
        outputs = []
        for index in range(count):
            seed = _hash64(f"{prompt}\0{index}")

            async def render(seed: int = seed) -> Rendered:
                return (await renderer.image(width, height, seed),)

            (png,) = await self.cache.get(("image", width, height, seed), render)
            outputs.append(TaskOutput(kind="image", content_type="image/png", data=png))
        return TaskPoll(
            status=TaskStatus.SUCCEEDED,
            progress=100,
            outputs=tuple(outputs),
            usage={"images": count},
        )
