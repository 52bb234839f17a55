"""Kling end to end: the real server (SQLite and PostgreSQL) submits through the public API
(native /llmage/video and OpenAI /v1/videos) to the fake Kling, which verifies every JWT. Results
are re-hosted before the fake's URLs expire, the cover is cut from the first frame (Kling has
none), the charge is the reported units at catalog settle prices, and failures release the hold."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from kling_fake import KlingFake

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

KLING_T2V = "AV38wk4OdtbrT_5XHanLO"  # kling-v1 text2video
KLING_I2V = "gmZnaxnP6dtVRR-4otnwL"  # kling-v1 image2video (image, optional image_tail)
BADKEY_T2V = "Bsy6AvQ1kFzuhQl8N6j4k"  # served here only by a Kling channel with a wrong secret
UNIT = 1_000_000  # catalog settle rate: micro-units per Kling unit


@pytest.fixture(scope="module")
def fake(stack: Stack) -> Iterator[KlingFake]:
    up = KlingFake()
    stack.admin.call(up.start())
    wire_channel(
        stack,
        up,
        provider="kling",
        name=f"kling-{stack.backend}",
        credentials=KeyPair(up.access_key, up.secret_key),
        models=["kling-v1"],
    )
    wire_channel(
        stack,
        up,
        provider="kling",
        name=f"kling-badkey-{stack.backend}",
        credentials=KeyPair(up.access_key, "not-the-secret-key"),
        models=["jimeng_vgfm_t2v_l20"],
        model_map={"jimeng_vgfm_t2v_l20": "kling-v1"},
    )
    yield up
    stack.admin.call(up.stop())


@pytest.fixture
def up(fake: KlingFake) -> KlingFake:
    """The fake, reset to well-behaved defaults for each test."""
    fake.lifecycle = Lifecycle.succeeding()
    fake.units = "1"
    fake._expired = False
    fake._failures.clear()
    fake.requests.clear()
    fake.creates = 0
    return fake


def creates(up: KlingFake) -> list[dict[str, object]]:
    return [json.loads(s.body) for s in up.requests if s.op == "create"]


def test_native_text_to_video(stack: Stack, up: KlingFake) -> None:
    acc = account(stack)
    before = stack.balance(acc.user_id)[0]
    body = {"llmid": KLING_T2V, "prompt": "a lighthouse", "duration": 5, "ratio": "9:16",
            "mode": "std"}  # fmt: skip
    done = drive_native(stack, acc, body)
    assert done["status"] == "SUCCEEDED", done
    (sent,) = creates(up)
    assert sent == {
        "model_name": "kling-v1", "prompt": "a lighthouse", "external_task_id": done["taskid"],
        "duration": "5", "mode": "std", "cfg_scale": 0.5, "aspect_ratio": "9:16",
    }  # fmt: skip
    assert up.creates == 1
    assert all(s.headers["Authorization"].startswith("Bearer ey") for s in up.requests)
    assert rehosted(done["video"], up) == tiny_mp4()  # the fake's URL is gone, ours serves
    assert rehosted(done["image"], up)[:3] == b"\xff\xd8\xff"  # first frame cut by the gateway
    assert before - stack.wait_settled(acc.user_id)[0] == 1 * UNIT  # 1 unit reported
    assert stack.reconcile() == []


def test_native_image_to_video_with_tail_charges_the_reported_units(
    stack: Stack, up: KlingFake
) -> None:
    up.units = "3.5"  # pro, 5 s: what Kling deducts
    acc = account(stack)
    before = stack.balance(acc.user_id)[0]
    body = {"llmid": KLING_I2V, "prompt": "make it move", "duration": 5, "mode": "pro"}
    files = {
        "image1_file": ("first.png", tiny_png(seed=1), "image/png"),
        "image2_file": ("last.png", tiny_png(seed=2), "image/png"),
    }
    done = drive_native(stack, acc, body, files=files)
    assert done["status"] == "SUCCEEDED", done
    (sent,) = creates(up)
    assert str(sent["image"]).startswith("http") and str(sent["image_tail"]).startswith("http")
    assert sent["image"] != sent["image_tail"] and "aspect_ratio" not in sent
    polls = [s.path for s in up.requests if s.op == "poll"]
    assert polls and all(p.startswith("/v1/videos/image2video/") for p in polls)
    assert rehosted(done["video"], up) == tiny_mp4()
    assert before - stack.wait_settled(acc.user_id)[0] == 3_500_000


def test_openai_dialect_image_to_video(stack: Stack, up: KlingFake) -> None:
    acc = account(stack)
    fields = {"model": "kling-v1", "prompt": "wave hello", "seconds": "5"}
    video = drive_openai_video(
        stack, acc, fields, input_reference=("a.png", tiny_png(), "image/png")
    )
    assert video["status"] == "completed", video
    (sent,) = creates(up)
    assert str(sent["image"]).startswith("http") and sent["duration"] == "5"
    up.expire_files()
    assert video_content(stack, acc, video["id"]) == tiny_mp4()
    assert video_content(stack, acc, video["id"], "thumbnail")[:3] == tiny_jpeg()[:3]


def test_failed_task_reason_from_task_status_msg_and_released(stack: Stack, up: KlingFake) -> None:
    up.lifecycle = Lifecycle.failing("failed", "Video generation failed: internal timeout")
    acc = account(stack)
    before = stack.balance(acc.user_id)
    done = drive_native(stack, acc, {"llmid": KLING_T2V, "prompt": "doomed", "duration": 5})
    assert done["status"] == "FAILED"
    assert "internal timeout" in done["error"]["message"]
    assert "SUCCEED" not in done["error"]["message"]
    assert stack.wait_settled(acc.user_id) == (before[0], 0)


def test_output_moderation_is_a_clear_refusal_refunded(stack: Stack, up: KlingFake) -> None:
    up.lifecycle = Lifecycle.output_moderation("risk")
    acc = account(stack)
    before = stack.balance(acc.user_id)
    done = drive_native(stack, acc, {"llmid": KLING_T2V, "prompt": "edgy", "duration": 5})
    assert done["status"] == "FAILED"
    assert done["error"]["code"] == "output_moderation"
    assert stack.wait_settled(acc.user_id) == (before[0], 0)


def test_input_moderation_at_create_even_with_http_200(stack: Stack, up: KlingFake) -> None:
    up.fail_next("create", 200, {"code": 1301, "message": "Prompt triggered content security",
                                 "request_id": "x", "data": None})  # fmt: skip
    acc = account(stack)
    before = stack.balance(acc.user_id)
    done = drive_native(stack, acc, {"llmid": KLING_T2V, "prompt": "bad", "duration": 5})
    assert done["status"] == "FAILED"
    assert done["error"]["code"] == "input_moderation"
    assert "content security" in done["error"]["message"]
    assert stack.wait_settled(acc.user_id) == (before[0], 0)
    assert up.creates == 0


def test_upstream_balance_is_a_channel_problem_never_billed(stack: Stack, up: KlingFake) -> None:
    up.fail_next("create", 429, {"code": 1102, "message": "resource pack exhausted",
                                 "request_id": "x", "data": None})  # fmt: skip
    acc = account(stack)
    before = stack.balance(acc.user_id)
    done = drive_native(stack, acc, {"llmid": KLING_T2V, "prompt": "broke", "duration": 5})
    assert done["status"] == "FAILED"
    assert done["error"]["code"] == "upstream_quota"
    assert stack.wait_settled(acc.user_id) == (before[0], 0)


def test_wrong_secret_marks_the_channel_unhealthy_and_charges_nothing(
    stack: Stack, up: KlingFake
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
    assert f'llmage_channel_healthy{{channel="kling-badkey-{stack.backend}"}} 0.0' in scrape


def test_rate_limited_create_is_retried(stack: Stack, up: KlingFake) -> None:
    up.fail_next("create", 429, {"code": 1302, "message": "rate limit", "request_id": "x",
                                 "data": None}, headers={"Retry-After": "0"})  # fmt: skip
    acc = account(stack)
    done = drive_native(stack, acc, {"llmid": KLING_T2V, "prompt": "again", "duration": 5})
    assert done["status"] == "SUCCEEDED", done
    assert len(creates(up)) == 2 and up.creates == 1


def test_a_5xx_create_is_recovered_by_external_task_id(stack: Stack, up: KlingFake) -> None:
    """The create body was taken, then 5001: the gateway queries GET .../{our task id} instead
    of creating again; this fake made none, so the task ends failed, unbilled."""
    up.fail_next("create", 503, {"code": 5001, "message": "maintenance", "request_id": "x",
                                 "data": None})  # fmt: skip
    acc = account(stack)
    before = stack.balance(acc.user_id)
    done = drive_native(stack, acc, {"llmid": KLING_T2V, "prompt": "lost", "duration": 5})
    assert done["status"] == "FAILED"
    assert len(creates(up)) == 1 and up.creates == 0
    assert any(s.op == "poll" and s.path.endswith("/" + done["taskid"]) for s in up.requests)
    assert stack.wait_settled(acc.user_id) == (before[0], 0)


def test_channel_test_probes_without_creating(stack: Stack, up: KlingFake) -> None:
    ops = stack.platform.channel_ops
    good = stack.admin.call(ops.test(f"kling-{stack.backend}"))
    assert good.ok and good.call == "probe", good
    bad = stack.admin.call(ops.test(f"kling-badkey-{stack.backend}"))
    assert (bad.ok, bad.call, bad.kind) == (False, "probe", "auth")
    assert up.creates == 0
