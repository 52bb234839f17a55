"""Jimeng end to end: the real server (SQLite and PostgreSQL) submits through the public API
(native /llmage/video, OpenAI /v1/videos and new-api /v1/video/generations with seed 004's
request) to the fake Jimeng, which verifies every V4 signature. Results are re-hosted before the
fake's URLs expire, the cover is cut from the first frame (Jimeng has none), the charge is the
catalog price of the frames made, and failures release the hold."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from jimeng_fake import JimengFake

from conftest import Stack
from llmage.domain.credentials import KeyPair
from support.fakes import Lifecycle, tiny_jpeg, tiny_mp4, tiny_png
from support.fakes.drive import (
    account,
    drive_native,
    drive_openai_video,
    rehosted,
    video_content,
    wire_channel,
)

JIMENG_T2V = "Bsy6AvQ1kFzuhQl8N6j4k"  # jimeng_vgfm_t2v_l20
JIMENG_I2V = "8u6Q25K1EpRa27fke8pcQ"  # jimeng_vgfm_i2v_l20
BADKEY_T2V = "AV38wk4OdtbrT_5XHanLO"  # served here only by a Jimeng channel with a wrong secret
JIMENG30_T2V_1080P = "AK9S5-ygrzddQb85qLGmq"  # jimeng_t2v_v30_1080p
JIMENG30_FIRST_TAIL = "VKuIsOorr3zMMxdHUIGxI"  # jimeng_i2v_first_tail_v30
JIMENG30_I2V = "5DevyiaMzMYbmRBC4bZm8"  # jimeng_i2v_first_v30, on a channel sending base64
PER_SECOND = 300_000  # catalog price of the S2.0 and 3.0 720p models
PER_SECOND_1080P = 500_000
SEED_004_IMAGE = (
    "https://h2.inkwai.com/bs2/upload-ylab-stunt/se/ai_portal_queue_mmu_image_upscale_aiweb/"
    "3214b798-e1b4-4b00-b7af-72b5b0417420_raw_image_0.jpg"
)
SEED_004_JIMENG = {
    "model": "jimeng_vgfm_t2v_l20",
    "prompt": "一个穿着宇航服的宇航员在月球上行走",
    "image": SEED_004_IMAGE,
    "metadata": {
        "req_key": "jimeng_vgfm_i2v_l20",
        "image_urls": [SEED_004_IMAGE],
        "aspect_ratio": "16:9",
    },
}


@pytest.fixture(scope="module")
def fake(stack: Stack) -> Iterator[JimengFake]:
    up = JimengFake()
    stack.admin.call(up.start())
    wire_channel(
        stack,
        up,
        provider="jimeng",
        name=f"jimeng-{stack.backend}",
        credentials=KeyPair(up.access_key, up.secret_key),
        models=[
            "jimeng_vgfm_t2v_l20",
            "jimeng_vgfm_i2v_l20",
            "jimeng_t2v_v30_1080p",
            "jimeng_i2v_first_tail_v30",
        ],
    )
    wire_channel(
        stack,
        up,
        provider="jimeng",
        name=f"jimeng-badkey-{stack.backend}",
        credentials=KeyPair(up.access_key, "not-the-secret-key"),
        models=["kling-v1"],
        model_map={"kling-v1": "jimeng_vgfm_t2v_l20"},
    )
    wire_channel(
        stack,
        up,
        provider="jimeng",
        name=f"jimeng-b64-{stack.backend}",
        credentials=KeyPair(up.access_key, up.secret_key),
        models=["jimeng_i2v_first_v30"],
        options={"image_base64": True},
    )
    yield up
    stack.admin.call(up.stop())


@pytest.fixture
def up(fake: JimengFake) -> JimengFake:
    """The fake, reset to well-behaved defaults for each test."""
    fake.lifecycle = Lifecycle.succeeding()
    fake.legacy_result = False
    fake.failure_code = 50500
    fake._expired = False
    fake._failures.clear()
    fake.requests.clear()
    fake.creates = 0
    return fake


def creates(up: JimengFake) -> list[dict[str, Any]]:
    return [json.loads(s.body) for s in up.requests if s.op == "create"]


def polls(up: JimengFake) -> list[dict[str, Any]]:
    return [json.loads(s.body) for s in up.requests if s.op == "poll"]


def test_native_text_to_video(stack: Stack, up: JimengFake) -> None:
    acc = account(stack)
    before = stack.balance(acc.user_id)[0]
    body = {"llmid": JIMENG_T2V, "prompt": "a lighthouse", "duration": 10, "ratio": "9:16"}
    done = drive_native(stack, acc, body)
    assert done["status"] == "SUCCEEDED", done
    (sent,) = creates(up)
    assert sent == {"req_key": "jimeng_vgfm_t2v_l20", "prompt": "a lighthouse", "seed": -1,
                    "frames": 241, "aspect_ratio": "9:16"}  # fmt: skip
    assert up.creates == 1
    assert all(s.headers["Authorization"].startswith("HMAC-SHA256 ") for s in up.requests)
    assert polls(up) and all(p["req_key"] == "jimeng_vgfm_t2v_l20" for p in polls(up))
    assert rehosted(done["video"], up) == tiny_mp4()  # the fake's URL is gone, ours serves
    assert rehosted(done["image"], up)[:3] == b"\xff\xd8\xff"  # first frame cut by the gateway
    assert before - stack.wait_settled(acc.user_id)[0] == 10 * PER_SECOND  # 241 frames
    assert stack.reconcile() == []


def test_native_image_to_video_legacy_result(stack: Stack, up: JimengFake) -> None:
    up.legacy_result = True  # older S2.0: data.resp_data with urls[]
    acc = account(stack)
    before = stack.balance(acc.user_id)[0]
    body = {"llmid": JIMENG_I2V, "prompt": "make it move", "duration": 5}
    files = {"image1_file": ("first.png", tiny_png(seed=1), "image/png")}
    done = drive_native(stack, acc, body, files=files)
    assert done["status"] == "SUCCEEDED", done
    (sent,) = creates(up)
    assert sent["req_key"] == "jimeng_vgfm_i2v_l20" and sent["frames"] == 121
    assert len(sent["image_urls"]) == 1 and sent["image_urls"][0].startswith("http")
    assert "aspect_ratio" not in sent
    assert all(p["req_key"] == "jimeng_vgfm_i2v_l20" for p in polls(up))
    assert rehosted(done["video"], up) == tiny_mp4()
    assert before - stack.wait_settled(acc.user_id)[0] == 5 * PER_SECOND


def test_native_30_first_and_last_frame(stack: Stack, up: JimengFake) -> None:
    acc = account(stack)
    before = stack.balance(acc.user_id)[0]
    body = {"llmid": JIMENG30_FIRST_TAIL, "prompt": "open the door", "duration": 5}
    files = {
        "image1_file": ("first.png", tiny_png(seed=1), "image/png"),
        "image2_file": ("last.png", tiny_png(seed=2), "image/png"),
    }
    done = drive_native(stack, acc, body, files=files)
    assert done["status"] == "SUCCEEDED", done
    (sent,) = creates(up)
    assert sent["req_key"] == "jimeng_i2v_first_tail_v30" and sent["frames"] == 121
    first, last = sent["image_urls"]
    assert first != last and first.startswith("http") and last.startswith("http")
    assert all(p["req_key"] == "jimeng_i2v_first_tail_v30" for p in polls(up))
    assert rehosted(done["video"], up) == tiny_mp4()
    assert before - stack.wait_settled(acc.user_id)[0] == 5 * PER_SECOND


def test_image_base64_channel_option_sends_the_bytes_inline(stack: Stack, up: JimengFake) -> None:
    acc = account(stack)
    body = {"llmid": JIMENG30_I2V, "prompt": "inline", "duration": 5}
    files = {"image1_file": ("first.png", tiny_png(seed=4), "image/png")}
    done = drive_native(stack, acc, body, files=files)
    assert done["status"] == "SUCCEEDED", done
    (sent,) = creates(up)
    assert "image_urls" not in sent and sent["req_key"] == "jimeng_i2v_first_v30"
    (inline,) = sent["binary_data_base64"]
    assert base64.b64decode(inline, validate=True)[:8] == b"\x89PNG\r\n\x1a\n"


def test_native_30_text_to_video_1080p_ten_seconds(stack: Stack, up: JimengFake) -> None:
    acc = account(stack)
    before = stack.balance(acc.user_id)[0]
    body = {"llmid": JIMENG30_T2V_1080P, "prompt": "a harbour at dusk", "duration": 10}
    done = drive_native(stack, acc, body)
    assert done["status"] == "SUCCEEDED", done
    (sent,) = creates(up)
    assert sent == {"req_key": "jimeng_t2v_v30_1080p", "prompt": "a harbour at dusk",
                    "seed": -1, "frames": 241, "aspect_ratio": "16:9"}  # fmt: skip
    assert before - stack.wait_settled(acc.user_id)[0] == 10 * PER_SECOND_1080P


def test_openai_dialect_image_to_video(stack: Stack, up: JimengFake) -> None:
    acc = account(stack)
    fields = {"model": "jimeng_vgfm_i2v_l20", "prompt": "wave hello", "seconds": "5"}
    video = drive_openai_video(
        stack, acc, fields, input_reference=("a.png", tiny_png(), "image/png")
    )
    assert video["status"] == "completed", video
    (sent,) = creates(up)
    assert sent["image_urls"][0].startswith("http") and sent["frames"] == 121
    up.expire_files()
    assert video_content(stack, acc, video["id"]) == tiny_mp4()
    assert video_content(stack, acc, video["id"], "thumbnail")[:3] == tiny_jpeg()[:3]


def test_newapi_seed_004_request(stack: Stack, up: JimengFake) -> None:
    """Seed 004's Jimeng example verbatim, its image host moved to a URL the fake serves."""
    acc = account(stack)
    before = stack.balance(acc.user_id)[0]
    image = up.publish(tiny_png(seed=3), "image/png")
    text = json.dumps(SEED_004_JIMENG, ensure_ascii=False).replace(SEED_004_IMAGE, image)
    auth = {"Authorization": f"Bearer {acc.key}", "Content-Type": "application/json"}
    r = httpx.post(stack.url + "/v1/video/generations", content=text.encode(), headers=auth,
                   timeout=30)  # fmt: skip
    assert r.status_code == 200, r.text
    job_id = r.json()["id"]
    deadline = time.monotonic() + 30
    while True:
        got = httpx.get(f"{stack.url}/v1/video/generations/{job_id}", headers=auth, timeout=30)
        assert got.status_code == 200, got.text
        view = got.json()
        if view["status"] in ("completed", "failed"):
            break
        assert time.monotonic() < deadline, view
        time.sleep(0.05)
    assert view["status"] == "completed", view
    (sent,) = creates(up)
    assert sent["req_key"] == "jimeng_vgfm_i2v_l20" and sent["aspect_ratio"] == "16:9"
    assert len(sent["image_urls"]) == 1 and sent["image_urls"][0] != image  # our hosted copy
    assert rehosted(view["video_url"], up) == tiny_mp4()
    assert before - stack.wait_settled(acc.user_id)[0] == 5 * PER_SECOND


def test_failed_task_is_released(stack: Stack, up: JimengFake) -> None:
    up.lifecycle = Lifecycle.failing("50500", "Internal Error: generation failed")
    acc = account(stack)
    before = stack.balance(acc.user_id)
    done = drive_native(stack, acc, {"llmid": JIMENG_T2V, "prompt": "doomed", "duration": 5})
    assert done["status"] == "FAILED", done
    assert stack.wait_settled(acc.user_id) == (before[0], 0)


def test_output_moderation_is_a_clear_refusal_refunded(stack: Stack, up: JimengFake) -> None:
    up.lifecycle = Lifecycle.output_moderation("50511", "Output image risk not pass")
    acc = account(stack)
    before = stack.balance(acc.user_id)
    done = drive_native(stack, acc, {"llmid": JIMENG_T2V, "prompt": "edgy", "duration": 5})
    assert done["status"] == "FAILED"
    assert done["error"]["code"] == "output_moderation"
    assert stack.wait_settled(acc.user_id) == (before[0], 0)


def test_input_moderation_at_create(stack: Stack, up: JimengFake) -> None:
    up.fail_next("create", 400, {"code": 50412, "message": "Text Risk Not Pass",
                                 "request_id": "x", "data": None})  # fmt: skip
    acc = account(stack)
    before = stack.balance(acc.user_id)
    done = drive_native(stack, acc, {"llmid": JIMENG_T2V, "prompt": "bad", "duration": 5})
    assert done["status"] == "FAILED"
    assert done["error"]["code"] == "input_moderation"
    assert stack.wait_settled(acc.user_id) == (before[0], 0)
    assert up.creates == 0


def test_task_gone_ends_and_refunds(stack: Stack, up: JimengFake) -> None:
    up.lifecycle = Lifecycle(("queued", "gone"))
    acc = account(stack)
    before = stack.balance(acc.user_id)
    done = drive_native(stack, acc, {"llmid": JIMENG_T2V, "prompt": "lost", "duration": 5})
    assert done["status"] == "FAILED"
    assert done["error"]["code"] == "task_gone"
    assert stack.wait_settled(acc.user_id) == (before[0], 0)


def test_wrong_secret_marks_the_channel_unhealthy_and_charges_nothing(
    stack: Stack, up: JimengFake
) -> None:
    acc = account(stack)
    before = stack.balance(acc.user_id)
    done = drive_native(stack, acc, {"llmid": BADKEY_T2V, "prompt": "x", "duration": 5})
    assert done["status"] == "FAILED"
    assert done["error"]["code"] == "auth"
    assert "not-the-secret" not in json.dumps(done)
    assert stack.wait_settled(acc.user_id) == (before[0], 0)
    assert up.creates == 0
    scrape = httpx.get(stack.url + "/metrics").text
    assert f'llmage_channel_healthy{{channel="jimeng-badkey-{stack.backend}"}} 0.0' in scrape


def test_rate_limited_create_is_retried(stack: Stack, up: JimengFake) -> None:
    limited = {"code": 50429, "message": "Request Has Reached API Limit", "data": None}
    up.fail_next("create", 429, limited, headers={"Retry-After": "0"})
    acc = account(stack)
    done = drive_native(stack, acc, {"llmid": JIMENG_T2V, "prompt": "again", "duration": 5})
    assert done["status"] == "SUCCEEDED", done
    assert len(creates(up)) == 2 and up.creates == 1


def test_a_5xx_create_is_never_resent_and_fails_unbilled(stack: Stack, up: JimengFake) -> None:
    """The create body was taken, then 50500: Jimeng has no list and no idempotency key, so the
    task fails unbilled instead of being created a second time."""
    up.fail_next("create", 500, {"code": 50500, "message": "Internal Error", "request_id": "x",
                                 "data": None})  # fmt: skip
    acc = account(stack)
    before = stack.balance(acc.user_id)
    done = drive_native(stack, acc, {"llmid": JIMENG_T2V, "prompt": "lost", "duration": 5})
    assert done["status"] == "FAILED"
    assert len(creates(up)) == 1 and up.creates == 0
    assert stack.wait_settled(acc.user_id) == (before[0], 0)


def test_channel_test_probes_without_creating(stack: Stack, up: JimengFake) -> None:
    ops = stack.platform.channel_ops
    good = stack.admin.call(ops.test(f"jimeng-{stack.backend}"))
    assert good.ok and good.call == "probe", good
    bad = stack.admin.call(ops.test(f"jimeng-badkey-{stack.backend}"))
    assert (bad.ok, bad.call, bad.kind) == (False, "probe", "auth")
    assert up.creates == 0
