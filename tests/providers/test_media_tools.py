"""storage.video_tools (real ffmpeg/ffprobe) and storage.image_tools (real Pillow)."""

from __future__ import annotations

import asyncio
import io
import signal
from typing import Any

import pytest
from PIL import Image

from llmage.storage.image_tools import render_test_image
from llmage.storage.video_tools import (
    MediaToolError,
    MediaToolMissing,
    SimRenderer,
    first_frame_jpeg,
    probe,
    render_test_video,
)


@pytest.fixture(scope="module")
async def clip() -> bytes:
    return await render_test_video(3, 640, 360, label="llmage test: 3s")


async def test_video_is_h264_of_the_requested_duration_and_size(clip: bytes) -> None:
    assert clip[4:8] == b"ftyp"
    info = await probe(clip)
    assert info.codec == "h264"
    assert abs(info.duration - 3) <= 0.1
    assert (info.width, info.height) == (640, 360)


async def test_video_is_faststart(clip: bytes) -> None:
    # The index comes before the media data, so players start before the download ends.
    assert 0 <= clip.find(b"moov") < clip.find(b"mdat")


async def test_cover_is_a_jpeg_of_the_video_size(clip: bytes) -> None:
    cover = await first_frame_jpeg(clip)
    assert cover[:2] == b"\xff\xd8"
    with Image.open(io.BytesIO(cover)) as image:
        assert image.format == "JPEG"
        assert image.size == (640, 360)


async def test_portrait_and_low_fps_render() -> None:
    video = await render_test_video(2, 360, 640, fps=12)
    info = await probe(video)
    assert (info.width, info.height, info.codec) == (360, 640, "h264")
    assert abs(info.duration - 2) <= 0.1


async def test_render_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="even"):
        await render_test_video(1, 641, 360)
    with pytest.raises(ValueError, match="seconds"):
        await render_test_video(0, 640, 360)
    with pytest.raises(ValueError, match="size"):
        await render_test_video(1, 8, 8)


async def test_garbage_is_a_media_tool_error() -> None:
    with pytest.raises(MediaToolError):
        await probe(b"this is not a video")
    with pytest.raises(MediaToolError):
        await first_frame_jpeg(b"this is not a video")
    with pytest.raises(MediaToolError):
        await probe(b"")


async def test_timeout_kills_the_child(monkeypatch: pytest.MonkeyPatch) -> None:
    children: list[asyncio.subprocess.Process] = []
    spawn = asyncio.create_subprocess_exec

    async def spy(*args: Any, **kwargs: Any) -> asyncio.subprocess.Process:
        children.append(await spawn(*args, **kwargs))
        return children[-1]

    monkeypatch.setattr(asyncio, "create_subprocess_exec", spy)
    with pytest.raises(MediaToolError, match="timed out"):
        await render_test_video(16, 1920, 1920, time_limit=0.05)
    (child,) = children
    assert child.returncode == -signal.SIGKILL  # killed and reaped, not left rendering


async def test_missing_ffmpeg_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(MediaToolMissing, match="ffmpeg"):
        await render_test_video(1, 64, 64)
    with pytest.raises(MediaToolMissing, match="ffprobe"):
        await probe(b"x")
    assert "ffmpeg and ffprobe" in (SimRenderer().unavailable() or "")


def test_renderer_is_available_here() -> None:
    assert SimRenderer().unavailable() is None


@pytest.mark.parametrize(("fmt", "magic", "pil_format"), [
    ("png", b"\x89PNG\r\n\x1a\n", "PNG"),
    ("jpeg", b"\xff\xd8", "JPEG"),
])  # fmt: skip
def test_image_is_real(fmt: str, magic: bytes, pil_format: str) -> None:
    data = render_test_image(300, 200, fmt, seed=42)
    assert data.startswith(magic)
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        assert image.format == pil_format
        assert image.size == (300, 200)
        # A pattern, not a flat fill.
        assert len(set(image.convert("RGB").getdata())) > 50


def test_image_is_deterministic_per_seed() -> None:
    assert render_test_image(128, 128, seed=7) == render_test_image(128, 128, seed=7)
    assert render_test_image(128, 128, seed=7) != render_test_image(128, 128, seed=8)


def test_image_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="format"):
        render_test_image(10, 10, "gif")
    with pytest.raises(ValueError, match="size"):
        render_test_image(0, 10)
