"""Real tiny result files for fakes: an H.264 MP4 made by the sim renderer (ffmpeg), its first
frame as a JPEG, a PNG. Made once per test session (cached), so re-hosting, probing and the
first-frame cover cut all run on real media. Safe to call from inside an event loop."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from llmage.storage.image_tools import render_test_image
from llmage.storage.video_tools import SimRenderer, first_frame_jpeg

TINY_SECONDS = 1
TINY_SIZE = (128, 72)


def _run(make: Callable[[], Awaitable[bytes]]) -> bytes:
    async def main() -> bytes:
        return await make()

    with ThreadPoolExecutor(1) as pool:  # its own loop, whatever loop the caller runs in
        return pool.submit(asyncio.run, main()).result(120)


@functools.cache
def tiny_mp4() -> bytes:
    width, height = TINY_SIZE
    return _run(lambda: SimRenderer().video(TINY_SECONDS, width, height, 12, "fake result"))


@functools.cache
def tiny_jpeg() -> bytes:
    return _run(lambda: first_frame_jpeg(tiny_mp4()))


@functools.cache
def tiny_png(width: int = 64, height: int = 48, seed: int = 7) -> bytes:
    return render_test_image(width, height, "png", seed)
