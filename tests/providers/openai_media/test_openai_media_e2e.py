"""OpenAI-style media upstreams end to end: the real server (SQLite and PostgreSQL) submits
through the public API (native and OpenAI dialects) to the fake `/v1/videos` and `/v1/images`
upstream; results are re-hosted before the fake's URLs expire, covers are the provider's, the
charge is the reported usage at catalog prices, and every failure releases the hold."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import pytest
from openai_fake import OpenAIMediaFake

from conftest import Stack
from llmage.catalog import load_catalog
from llmage.domain.credentials import ApiKey
from support.fakes import Lifecycle, tiny_jpeg, tiny_mp4, tiny_png
from support.fakes.drive import (
    account,
    drive_native,
    drive_openai_video,
    rehosted,
    video_content,
    wire_channel,
)

HH_T2V = "o5vfXYD5BURJWRTWpopE5"  # happyhorse-1.0-t2v: 720p = 600000 micro-units a second
HH_I2V = "7y7kfYM0Xasizyi37WvAZ"  # happyhorse-1.0-i2v
WAN_T2V = "u9HZyfDoqU6uKI6M1BTks"  # wan2.6-t2v: served only by a channel with a wrong key
RATE_720P = 600_000
QWEN_IMAGE_PRICE = load_catalog().by_llmid("56xed0ECerNOuvtEXyiKF").price.rates["*"]  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def fake(stack: Stack) -> Iterator[OpenAIMediaFake]:
    up = OpenAIMediaFake()
    stack.admin.call(up.start())
    wire_channel(
        stack,
        up,
        provider="openai_compat",
        name=f"openai-media-{stack.backend}",
        base_url=up.url + "/v1",
        credentials=ApiKey(up.api_key),
        models=["happyhorse-1.0-t2v", "happyhorse-1.0-i2v", "qwen-image",
                "doubao-seedream-4-0-250828"],
        model_map={"happyhorse-1.0-t2v": "sora-2", "happyhorse-1.0-i2v": "sora-2",
                   "qwen-image": "gpt-image-1", "doubao-seedream-4-0-250828": "gpt-image-1"},
    )  # fmt: skip
    wire_channel(
        stack,
        up,
        provider="openai_compat",
        name=f"openai-badkey-{stack.backend}",
        base_url=up.url + "/v1",
        credentials=ApiKey("sk-wrong-key-000000"),
        models=["wan2.6-t2v"],
        model_map={"wan2.6-t2v": "sora-2"},
    )
    yield up
    stack.admin.call(up.stop())


@pytest.fixture
def up(fake: OpenAIMediaFake) -> OpenAIMediaFake:
    """The fake, reset to well-behaved defaults for each test."""
    fake.lifecycle = Lifecycle.succeeding()
    fake.report_seconds = None
    fake._expired = False
    fake._failures.clear()
    fake.requests.clear()
    fake.creates = 0
    return fake


def creates(up: OpenAIMediaFake) -> list[str]:
    return [s.op for s in up.requests if s.op == "create"]


def test_native_text_to_video_rehosted_with_provider_cover_and_exact_charge(
    stack: Stack, up: OpenAIMediaFake
) -> None:
    acc = account(stack)
    before = stack.balance(acc.user_id)[0]
    body = {"llmid": HH_T2V, "prompt": "a lighthouse", "duration": 4, "resolution": "720p",
            "ratio": "16:9"}  # fmt: skip
    done = drive_native(stack, acc, body)
    assert done["status"] == "SUCCEEDED", done
    # The upstream saw one create, in its own shape, signed with the channel's key.
    assert up.creates == 1 and len(creates(up)) == 1
    (task,) = up.tasks.values() if len(up.tasks) == 1 else [list(up.tasks.values())[-1]]
    assert task.body["model"] == "sora-2"
    assert (task.body["seconds"], task.body["size"]) == ("4", "1280x720")
    assert all(s.headers["Authorization"] == f"Bearer {up.api_key}" for s in up.requests)
    # Re-hosted: the fake's content is gone, our copies are the real files.
    assert rehosted(done["video"], up) == tiny_mp4()
    assert rehosted(done["image"], up) == tiny_jpeg()  # the provider's thumbnail is the cover
    charged = before - stack.wait_settled(acc.user_id)[0]
    assert charged == 4 * RATE_720P
    assert done["usage"]["duration"] == 4.0
    assert stack.reconcile() == []


def test_charge_follows_the_reported_seconds(stack: Stack, up: OpenAIMediaFake) -> None:
    up.report_seconds = "4"  # asked for 8, the upstream made (and bills) 4
    acc = account(stack)
    before = stack.balance(acc.user_id)[0]
    body = {"llmid": HH_T2V, "prompt": "short", "duration": 8, "resolution": "720p"}
    done = drive_native(stack, acc, body)
    assert done["status"] == "SUCCEEDED", done
    assert before - stack.wait_settled(acc.user_id)[0] == 4 * RATE_720P


def test_openai_dialect_image_to_video_sends_the_reference_file(
    stack: Stack, up: OpenAIMediaFake
) -> None:
    acc = account(stack)
    fields = {"model": "happyhorse-1.0-i2v", "prompt": "make it move", "seconds": "4"}
    png = ("first.png", tiny_png(), "image/png")
    video = drive_openai_video(stack, acc, fields, input_reference=png)
    assert video["status"] == "completed", video
    (task,) = [t for t in up.tasks.values() if t.body.get("prompt") == "make it move"]
    assert task.body["input_reference"] == "file"
    up.expire_files()
    assert video_content(stack, acc, video["id"]) == tiny_mp4()
    assert video_content(stack, acc, video["id"], "thumbnail")[:3] == b"\xff\xd8\xff"


def test_failed_upstream_task_fails_and_releases(stack: Stack, up: OpenAIMediaFake) -> None:
    up.lifecycle = Lifecycle.failing("video_generation_failed", "the model gave up")
    acc = account(stack)
    before = stack.balance(acc.user_id)
    done = drive_native(stack, acc, {"llmid": HH_T2V, "prompt": "doomed", "duration": 4})
    assert done["status"] == "FAILED"
    assert done["error"]["code"] == "video_generation_failed"
    assert stack.wait_settled(acc.user_id) == (before[0], 0)


def test_output_moderation_is_a_clear_refusal_refunded(stack: Stack, up: OpenAIMediaFake) -> None:
    up.lifecycle = Lifecycle.output_moderation("moderation_blocked")
    acc = account(stack)
    before = stack.balance(acc.user_id)
    done = drive_native(stack, acc, {"llmid": HH_T2V, "prompt": "edgy", "duration": 4})
    assert done["status"] == "FAILED"
    assert done["error"]["code"] == "output_moderation"
    assert "moderation" in done["error"]["message"]
    assert stack.wait_settled(acc.user_id) == (before[0], 0)


def test_input_moderation_at_create_fails_with_the_reason(
    stack: Stack, up: OpenAIMediaFake
) -> None:
    up.fail_next(
        "create",
        400,
        {"error": {"message": "Your request was blocked by our moderation system.",
                   "type": "invalid_request_error", "code": "moderation_blocked"}},
    )  # fmt: skip
    acc = account(stack)
    before = stack.balance(acc.user_id)
    done = drive_native(stack, acc, {"llmid": HH_T2V, "prompt": "bad", "duration": 4})
    assert done["status"] == "FAILED"
    assert done["error"]["code"] == "input_moderation"
    assert "blocked by our moderation" in done["error"]["message"]
    assert stack.wait_settled(acc.user_id) == (before[0], 0)
    assert up.creates == 0


def test_wrong_credential_is_a_channel_problem_never_billed(
    stack: Stack, up: OpenAIMediaFake
) -> None:
    acc = account(stack)
    before = stack.balance(acc.user_id)
    done = drive_native(stack, acc, {"llmid": WAN_T2V, "prompt": "x", "duration": 5,
                                     "size": "1280*720"})  # fmt: skip
    assert done["status"] == "FAILED"
    assert done["error"]["code"] == "auth"
    assert "sk-wrong" not in done["error"]["message"]
    assert stack.wait_settled(acc.user_id) == (before[0], 0)
    scrape = httpx.get(stack.url + "/metrics").text
    assert f'llmage_channel_healthy{{channel="openai-badkey-{stack.backend}"}} 0.0' in scrape
    assert f'channel="openai-badkey-{stack.backend}",op="submit",outcome="auth"' in scrape


def test_rate_limited_create_is_retried_after_retry_after(
    stack: Stack, up: OpenAIMediaFake
) -> None:
    up.fail_next(
        "create",
        429,
        {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit"}},
        headers={"Retry-After": "0"},
    )
    acc = account(stack)
    done = drive_native(stack, acc, {"llmid": HH_T2V, "prompt": "again", "duration": 4})
    assert done["status"] == "SUCCEEDED", done
    assert len(creates(up)) == 2 and up.creates == 1  # the 429 created nothing


def test_a_5xx_create_is_never_resent(stack: Stack, up: OpenAIMediaFake) -> None:
    """The body was taken, then a 500: the outcome is unknown. The gateway looks the task up
    (GET /videos) instead of creating again; this fake made none, so the task fails, unbilled."""
    up.fail_next("create", 500, {"error": {"message": "boom", "type": "server_error"}})
    acc = account(stack)
    before = stack.balance(acc.user_id)
    done = drive_native(stack, acc, {"llmid": HH_T2V, "prompt": "lost", "duration": 4})
    assert done["status"] == "FAILED"
    assert done["error"]["code"] == "submit_lost"
    assert len(creates(up)) == 1
    assert any(s.op == "list" for s in up.requests)
    assert stack.wait_settled(acc.user_id) == (before[0], 0)


def test_a_task_gone_upstream_ends_and_refunds(stack: Stack, up: OpenAIMediaFake) -> None:
    up.lifecycle = Lifecycle(("queued", "gone"))
    acc = account(stack)
    before = stack.balance(acc.user_id)
    done = drive_native(stack, acc, {"llmid": HH_T2V, "prompt": "vanishing", "duration": 4})
    assert done["status"] == "FAILED"
    assert done["error"]["code"] == "task_gone"
    assert stack.wait_settled(acc.user_id) == (before[0], 0)
    polls = [s for s in up.requests if s.op == "poll"]
    assert len(polls) == 2  # not retried for an hour: one 404 ends it


def test_openai_images_generate_and_edit(stack: Stack, up: OpenAIMediaFake) -> None:
    acc = account(stack)
    before = stack.balance(acc.user_id)[0]
    headers = {"Authorization": f"Bearer {acc.key}"}
    r = httpx.post(
        stack.url + "/v1/images/generations",
        json={"model": "qwen-image", "prompt": "a red square", "n": 2,
              "response_format": "b64_json"},
        headers=headers,
        timeout=30,
    )  # fmt: skip
    assert r.status_code == 200, r.text
    images = [base64.b64decode(d["b64_json"]) for d in r.json()["data"]]
    assert images == [tiny_png(seed=0), tiny_png(seed=1)]
    assert before - stack.wait_settled(acc.user_id)[0] == 2 * QWEN_IMAGE_PRICE
    gen = [s for s in up.requests if s.op == "images"][-1]
    assert gen.headers["Content-Type"].startswith("application/json")

    r = httpx.post(
        stack.url + "/v1/images/edits",
        data={"model": "doubao-seedream-4-0-250828", "prompt": "bluer"},
        files={"image": ("in.png", tiny_png(), "image/png")},
        headers=headers,
        timeout=30,
    )
    assert r.status_code == 200, r.text
    edit = [s for s in up.requests if s.op == "edits"][-1]
    assert edit.headers["Content-Type"].startswith("multipart/form-data")
    assert stack.reconcile() == []


def test_channel_test_probes_a_task_only_channel(stack: Stack, up: OpenAIMediaFake) -> None:
    """`llmage channel test` / POST /api/admin/channels/{id}/test on a channel serving only
    video models: an authenticated GET /videos?limit=1, never a create."""
    ops = stack.platform.channel_ops
    good = stack.admin.call(ops.test(f"openai-media-{stack.backend}"))
    assert good.ok and good.call == "probe", good
    bad = stack.admin.call(ops.test(f"openai-badkey-{stack.backend}"))
    assert (bad.ok, bad.call, bad.kind) == (False, "probe", "auth")
    assert up.creates == 0
    probes = [s for s in up.requests if s.op == "list"]
    assert [s.query for s in probes] == [{"limit": "1"}, {"limit": "1"}]


def test_poll_rate_limit_is_retried_a_poll_401_ends_and_refunds(
    stack: Stack, up: OpenAIMediaFake
) -> None:
    up.fail_next(
        "poll",
        429,
        {"error": {"message": "slow down", "type": "requests", "code": "rate_limit"}},
        headers={"Retry-After": "0"},
        times=2,
    )
    acc = account(stack)
    done = drive_native(stack, acc, {"llmid": HH_T2V, "prompt": "patience", "duration": 4})
    assert done["status"] == "SUCCEEDED", done

    up.fail_next("poll", 401, {"error": {"message": "key revoked", "code": "invalid_api_key"}})
    before = stack.balance(acc.user_id)
    done = drive_native(stack, acc, {"llmid": HH_T2V, "prompt": "revoked", "duration": 4})
    assert done["status"] == "FAILED"
    assert done["error"]["code"] == "auth"
    assert stack.wait_settled(acc.user_id) == (before[0], 0)
