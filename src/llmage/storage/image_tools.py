"""Deterministic test images (Pillow): what the `sim` provider hands back for image jobs.

The same (size, format, seed) always gives the same bytes, so a seed taken from the prompt hash
makes sim answers reproducible and lets content-addressed storage deduplicate them. Rendering is
CPU work: call it through `asyncio.to_thread` from async code.
"""

from __future__ import annotations

import io
import random
from typing import Literal

from PIL import Image, ImageDraw

ImageFormat = Literal["png", "jpeg"]

MAX_SIDE = 8192  # a sanity bound against accidental gigapixel requests, not a product limit
_BASE = 256  # gradients are built at this size and scaled up: far cheaper than per-pixel maths


def _palette(rng: random.Random) -> list[tuple[int, int, int]]:
    return [(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(3)]


def _background(rng: random.Random, width: int, height: int) -> Image.Image:
    """Three seeded colours blended by a rotated linear and a radial gradient."""
    c1, c2, c3 = _palette(rng)
    # Rotate an oversized ramp and crop its centre, so no empty corners show after rotation.
    big = _BASE * 3 // 2
    linear = (
        Image.linear_gradient("L")
        .resize((big, big), Image.Resampling.BILINEAR)
        .rotate(rng.uniform(0, 360), resample=Image.Resampling.BILINEAR)
    )
    edge = (big - _BASE) // 2
    linear = linear.crop((edge, edge, edge + _BASE, edge + _BASE))
    radial = Image.radial_gradient("L")
    size = (_BASE, _BASE)
    base = Image.composite(Image.new("RGB", size, c1), Image.new("RGB", size, c2), linear)
    base = Image.composite(base, Image.new("RGB", size, c3), radial)
    return base.resize((width, height), Image.Resampling.BILINEAR)


def _shapes(rng: random.Random, image: Image.Image) -> None:
    """A few seeded shapes so different seeds are told apart at a glance, not just by hue."""
    draw = ImageDraw.Draw(image)
    width, height = image.size
    unit = max(min(width, height) // 8, 1)
    for _ in range(3 + rng.randrange(4)):
        x, y = rng.randrange(width), rng.randrange(height)
        r = unit // 2 + rng.randrange(unit)
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        box = (x - r, y - r, x + r, y + r)
        if rng.random() < 0.5:
            draw.ellipse(box, outline=colour, width=max(unit // 10, 1))
        else:
            draw.rectangle(box, outline=colour, width=max(unit // 10, 1))


def render_test_image(width: int, height: int, fmt: str = "png", seed: int = 0) -> bytes:
    """A real PNG or JPEG of exactly `width` x `height`, a pure function of its arguments."""
    kind = fmt.lower()
    if kind == "jpg":
        kind = "jpeg"
    if kind not in ("png", "jpeg"):
        raise ValueError(f"unsupported image format: {fmt!r} (png or jpeg)")
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise ValueError(f"image size out of range: {width}x{height} (1..{MAX_SIDE} per side)")
    rng = random.Random(seed)
    image = _background(rng, width, height)
    _shapes(rng, image)
    out = io.BytesIO()
    if kind == "png":
        # Level 1: the gradients compress well enough and big images stay fast to encode.
        image.save(out, format="PNG", compress_level=1)
    else:
        image.save(out, format="JPEG", quality=90)
    return out.getvalue()
