"""Build Ark create bodies from a typed job: pure, and refusing before anything is sent.

Video (`POST /contents/generations/tasks`): `{"model", "content": [...], "resolution", "ratio",
"duration", ...}` where `content` holds the prompt (`type: text`) and the inputs as URLs with a
role: `first_frame` / `last_frame` (image to video), `reference_image` / `reference_video` /
`reference_audio` (reference mode). The modes are mutually exclusive. Parameters come from the
catalog's seed fields (prompt, ratio, resolution, duration, files); vendor extras (`seed`,
`camera_fixed`, `watermark`, `generate_audio`) are sent only to models that take them.

A request the model would refuse is refused here, with the parameter and its allowed values,
and nothing goes upstream: 1080p on 2.0 fast, reference inputs on a model without a reference
mode (unless the channel routes reference mode elsewhere), a last frame without a first.

Image (`POST /images/generations`, synchronous): `{"model", "prompt", "size", "image",
"sequential_image_generation", "response_format": "url"}`; `n` > 1 asks Seedream 4.x for a set
of up to `n` images.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llmage.domain.errors import UpstreamError, UpstreamKind
from llmage.providers.ark.models import (
    ImageRules,
    VideoRules,
    catalog_name,
    image_rules,
    video_rules,
)
from llmage.providers.tasks import MediaInput, TaskJob

_WXH = re.compile(r"^\s*(\d{2,5})\s*[xX*×]\s*(\d{2,5})\s*$")
_SEED_MAX = 2**32 - 1
# Ratios the seeds offer under another spelling: "keep the input's ratio" is Ark's adaptive.
_RATIO_SPELLING = {"keep_ratio": "adaptive"}


def refuse(param: str, message: str, allowed: Sequence[object] = ()) -> UpstreamError:
    """The request cannot be served by this model: a 400-class failure naming the field."""
    if allowed:
        message = f"{message} (allowed: {', '.join(map(str, allowed))})"
    return UpstreamError(UpstreamKind.BAD_REQUEST, message, upstream_code=f"invalid_{param}")


@dataclass(frozen=True, slots=True)
class VideoPlan:
    model: str  # the upstream model that receives the task (after reference routing)
    rules: VideoRules | None  # None: a model this table does not know (sent as asked)
    body: dict[str, Any]


def _files(job: TaskJob, prefix: str) -> list[MediaInput]:
    return [f for files in job.media.values() for f in files if f.content_type.startswith(prefix)]


def _item(kind: str, url: str, role: str) -> dict[str, Any]:
    return {"type": kind, kind: {"url": url}, "role": role}


def _frames(job: TaskJob, model: str, rules: VideoRules | None) -> list[dict[str, Any]]:
    """First frame, or first + last: `image1_file` then `image2_file` (seed slot order)."""
    first = list(job.files("image1_file"))
    last = list(job.files("image2_file"))
    others = [
        f
        for slot, files in job.media.items()
        if slot not in ("image1_file", "image2_file")
        for f in files
        if f.content_type.startswith("image/")
    ]
    if not first and not last:
        first, last = others[:1], others[1:2]
        others = others[2:]
    if others or len(first) > 1 or len(last) > 1:
        raise refuse("image2_file", f"{model} takes at most a first and a last frame")
    if last and not first:
        raise refuse("image1_file", "A last frame (image2_file) needs a first frame (image1_file)")
    if rules is not None:
        if first and not rules.first_frame:
            raise refuse("image1_file", f"{model} does not take a first-frame image")
        if last and not rules.last_frame:
            raise refuse("image2_file", f"{model} does not take a last-frame image")
        if not first and not rules.text_only:
            raise refuse("image1_file", f"{model} needs an input image")
    items = [_item("image_url", f.url, "first_frame") for f in first]
    items += [_item("image_url", f.url, "last_frame") for f in last]
    return items


def _references(job: TaskJob, model: str, rules: VideoRules | None) -> list[dict[str, Any]]:
    images, videos, audios = _files(job, "image/"), _files(job, "video/"), _files(job, "audio/")
    if not images and not videos:
        # Ark refuses audio on its own, and a reference task with nothing to refer to.
        raise refuse("image_files", "Reference mode needs at least one image or video")
    if rules is not None:
        limits = (
            ("image_files", images, rules.reference_images, "reference images"),
            ("video_files", videos, rules.reference_videos, "reference videos"),
            ("audio_files", audios, rules.reference_audios, "reference audio files"),
        )
        for param, got, most, what in limits:
            if len(got) > most:
                raise refuse(param, f"{model} takes at most {most} {what}, not {len(got)}")
    items = [_item("image_url", f.url, "reference_image") for f in images]
    items += [_item("video_url", f.url, "reference_video") for f in videos]
    items += [_item("audio_url", f.url, "reference_audio") for f in audios]
    return items


def _is_reference(job: TaskJob) -> bool:
    return job.mode == "r2v" or bool(_files(job, "video/") or _files(job, "audio/"))


def _route(
    job: TaskJob, model_map: Mapping[str, str], reference_model: str
) -> tuple[str, VideoRules | None]:
    """The upstream model and its rules; reference mode on a model without one goes to the
    channel's reference model (PROVIDERS §12: route a mode to the model that has it)."""
    rules = video_rules(job.model) or video_rules(catalog_name(job.model, model_map))
    if not _is_reference(job) or rules is None or rules.reference:
        return job.model, rules
    upstream = model_map.get(reference_model, reference_model)
    routed = video_rules(upstream) or video_rules(reference_model)
    if routed is None or not routed.reference:
        raise refuse("image_files", f"{reference_model} has no reference-to-video mode")
    return upstream, routed


def _bool(params: Mapping[str, Any], name: str) -> bool | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "y", "n"):
        return value.strip().lower() in ("true", "y")
    raise refuse(name, f"'{name}' must be true or false")


def _seed(params: Mapping[str, Any]) -> int | None:
    value = params.get("seed")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise refuse("seed", "'seed' must be an integer from -1 to 4294967295")
    try:
        seed = int(value)
    except ValueError:
        raise refuse("seed", "'seed' must be an integer from -1 to 4294967295") from None
    if not -1 <= seed <= _SEED_MAX:
        raise refuse("seed", "'seed' must be an integer from -1 to 4294967295")
    return seed


def _video_params(
    job: TaskJob, model: str, rules: VideoRules | None, reference: bool
) -> dict[str, Any]:
    p = job.params
    out: dict[str, Any] = {}
    if (resolution := p.get("resolution")) is not None:
        resolution = str(resolution).lower()
        if rules is not None and resolution not in rules.resolutions:
            raise refuse(
                "resolution", f"{model} does not offer resolution {resolution}", rules.resolutions
            )
        out["resolution"] = resolution
    if (ratio := p.get("ratio")) is not None:
        ratio = _RATIO_SPELLING.get(str(ratio), str(ratio))
        if rules is not None and ratio not in rules.ratios:
            raise refuse("ratio", f"{model} does not offer ratio {ratio}", rules.ratios)
        out["ratio"] = ratio
    if (duration := p.get("duration")) is not None:
        seconds = int(duration)
        if rules is not None:
            low, high = rules.durations
            if not (low <= seconds <= high or (seconds == -1 and rules.auto_duration)):
                raise refuse("duration", f"{model} makes videos of {low} to {high} seconds")
        out["duration"] = seconds
    if rules is None:
        return out  # unknown family: nothing beyond the seed fields
    extras: dict[str, Any] = {
        "seed": _seed(p) if rules.seed else None,
        "camera_fixed": _bool(p, "camera_fixed") if rules.camera_fixed and not reference else None,
        "watermark": _bool(p, "watermark"),
        "generate_audio": _bool(p, "generate_audio") if rules.generate_audio else None,
    }
    out.update({k: v for k, v in extras.items() if v is not None})
    return out


def video_plan(job: TaskJob, model_map: Mapping[str, str], reference_model: str) -> VideoPlan:
    model, rules = _route(job, model_map, reference_model)
    reference = _is_reference(job)
    content: list[dict[str, Any]] = []
    prompt = str(job.params.get("prompt") or "").strip()
    if prompt:
        content.append({"type": "text", "text": prompt})
    content += _references(job, model, rules) if reference else _frames(job, model, rules)
    if not content:
        raise refuse("prompt", "A prompt or an input image is required")
    body: dict[str, Any] = {"model": model, "content": content}
    body.update(_video_params(job, model, rules, reference))
    return VideoPlan(model, rules, body)


def expected_echo(job: TaskJob) -> dict[str, Any]:
    """What the upstream task echoes of our request (`resolution`, `ratio` unless adaptive,
    `duration` unless the model chose it): the marks a recovered task must carry."""
    p = job.params
    out: dict[str, Any] = {}
    if p.get("resolution") is not None:
        out["resolution"] = str(p["resolution"]).lower()
    ratio = _RATIO_SPELLING.get(str(p.get("ratio")), str(p.get("ratio")))
    if p.get("ratio") is not None and ratio != "adaptive":
        out["ratio"] = ratio
    if p.get("duration") is not None and int(p["duration"]) > 0:
        out["duration"] = int(p["duration"])
    return out


# -- images --------------------------------------------------------------------------------------


def _size(value: Any, model: str, rules: ImageRules) -> str | None:
    if rules.adaptive_size:
        return "adaptive"
    if value is None:
        return None
    text = str(value).strip()
    preset = next((p for p in rules.presets if p.lower() == text.lower()), None)
    if preset is not None:
        return preset
    match = _WXH.match(text)
    if match is not None:
        w, h = int(match[1]), int(match[2])
        if rules.min_pixels <= w * h <= rules.max_pixels and 1 / 16 <= w / h <= 16:
            return f"{w}x{h}"
    allowed = (*rules.presets, "WxH") if rules.presets else ("WxH",)
    raise refuse("size", f"{model} does not offer size {text}", allowed)


def image_body(job: TaskJob, model_map: Mapping[str, str], response_format: str) -> dict[str, Any]:
    rules = image_rules(job.model) or image_rules(catalog_name(job.model, model_map))
    inputs = [f.url for f in _files(job, "image/")]
    n = int(job.params.get("n") or 1)
    body: dict[str, Any] = {"model": job.model, "prompt": str(job.params.get("prompt") or "")}
    if rules is None:
        if job.params.get("size") is not None:
            body["size"] = str(job.params["size"])
    else:
        if len(inputs) > rules.max_inputs:
            most = rules.max_inputs
            raise refuse("image_files", f"{job.model} takes at most {most} input images")
        if n > 1 and not rules.sequential:
            raise refuse("n", f"{job.model} makes one image per request", (1,))
        if len(inputs) + n > rules.max_total:
            raise refuse("n", f"{job.model} makes at most {rules.max_total} images in all")
        if (size := _size(job.params.get("size"), job.model, rules)) is not None:
            body["size"] = size
        if rules.seed and (seed := _seed(job.params)) is not None:
            body["seed"] = seed
    if inputs:
        body["image"] = inputs[0] if len(inputs) == 1 else inputs
    if n > 1:
        body["sequential_image_generation"] = "auto"
        body["sequential_image_generation_options"] = {"max_images": n}
    if (watermark := _bool(job.params, "watermark")) is not None:
        body["watermark"] = watermark
    body["response_format"] = response_format
    return body
