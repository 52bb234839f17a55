"""Create-request bodies, one builder per protocol of models.py: `{"model", "input", "parameters"}`
(PROVIDERS.md §2). Only documented fields for that model go upstream: the catalog's validated
parameters mapped to DashScope's names, plus the extras DashScope documents for the model:
`watermark`, `prompt_extend` (not HappyHorse) and `seed`, from the request or else from the
channel options of the same names. Nothing else from a request ever reaches the body.

Images go as `data:` URIs (base64) by default, so the upstream need not reach our media links;
the channel option `media_urls: true` sends our signed media URLs instead. Videos are always URLs
(DashScope takes no inline video).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from llmage.providers.dashscope.models import (
    Protocol,
    Route,
    check_duration,
    check_ratio,
    check_resolution,
    check_size,
    normal_size,
    refuse,
    resolution_of,
    split_inputs,
    video_resolutions,
)
from llmage.providers.tasks import MediaInput, TaskJob

Body = dict[str, Any]


def media_value(f: MediaInput, options: Mapping[str, Any]) -> str:
    """What DashScope is given for one input file: a URL, or a base64 `data:` URI (images)."""
    if f.content_type.startswith("image/") and not options.get("media_urls"):
        assert f.data is not None, "the executor loads bytes when needs_bytes() is True"
        return f"data:{f.content_type};base64,{base64.b64encode(f.data).decode('ascii')}"
    return f.url


_TRUE = frozenset({"true", "1", "yes", "y", "on"})
_FALSE = frozenset({"false", "0", "no", "n", "off"})
SEED_MAX = 2_147_483_647


def _flag(params: Mapping[str, Any], options: Mapping[str, Any], name: str) -> bool | None:
    """A documented yes/no extra: the request's value, else the channel's option."""
    raw = params.get(name)
    if raw is None or raw == "":
        raw = options.get(name)
    if raw is None or isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise refuse(name, f"{name} must be true or false", ["true", "false"])


def _seed(params: Mapping[str, Any]) -> int | None:
    raw = params.get("seed")
    if raw is None or raw == "":
        return None
    try:
        seed = int(str(raw).strip()) if not isinstance(raw, bool) else -1
    except ValueError:
        seed = -1
    if not 0 <= seed <= SEED_MAX:
        raise refuse("seed", f"seed must be a whole number from 0 to {SEED_MAX}")
    return seed


def _common(params: Mapping[str, Any], options: Mapping[str, Any], *, extend: bool) -> Body:
    """The extras every DashScope model documents (`watermark`, `seed`; `prompt_extend` where
    `extend`): the request's value, else the channel option (never the seed, which is the
    request's own); any other extra a request carries is not sent."""
    out: Body = {}
    names = ("watermark", "prompt_extend") if extend else ("watermark",)
    for name in names:
        value = _flag(params, options, name)
        if value is not None:
            out[name] = value
    seed = _seed(params)
    if seed is not None:
        out["seed"] = seed
    return out


def _text(params: Mapping[str, Any], *, negative: bool = True) -> Body:
    out: Body = {"prompt": str(params.get("prompt") or "")}
    if negative and params.get("negative_prompt"):
        out["negative_prompt"] = str(params["negative_prompt"])
    return out


def _legacy_t2v(job: TaskJob, route: Route, options: Mapping[str, Any]) -> tuple[Body, Body]:
    size = normal_size(job.params.get("size"))
    check_size(route.model, size)
    parameters = _common(job.params, options, extend=True)
    if size:
        parameters["size"] = size
    duration = check_duration(route.model, route.protocol, job.params.get("duration"))
    if duration is not None:
        parameters["duration"] = duration
    return _text(job.params), parameters


def _legacy_i2v(job: TaskJob, route: Route, options: Mapping[str, Any]) -> tuple[Body, Body]:
    frames, _ = split_inputs(job)
    if len(frames) != 1:
        raise refuse("image1_file", f"{route.model} takes exactly one first-frame image")
    resolution = resolution_of(job.params)
    check_resolution(route.model, resolution, video_resolutions(route.protocol, route.model))
    inputs = {**_text(job.params), "img_url": media_value(frames[0], options)}
    parameters = _common(job.params, options, extend=True)
    if resolution:
        parameters["resolution"] = resolution  # the aspect comes from the image: never `size`
    duration = check_duration(route.model, route.protocol, job.params.get("duration"))
    if duration is not None:
        parameters["duration"] = duration
    return inputs, parameters


def _kf2v(job: TaskJob, route: Route, options: Mapping[str, Any]) -> tuple[Body, Body]:
    frames, _ = split_inputs(job)
    if len(frames) != 2 or not all(f.content_type.startswith("image/") for f in frames):
        raise refuse("image2_file", f"{route.model} takes a first and a last frame image")
    resolution = resolution_of(job.params)
    check_resolution(route.model, resolution, video_resolutions(route.protocol, route.model))
    inputs = {
        **_text(job.params),
        "first_frame_url": media_value(frames[0], options),
        "last_frame_url": media_value(frames[1], options),
    }
    parameters = _common(job.params, options, extend=True)
    if resolution:
        parameters["resolution"] = resolution
    # kf2v makes 5-second videos and documents no `duration`: none is sent; the charge
    # follows the seconds the provider reports.
    return inputs, parameters


def _legacy_r2v(job: TaskJob, route: Route, options: Mapping[str, Any]) -> tuple[Body, Body]:
    _, refs = split_inputs(job)
    videos = [f for f in refs if f.content_type.startswith("video/")]
    if not refs or len(refs) > 5 or len(videos) > 3:
        raise refuse(
            "image_files",
            f"{route.model} takes 1 to 5 reference images or videos, at most 3 of them videos",
        )
    if any(not f.content_type.startswith(("image/", "video/")) for f in refs):
        raise refuse("image_files", f"{route.model} takes reference images and videos only")
    inputs = {**_text(job.params), "reference_urls": [media_value(f, options) for f in refs]}
    _, parameters = _legacy_t2v(job, route, options)
    return inputs, parameters


def _media(job: TaskJob, route: Route, options: Mapping[str, Any]) -> tuple[Body, Body]:
    model, happyhorse = route.model, route.model.startswith("happyhorse")
    frames, refs = split_inputs(job)
    media: list[Body] = []
    if refs:
        for f in refs:
            kind = "reference_video" if f.content_type.startswith("video/") else "reference_image"
            if happyhorse and kind != "reference_image":
                raise refuse("image_files", f"{model} takes reference images only")
            media.append({"type": kind, "url": media_value(f, options)})
        if happyhorse and len(refs) > 9:
            raise refuse("image_files", f"{model} takes 1 to 9 reference images")
    elif frames:
        if len(frames) > (1 if happyhorse else 2):
            raise refuse("image2_file", f"{model} takes one first-frame image, no last frame")
        for kind, f in zip(("first_frame", "last_frame"), frames, strict=False):
            media.append({"type": kind, "url": media_value(f, options)})
    inputs: Body = _text(job.params, negative=not happyhorse)
    if media:
        inputs["media"] = media
    resolution = resolution_of(job.params)
    check_resolution(model, resolution, video_resolutions(route.protocol, model))
    parameters = _common(job.params, options, extend=not happyhorse)
    if resolution:
        parameters["resolution"] = resolution
    if not frames:  # first-frame jobs take the image's aspect: no ratio
        ratio = check_ratio(model, job.params.get("ratio"), options)
        if ratio:
            parameters["ratio"] = ratio
    duration = check_duration(model, route.protocol, job.params.get("duration"))
    if duration is not None:
        parameters["duration"] = duration
    return inputs, parameters


def _image(job: TaskJob, route: Route, options: Mapping[str, Any]) -> tuple[Body, Body]:
    if job.media:
        raise refuse("image", f"{route.model} on DashScope is text-to-image only")
    n = int(job.params.get("n") or 1)
    if n != 1:
        # The asynchronous qwen-image API makes one image per task.
        raise refuse("n", f"{route.model} makes one image per request", [1])
    parameters = _common(job.params, options, extend=True)
    size = normal_size(job.params.get("size"))
    if size:
        parameters["size"] = size
    parameters["n"] = 1
    if job.params.get("negative_prompt"):
        parameters["negative_prompt"] = str(job.params["negative_prompt"])
    return _text(job.params, negative=False), parameters


_BUILDERS: dict[Protocol, Callable[[TaskJob, Route, Mapping[str, Any]], tuple[Body, Body]]] = {
    Protocol.T2V: _legacy_t2v,
    Protocol.I2V: _legacy_i2v,
    Protocol.KF2V: _kf2v,
    Protocol.R2V: _legacy_r2v,
    Protocol.MEDIA: _media,
    Protocol.IMAGE: _image,
}


def create_body(job: TaskJob, route: Route, options: Mapping[str, Any]) -> Body:
    inputs, parameters = _BUILDERS[route.protocol](job, route, options)
    body: Body = {"model": route.model, "input": inputs}
    if parameters:
        body["parameters"] = parameters
    return body


def images_of(job: TaskJob) -> Sequence[MediaInput]:
    return [f for files in job.media.values() for f in files if f.content_type.startswith("image/")]
