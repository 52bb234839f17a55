"""Media processing with the system `ffmpeg` / `ffprobe` (Debian package `ffmpeg`).

Every call is a bounded subprocess: a timeout, and the child is killed on timeout *and* when the
awaiting task is cancelled, so an abandoned request never leaves an encoder running. Nothing here
goes through a shell; arguments are passed as a list.

Inputs are written to a temporary file rather than piped: MP4 demuxing needs to seek, and videos
from upstreams often carry their index (`moov`) at the end, which a pipe cannot reach. Outputs
that are a single stream (a JPEG, JSON) come back on stdout; the rendered MP4 goes through a
temporary file so it can be a normal `+faststart` MP4 (index first: plays while downloading).
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from llmage.storage.image_tools import render_test_image

_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
)
MAX_RENDER_SECONDS = 600  # sanity bounds for the renderer itself; callers clamp lower
MAX_RENDER_SIDE = 4096


class MediaToolError(RuntimeError):
    """ffmpeg/ffprobe failed, timed out, or could not make sense of the input."""


class MediaToolMissing(MediaToolError):
    """The binary is not installed (scripts/install.sh installs the Debian package `ffmpeg`)."""


@dataclass(frozen=True, slots=True)
class VideoInfo:
    duration: float  # seconds
    width: int
    height: int
    codec: str  # ffprobe codec_name, e.g. "h264"


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise MediaToolMissing(
            f"`{name}` not found on PATH: install the Debian package `ffmpeg` "
            "(scripts/install.sh does this)"
        )
    return path


async def _run(argv: list[str], *, time_limit: float, stdin: bytes | None = None) -> bytes:
    """Run argv[0] (looked up on PATH) and return its stdout; raise MediaToolError otherwise."""
    name = argv[0]
    proc = await asyncio.create_subprocess_exec(
        _binary(name),
        *argv[1:],
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), time_limit)
    except BaseException as exc:
        # Timeout or cancellation: the child must not outlive the request that wanted it.
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        if isinstance(exc, TimeoutError):
            raise MediaToolError(f"{name} timed out after {time_limit:g}s") from None
        raise
    if proc.returncode != 0:
        tail = err.decode(errors="replace").strip()[-400:]
        raise MediaToolError(f"{name} failed (exit {proc.returncode}): {tail}")
    return out


_filters_cache: set[str] | None = None


async def _has_filter(name: str) -> bool:
    """Whether this ffmpeg build has a filter (drawtext needs libfreetype). Asked once."""
    global _filters_cache
    if _filters_cache is None:
        try:
            listing = await _run(["ffmpeg", "-hide_banner", "-filters"], time_limit=15)
        except MediaToolMissing:
            raise
        except MediaToolError:
            listing = b""  # an odd build: render without the optional filters
        found = set()
        for line in listing.decode(errors="replace").splitlines():
            parts = line.split()
            if len(parts) >= 2:
                found.add(parts[1])
        _filters_cache = found
    return name in _filters_cache


def _font() -> str | None:
    return next((p for p in _FONT_CANDIDATES if Path(p).is_file()), None)


def _safe_label(label: str) -> str:
    # drawtext has its own escaping language (':', '\'', '%', '\\'); allowing only plain
    # characters is simpler and safer than escaping it correctly.
    return re.sub(r"[^A-Za-z0-9 ._+=-]", "", label)[:64].strip()


def _even(n: int) -> int:
    return max(2, n - n % 2)


async def render_test_video(
    seconds: int,
    width: int,
    height: int,
    fps: int = 24,
    label: str = "",
    *,
    time_limit: float | None = None,
) -> bytes:
    """A silent H.264 (yuv420p) MP4 of exactly `seconds` at `width` x `height`.

    The picture is static SMPTE bars with a moving `testsrc2` tile: it moves (a player shows
    motion, a cover differs from later frames) yet encodes about twice as fast and five times
    smaller than a full-frame test pattern, because x264 finds the static bars free to code.
    """
    if not 1 <= seconds <= MAX_RENDER_SECONDS:
        raise ValueError(f"seconds out of range: {seconds} (1..{MAX_RENDER_SECONDS})")
    if not (16 <= width <= MAX_RENDER_SIDE and 16 <= height <= MAX_RENDER_SIDE):
        raise ValueError(f"size out of range: {width}x{height} (16..{MAX_RENDER_SIDE})")
    if width % 2 or height % 2:
        raise ValueError(f"yuv420p needs even dimensions, got {width}x{height}")
    if not 1 <= fps <= 60:
        raise ValueError(f"fps out of range: {fps} (1..60)")
    tile_w, tile_h = _even(width // 5), _even(height // 5)
    # The tile is a fifth of the frame, so W-w > 0 and it crosses the frame every 4 s.
    graph = "[0:v][1:v]overlay=x='mod(t*W/4,W-w)':y='(H-h)/2':shortest=1"
    text = _safe_label(label)
    font = _font()
    if text and font and await _has_filter("drawtext"):
        size = max(height // 18, 12)
        graph += (
            f",drawtext=fontfile={font}:text='{text}':x=w/40:y=h/40:fontsize={size}"
            ":fontcolor=white:box=1:boxcolor=black@0.5"
        )
    graph += ",format=yuv420p"
    budget = time_limit if time_limit is not None else 30 + 3 * seconds
    with tempfile.TemporaryDirectory(prefix="llmage-render-") as tmp:
        target = Path(tmp) / "out.mp4"
        bars = f"smptehdbars=size={width}x{height}:rate={fps}:duration={seconds}"
        tile = f"testsrc2=size={tile_w}x{tile_h}:rate={fps}"
        argv = [
            *["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y"],
            *("-f", "lavfi", "-i", bars, "-f", "lavfi", "-i", tile, "-filter_complex", graph),
            *["-c:v", "libx264", "-preset", "ultrafast", "-crf", "28", "-pix_fmt", "yuv420p"],
            *("-an", "-movflags", "+faststart", str(target)),
        ]
        await _run(argv, time_limit=budget)
        return await asyncio.to_thread(target.read_bytes)


async def _with_input_file(video: bytes) -> tuple[tempfile.TemporaryDirectory[str], str]:
    if not video:
        raise MediaToolError("empty video")
    tmp = tempfile.TemporaryDirectory(prefix="llmage-media-")
    path = Path(tmp.name) / "in.bin"
    try:
        await asyncio.to_thread(path.write_bytes, video)
    except BaseException:
        tmp.cleanup()
        raise
    return tmp, str(path)


async def first_frame_jpeg(video: bytes, *, time_limit: float = 60) -> bytes:
    """The cover: the first video frame as a JPEG at the video's own size."""
    tmp, path = await _with_input_file(video)
    with tmp:
        argv = [
            *["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-i"],
            path,
            *["-an", "-frames:v", "1", "-c:v", "mjpeg", "-q:v", "3", "-f", "image2pipe", "pipe:1"],
        ]
        out = await _run(argv, time_limit=time_limit)
    if not out.startswith(b"\xff\xd8"):
        raise MediaToolError("ffmpeg produced no JPEG frame (is the input a video?)")
    return out


async def probe(video: bytes, *, time_limit: float = 30) -> VideoInfo:
    """Duration, size and codec of the first video stream."""
    tmp, path = await _with_input_file(video)
    with tmp:
        entries = "stream=codec_name,width,height,duration:format=duration"
        argv = [
            *["ffprobe", "-v", "error", "-select_streams", "v:0", "-of", "json", "-show_entries"],
            entries,
            path,
        ]
        out = await _run(argv, time_limit=time_limit)
    try:
        data = json.loads(out)
        stream = data["streams"][0]
        raw = data.get("format", {}).get("duration") or stream.get("duration")
        return VideoInfo(
            duration=float(raw),
            width=int(stream["width"]),
            height=int(stream["height"]),
            codec=str(stream["codec_name"]),
        )
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise MediaToolError(f"ffprobe found no video stream with a duration: {exc}") from None


class SimRenderer:
    """The `sim` provider's renderer (providers.sim_media.MediaRenderer, matched structurally:
    storage and providers are sibling layers and may not import each other)."""

    def unavailable(self) -> str | None:
        missing = [name for name in ("ffmpeg", "ffprobe") if shutil.which(name) is None]
        if missing:
            return f"{' and '.join(missing)} not installed (Debian package `ffmpeg`)"
        return None

    async def video(self, seconds: int, width: int, height: int, fps: int, label: str) -> bytes:
        return await render_test_video(seconds, width, height, fps=fps, label=label)

    async def cover(self, video: bytes) -> bytes:
        return await first_frame_jpeg(video)

    async def image(self, width: int, height: int, seed: int) -> bytes:
        # Pillow work is CPU-bound: keep it off the event loop.
        return await asyncio.to_thread(render_test_image, width, height, "png", seed)
