"""Which DashScope model, endpoint and request protocol serve a job, and what each model refuses
(PROVIDERS.md §2, §11.1, §12).

Protocols:
  T2V    legacy Wan text-to-video: `input.prompt`, `parameters.size` ("1280*720")
  I2V    legacy Wan first-frame: `input.img_url`, `parameters.resolution` ("720P"), never `size`
  KF2V   first + last frame (`wan2.2-kf2v-flash`, `wan2.1-kf2v-plus`) on its own endpoint:
         `input.first_frame_url` / `last_frame_url`, `parameters.resolution`; 5 s, no `duration`
  R2V    legacy Wan reference-to-video: `input.reference_urls`, `parameters.size`
  MEDIA  HappyHorse and Wan 2.7: `input.media: [{type, url}]`, `parameters.resolution` (+ `ratio`)
  IMAGE  qwen-image text-to-image (the asynchronous image-synthesis API)

There is no Wan 2.6 first+last-frame model: a job with two frames on a legacy Wan model goes to
the kf2v model (channel option `first_last_model`, default `wan2.2-kf2v-flash`; a Wan 2.7 model
there sends it on the media protocol instead).

Values a model refuses are never sent: they raise a BAD_REQUEST UpstreamError naming the
parameter and the allowed values, before any request leaves (the task fails with that reason,
its hold released, the channel not blamed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from llmage.domain.errors import UpstreamError, UpstreamKind
from llmage.providers.tasks import MediaInput, TaskJob

VIDEO_PATH = "services/aigc/video-generation/video-synthesis"
KF2V_PATH = "services/aigc/image2video/video-synthesis"
IMAGE_PATH = "services/aigc/text2image/image-synthesis"

DEFAULT_FIRST_LAST_MODEL = "wan2.2-kf2v-flash"

SIZES_480P = ("832*480", "480*832", "624*624")
SIZES_720P = ("1280*720", "720*1280", "960*960", "1088*832", "832*1088")
SIZES_1080P = ("1920*1080", "1080*1920", "1440*1440", "1632*1248", "1248*1632")
_TIER_OF_SIZE = {
    **dict.fromkeys(SIZES_480P, "480P"),
    **dict.fromkeys(SIZES_720P, "720P"),
    **dict.fromkeys(SIZES_1080P, "1080P"),
}
HAPPYHORSE_10_RATIOS = ("16:9", "9:16", "1:1", "4:3", "3:4")
HAPPYHORSE_11_RATIOS = (*HAPPYHORSE_10_RATIOS, "4:5", "5:4", "21:9", "9:21")


class Protocol(StrEnum):
    T2V = "t2v"
    I2V = "i2v"
    KF2V = "kf2v"
    R2V = "r2v"
    MEDIA = "media"
    IMAGE = "image"


@dataclass(frozen=True, slots=True)
class Route:
    protocol: Protocol
    model: str  # the upstream model actually asked for (kf2v when the job has two frames)
    path: str  # relative to the channel's `/api/v1` base


def refuse(param: str, message: str, allowed: Sequence[object] | None = None) -> UpstreamError:
    text = f"{message} (allowed: {', '.join(map(str, allowed))})" if allowed else message
    err = UpstreamError(UpstreamKind.BAD_REQUEST, text)
    err.param = param
    return err


def is_media_protocol(model: str) -> bool:
    return model.startswith("happyhorse") or model.startswith("wan2.7")


def split_inputs(job: TaskJob) -> tuple[list[MediaInput], list[MediaInput]]:
    """(frames, references), each in the catalog's slot order: reference-to-video jobs send
    every file as a reference; the others send their images as first (and last) frame."""
    files = [f for slot in job.media.values() for f in slot]
    if job.mode == "r2v":
        return [], files
    return files, []


def route(job: TaskJob, options: Mapping[str, Any]) -> Route:
    model = job.model
    if job.kind == "image":
        return Route(Protocol.IMAGE, model, IMAGE_PATH)
    if "kf2v" in model:
        return Route(Protocol.KF2V, model, KF2V_PATH)
    if is_media_protocol(model):
        return Route(Protocol.MEDIA, model, VIDEO_PATH)
    frames, refs = split_inputs(job)
    if job.mode == "r2v" or refs:
        return Route(Protocol.R2V, model, VIDEO_PATH)
    if len(frames) >= 2:
        target = str(options.get("first_last_model") or DEFAULT_FIRST_LAST_MODEL)
        if is_media_protocol(target):
            return Route(Protocol.MEDIA, target, VIDEO_PATH)
        return Route(Protocol.KF2V, target, KF2V_PATH)
    if frames:
        return Route(Protocol.I2V, model, VIDEO_PATH)
    return Route(Protocol.T2V, model, VIDEO_PATH)


# -- values -----------------------------------------------------------------------------------


def normal_size(raw: Any) -> str | None:
    """`1280*720` from `1280*720`, `1280x720` or `1280×720`; None when absent."""
    if raw is None or raw == "":
        return None
    text = str(raw).strip().replace("x", "*").replace("X", "*").replace("×", "*")
    return text.replace(" ", "")


def size_tier(size: str) -> str:
    """The resolution tier of a `W*H` size: the table of PROVIDERS §2, else by pixel count."""
    if size in _TIER_OF_SIZE:
        return _TIER_OF_SIZE[size]
    w, _, h = size.partition("*")
    try:
        pixels = int(w) * int(h)
    except ValueError:
        raise refuse("size", f"size '{size}' is not WIDTH*HEIGHT") from None
    return "480P" if pixels < 600_000 else "720P" if pixels < 1_500_000 else "1080P"


def resolution_of(params: Mapping[str, Any]) -> str | None:
    """`720P` from `resolution` (any case), else the tier of `size`, else None (upstream
    default)."""
    raw = params.get("resolution")
    if raw:
        return str(raw).strip().upper()
    size = normal_size(params.get("size"))
    return size_tier(size) if size else None


def check_size(model: str, size: str | None) -> None:
    if size is None or not model.startswith("wan2.6"):
        return
    # Wan 2.6 makes 720P and 1080P only: the 480P sizes the seed lists are refused upstream.
    allowed = SIZES_720P + SIZES_1080P
    if size not in allowed:
        raise refuse("size", f"size '{size}' is not offered by {model}", allowed)


def check_resolution(model: str, resolution: str | None, allowed: Sequence[str]) -> None:
    if resolution is not None and resolution not in allowed:
        lower = [a.lower() for a in allowed]
        raise refuse(
            "resolution", f"resolution '{resolution.lower()}' is not offered by {model}", lower
        )


def video_resolutions(protocol: Protocol, model: str) -> tuple[str, ...]:
    if protocol is Protocol.KF2V:
        return ("720P",) if "plus" in model else ("480P", "720P", "1080P")
    if protocol is Protocol.MEDIA or model.startswith("wan2.6"):
        return ("720P", "1080P")
    return ("480P", "720P", "1080P")


def check_duration(model: str, protocol: Protocol, duration: Any) -> int | None:
    if duration is None:
        return None
    try:
        seconds = int(duration)
    except (TypeError, ValueError):
        message = f"duration '{duration}' is not a whole number of seconds"
        raise refuse("duration", message) from None
    allowed: Sequence[int] | None = None
    if model.startswith("happyhorse"):
        allowed = range(3, 16)
    elif model.startswith("wan2.7"):
        allowed = range(2, 16)
    elif model.startswith("wan2.6") and protocol is Protocol.R2V:
        allowed = range(2, 11)
    elif model.startswith("wan2.6"):
        allowed = (5, 10, 15)
    if allowed is not None and seconds not in allowed:
        shown = list(allowed) if len(allowed) <= 3 else [f"{allowed[0]}-{allowed[-1]}"]
        raise refuse("duration", f"duration {seconds} is not offered by {model}", shown)
    return seconds


def happyhorse_ratios(model: str, options: Mapping[str, Any]) -> tuple[str, ...]:
    """Per-model ratio list (§11.1): the channel option `ratios` wins; 1.1 adds four ratios."""
    configured = options.get("ratios")
    if isinstance(configured, list | tuple) and configured:
        return tuple(str(r) for r in configured)
    return HAPPYHORSE_11_RATIOS if model.startswith("happyhorse-1.1") else HAPPYHORSE_10_RATIOS


def check_ratio(model: str, ratio: Any, options: Mapping[str, Any]) -> str | None:
    """The ratio to send, or None: `adaptive` (the seed's default) means "the model's own
    default" on the media protocol, which has no adaptive ratio — so nothing is sent."""
    if ratio is None or str(ratio).strip().lower() in ("", "adaptive"):
        return None
    text = str(ratio).strip()
    if model.startswith("happyhorse"):
        allowed = happyhorse_ratios(model, options)
        if text not in allowed:
            raise refuse("ratio", f"ratio '{text}' is not offered by {model}", allowed)
    return text
