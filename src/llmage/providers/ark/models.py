"""What each Seedance / Seedream model accepts (PROVIDERS.md §3, §4, §11.5): pure data.

A model is recognised by its family inside the name, so Volcengine (`doubao-seedance-2-0-260128`)
and BytePlus (`dreamina-seedance-2-0-260128`, `seedance-1-5-pro-251215`) ids share one table.
The rules decide which request fields may be sent at all: `seed`, `service_tier` and
`camera_fixed` never reach 2.0 (it answers 400 or silently ignores them), `camera_fixed` never
goes with reference images, 1080p never reaches 2.0 fast / mini, and reference inputs only reach
models that have a reference mode.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

ALL_RATIOS = ("16:9", "4:3", "1:1", "3:4", "9:16", "21:9", "adaptive")


@dataclass(frozen=True, slots=True)
class VideoRules:
    family: str
    resolutions: tuple[str, ...]
    durations: tuple[int, int]  # inclusive range of whole seconds
    auto_duration: bool = False  # `-1`: the model picks the length (bill the returned one)
    ratios: tuple[str, ...] = ALL_RATIOS
    seed: bool = True
    camera_fixed: bool = True
    service_tier: bool = True  # `flex` offline tier: 1.x only, never 2.0
    generate_audio: bool = False
    text_only: bool = True  # a prompt without any image is a valid request
    first_frame: bool = True
    last_frame: bool = True  # first + last frame
    reference_images: int = 0  # most `reference_image` items (0: no reference mode)
    reference_videos: int = 0
    reference_audios: int = 0

    @property
    def reference(self) -> bool:
        return self.reference_images > 0


@dataclass(frozen=True, slots=True)
class ImageRules:
    family: str
    presets: tuple[str, ...]  # `size` words (`1K`, `2K`, `4K`); WxH is checked by pixels
    min_pixels: int
    max_pixels: int
    max_inputs: int  # reference images (0: generation only)
    sequential: bool  # several images per request (`sequential_image_generation`)
    max_total: int = 15  # input + output images, per request
    seed: bool = False
    adaptive_size: bool = False  # SeedEdit: `size` "adaptive" only


def _seedance_2(family: str, resolutions: tuple[str, ...]) -> VideoRules:
    """2.0: online only, no seed / camera_fixed / service_tier, audio, full reference mode."""
    return VideoRules(
        family, resolutions, (4, 15), auto_duration=True, seed=False, camera_fixed=False,
        service_tier=False, generate_audio=True, reference_images=9, reference_videos=3,
        reference_audios=3,
    )  # fmt: skip


# Most specific first: "seedance-2-0-fast" must win over "seedance-2-0".
VIDEO_FAMILIES: tuple[VideoRules, ...] = (
    _seedance_2("seedance-2-0-fast", ("480p", "720p")),
    _seedance_2("seedance-2-0-mini", ("480p", "720p")),
    _seedance_2("seedance-2-0", ("480p", "720p", "1080p", "4k")),
    VideoRules("seedance-1-5-pro", ("480p", "720p", "1080p"), (4, 12), generate_audio=True),
    VideoRules("seedance-1-0-pro-fast", ("480p", "720p", "1080p"), (2, 12), last_frame=False),
    VideoRules("seedance-1-0-pro", ("480p", "720p", "1080p"), (2, 12)),
    VideoRules(
        "seedance-1-0-lite-t2v",
        ("480p", "720p", "1080p"),
        (2, 12),
        first_frame=False,
        last_frame=False,
    ),
    VideoRules(
        "seedance-1-0-lite-i2v",
        ("480p", "720p", "1080p"),
        (2, 12),
        text_only=False,
        reference_images=4,
    ),
)

IMAGE_FAMILIES: tuple[ImageRules, ...] = (
    ImageRules("seedream-4-5", ("2K", "4K"), 3_686_400, 16_777_216, 14, True),
    ImageRules("seedream-4-0", ("1K", "2K", "4K"), 921_600, 16_777_216, 10, True),
    ImageRules("seedream-3-0", (), 262_144, 4_194_304, 0, False, max_total=1, seed=True),
    ImageRules("seededit-3-0", (), 0, 0, 1, False, max_total=2, seed=True, adaptive_size=True),
)


def video_rules(model: str) -> VideoRules | None:
    low = model.lower()
    return next((r for r in VIDEO_FAMILIES if r.family in low), None)


def image_rules(model: str) -> ImageRules | None:
    low = model.lower()
    return next((r for r in IMAGE_FAMILIES if r.family in low), None)


def catalog_name(model: str, model_map: Mapping[str, str]) -> str:
    """The catalog name behind an upstream id: a channel may map a model to an endpoint id
    (`ep-2025...`) that says nothing about its family; the channel's map says which it is."""
    return next((name for name, upstream in model_map.items() if upstream == model), model)
