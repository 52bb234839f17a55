"""The Vidu adapter on recorded replies, through the shared executor with a MockUpstream: no
network. Request shapes per mode and model, `Token` signing, every state, usage, error kinds,
cancel, recovery from the task list by the echoed payload, the probe."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from llmage.domain.credentials import ApiKey, KeyPool
from llmage.domain.errors import UpstreamError, UpstreamKind
from llmage.domain.tasks import TaskStatus
from llmage.domain.usage import Usage
from llmage.providers.contract import Channel
from llmage.providers.executor import SubmitOutcomeUnknown, TaskExecutor
from llmage.providers.tasks import MediaInput, TaskJob, TaskRef
from llmage.providers.upstream import MockUpstream, TransportFailure
from llmage.providers.vidu.adapter import ViduAdapter, tier, usage
from llmage.providers.wire import UpstreamReply, UpstreamRequest

FIXTURES = Path(__file__).parent / "fixtures"
ADAPTER = ViduAdapter()
TASK_ID = "TASKID1234567890ABCDE"
KEY = "vidu-test-key-0123456789"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def channel(**overrides: Any) -> Channel:
    values: dict[str, Any] = {
        "id": 3,
        "name": "vidu-cn",
        "provider": "vidu",
        "platform": "vidu",
        "base_url": "",  # the adapter's default host
        "credentials": ApiKey(KEY),
        "models": frozenset({"*"}),
        "model_map": {},
        "options": {},
    }
    values.update(overrides)
    return Channel(**values)


def _file(name: str) -> MediaInput:
    async def read() -> bytes:
        raise AssertionError("Vidu takes image URLs: the bytes are never read")

    return MediaInput("image/png", f"https://gw.example/media/{name}", read)


def job(mode: str = "t2v", model: str = "viduq3-pro", **params: Any) -> TaskJob:
    media: dict[str, list[MediaInput]] = {}
    for slot in ("image1_file", "image2_file"):
        if params.pop(slot, False):
            media[slot] = [_file(slot)]
    refs = params.pop("image_files", 0)
    if refs:
        media["image_files"] = [_file(f"ref{i}") for i in range(1, refs + 1)]
    return TaskJob(
        task_id=TASK_ID,
        kind="video",
        mode=mode,
        model=model,
        params={"prompt": "a lighthouse at dawn", **params},
        media=media,
        submitted_at_ms=1_758_941_480_000,  # 2025-09-27T02:51:20Z
    )


def reply(status: int, body: bytes | Any, **headers: str) -> UpstreamReply:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return UpstreamReply(status, {k.replace("_", "-"): v for k, v in headers.items()}, data)


async def submitted(j: TaskJob, ch: Channel | None = None) -> tuple[UpstreamRequest, Any]:
    up = MockUpstream(lambda req: reply(200, fixture("create_text2video.json")))
    done = await TaskExecutor(up).submit(ADAPTER, ch or channel(), j)
    assert done.upstream_id == "806284938482958336" and done.result is None
    (req,) = up.requests
    return req, orjson.loads(req.body)


# -- create ---------------------------------------------------------------------------------------


async def test_text_to_video_body_signed_with_token() -> None:
    req, body = await submitted(
        job(duration=4, ratio="9:16", resolution="720p", off_peak="N", seed=42, audio=False)
    )
    assert (req.method, req.url) == ("POST", "https://api.vidu.cn/ent/v2/text2video")
    assert req.header("Authorization") == f"Token {KEY}"  # not Bearer
    assert req.header("Content-Type") == "application/json"
    assert body == {
        "model": "viduq3-pro",
        "prompt": "a lighthouse at dawn",
        "duration": 4,
        "resolution": "720p",
        "aspect_ratio": "9:16",
        "seed": 42,
        "audio": False,
        "payload": TASK_ID,  # our task id: echoed, the recovery key
    }  # off_peak N is not sent at all


async def test_image_to_video_takes_the_picture_shape_and_q3_extras_only() -> None:
    params = {"duration": 5, "ratio": "16:9", "resolution": "1080p", "off_peak": "Y"}
    extras = {"bgm": True, "movement_amplitude": "large", "voice_id": "v1", "is_rec": "true"}
    req, body = await submitted(
        job("i2v", "viduq3-turbo", image1_file=True, **params, **extras),
        channel(base_url="https://api.vidu.com/"),
    )
    assert req.url == "https://api.vidu.com/ent/v2/img2video"
    assert body["images"] == ["https://gw.example/media/image1_file"]
    assert body["off_peak"] is True and body["resolution"] == "1080p"
    assert body["voice_id"] == "v1" and body["is_rec"] is True
    # Q3 makes its own sound: bgm / movement_amplitude are never sent; nor a ratio to i2v.
    assert not {"aspect_ratio", "bgm", "movement_amplitude"} & set(body)


async def test_first_and_last_frame_go_to_start_end_with_older_model_fields() -> None:
    req, body = await submitted(
        job(
            "i2v",
            "viduq2-turbo",
            image1_file=True,
            image2_file=True,
            duration=8,
            resolution="1080P",
            movement_amplitude="small",
            bgm="false",
            audio=True,
        )
    )
    assert req.url == "https://api.vidu.cn/ent/v2/start-end2video"
    assert body["images"] == [
        "https://gw.example/media/image1_file",
        "https://gw.example/media/image2_file",
    ]
    assert body["model"] == "viduq2-turbo" and body["resolution"] == "1080p"
    assert body["movement_amplitude"] == "small" and body["bgm"] is False
    assert "audio" not in body  # Q3 only


async def test_reference_mode_runs_the_mix_model_with_every_image() -> None:
    req, body = await submitted(job("r2v", "viduq3-pro", image_files=3, ratio="1:1", duration=5))
    assert req.url == "https://api.vidu.cn/ent/v2/reference2video"
    assert body["model"] == "viduq3-mix"
    assert body["images"] == [f"https://gw.example/media/ref{i}" for i in (1, 2, 3)]
    assert body["aspect_ratio"] == "1:1"
    _, q2 = await submitted(job("r2v", "viduq2-pro", image_files=1))
    assert q2["model"] == "viduq2"
    _, mapped = await submitted(job("r2v", "viduq3", image_files=1))
    assert mapped["model"] == "viduq3"  # an operator's own model name is kept


async def test_seed_004_metadata_reaches_viduq1_but_never_payload_or_callback() -> None:
    _, body = await submitted(
        job(
            "i2v",
            "viduq1",
            image1_file=True,
            duration=5,
            resolution="1080p",
            seed=0,
            movement_amplitude="auto",
            bgm=False,
            payload="",
            callback_url="https://x.example/h",
            style="anime",
            unknown_knob="on",
        )
    )
    assert body["seed"] == 0 and body["bgm"] is False and body["movement_amplitude"] == "auto"
    assert body["payload"] == TASK_ID and "callback_url" not in body
    assert "style" not in body  # text-to-video only
    assert "unknown_knob" not in body  # not on the allow-list


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"seed": "abc"}, "seed"),
        ({"watermark": "maybe"}, "watermark"),
        ({"duration": 4.5}, "duration"),
    ],
)
async def test_an_extra_of_the_wrong_type_fails_naming_it(
    params: dict[str, Any], name: str
) -> None:
    up = MockUpstream(lambda req: reply(200, fixture("create_text2video.json")))
    with pytest.raises(UpstreamError) as caught:
        await TaskExecutor(up).submit(ADAPTER, channel(), job(**params))
    assert caught.value.kind is UpstreamKind.BAD_REQUEST and f"'{name}'" in caught.value.message
    assert up.requests == []  # nothing was sent


@pytest.mark.parametrize(
    ("model", "files", "duration", "words"),
    [
        ("viduq2-turbo", {"image1_file": True, "image2_file": True}, 10, "1-8 seconds"),
        ("vidu2.0", {}, 5, "4, 8 seconds"),
        ("viduq3-pro", {}, 17, "1-16 seconds"),
    ],
)
async def test_a_length_the_model_refuses_is_never_sent(
    model: str, files: dict[str, bool], duration: int, words: str
) -> None:
    up = MockUpstream(lambda req: reply(200, fixture("create_text2video.json")))
    mode = "i2v" if files else "t2v"
    with pytest.raises(UpstreamError) as caught:
        await TaskExecutor(up).submit(ADAPTER, channel(), job(mode, model, duration=duration,
                                                              **files))  # fmt: skip
    assert caught.value.kind is UpstreamKind.BAD_REQUEST
    assert "'duration'" in caught.value.message and words in caught.value.message
    assert up.requests == []
    await TaskExecutor(up).submit(ADAPTER, channel(), job(mode, model, duration=8, **files))


async def test_a_pool_signs_with_the_key_the_task_uses() -> None:
    up = MockUpstream(lambda r: reply(200, fixture("query_processing.json")))
    pooled = channel(credentials=KeyPool(("vidu-pool-key-aaaa", "vidu-pool-key-bbbb")))
    await TaskExecutor(up).poll(ADAPTER, pooled, TaskRef("806284938482958336", {}, job()), 1)
    assert up.requests[0].header("Authorization") == "Token vidu-pool-key-bbbb"


async def test_an_unknown_create_outcome_is_never_resent() -> None:
    for failure in (
        lambda r: reply(500, {"code": 500, "reason": "InternalServiceFailure", "message": "x"}),
        lambda r: (_ for _ in ()).throw(
            TransportFailure(UpstreamKind.TIMEOUT, "no answer", maybe_sent=True)
        ),
        lambda r: reply(200, {"state": "created"}),  # no task_id to poll by
    ):
        up = MockUpstream(failure)
        with pytest.raises(SubmitOutcomeUnknown):
            await TaskExecutor(up).submit(ADAPTER, channel(), job())
        assert len(up.requests) == 1


# -- poll -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("query_created.json", TaskStatus.PENDING),
        ("query_queueing.json", TaskStatus.PENDING),
        ("query_processing.json", TaskStatus.RUNNING),
        ("query_undocumented.json", TaskStatus.RUNNING),  # logged, polled on, never leaked
    ],
)
async def test_open_states(name: str, status: TaskStatus) -> None:
    up = MockUpstream(lambda req: reply(200, fixture(name)))
    ref = TaskRef("806284938482958336", {}, job())
    result = await TaskExecutor(up).poll(ADAPTER, channel(), ref)
    assert result.status is status and result.outputs == ()
    (req,) = up.requests
    assert (req.method, req.url) == (
        "GET",
        "https://api.vidu.cn/ent/v2/tasks/806284938482958336/creations",
    )
    assert req.header("Authorization") == f"Token {KEY}"


async def test_success_gives_video_cover_and_billed_credits() -> None:
    up = MockUpstream(lambda req: reply(200, fixture("query_success.json")))
    result = await TaskExecutor(up).poll(ADAPTER, channel(), TaskRef("806", {}, job()))
    assert result.status is TaskStatus.SUCCEEDED and result.progress == 100
    video, cover = result.outputs
    assert (video.kind, video.content_type) == ("video", "video/mp4")
    assert video.url is not None and video.url.endswith(
        "video.mp4?X-Amz-Expires=86400&X-Amz-Signature=abc"
    )
    assert cover.kind == "cover" and cover.url is not None and "cover.jpeg" in cover.url
    assert result.usage == Usage(
        credits=150.0, off_peak=False, seconds=5.0, width=1280, height=720, resolution="720p"
    )
    assert len(up.requests) == 1  # public URLs: the media service copies them, no download here

    marked = await TaskExecutor(up).poll(
        ADAPTER, channel(), TaskRef("806", {}, job(watermark=True))
    )
    assert marked.outputs[0].url is not None and "watermarked.mp4" in marked.outputs[0].url


async def test_success_without_cover_or_credits() -> None:
    up = MockUpstream(lambda req: reply(200, fixture("query_success_offpeak_no_cover.json")))
    result = await TaskExecutor(up).poll(ADAPTER, channel(), TaskRef("806", {}, job()))
    assert [o.kind for o in result.outputs] == ["video"]  # the gateway cuts the first frame
    assert result.usage == Usage(credits=80.0, off_peak=True)
    up = MockUpstream(lambda req: reply(200, fixture("query_success_no_credits.json")))
    result = await TaskExecutor(up).poll(ADAPTER, channel(), TaskRef("806", {}, job()))
    # 0 credits (a subscription package): priced from the request, never free.
    assert result.usage.credits is None and result.usage.resolution == "1080p"
    assert result.usage.seconds == 4.0


@pytest.mark.parametrize(
    ("name", "kind", "code"),
    [
        ("query_failed_moderation.json", UpstreamKind.OUTPUT_MODERATION, "CreationPolicyViolation"),
        ("query_failed_no_code.json", UpstreamKind.RETRYABLE, "failed"),
        ("query_failed_balance.json", UpstreamKind.QUOTA, "CreditInsufficient"),
    ],
)
async def test_failures_carry_a_kind_and_a_reason(name: str, kind: UpstreamKind, code: str) -> None:
    up = MockUpstream(lambda req: reply(200, fixture(name)))
    result = await TaskExecutor(up).poll(ADAPTER, channel(), TaskRef("806", {}, job()))
    assert result.status is TaskStatus.FAILED
    assert (result.error_kind, result.error_code) == (kind, code)
    assert result.error_message and "Vidu" in result.error_message


async def test_success_without_a_video_is_the_upstreams_bug() -> None:
    broken = {"state": "success", "credits": 10, "creations": [{"url": ""}]}
    with pytest.raises(UpstreamError) as caught:
        await TaskExecutor(MockUpstream(lambda r: reply(200, broken))).poll(
            ADAPTER, channel(), TaskRef("806", {}, job())
        )
    assert caught.value.kind is UpstreamKind.UPSTREAM_BUG


@pytest.mark.parametrize("case", json.loads(fixture("errors.json")), ids=lambda c: c["kind"])
async def test_error_kinds(case: dict[str, Any]) -> None:
    body = case["body"] if isinstance(case["body"], dict) else case["body"].encode()
    up = MockUpstream(lambda r: reply(case["status"], body, **case.get("headers", {})))
    with pytest.raises(UpstreamError) as caught:
        await TaskExecutor(up).poll(ADAPTER, channel(), TaskRef("806", {}, job()))
    assert caught.value.kind is UpstreamKind(case["kind"])
    assert caught.value.retry_after == case.get("retry_after")
    if isinstance(case["body"], dict):
        assert caught.value.upstream_code == case["body"]["reason"]


def test_usage_reads_numbers_in_any_spelling_and_ignores_nonsense() -> None:
    spelled = {"credits": "96", "off_peak": "yes", "creations": [{"video": {
        "duration": "5.04", "resolution": {"width": "1920.0", "height": 1080}}}]}  # fmt: skip
    assert usage(spelled) == Usage(
        credits=96, seconds=5, width=1920, height=1080, resolution="1080p"
    )  # off_peak that is not a boolean is not reported
    assert usage({"credits": "inf", "creations": [{"video": {"duration": -1}}]}) == Usage()
    assert usage({"credits": 12.5}) == Usage(credits=12.5)


def test_resolution_tiers() -> None:
    assert [tier(1920, 1080), tier(1080, 1920), tier(960, 540), tier(1440, 1080)] == [
        "1080p",
        "1080p",
        "540p",
        "1080p",
    ]
    assert tier(None, 720) is None and tier(1000, 900) is None


# -- cancel, recover, probe -----------------------------------------------------------------------


async def test_cancel_posts_the_id() -> None:
    up = MockUpstream(lambda r: reply(200, {}))
    ok = await TaskExecutor(up).cancel(ADAPTER, channel(), TaskRef("806", {}, job()))
    (req,) = up.requests
    assert ok and (req.method, req.url) == ("POST", "https://api.vidu.cn/ent/v2/tasks/806/cancel")
    assert orjson.loads(req.body) == {"id": "806"}
    scheduled = {
        "code": 400,
        "reason": "BadRequest",
        "message": "task state is scheduled, can not cancel",
    }
    late = MockUpstream(lambda r: reply(400, scheduled))
    assert not await TaskExecutor(late).cancel(ADAPTER, channel(), TaskRef("806", {}, job()))


async def test_recover_finds_our_task_by_its_echoed_payload() -> None:
    up = MockUpstream(lambda r: reply(200, fixture("tasks_list.json")))
    found = await TaskExecutor(up).recover(ADAPTER, channel(), job())
    assert found is not None and found.upstream_id == "806284938482958336"
    (req,) = up.requests
    assert req.method == "GET" and req.header("Authorization") == f"Token {KEY}"
    assert req.url == (
        "https://api.vidu.cn/ent/v2/tasks?created_at.from=2025-09-27T02%3A50%3A20Z"
        "&created_at.to=2025-09-27T03%3A06%3A20Z&pager.pagesz=100"
    )
    empty = MockUpstream(lambda r: reply(200, {"next_page_token": "", "tasks": []}))
    assert await TaskExecutor(empty).recover(ADAPTER, channel(), job()) is None
    listing = json.loads(fixture("tasks_list.json"))
    listing["tasks"] = [t for t in listing["tasks"] if t["payload"] != TASK_ID]
    listing["next_page_token"] = "p2"  # ours may be further on: still never resubmitted
    more = MockUpstream(lambda r: reply(200, listing))
    assert await TaskExecutor(more).recover(ADAPTER, channel(), job()) is None


async def test_probe_is_a_one_item_list() -> None:
    ctx = TaskExecutor(MockUpstream(lambda r: reply(200, {}))).context(ADAPTER, channel())
    probe = ADAPTER.probe_request(ctx)
    assert probe is not None and probe.method == "GET"
    assert probe.url == "https://api.vidu.cn/ent/v2/tasks?pager.pagesz=1"
