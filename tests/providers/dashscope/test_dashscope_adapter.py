"""The DashScope adapter on recorded replies, through the shared executor with a MockUpstream: no
network. Request shapes per model and mode, values each model refuses, statuses, usage, error
kinds, recovery from the task list, cancel and probe."""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from llmage.catalog import load_catalog
from llmage.domain.catalog import ModelEntry, ModelKind
from llmage.domain.credentials import ApiKey, KeyPool
from llmage.domain.errors import UpstreamError, UpstreamKind
from llmage.domain.params import normalize_params
from llmage.domain.tasks import TaskStatus
from llmage.domain.usage import Usage
from llmage.providers.contract import Channel
from llmage.providers.dashscope.adapter import DashScopeAdapter, api_base
from llmage.providers.dashscope.models import SIZES_480P, SIZES_720P
from llmage.providers.dashscope.replies import video_usage
from llmage.providers.executor import SubmitOutcomeUnknown, TaskExecutor
from llmage.providers.tasks import MediaInput, TaskJob, TaskRef
from llmage.providers.upstream import MockUpstream, TransportFailure
from llmage.providers.wire import UpstreamReply, UpstreamRequest

FIXTURES = Path(__file__).parent / "fixtures"
ADAPTER = DashScopeAdapter()
PNG = b"\x89PNG\r\n\x1a\nfirst-frame"
JPEG = b"\xff\xd8\xff\xe0last-frame"
BASE = "https://dashscope.aliyuncs.com/api/v1"
VIDEO = f"{BASE}/services/aigc/video-generation/video-synthesis"
KF2V = f"{BASE}/services/aigc/image2video/video-synthesis"
IMAGE = f"{BASE}/services/aigc/text2image/image-synthesis"
SUBMITTED_MS = 1_758_941_480_000  # 2025-09-27 02:51:20 UTC = 10:51:20 in Beijing


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def channel(**overrides: Any) -> Channel:
    values: dict[str, Any] = {
        "id": 3,
        "name": "ds",
        "provider": "dashscope",
        "platform": "aliyun",
        "base_url": "",
        "credentials": ApiKey("sk-dashscope-test-0123"),
        "models": frozenset({"*"}),
        "model_map": {},
        "options": {},
    }
    values.update(overrides)
    return Channel(**values)


def media(ctype: str, data: bytes, name: str) -> MediaInput:
    async def read() -> bytes:
        return data

    return MediaInput(ctype, f"https://gw.example/media/{name}", read)


def job(
    model: str,
    mode: str = "t2v",
    *,
    kind: str = "video",
    files: dict[str, list[MediaInput]] | None = None,
    **params: Any,
) -> TaskJob:
    return TaskJob(
        task_id="TASKID123",
        kind=kind,
        mode=mode,
        model=model,
        params={"prompt": "a cat", **params},
        media=files or {},
        submitted_at_ms=SUBMITTED_MS,
    )


def first(name: str = "f") -> MediaInput:
    return media("image/png", PNG, name)


def last() -> MediaInput:
    return media("image/jpeg", JPEG, "l")


def data_uri(ctype: str, data: bytes) -> str:
    return f"data:{ctype};base64,{base64.b64encode(data).decode()}"


def reply(status: int, body: bytes | Any, **headers: str) -> UpstreamReply:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return UpstreamReply(status, {k.replace("_", "-"): v for k, v in headers.items()}, data)


async def create(j: TaskJob, ch: Channel | None = None) -> tuple[UpstreamRequest, dict[str, Any]]:
    up = MockUpstream(lambda req: reply(200, fixture("create_pending.json")))
    done = await TaskExecutor(up).submit(ADAPTER, ch or channel(), j)
    assert done.upstream_id == "0385dc79-5ff8-4d82-bcb6-0000000a" and done.result is None
    (req,) = up.requests
    return req, orjson.loads(req.body)


async def refused(j: TaskJob, ch: Channel | None = None) -> UpstreamError:
    up = MockUpstream(lambda req: reply(200, fixture("create_pending.json")))
    with pytest.raises(UpstreamError) as caught:
        await TaskExecutor(up).submit(ADAPTER, ch or channel(), j)
    assert up.requests == []  # a value the model refuses never leaves
    assert caught.value.kind is UpstreamKind.BAD_REQUEST
    return caught.value


# -- create requests, per model and mode ---------------------------------------------------------


async def test_wan_text_to_video_sends_size_and_is_asynchronous() -> None:
    req, body = await create(
        job("wan2.6-t2v", size="1280*720", duration=10, negative_prompt="blurry")
    )
    assert (req.method, req.url) == ("POST", VIDEO)
    assert req.header("Authorization") == "Bearer sk-dashscope-test-0123"
    assert req.header("X-DashScope-Async") == "enable"
    assert req.header("Content-Type") == "application/json"
    assert body == {
        "model": "wan2.6-t2v",
        "input": {"prompt": "a cat", "negative_prompt": "blurry"},
        "parameters": {"size": "1280*720", "duration": 10},
    }


@pytest.mark.parametrize("size", SIZES_480P)
async def test_wan26_480p_sizes_are_refused_before_sending(size: str) -> None:
    err = await refused(job("wan2.6-t2v", size=size, duration=5))
    assert err.param == "size" and size in err.message
    assert all(s in err.message for s in SIZES_720P)


async def test_wan26_duration_outside_5_10_15_is_refused() -> None:
    err = await refused(job("wan2.6-t2v", size="1280*720", duration=7))
    assert err.param == "duration" and "5, 10, 15" in err.message


async def test_wan_first_frame_sends_img_url_and_resolution_never_size() -> None:
    j = job("wan2.6-i2v", "i2v", files={"image1_file": [first()]}, resolution="720p", duration=5)
    req, body = await create(j)
    assert req.url == VIDEO
    assert body == {
        "model": "wan2.6-i2v",
        "input": {"prompt": "a cat", "img_url": data_uri("image/png", PNG)},
        "parameters": {"resolution": "720P", "duration": 5},
    }
    _, by_url = await create(j, channel(options={"media_urls": True}))
    assert by_url["input"]["img_url"] == "https://gw.example/media/f"
    err = await refused(
        job("wan2.6-i2v", "i2v", files={"image1_file": [first()]}, resolution="480p")
    )
    assert err.param == "resolution" and "720p, 1080p" in err.message


async def test_first_and_last_frame_go_to_the_kf2v_model() -> None:
    """Seed 000's `wan2.6-r2v` row with image_file1 + image_file2: there is no Wan 2.6
    first+last model, so the kf2v model takes it on its own endpoint (5 s, no duration)."""
    frames = {"image1_file": [first()], "image2_file": [last()]}
    j = job("wan2.6-r2v", "i2v", files=frames, size="1920*1080", duration=15)
    req, body = await create(j)
    assert req.url == KF2V
    assert body == {
        "model": "wan2.2-kf2v-flash",
        "input": {
            "prompt": "a cat",
            "first_frame_url": data_uri("image/png", PNG),
            "last_frame_url": data_uri("image/jpeg", JPEG),
        },
        "parameters": {"resolution": "1080P"},
    }
    _, small = await create(job("wan2.6-r2v", "i2v", files=frames, size="832*480"))
    assert small["parameters"] == {"resolution": "480P"}  # flash makes 480P
    plus = channel(options={"first_last_model": "wan2.1-kf2v-plus"})
    _, body = await create(job("wan2.6-r2v", "i2v", files=frames, size="1280*720"), plus)
    assert body["model"] == "wan2.1-kf2v-plus" and body["parameters"] == {"resolution": "720P"}
    err = await refused(job("wan2.6-r2v", "i2v", files=frames, size="1920*1080"), plus)
    assert err.param == "resolution" and "allowed: 720p" in err.message


async def test_first_and_last_frame_on_wan27_use_the_media_protocol() -> None:
    frames = {"image1_file": [first()], "image2_file": [last()]}
    wan27 = channel(options={"first_last_model": "wan2.7-i2v"})
    req, body = await create(job("wan2.6-r2v", "i2v", files=frames, size="1280*720",
                                 duration=10), wan27)  # fmt: skip
    assert req.url == VIDEO
    assert body == {
        "model": "wan2.7-i2v",
        "input": {
            "prompt": "a cat",
            "media": [
                {"type": "first_frame", "url": data_uri("image/png", PNG)},
                {"type": "last_frame", "url": data_uri("image/jpeg", JPEG)},
            ],
        },
        "parameters": {"resolution": "720P", "duration": 10},
    }


async def test_wan_reference_to_video_sends_reference_urls() -> None:
    clip = media("video/mp4", b"", "clip")
    refs = {"image_files": [first(), first("g")], "video_files": [clip]}
    j = job("wan2.6-r2v", "r2v", files=refs, size="1280*720", duration=8)
    req, body = await create(j)
    assert req.url == VIDEO
    assert body == {
        "model": "wan2.6-r2v",
        "input": {
            "prompt": "a cat",
            "reference_urls": [
                data_uri("image/png", PNG),
                data_uri("image/png", PNG),
                "https://gw.example/media/clip",  # videos always go by URL
            ],
        },
        "parameters": {"size": "1280*720", "duration": 8},
    }
    too_long = await refused(job("wan2.6-r2v", "r2v", files={"image_files": [first()]},
                                 size="1280*720", duration=12))  # fmt: skip
    assert too_long.param == "duration" and "2-10" in too_long.message
    six = await refused(job("wan2.6-r2v", "r2v", files={"image_files": [first()] * 6}))
    assert six.param == "image_files"


async def test_happyhorse_text_to_video_on_the_media_protocol() -> None:
    j = job("happyhorse-1.0-t2v", resolution="720p", ratio="16:9", duration=5,
            negative_prompt="not documented for happyhorse")  # fmt: skip
    req, body = await create(j)
    assert req.url == VIDEO
    assert body == {
        "model": "happyhorse-1.0-t2v",
        "input": {"prompt": "a cat"},
        "parameters": {"resolution": "720P", "ratio": "16:9", "duration": 5},
    }
    # The seed's default ratio `adaptive` does not exist upstream: the model's default applies.
    _, adaptive = await create(job("happyhorse-1.0-t2v", resolution="1080p", ratio="adaptive"))
    assert adaptive["parameters"] == {"resolution": "1080P"}


@pytest.mark.parametrize(
    ("model", "params", "param"),
    [
        ("happyhorse-1.0-t2v", {"resolution": "480p"}, "resolution"),
        ("happyhorse-1.0-t2v", {"ratio": "21:9"}, "ratio"),
        ("happyhorse-1.0-t2v", {"duration": 20}, "duration"),
        ("happyhorse-1.0-r2v", {"ratio": "9:21"}, "ratio"),
    ],
)
async def test_happyhorse_refuses_what_it_does_not_make(
    model: str, params: dict[str, Any], param: str
) -> None:
    mode = "r2v" if "r2v" in model else "t2v"
    files = {"image_files": [first()]} if mode == "r2v" else None
    err = await refused(job(model, mode, files=files, **params))
    assert err.param == param


async def test_happyhorse_ratio_lists_per_model_and_per_channel() -> None:
    _, v11 = await create(job("happyhorse-1.1-t2v", ratio="21:9"))
    assert v11["parameters"] == {"ratio": "21:9"}
    narrow = channel(options={"ratios": ["16:9", "9:16"]})
    err = await refused(job("happyhorse-1.1-t2v", ratio="1:1"), narrow)
    assert err.param == "ratio" and "16:9, 9:16" in err.message


async def test_happyhorse_first_frame_and_references() -> None:
    one = {"image1_file": [first()]}
    _, i2v = await create(
        job("happyhorse-1.0-i2v", "i2v", files=one, resolution="720p", duration=4, ratio="16:9")
    )
    assert i2v["input"] == {
        "prompt": "a cat",
        "media": [{"type": "first_frame", "url": data_uri("image/png", PNG)}],
    }
    assert i2v["parameters"] == {"resolution": "720P", "duration": 4}  # no ratio: the image's
    _, r2v = await create(job("happyhorse-1.0-r2v", "r2v",
                              files={"image_files": [first(), first("g")]}, resolution="1080p",
                              ratio="4:3", duration=12))  # fmt: skip
    assert [m["type"] for m in r2v["input"]["media"]] == ["reference_image", "reference_image"]
    assert r2v["parameters"] == {"resolution": "1080P", "ratio": "4:3", "duration": 12}
    err = await refused(job("happyhorse-1.0-i2v", "i2v",
                            files={"image1_file": [first()], "image2_file": [last()]}))  # fmt: skip
    assert err.param == "image2_file"


async def test_qwen_image_uses_the_asynchronous_image_synthesis_api() -> None:
    j = job("qwen-image", "t2i", kind="image", size="1328*1328", n=1, negative_prompt="text")
    req, body = await create(j)
    assert (req.url, req.header("X-DashScope-Async")) == (IMAGE, "enable")
    assert body == {
        "model": "qwen-image",
        "input": {"prompt": "a cat"},
        "parameters": {"size": "1328*1328", "n": 1, "negative_prompt": "text"},
    }
    err = await refused(job("qwen-image", "t2i", kind="image", n=2))
    assert err.param == "n"


async def test_channel_options_watermark_prompt_extend_and_workspace() -> None:
    opts = channel(options={"watermark": False, "prompt_extend": False, "workspace": "ws-123"})
    req, wan = await create(job("wan2.6-t2v", size="1280*720"), opts)
    assert wan["parameters"] == {"watermark": False, "prompt_extend": False, "size": "1280*720"}
    assert req.header("X-DashScope-WorkSpace") == "ws-123"
    _, hh = await create(job("happyhorse-1.0-t2v"), opts)
    assert hh["parameters"] == {"watermark": False}  # HappyHorse documents no prompt_extend


async def test_documented_extras_from_the_request_and_nothing_else() -> None:
    """`seed`, `watermark`, `prompt_extend` pass (validated; the request beats the channel's
    default); any other field a request carries (`shot_type`, `audio`...) is never sent."""
    opts = channel(options={"watermark": True})
    j = job("wan2.6-t2v", size="1280*720", seed="42", watermark="false", shot_type="multi",
            audio=True, callback="x")  # fmt: skip
    _, body = await create(j, opts)
    assert body["parameters"] == {"watermark": False, "seed": 42, "size": "1280*720"}
    _, hh = await create(job("happyhorse-1.0-t2v", prompt_extend=True, seed=7))
    assert hh["parameters"] == {"seed": 7}
    assert (await refused(job("wan2.6-t2v", seed=-1))).param == "seed"
    assert (await refused(job("wan2.6-t2v", seed=2**31))).param == "seed"
    assert (await refused(job("wan2.6-t2v", watermark="maybe"))).param == "watermark"


@pytest.mark.parametrize(
    ("base", "api"),
    [
        ("", BASE),
        ("https://dashscope-intl.aliyuncs.com/api/v1/", "https://dashscope-intl.aliyuncs.com/api/v1"),
        ("https://ws-1.cn-beijing.maas.aliyuncs.com", "https://ws-1.cn-beijing.maas.aliyuncs.com/api/v1"),
        ("https://dashscope.aliyuncs.com/compatible-mode/v1", BASE),
        ("http://127.0.0.1:8081", "http://127.0.0.1:8081/api/v1"),
    ],
)  # fmt: skip
async def test_base_urls(base: str, api: str) -> None:
    assert api_base(base or ADAPTER.default_base_url) == api
    req, _ = await create(job("wan2.6-t2v"), channel(base_url=base))
    assert req.url == f"{api}/services/aigc/video-generation/video-synthesis"


# -- polls: statuses, outputs, usage --------------------------------------------------------------


async def poll(name: str, j: TaskJob | None = None, **state: str) -> Any:
    up = MockUpstream(lambda req: reply(200, fixture(name)))
    ref = TaskRef("0385dc79-5ff8-4d82-bcb6-0000000a", state, j or job("wan2.6-t2v"))
    result = await TaskExecutor(up).poll(ADAPTER, channel(), ref)
    (req,) = up.requests
    assert (req.method, req.url) == ("GET", f"{BASE}/tasks/0385dc79-5ff8-4d82-bcb6-0000000a")
    assert req.header("X-DashScope-Async") is None  # polls carry the key only
    return result


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("task_pending.json", TaskStatus.PENDING),
        ("task_suspended.json", TaskStatus.PENDING),
        ("task_running.json", TaskStatus.RUNNING),
        ("task_undocumented.json", TaskStatus.RUNNING),  # logged, never leaked
    ],
)
async def test_open_statuses(name: str, status: TaskStatus) -> None:
    assert (await poll(name)).status is status


async def test_succeeded_video_is_a_public_url_and_reported_usage() -> None:
    result = await poll("task_succeeded_video.json")
    assert result.status is TaskStatus.SUCCEEDED
    (out,) = result.outputs  # no cover: the gateway cuts the first frame
    assert (out.kind, out.content_type, out.fetch) == ("video", "video/mp4", None)
    assert out.url is not None and out.url.startswith("https://dashscope-result-bj")
    assert result.usage == Usage(seconds=5.0, resolution="720p", width=1280, height=720)


async def test_succeeded_in_results_with_string_duration() -> None:
    result = await poll("task_succeeded_results.json")
    assert result.outputs[0].url.endswith("video.mp4?Expires=1759028000")  # type: ignore[union-attr]
    assert result.usage == Usage(seconds=5.2, resolution="1080p")


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        ({"video_duration": 10, "video_ratio": "1920*1080", "video_count": 1},
         Usage(seconds=10.0, resolution="1080p", width=1920, height=1080)),
        ({"video_duration": "15", "video_ratio": "standard"}, Usage(seconds=15.0)),
        ({"duration": 5}, Usage(seconds=5.0)),
        ({"video_duration": "n/a", "video_ratio": "624*624"},
         Usage(resolution="480p", width=624, height=624)),
        ({"video_duration": True}, Usage()),
        (None, Usage()),
    ],
)  # fmt: skip
def test_video_usage_variants(usage: Any, expected: Usage) -> None:
    assert video_usage(usage) == expected


@pytest.mark.parametrize(
    ("name", "kind", "code"),
    [
        ("task_failed.json", UpstreamKind.RETRYABLE, "InternalError.Algo"),
        ("task_failed_bare.json", UpstreamKind.RETRYABLE, "FAILED"),
        ("task_failed_moderation.json", UpstreamKind.OUTPUT_MODERATION, "DataInspectionFailed"),
        ("task_failed_input_url.json", UpstreamKind.BAD_REQUEST, "InvalidURL"),
        ("task_canceled.json", UpstreamKind.RETRYABLE, "CANCELED"),
        ("task_unknown.json", UpstreamKind.TASK_GONE, "UNKNOWN"),
    ],
)
async def test_ends_that_fail_carry_a_kind_and_a_reason(
    name: str, kind: UpstreamKind, code: str
) -> None:
    result = await poll(name)
    assert (result.status, result.error_kind, result.error_code) == (TaskStatus.FAILED, kind, code)
    assert result.error_message  # always a reason, generic when DashScope gave none


async def test_images_succeed_with_their_urls_or_fail_with_the_first_refusal() -> None:
    image_job = job("qwen-image", "t2i", kind="image")
    done = await poll("image_succeeded.json", image_job)
    assert done.status is TaskStatus.SUCCEEDED and done.usage == Usage(images=1)
    assert [(o.kind, o.content_type) for o in done.outputs] == [("image", "image/png")]
    refused_all = await poll("image_refused.json", image_job)
    assert refused_all.status is TaskStatus.FAILED
    assert refused_all.error_kind is UpstreamKind.OUTPUT_MODERATION


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case", json.loads(fixture("errors.json")), ids=lambda c: f"{c['status']}-{c['kind']}"
)
async def test_error_kinds(case: dict[str, Any]) -> None:
    body = case["body"] if isinstance(case["body"], dict) else case["body"].encode()
    up = MockUpstream(lambda r: reply(case["status"], body, **case.get("headers", {})))
    with pytest.raises(UpstreamError) as caught:
        await TaskExecutor(up).poll(ADAPTER, channel(), TaskRef("t-1", {}, job("wan2.6-t2v")))
    assert caught.value.kind is UpstreamKind(case["kind"])
    assert caught.value.retry_after == case.get("retry_after")
    if isinstance(case["body"], dict):
        assert caught.value.upstream_code == case["body"]["code"]
    assert "sk-abcdef0123456789abcdef" not in caught.value.message  # scrubbed


async def test_a_5xx_lost_or_unreadable_create_has_an_unknown_outcome() -> None:
    for failure in (
        lambda r: reply(500, {"request_id": "x", "code": "InternalError", "message": "boom"}),
        lambda r: (_ for _ in ()).throw(
            TransportFailure(UpstreamKind.TIMEOUT, "no answer", maybe_sent=True)
        ),
        lambda r: reply(200, {"request_id": "x", "output": {"task_status": "PENDING"}}),
    ):
        up = MockUpstream(failure)
        with pytest.raises(SubmitOutcomeUnknown):
            await TaskExecutor(up).submit(ADAPTER, channel(), job("wan2.6-t2v"))
        assert len(up.requests) == 1  # never resent


async def test_a_rate_limited_create_is_a_plain_retryable_refusal() -> None:
    body = {"request_id": "x", "code": "Throttling.RateQuota", "message": "slow down"}
    up = MockUpstream(lambda r: reply(429, body))
    with pytest.raises(UpstreamError) as caught:
        await TaskExecutor(up).submit(ADAPTER, channel(), job("wan2.6-t2v"))
    assert not isinstance(caught.value, SubmitOutcomeUnknown)
    assert caught.value.kind is UpstreamKind.RATE_LIMITED


# -- recovery, cancel, probe, keys ---------------------------------------------------------------


async def test_recover_lists_by_model_and_window_and_takes_the_first_after_our_create() -> None:
    up = MockUpstream(lambda r: reply(200, fixture("list_tasks.json")))
    found = await TaskExecutor(up).recover(ADAPTER, channel(), job("wan2.6-t2v"))
    assert found is not None and found.upstream_id == "task-ours"
    assert found.state == {"verify_prompt": "1"}
    (req,) = up.requests
    # [T - 10 min, T + 30 min] on the account's Beijing wall clock (T = 10:51:20).
    assert req.url == (
        f"{BASE}/tasks?model_name=wan2.6-t2v&start_time=20250927104120"
        "&end_time=20250927112120&page_no=1&page_size=100"
    )
    utc = channel(options={"list_utc_offset_minutes": 0})
    await TaskExecutor(up).recover(ADAPTER, utc, job("wan2.6-t2v"))
    assert "start_time=20250927024120" in up.requests[-1].url
    empty = MockUpstream(lambda r: reply(200, {"request_id": "x", "data": [], "total": 0}))
    assert await TaskExecutor(empty).recover(ADAPTER, channel(), job("wan2.6-t2v")) is None


@pytest.mark.parametrize(
    ("offsets_ms", "found"),
    [
        ((-2_000, -4_000), "at-2000"),  # our clock ahead: the last one just before
        ((-6_000,), None),  # made before our create started: not ours
        ((301_000,), None),  # far too late for our create
        ((-1_000, 3_000, 1_000), "at1000"),  # after beats before; the first after wins
    ],
)
async def test_recover_window(offsets_ms: tuple[int, ...], found: str | None) -> None:
    data = [{"task_id": f"at{o}", "gmt_create": SUBMITTED_MS + o, "model_name": "wan2.6-t2v"}
            for o in offsets_ms]  # fmt: skip
    up = MockUpstream(lambda r: reply(200, {"request_id": "x", "data": data}))
    got = await TaskExecutor(up).recover(ADAPTER, channel(), job("wan2.6-t2v"))
    assert (got.upstream_id if got else None) == found
    if found is not None:  # owned by another task of ours: never this one's
        owned = dataclasses.replace(job("wan2.6-t2v"), claimed=frozenset({found}))
        again = await TaskExecutor(up).recover(ADAPTER, channel(), owned)
        assert again is None or again.upstream_id != found


async def test_recover_of_two_frames_lists_the_kf2v_model() -> None:
    frames = {"image1_file": [first()], "image2_file": [last()]}
    up = MockUpstream(lambda r: reply(200, {"data": []}))
    await TaskExecutor(up).recover(ADAPTER, channel(), job("wan2.6-r2v", "i2v", files=frames))
    assert "model_name=wan2.2-kf2v-flash" in up.requests[0].url


async def test_a_recovered_task_with_another_prompt_is_refused() -> None:
    theirs = job("wan2.6-t2v", prompt="a dog")
    wrong = await poll("task_running.json", theirs, verify_prompt="1")
    assert (wrong.status, wrong.error_kind) == (TaskStatus.FAILED, UpstreamKind.TASK_GONE)
    ours = await poll("task_running.json", job("wan2.6-t2v"), verify_prompt="1")
    assert ours.status is TaskStatus.RUNNING
    unchecked = await poll("task_running.json", theirs)  # not recovered: no check
    assert unchecked.status is TaskStatus.RUNNING


async def test_cancel_and_probe() -> None:
    up = MockUpstream(lambda r: reply(200, {"request_id": "x"}))
    ref = TaskRef("t-9", {}, job("wan2.6-t2v"))
    assert await TaskExecutor(up).cancel(ADAPTER, channel(), ref) is True
    assert (up.requests[0].method, up.requests[0].url) == ("POST", f"{BASE}/tasks/t-9/cancel")
    busy = MockUpstream(lambda r: reply(400, {"code": "UnsupportedOperation", "message": "no"}))
    assert await TaskExecutor(busy).cancel(ADAPTER, channel(), ref) is False
    probe = ADAPTER.probe_request(TaskExecutor(up).context(ADAPTER, channel()))
    assert probe is not None
    assert (probe.method, probe.url) == ("GET", f"{BASE}/tasks?page_no=1&page_size=1")


async def test_a_pool_signs_with_the_key_the_task_was_submitted_with() -> None:
    up = MockUpstream(lambda r: reply(200, fixture("task_running.json")))
    pooled = channel(credentials=KeyPool(("sk-pool-key-aaaa", "sk-pool-key-bbbb")))
    ref = TaskRef("t-1", {}, job("wan2.6-t2v"))
    await TaskExecutor(up).poll(ADAPTER, pooled, ref, key_index=1)
    assert up.requests[0].header("Authorization") == "Bearer sk-pool-key-bbbb"


# -- the catalog: every aliyun media entry, with its own defaults ---------------------------------

ALIYUN_MEDIA = [
    e for e in load_catalog().entries() if e.platform == "aliyun" and e.kind is not ModelKind.CHAT
]
# Seed 000/001 llmids of DashScope models → the upstream model and endpoint they run on.
SEED_ROUTES = {
    "o5vfXYD5BURJWRTWpopE5": ("happyhorse-1.0-t2v", VIDEO),
    "u9HZyfDoqU6uKI6M1BTks": ("wan2.6-t2v", VIDEO),
    "7y7kfYM0Xasizyi37WvAZ": ("happyhorse-1.0-i2v", VIDEO),
    "x4HksKp9mXR1Yv60mw6Py": ("wan2.2-kf2v-flash", KF2V),
    "6o9n_7u2K927hNlD8_72f": ("happyhorse-1.0-r2v", VIDEO),
    "56xed0ECerNOuvtEXyiKF": ("qwen-image", IMAGE),
}


@pytest.mark.parametrize("entry", ALIYUN_MEDIA, ids=lambda e: f"{e.llmid}-{e.default_name}")
async def test_every_aliyun_entry_is_accepted_with_its_catalog_defaults(entry: ModelEntry) -> None:
    """A request that gives only what the catalog requires (defaults filled, e.g. the seed's
    `adaptive` ratio or wan's 15 s on the first+last row) is never refused by the adapter."""
    plain = [s for s in entry.params if not s.is_file]
    params = normalize_params(plain, {"prompt": "a cat"})
    files = {s.name: [first(s.name)] for s in entry.params if s.is_file and s.required}
    kind = "image" if entry.kind in (ModelKind.T2I, ModelKind.I2I) else "video"
    params.pop("prompt")
    j = job(entry.default_name, entry.kind.value, kind=kind, files=files, **params)
    req, body = await create(j)
    if entry.llmid in SEED_ROUTES:
        assert (body["model"], req.url) == SEED_ROUTES[entry.llmid]


def test_every_seed_dashscope_llmid_is_in_the_catalog() -> None:
    assert set(SEED_ROUTES) <= {e.llmid for e in ALIYUN_MEDIA}
