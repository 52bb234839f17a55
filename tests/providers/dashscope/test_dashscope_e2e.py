"""DashScope end to end: the real server (SQLite and PostgreSQL) runs every Wan, HappyHorse and
qwen-image mode of seeds 000/001 through the public API (native and OpenAI dialects) against the
fake DashScope; results are re-hosted before the fake's URLs expire, the cover is cut from the
first frame (DashScope gives none), the charge is the reported seconds at catalog prices, and
every failure (a failed task, moderation, a wrong key, the upstream account in arrears, a lost
create, a task gone) releases the hold."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from dashscope_fake import DashScopeFake

from conftest import Stack
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

WAN_T2V = "u9HZyfDoqU6uKI6M1BTks"  # wan2.6-t2v, priced by size: 720P sizes 600000 a second
WAN_FIRST_LAST = "x4HksKp9mXR1Yv60mw6Py"  # seed 000's "wan2.6-r2v" image-to-video row → kf2v
WAN_I2V = "bQlmscR-lKX88DdB-hSi4"  # wan2.6-i2v
WAN_R2V = "z9aJjYSrK4iwNKwyZ1W7D"  # wan2.6-r2v reference-to-video
HH_T2V = "o5vfXYD5BURJWRTWpopE5"
HH_I2V = "7y7kfYM0Xasizyi37WvAZ"
HH_R2V = "6o9n_7u2K927hNlD8_72f"
RATE_720P = 600_000
QWEN_IMAGE_PRICE = 250_000
MODELS = ["wan2.6-t2v", "wan2.6-i2v", "wan2.6-r2v", "happyhorse-1.0-t2v", "happyhorse-1.0-i2v",
          "happyhorse-1.0-r2v", "qwen-image"]  # fmt: skip


def data_uri(data: bytes, ctype: str) -> str:
    return f"data:{ctype};base64,{base64.b64encode(data).decode()}"


PNG_A = data_uri(tiny_png(seed=1), "image/png")
PNG_B = data_uri(tiny_png(seed=2), "image/png")
MP4 = data_uri(tiny_mp4(), "video/mp4")


@pytest.fixture(scope="module")
def fake(stack: Stack) -> Iterator[DashScopeFake]:
    up = DashScopeFake()
    stack.admin.call(up.start())
    wire_channel(
        stack,
        up,
        provider="dashscope",
        platform="aliyun",
        name=f"dashscope-{stack.backend}",
        credentials=ApiKey(up.api_key),
        models=MODELS,
    )
    yield up
    stack.admin.call(up.stop())


@pytest.fixture
def up(fake: DashScopeFake) -> DashScopeFake:
    """The fake, reset to well-behaved defaults for each test."""
    fake.lifecycle = Lifecycle.succeeding()
    fake.usage_style = "number"
    fake.report_seconds = None
    fake.answer_after_create = None
    fake._expired = False
    fake._failures.clear()
    fake.requests.clear()
    fake.tasks.clear()
    fake.creates = 0
    return fake


def created(up: DashScopeFake) -> list[tuple[str, dict[str, Any]]]:
    """(path, body) of every create the fake accepted or refused."""
    return [(s.path, json.loads(s.body)) for s in up.requests if s.op == "create"]


VIDEO = "/api/v1/services/aigc/video-generation/video-synthesis"
KF2V = "/api/v1/services/aigc/image2video/video-synthesis"

MODES: list[tuple[str, dict[str, Any], str, dict[str, Any], int]] = [
    # (name, native body, upstream path, what the upstream body holds, charge)
    ("wan-t2v", {"llmid": WAN_T2V, "size": "1280*720", "duration": 5}, VIDEO,
     {"model": "wan2.6-t2v", "parameters": {"size": "1280*720", "duration": 5}}, 5 * RATE_720P),
    # The seed's default 15 s is held; kf2v makes (and reports) 5 s: charged 5 s.
    ("wan-first-last", {"llmid": WAN_FIRST_LAST, "size": "1280*720", "image_file1": PNG_A,
                        "image_file2": PNG_B}, KF2V,
     {"model": "wan2.2-kf2v-flash", "parameters": {"resolution": "720P"}}, 5 * RATE_720P),
    ("wan-i2v", {"llmid": WAN_I2V, "resolution": "720p", "duration": 5, "image_file1": PNG_A},
     VIDEO, {"model": "wan2.6-i2v", "parameters": {"resolution": "720P", "duration": 5}},
     5 * RATE_720P),
    ("wan-r2v", {"llmid": WAN_R2V, "size": "1280*720", "duration": 4,
                 "image_files": [PNG_A, PNG_B], "video_files": [MP4]}, VIDEO,
     {"model": "wan2.6-r2v", "parameters": {"size": "1280*720", "duration": 4}}, 4 * RATE_720P),
    ("happyhorse-t2v", {"llmid": HH_T2V, "resolution": "720p", "ratio": "16:9", "duration": 3},
     VIDEO, {"model": "happyhorse-1.0-t2v",
             "parameters": {"resolution": "720P", "ratio": "16:9", "duration": 3}}, 3 * RATE_720P),
    ("happyhorse-r2v", {"llmid": HH_R2V, "resolution": "720p", "ratio": "4:3", "duration": 3,
                        "image_files": [PNG_A, PNG_B]}, VIDEO,
     {"model": "happyhorse-1.0-r2v",
      "parameters": {"resolution": "720P", "ratio": "4:3", "duration": 3}}, 3 * RATE_720P),
]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "path", "expect", "charge"), [m[1:] for m in MODES], ids=[m[0] for m in MODES]
)
def test_native_modes_end_to_end(
    stack: Stack,
    up: DashScopeFake,
    body: dict[str, Any],
    path: str,
    expect: dict[str, Any],
    charge: int,
) -> None:
    acc = account(stack)
    before = stack.balance(acc.user_id)[0]
    done = drive_native(stack, acc, {**body, "prompt": "a lighthouse at dusk"})
    assert done["status"] == "SUCCEEDED", done
    # One create, to the model's endpoint, in its own shape, asynchronous, signed with our key.
    ((seen_path, sent),) = created(up)
    assert seen_path == path and up.creates == 1
    assert sent["model"] == expect["model"] and sent["parameters"] == expect["parameters"]
    assert sent["input"]["prompt"] == "a lighthouse at dusk"
    assert all(s.headers["Authorization"] == f"Bearer {up.api_key}" for s in up.requests)
    # Re-hosted before the fake's URL expired; DashScope has no cover: the first frame is cut.
    assert rehosted(done["video"], up) == tiny_mp4()
    assert rehosted(done["image"], up) == tiny_jpeg()
    (task,) = up.tasks.values()
    assert httpx.get(task.result["url"], timeout=10).status_code == 403  # the fake's is gone
    assert before - stack.wait_settled(acc.user_id)[0] == charge
    assert done["usage"]["duration"] == charge / RATE_720P
    assert stack.reconcile() == []


def test_native_multipart_image_to_video_as_the_seed_curl(stack: Stack, up: DashScopeFake) -> None:
    """Seed 000's curl: the text-to-video llmid with `image1_file` runs as happyhorse-1.0-i2v,
    the file goes upstream as a `first_frame` data URI."""
    acc = account(stack)
    before = stack.balance(acc.user_id)[0]
    body = {"llmid": HH_T2V, "prompt": "一起来调科目三", "duration": 4, "resolution": "720P"}
    done = drive_native(
        stack, acc, body, files={"image1_file": ("02.png", tiny_png(), "image/png")}
    )
    assert done["status"] == "SUCCEEDED", done
    ((_, sent),) = created(up)
    assert sent["model"] == "happyhorse-1.0-i2v"
    assert sent["input"]["media"] == [
        {"type": "first_frame", "url": data_uri(tiny_png(), "image/png")}
    ]
    assert sent["parameters"] == {"resolution": "720P", "duration": 4}
    assert before - stack.wait_settled(acc.user_id)[0] == 4 * RATE_720P


def test_openai_dialect_video_and_image(stack: Stack, up: DashScopeFake) -> None:
    acc = account(stack)
    before = stack.balance(acc.user_id)[0]
    fields = {"model": "happyhorse-1.0-i2v", "prompt": "make it move", "seconds": "4",
              "size": "1280x720"}  # fmt: skip
    video = drive_openai_video(
        stack, acc, fields, input_reference=("first.png", tiny_png(), "image/png")
    )
    assert video["status"] == "completed", video
    up.expire_files()
    assert video_content(stack, acc, video["id"]) == tiny_mp4()
    assert video_content(stack, acc, video["id"], "thumbnail") == tiny_jpeg()
    charged = before - stack.wait_settled(acc.user_id)[0]
    assert charged == 4 * RATE_720P

    up._expired = False
    r = httpx.post(
        stack.url + "/v1/images/generations",
        json={"model": "qwen-image", "prompt": "a red square", "size": "1328x1328",
              "response_format": "b64_json"},
        headers={"Authorization": f"Bearer {acc.key}"},
        timeout=30,
    )  # fmt: skip
    assert r.status_code == 200, r.text
    assert [base64.b64decode(d["b64_json"]) for d in r.json()["data"]] == [tiny_png(seed=7)]
    path, sent = created(up)[-1]
    assert path == "/api/v1/services/aigc/text2image/image-synthesis"
    assert sent["parameters"] == {"size": "1328*1328", "n": 1}
    assert before - stack.wait_settled(acc.user_id)[0] == charged + QWEN_IMAGE_PRICE


@pytest.mark.parametrize("style", ["string", "duration"])
def test_usage_as_a_string_or_under_duration(stack: Stack, up: DashScopeFake, style: str) -> None:
    up.usage_style, up.report_seconds = style, 3  # asked for 5, made (and billed) 3
    acc = account(stack)
    before = stack.balance(acc.user_id)[0]
    done = drive_native(stack, acc, {"llmid": HH_T2V, "prompt": "short", "duration": 5,
                                     "resolution": "720p"})  # fmt: skip
    assert done["status"] == "SUCCEEDED", done
    assert before - stack.wait_settled(acc.user_id)[0] == 3 * RATE_720P


def test_missing_usage_bills_the_request(stack: Stack, up: DashScopeFake) -> None:
    up.usage_style = "none"
    acc = account(stack)
    before = stack.balance(acc.user_id)[0]
    done = drive_native(stack, acc, {"llmid": HH_T2V, "prompt": "x", "duration": 4,
                                     "resolution": "720p"})  # fmt: skip
    assert done["status"] == "SUCCEEDED", done
    assert before - stack.wait_settled(acc.user_id)[0] == 4 * RATE_720P


def test_suspended_then_running_still_succeeds(stack: Stack, up: DashScopeFake) -> None:
    up.lifecycle = Lifecycle(("queued", "suspended", "running", "succeeded"))
    acc = account(stack)
    done = drive_native(stack, acc, {"llmid": HH_T2V, "prompt": "wait", "duration": 3})
    assert done["status"] == "SUCCEEDED", done
    assert [s.op for s in up.requests].count("poll") == 4


@pytest.mark.parametrize(
    ("lifecycle", "code", "words"),
    [
        (Lifecycle.failing("InternalError.Algo", "algorithm failed"), "InternalError.Algo",
         "algorithm failed"),
        (Lifecycle.failing("", ""), "FAILED", "gave no reason"),  # HTTP 200, neither field
        (Lifecycle.output_moderation("DataInspectionFailed"), "output_moderation", "moderation"),
        (Lifecycle(("queued", "gone")), "task_gone", "no longer knows"),
        (Lifecycle(("queued", "canceled")), "CANCELED", "provider cancelled"),
    ],
)  # fmt: skip
def test_ends_that_fail_release_the_hold(
    stack: Stack, up: DashScopeFake, lifecycle: Lifecycle, code: str, words: str
) -> None:
    up.lifecycle = lifecycle
    acc = account(stack)
    before = stack.balance(acc.user_id)
    done = drive_native(stack, acc, {"llmid": HH_T2V, "prompt": "doomed", "duration": 3})
    assert done["status"] == "FAILED", done
    assert done["error"]["code"] == code
    assert words in done["error"]["message"]
    assert stack.wait_settled(acc.user_id) == (before[0], 0)


def test_input_moderation_at_create_is_a_clear_refusal(stack: Stack, up: DashScopeFake) -> None:
    acc = account(stack)
    before = stack.balance(acc.user_id)
    done = drive_native(stack, acc, {"llmid": WAN_T2V, "prompt": "FORBIDDEN scene",
                                     "size": "1280*720", "duration": 5})  # fmt: skip
    assert done["status"] == "FAILED"
    assert done["error"]["code"] == "input_moderation"
    assert "inappropriate content" in done["error"]["message"]
    assert stack.wait_settled(acc.user_id) == (before[0], 0)
    assert up.creates == 0


def test_a_480p_size_is_refused_and_never_sent(stack: Stack, up: DashScopeFake) -> None:
    acc = account(stack)
    before = stack.balance(acc.user_id)
    done = drive_native(stack, acc, {"llmid": WAN_T2V, "prompt": "small", "size": "832*480",
                                     "duration": 5})  # fmt: skip
    assert done["status"] == "FAILED"
    assert done["error"]["code"] == "bad_request"
    assert "832*480" in done["error"]["message"] and "1280*720" in done["error"]["message"]
    assert created(up) == []
    assert stack.wait_settled(acc.user_id) == (before[0], 0)


@pytest.mark.parametrize(
    ("status", "error", "kind"),
    [
        (400, {"code": "Arrearage", "message": "Access denied, please make sure your account "
               "is in good standing."}, "upstream_quota"),
        (403, {"code": "AccessDenied.Unpurchased", "message": "Access to model denied."},
         "model_not_enabled"),
    ],
)  # fmt: skip
def test_channel_problems_are_never_billed(
    stack: Stack, up: DashScopeFake, status: int, error: dict[str, str], kind: str
) -> None:
    up.fail_next("create", status, {"request_id": "r", **error})
    acc = account(stack)
    before = stack.balance(acc.user_id)
    done = drive_native(stack, acc, {"llmid": HH_T2V, "prompt": "x", "duration": 3})
    assert done["status"] == "FAILED"
    assert done["error"]["code"] == kind
    assert stack.wait_settled(acc.user_id) == (before[0], 0)
    scrape = httpx.get(stack.url + "/metrics").text
    assert f'channel="dashscope-{stack.backend}",op="submit",outcome="{kind}"' in scrape


def test_wrong_credential_marks_the_channel_unhealthy(stack: Stack, up: DashScopeFake) -> None:
    name = f"dashscope-badkey-{stack.backend}"
    wire_channel(stack, up, provider="dashscope", platform="aliyun", name=name,
                 credentials=ApiKey("sk-wrong-key-000000"), models=["wan2.6-t2v"],
                 priority=1000)  # fmt: skip
    try:
        acc = account(stack)
        before = stack.balance(acc.user_id)
        done = drive_native(stack, acc, {"llmid": WAN_T2V, "prompt": "x", "size": "1280*720",
                                         "duration": 5})  # fmt: skip
        # Refused for our key: the task fails over to the good channel behind it and is
        # charged once, there; the wrong channel is marked unhealthy.
        assert done["status"] == "SUCCEEDED", done
        assert "sk-wrong" not in str(done)
        row = stack.admin.call(stack.platform.task_repo.get(done["taskid"]))
        assert row is not None and row.charged
        bad = stack.admin.call(stack.platform.channels.get(name))
        assert bad is not None and row.channel_id != bad.id
        assert stack.wait_settled(acc.user_id) == (before[0] - row.charged, 0)
        scrape = httpx.get(stack.url + "/metrics").text
        assert f'llmage_channel_healthy{{channel="{name}"}} 0.0' in scrape
        made = up.creates  # the task's one create, on the good channel
        probe = stack.admin.call(stack.platform.channel_ops.test(name))
        assert (probe.ok, probe.call, probe.kind) == (False, "probe", "auth")
    finally:
        stack.admin.call(stack.platform.channel_ops.set_enabled(name, False))
        time.sleep(stack.settings.channel_cache_ttl + 0.1)
    good = stack.admin.call(stack.platform.channel_ops.test(f"dashscope-{stack.backend}"))
    assert good.ok and good.call == "probe", good
    assert up.creates == made == 1  # probes list tasks; they never create one
    assert [s.query for s in up.requests if s.op == "list"][-1] == {
        "page_no": "1",
        "page_size": "1",
    }


def test_rate_limited_create_is_retried(stack: Stack, up: DashScopeFake) -> None:
    up.fail_next("create", 429, {"request_id": "r", "code": "Throttling.RateQuota",
                                 "message": "Requests rate limit exceeded"},
                 headers={"Retry-After": "0"})  # fmt: skip
    acc = account(stack)
    done = drive_native(stack, acc, {"llmid": HH_T2V, "prompt": "again", "duration": 3})
    assert done["status"] == "SUCCEEDED", done
    assert len(created(up)) == 2 and up.creates == 1  # the 429 created nothing


def test_a_5xx_create_that_made_a_task_is_recovered_not_resent(
    stack: Stack, up: DashScopeFake
) -> None:
    """The upstream made the task, then answered 500: the outcome is unknown, so the gateway
    lists the account's tasks instead of creating again, finds it, and finishes it once."""
    up.answer_after_create = (500, {"request_id": "r", "code": "InternalError",
                                    "message": "An internal error has occured"})  # fmt: skip
    acc = account(stack)
    before = stack.balance(acc.user_id)[0]
    done = drive_native(stack, acc, {"llmid": HH_T2V, "prompt": "lost reply", "duration": 3})
    assert done["status"] == "SUCCEEDED", done
    assert len(created(up)) == 1 and up.creates == 1
    (listing,) = [s.query for s in up.requests if s.op == "list"]
    assert listing["model_name"] == "happyhorse-1.0-t2v"
    assert before - stack.wait_settled(acc.user_id)[0] == 3 * RATE_720P


def test_a_5xx_create_that_made_nothing_fails_unbilled(stack: Stack, up: DashScopeFake) -> None:
    up.fail_next("create", 500, {"request_id": "r", "code": "InternalError", "message": "boom"})
    acc = account(stack)
    before = stack.balance(acc.user_id)
    done = drive_native(stack, acc, {"llmid": HH_T2V, "prompt": "never made", "duration": 3})
    assert done["status"] == "FAILED"
    assert done["error"]["code"] == "submit_lost"
    assert len(created(up)) == 1 and any(s.op == "list" for s in up.requests)
    assert stack.wait_settled(acc.user_id) == (before[0], 0)


def test_a_cancel_reaches_the_pending_upstream_task(stack: Stack, up: DashScopeFake) -> None:
    up.lifecycle = Lifecycle(("queued",) * 10_000)  # stays PENDING upstream until cancelled
    acc = account(stack)
    before = stack.balance(acc.user_id)
    auth = {"Authorization": f"Bearer {acc.key}"}
    body = {"llmid": HH_T2V, "prompt": "stop me", "duration": 3}
    r = httpx.post(stack.url + "/llmage/video", json=body, headers=auth, timeout=30)
    assert r.status_code == 200, r.text
    taskid = r.json()["taskid"]
    deadline = time.monotonic() + 30
    while not [s for s in up.requests if s.op == "poll"]:  # created upstream and being polled
        assert time.monotonic() < deadline, "the task never reached the upstream"
        time.sleep(0.02)
    r = httpx.post(stack.url + "/llmage/tasks/cancel", params={"taskid": taskid}, headers=auth,
                   timeout=30)  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "CANCELLED"
    assert stack.wait_settled(acc.user_id) == (before[0], 0)
    (task,) = up.tasks.values()
    while not [s for s in up.requests if s.op == "cancel"]:  # best effort, in the background
        assert time.monotonic() < deadline, "the upstream was never told"
        time.sleep(0.02)
    (cancel,) = [s for s in up.requests if s.op == "cancel"]
    assert cancel.method == "POST" and cancel.path == f"/api/v1/tasks/{task.id}/cancel"
    assert task.lifecycle.steps == ("canceled",)
