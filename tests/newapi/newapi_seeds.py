"""The request examples of seeds 002 and 004, verbatim (JSON text as the seeds print it), with
the price each one should cost on the shipped catalog. Imported by name (tests/newapi is on
sys.path).

Image and callback URLs point at hosts the test network cannot reach; `local(text, base)`
rewrites `https://<host>/<path>` to `<base>/<host>/<path>` so a local server can answer."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class SeedExample:
    name: str
    body: str  # the JSON text of the seed
    llmid: str  # the catalog entry it must run on
    model: str  # the base model name the task records
    price: int  # micro-units: rate x seconds x multipliers


# Seed 002 (a reseller's Vidu names) -------------------------------------------------------------

SEED_002_T2V = """{
"model": "viduq3p-720p",
"prompt": "电影感航拍镜头,日出时分掠过未来海滨城市,光线柔和,镜头缓慢推进。",
"aspect_ratio": "16:9",
"duration": 5,
"extra_body": {
"audio": false,
"seed": 42,
"bgm": false
}
}"""

SEED_002_I2V = """{
"model": "viduq3t-540p",
"prompt": "人物缓慢抬头并看向镜头,动作自然,镜头轻微前推。",
"image": "https://example.com/source.png",
"duration": 5,
"extra_body": {
"seed": 42
}
}"""

SEED_002_FIRST_LAST = """{
"model": "viduq3p-1080p-offpeak",
"prompt": "人物从正面自然转向侧面,身份保持稳定,动作连贯。",
"image": "https://example.com/head.png",
"last_image": "https://example.com/tail.png",
"duration": 6
}"""

SEED_002_MIX = """{
"model": "viduq3p-mix-720p",
"prompt": "A @Image1 walking through a beach in the visual style of @Image2",
"reference_image_urls": [
"https://example.com/ref-1.png",
"https://example.com/ref-2.png"
],
"aspect_ratio": "16:9",
"duration": 5,
"extra_body": {
"audio": false,
"seed": 42
}
}"""

# Seed 004 (new-api: Kling, Jimeng, Vidu channels) ----------------------------------------------

SEED_004_KLING = """{
"model": "kling-v1",
"prompt": "一个穿着宇航服的宇航员在月球上行走, 高品质, 电影级",
"size": "1920x1080",
"image": "https://h2.inkwai.com/bs2/upload-ylab-stunt/se/ai_portal_queue_mmu_image_upscale_aiweb/3214b798-e1b4-4b00-b7af-72b5b0417420_raw_image_0.jpg",
"duration": 5,
"metadata": {
"seed": 20231234,
"negative_prompt": "模糊",
"image_tail": "https://h1.inkwai.com/bs2/upload-ylab-stunt/1fa0ac67d8ce6cd55b50d68b967b3a59.png"
}
}"""

SEED_004_JIMENG = """{
"model": "jimeng_vgfm_t2v_l20",
"prompt": "一个穿着宇航服的宇航员在月球上行走",
"image": "https://h2.inkwai.com/bs2/upload-ylab-stunt/se/ai_portal_queue_mmu_image_upscale_aiweb/3214b798-e1b4-4b00-b7af-72b5b0417420_raw_image_0.jpg",
"metadata": {
"req_key": "jimeng_vgfm_i2v_l20",
"image_urls": [
"https://h2.inkwai.com/bs2/upload-ylab-stunt/se/ai_portal_queue_mmu_image_upscale_aiweb/3214b798-e1b4-4b00-b7af-72b5b0417420_raw_image_0.jpg"
],
"aspect_ratio": "16:9"
}
}"""

SEED_004_VIDU = """{
"model": "viduq1",
"prompt": "一个穿着宇航服的宇航员在月球上行走, 高品质, 电影级",
"size": "1920x1080",
"image": "https://prod-ss-images.s3.cn-northwest-1.amazonaws.com.cn/vidu-maas/template/image2video.png",
"duration": 5,
"metadata": {
"duration": 5,
"seed": 0,
"resolution": "1080p",
"movement_amplitude": "auto",
"bgm": false,
"payload": "",
"callback_url": "https://your-callback-url.com/webhook"
}
}"""

# llmids of the entries (catalog/models.json).
VIDU_Q3_PRO_T2V = "r0ill7L0s6PtBS8mkmg-7"  # seed 000
VIDU_Q3_PRO_FIRST_LAST = "FK_h7FLYnosv2TkMN4ATC"  # seed 000, first + last frame required
VIDU_Q3_TURBO_T2V = "3HE7KFJ7x3QHTVEiM5xvq"
VIDU_Q3_I2V = "uJvMC95mczZLwKyOv4a6k"  # first frame, optional last frame; pro and turbo
VIDU_Q3_R2V = "wc4m40vpx56o-N2LovGs0"  # seed 002's mix mode
VIDU_Q1_T2V = "KeeIqsjA0B_PBOBc9CvN9"
VIDU_Q1_I2V = "Ye8oyKXdI-6zsLHQSGF4E"
KLING_V1_T2V = "AV38wk4OdtbrT_5XHanLO"
KLING_V1_I2V = "gmZnaxnP6dtVRR-4otnwL"
JIMENG_T2V = "Bsy6AvQ1kFzuhQl8N6j4k"
JIMENG_I2V = "8u6Q25K1EpRa27fke8pcQ"

# Prices by hand from the catalog's list prices (micro-units per second), not from the code.
EXAMPLES = [
    # viduq3-pro 720p 0.6/s x 5 s
    SeedExample("002-t2v", SEED_002_T2V, VIDU_Q3_PRO_T2V, "viduq3-pro", 3_000_000),
    # viduq3-turbo 540p: 0.3/s x 0.6 (turbo) x 5 s
    SeedExample("002-i2v", SEED_002_I2V, VIDU_Q3_I2V, "viduq3-turbo", 900_000),
    # viduq3-pro 1080p 0.8/s x 6 s x 0.5 (off-peak)
    SeedExample(
        "002-first-last", SEED_002_FIRST_LAST, VIDU_Q3_PRO_FIRST_LAST, "viduq3-pro", 2_400_000
    ),
    # viduq3-pro reference mode 720p 0.6/s x 5 s
    SeedExample("002-mix", SEED_002_MIX, VIDU_Q3_R2V, "viduq3-pro", 3_000_000),
    # kling-v1 std 0.2/s x 5 s
    SeedExample("004-kling", SEED_004_KLING, KLING_V1_I2V, "kling-v1", 1_000_000),
    # jimeng S2.0 0.3/s x 5 s (default duration)
    SeedExample("004-jimeng", SEED_004_JIMENG, JIMENG_I2V, "jimeng_vgfm_i2v_l20", 1_500_000),
    # viduq1 1080p 0.5/s x 5 s
    SeedExample("004-vidu", SEED_004_VIDU, VIDU_Q1_I2V, "viduq1", 2_500_000),
]

SIM_MODELS = [
    "viduq3-pro",
    "viduq3-turbo",
    "viduq1",
    "kling-v1",
    "jimeng_vgfm_t2v_l20",
    "jimeng_vgfm_i2v_l20",
]

_URL = re.compile(r"https://([A-Za-z0-9.-]+)/")


def local(text: str, base: str) -> str:
    """Every https URL of `text` moved under `base` (http://127.0.0.1:port), host kept as the
    first path segment."""
    return _URL.sub(lambda m: f"{base.rstrip('/')}/{m[1]}/", text)
