"""The create request of one Vidu job: which endpoint, which JSON fields (PROVIDERS.md §5).

Endpoint by the job's inputs: reference images (`image_files`, mode r2v) → `reference2video`;
a first and a last frame (`image1_file` + `image2_file`) → `start-end2video`; a first frame
only → `img2video`; none → `text2video`. Images go as the signed URLs of our stored copies.

Seed parameters become Vidu's: `ratio` → `aspect_ratio` (text and reference modes only: the
image modes take the picture's own shape), `resolution` as is, `off_peak` `Y`/`N` → a boolean
(sent only when true), `duration` an integer. Our task id is the `payload` Vidu echoes back
(the recovery key). The caller's own `payload` and `callback_url` are never passed on.

Vendor extras (new-api `metadata` / `extra_body`) pass through an allow-list, and only where
the model takes them: Q3 models generate sound themselves (`audio`, `voice_id`) and ignore or
refuse `bgm`, `movement_amplitude` and `style`; older models have no `audio`. A value of the
wrong type fails the task as a bad request naming the field.

Reference mode on Q3 runs the mix model: `viduq3-pro` / `viduq3-turbo` → `viduq3-mix`
(seed 002's `-mix` names; PROVIDERS.md §11.8), and the Q2 variants → `viduq2`, the only Q2
name reference2video takes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from llmage.domain.errors import UpstreamError, UpstreamKind
from llmage.providers.tasks import TaskJob

TEXT, IMAGE, START_END, REFERENCE = "text2video", "img2video", "start-end2video", "reference2video"

_REFERENCE_MODEL = {
    "viduq3-pro": "viduq3-mix",
    "viduq3-turbo": "viduq3-mix",
    "viduq2-pro": "viduq2",
    "viduq2-turbo": "viduq2",
    "viduq2-pro-fast": "viduq2",
}
_WITH_RATIO = frozenset({TEXT, REFERENCE})
_EVERYWHERE = frozenset({TEXT, IMAGE, START_END, REFERENCE})


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in ("true", "1", "y", "yes"):
        return True
    if word in ("false", "0", "n", "no"):
        return False
    raise _bad(name, "must be true or false")


def _int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise _bad(name, "must be an integer")
    try:
        number = float(str(value).strip())
    except ValueError:
        raise _bad(name, "must be an integer") from None
    if not number.is_integer():
        raise _bad(name, "must be an integer")
    return int(number)


def _str(name: str, value: Any) -> str:
    if isinstance(value, dict | list | bool):
        raise _bad(name, "must be a string")
    return str(value)


def _bad(name: str, what: str) -> UpstreamError:
    return UpstreamError(UpstreamKind.BAD_REQUEST, f"Vidu parameter '{name}' {what}")


def is_q3(model: str) -> bool:
    return model.startswith("viduq3")


# name -> (type, endpoints that take it, which models: "q3" | "older" | "all")
_EXTRAS: dict[str, tuple[Callable[[str, Any], Any], frozenset[str], str]] = {
    "seed": (_int, _EVERYWHERE, "all"),
    "watermark": (_bool, _EVERYWHERE, "all"),
    "wm_position": (_int, _EVERYWHERE, "all"),
    "wm_url": (_str, _EVERYWHERE, "all"),
    "meta_data": (_str, _EVERYWHERE, "all"),
    "audio": (_bool, _EVERYWHERE, "q3"),
    "audio_type": (_str, _EVERYWHERE, "q3"),
    "voice_id": (_str, frozenset({TEXT, IMAGE, REFERENCE}), "q3"),
    "is_rec": (_bool, frozenset({IMAGE, START_END}), "all"),
    "bgm": (_bool, _EVERYWHERE, "older"),
    "movement_amplitude": (_str, _EVERYWHERE, "older"),
    "style": (_str, frozenset({TEXT}), "older"),
}


def durations(model: str, path: str) -> range:
    """The lengths (seconds) Vidu accepts for `model` on `path` (PROVIDERS.md §5). One catalog
    entry may offer several models (seed 000: viduq3-pro or viduq2-turbo), so the narrower
    model's limit is checked here, before anything is sent."""
    if model.startswith("viduq2"):
        return range(1, 11) if path == TEXT else range(1, 9)
    if model.startswith("viduq1"):
        return range(5, 6)
    if model == "vidu2.0":
        return range(4, 9, 4)
    return range(1, 17)


def _takes(model: str, who: str) -> bool:
    return who == "all" or (who == "q3") == is_q3(model)


def endpoint(job: TaskJob) -> str:
    if job.mode == "r2v" or job.files("image_files"):
        return REFERENCE
    first, last = job.files("image1_file"), job.files("image2_file")
    if last and not first:
        raise _bad("image2_file", "needs a first frame (image1_file) too")
    if first and last:
        return START_END
    return IMAGE if first else TEXT


def model_for(job: TaskJob, path: str) -> str:
    return _REFERENCE_MODEL.get(job.model, job.model) if path == REFERENCE else job.model


def images(job: TaskJob, path: str) -> list[str]:
    """The `images` of a create on a path that takes them (every path but TEXT)."""
    if path == REFERENCE:
        return [f.url for f in job.files("image_files")]
    if path == START_END:
        return [job.files("image1_file")[0].url, job.files("image2_file")[0].url]
    return [job.files("image1_file")[0].url]


def create_body(job: TaskJob) -> tuple[str, dict[str, Any]]:
    """(endpoint, JSON body) of the create for `job`."""
    path = endpoint(job)
    model = model_for(job, path)
    params: Mapping[str, Any] = job.params
    body: dict[str, Any] = {"model": model}
    if path != TEXT:
        body["images"] = images(job, path)
    prompt = params.get("prompt")
    if prompt is not None and str(prompt) != "":
        body["prompt"] = str(prompt)
    if params.get("duration") is not None:
        seconds = _int("duration", params["duration"])
        allowed = durations(model, path)
        if seconds not in allowed:
            shown = (
                ", ".join(map(str, allowed)) if len(allowed) < 4 else f"{allowed[0]}-{allowed[-1]}"
            )
            raise _bad("duration", f"must be {shown} seconds for {model} ({seconds} given)")
        body["duration"] = seconds
    if params.get("resolution"):
        body["resolution"] = str(params["resolution"]).lower()
    if params.get("ratio") and path in _WITH_RATIO:
        body["aspect_ratio"] = str(params["ratio"])
    if params.get("off_peak") is not None and _bool("off_peak", params["off_peak"]):
        body["off_peak"] = True  # never sent as false: the default, and not every model has it
    for name, (kind, paths, who) in _EXTRAS.items():
        value = params.get(name)
        if value is None or value == "" or path not in paths or not _takes(model, who):
            continue
        body[name] = kind(name, value)
    body["payload"] = job.task_id
    return path, body
