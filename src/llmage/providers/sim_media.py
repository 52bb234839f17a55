"""`sim` for tasks, upstream side: the built-in offline video/image "server", in process behind
`sim://` URLs (providers/upstream.py RoutedUpstream). The `sim` adapter (providers/sim_tasks.py)
talks to it through the same executor as any real provider: requests in, JSON replies out, result
files downloaded by URL. It really produces H.264 MP4 videos (with a JPEG cover cut from the first
frame) and PNG images, on a configurable timeline. Options come from the channel options (sent in
each request by the adapter), with defaults from the constructor (like the chat sim):

  latency_ms           how long a job runs, from submit to SUCCEEDED (PENDING for the first 20%)
  failure_rate         probability (0..1) that a job ends FAILED (error_code "sim_failure")
  failure_message      the upstream error text of such a failure (to test how it is shown)
  submit_failure_rate  probability (0..1) that submit raises a retryable UpstreamError
  gate_file            a path: jobs stay RUNNING (progress ≤ 99) until that file exists, then
                       finish as their latency says; lets a test or a demo release jobs on cue
                       instead of racing a timer (the file is only tested for existence)

Routes: POST /tasks (create: {kind, params, options} -> {id}), POST /tasks/{id}/query (the same
body -> {status: queued|running|succeeded|failed, progress, poll_after, outputs, usage, error}),
POST /tasks/{id}/cancel, GET /tasks (a probe), GET /files/{video|cover|image}?... (the bytes).

Restart-safe: the upstream id carries the submit time and the latency, and every query carries
the job again, so any instance (a fresh process included) can answer it; file URLs name what to
render, not a stored file. The failure draw is a hash of the id, so every query tells the same
story.

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
from urllib.parse import parse_qs, urlencode, urlsplit

import orjson

from llmage.domain.errors import UpstreamError, UpstreamKind
from llmage.providers.wire import UpstreamReply, UpstreamRequest

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


def _reply(status: int, payload: Any) -> UpstreamReply:
    return UpstreamReply(status, {"content-type": "application/json"}, orjson.dumps(payload))


def _error(status: int, code: str, message: str) -> UpstreamReply:
    return _reply(status, {"error": {"code": code, "message": message}})


class SimMediaUpstream:
    """The sim media server behind `sim://` (implements providers.upstream.Upstream)."""

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
        self.creates = 0  # create requests answered (tests read it)

    def _opt(self, options: Mapping[str, Any], name: str) -> float:
        try:
            return float(options.get(name, self._defaults.get(name, 0.0)))
        except (TypeError, ValueError):
            return self._defaults.get(name, 0.0)

    @staticmethod
    def _kind(kind: str) -> str:
        kind = kind.lower()
        if kind in VIDEO_KINDS:
            return "video"
        if kind in IMAGE_KINDS:
            return "image"
        raise UpstreamError(UpstreamKind.BAD_REQUEST, f"sim: unsupported task kind {kind!r}")

    def _unavailable(self) -> str | None:
        if self._renderer is None:
            return "no media renderer configured (pass renderer=SimRenderer())"
        return self._renderer.unavailable()

    async def send(
        self, request: UpstreamRequest, *, deadline: float, max_bytes: int
    ) -> UpstreamReply:
        parts = urlsplit(request.url)
        path = [p for p in parts.path.split("/") if p]
        try:
            body = orjson.loads(request.body) if request.body else {}
        except orjson.JSONDecodeError:
            return _error(400, "bad_json", "sim: body is not JSON")
        try:
            if request.method == "POST" and path == ["tasks"]:
                return self._create(body)
            if request.method == "POST" and len(path) == 3 and path[0] == "tasks":
                if path[2] == "query":
                    return await self._query(path[1], body)
                if path[2] == "cancel":
                    self._cancelled[path[1]] = None
                    while len(self._cancelled) > 10_000:
                        self._cancelled.popitem(last=False)
                    return _reply(200, {})
            if request.method == "GET" and path == ["tasks"]:
                return _reply(200, {"data": []})
            if request.method == "GET" and len(path) == 2 and path[0] == "files":
                return await self._file(path[1], parse_qs(parts.query))
        except UpstreamError as exc:
            status = 400 if exc.kind is UpstreamKind.BAD_REQUEST else 503
            return _error(status, exc.kind.value, exc.message)
        return _error(404, "not_found", f"sim: no route {request.method} {parts.path}")

    def _create(self, body: Mapping[str, Any]) -> UpstreamReply:
        kind = self._kind(str(body.get("kind", "")))
        params = body.get("params") or {}
        options = body.get("options") or {}
        problem = self._unavailable()
        if problem is not None:
            # An operator problem on this channel: another channel may still serve the job.
            return _error(503, "sim_unavailable", f"sim: {problem}")
        # Validate now, as a real upstream would at submit, rather than fail at the end.
        if kind == "video":
            video_size(params)
            video_seconds(params)
        else:
            image_size(params)
            image_count(params)
        if random.random() < self._opt(options, "submit_failure_rate"):
            return _error(503, "sim_submit_failure", "sim: injected submit failure")
        self.creates += 1
        start_ms = int(self._clock() * 1000)
        latency_ms = max(0, int(self._opt(options, "latency_ms")))
        return _reply(200, {"id": f"sim-{start_ms:x}-{latency_ms:x}-{secrets.token_hex(6)}"})

    async def _query(self, upstream_id: str, body: Mapping[str, Any]) -> UpstreamReply:
        match = _ID_RE.match(upstream_id)
        if match is None:
            return _error(404, "not_found", f"sim: no such task {upstream_id!r}")
        if upstream_id in self._cancelled:
            return _reply(200, {"status": "cancelled"})
        kind = self._kind(str(body.get("kind", "")))
        params = body.get("params") or {}
        options = body.get("options") or {}
        start_ms, latency_ms = int(match[1], 16), int(match[2], 16)
        elapsed_ms = self._clock() * 1000 - start_ms
        remaining = max(latency_ms - elapsed_ms, 0.0) / 1000
        hint = min(max(remaining, 0.05), 5.0)
        if elapsed_ms < latency_ms * PENDING_SHARE:
            return _reply(200, {"status": "queued", "progress": 0, "poll_after": hint})
        if elapsed_ms < latency_ms:
            progress = max(1, min(99, int(100 * elapsed_ms / latency_ms)))
            return _reply(200, {"status": "running", "progress": progress, "poll_after": hint})
        gate = options.get("gate_file")
        if gate and not await asyncio.to_thread(Path(str(gate)).exists):
            return _reply(200, {"status": "running", "progress": 99, "poll_after": 0.1})
        # A uniform draw fixed per job (a hash of its id), so every query agrees on its fate.
        if _hash64(upstream_id) / 2**64 < self._opt(options, "failure_rate"):
            return _reply(
                200,
                {
                    "status": "failed",
                    "error": {
                        "code": "sim_failure",
                        "message": str(
                            options.get("failure_message") or "sim: injected generation failure"
                        ),
                    },
                },
            )
        problem = self._unavailable()
        if problem is not None:
            # Retrying cannot help a machine without ffmpeg: end the job (the hold is released).
            return _reply(
                200,
                {
                    "status": "failed",
                    "error": {"code": "sim_unavailable", "message": f"sim: {problem}"},
                },
            )
        if kind == "video":
            return _reply(200, self._video_result(params))
        return _reply(200, self._image_result(params))

    @staticmethod
    def _video_result(params: Mapping[str, Any]) -> dict[str, Any]:
        width, height = video_size(params)
        seconds = video_seconds(params)
        query = urlencode({"seconds": seconds, "width": width, "height": height})
        return {
            "status": "succeeded",
            "progress": 100,
            "outputs": [
                {"kind": "video", "content_type": "video/mp4", "url": f"/files/video?{query}"},
                {"kind": "cover", "content_type": "image/jpeg", "url": f"/files/cover?{query}"},
            ],
            "usage": {
                "seconds": seconds,
                "resolution": resolution_label(params, width, height),
                "width": width,
                "height": height,
            },
        }

    @staticmethod
    def _image_result(params: Mapping[str, Any]) -> dict[str, Any]:
        width, height = image_size(params)
        count = image_count(params)
        prompt = str(params.get("prompt") or "")
        outputs = []
        for index in range(count):
            seed = _hash64(f"{prompt}\0{index}")
            query = urlencode({"width": width, "height": height, "seed": seed})
            outputs.append(
                {"kind": "image", "content_type": "image/png", "url": f"/files/image?{query}"}
            )
        return {
            "status": "succeeded",
            "progress": 100,
            "outputs": outputs,
            "usage": {"images": count},
        }

    async def _file(self, name: str, query: Mapping[str, list[str]]) -> UpstreamReply:
        renderer = self._renderer
        if renderer is None or self._unavailable() is not None:
            return _error(503, "sim_unavailable", f"sim: {self._unavailable()}")

        def arg(key: str) -> int:
            try:
                return int(query[key][0])
            except (KeyError, IndexError, ValueError):
                raise UpstreamError(UpstreamKind.BAD_REQUEST, f"sim: bad {key}") from None

        try:
            if name in ("video", "cover"):
                seconds, width, height = arg("seconds"), arg("width"), arg("height")
                # Long clips at 12 fps: half the encode time; nobody watches a sim for motion.
                fps = 24 if seconds <= DEFAULT_SECONDS else 12

                async def render_video() -> Rendered:
                    label = f"llmage sim {width}x{height} {seconds}s"
                    video = await renderer.video(seconds, width, height, fps, label)
                    return video, await renderer.cover(video)

                video, cover = await self.cache.get(("video", seconds, width, height), render_video)
                data, ctype = (video, "video/mp4") if name == "video" else (cover, "image/jpeg")
            elif name == "image":
                width, height, seed = arg("width"), arg("height"), arg("seed")

                async def render_image() -> Rendered:
                    return (await renderer.image(width, height, seed),)

                (data,) = await self.cache.get(("image", width, height, seed), render_image)
                ctype = "image/png"
            else:
                return _error(404, "not_found", f"sim: no file {name!r}")
        except UpstreamError:
            raise
        except Exception as exc:
            # Most likely a render timeout under load: a failed download is retried later.
            return _error(503, "sim_render_failed", f"sim: render failed: {exc}")
        return UpstreamReply(200, {"content-type": ctype}, data)
