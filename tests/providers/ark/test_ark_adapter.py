"""The Ark adapter on recorded replies, through the shared executor with a MockUpstream: no
network. Request bodies per mode and per model (what each model refuses is never sent), status
mapping, usage, error kinds, cancel, recovery of a lost create, probe."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from llmage.domain.credentials import ApiKey, KeyPool
from llmage.domain.errors import UpstreamError, UpstreamKind
from llmage.domain.tasks import TaskStatus
from llmage.domain.usage import Usage
from llmage.providers.ark.adapter import ArkAdapter
from llmage.providers.byteplus.adapter import BytePlusAdapter
from llmage.providers.contract import Channel
from llmage.providers.executor import SubmitOutcomeUnknown, TaskExecutor
from llmage.providers.tasks import MediaInput, TaskJob, TaskRef
from llmage.providers.upstream import MockUpstream
from llmage.providers.wire import UpstreamReply, UpstreamRequest

FIXTURES = Path(__file__).parent / "fixtures"
ARK = ArkAdapter()
S20 = "doubao-seedance-2-0-260128"
S20_FAST = "doubao-seedance-2-0-fast-260128"
S15 = "doubao-seedance-1-5-pro-251215"
SEEDREAM = "doubao-seedream-4-0-250828"
TASKS_URL = "https://ark.example/api/v3/contents/generations/tasks"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def errors() -> dict[str, Any]:
    return json.loads(fixture("errors.json"))  # type: ignore[no-any-return]


def channel(**overrides: Any) -> Channel:
    values: dict[str, Any] = {
        "id": 3,
        "name": "ark",
        "provider": "ark",
        "platform": "volcengine",
        "base_url": "https://ark.example/api/v3/",
        "credentials": ApiKey("ark-test-key-123456"),
        "models": frozenset({"*"}),
        "model_map": {},
        "options": {},
    }
    values.update(overrides)
    return Channel(**values)


async def _read() -> bytes:
    return b""


def media(ctype: str, name: str) -> MediaInput:
    return MediaInput(ctype, f"https://gw.example/media/{name}", _read)


def job(
    model: str = S20, mode: str = "t2v", media_: dict[str, list[MediaInput]] | None = None,
    kind: str = "video", claimed: set[str] | None = None, **params: Any,
) -> TaskJob:  # fmt: skip
    return TaskJob(
        task_id="TASK123",
        kind=kind,
        mode=mode,
        model=model,
        params={"prompt": "a cat", **params},
        media=media_ or {},
        submitted_at_ms=1_758_941_480_000,
        claimed=frozenset(claimed or ()),
    )


def reply(status: int, body: bytes | Any, **headers: str) -> UpstreamReply:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return UpstreamReply(status, {k.replace("_", "-"): v for k, v in headers.items()}, data)


def body_of(request: UpstreamRequest) -> dict[str, Any]:
    return json.loads(request.body)  # type: ignore[no-any-return]


async def submitted(
    j: TaskJob, ch: Channel | None = None, adapter: ArkAdapter = ARK
) -> tuple[UpstreamRequest, dict[str, Any]]:
    up = MockUpstream(lambda req: reply(200, {"id": "cgt-1"}))
    done = await TaskExecutor(up).submit(adapter, ch or channel(), j)
    assert done.upstream_id == "cgt-1" and done.result is None
    (req,) = up.requests
    return req, body_of(req)


def build(j: TaskJob, ch: Channel | None = None, adapter: ArkAdapter = ARK) -> dict[str, Any]:
    ctx = TaskExecutor(MockUpstream(lambda r: reply(200, {}))).context(adapter, ch or channel())
    return body_of(adapter.submit_request(ctx, j))


def refused(j: TaskJob, ch: Channel | None = None, adapter: ArkAdapter = ARK) -> UpstreamError:
    with pytest.raises(UpstreamError) as info:
        build(j, ch, adapter)
    assert info.value.kind is UpstreamKind.BAD_REQUEST
    return info.value


# -- create bodies --------------------------------------------------------------------------------


async def test_text_to_video_on_2_0_is_json_signed_and_never_carries_what_2_0_refuses() -> None:
    extras = {"seed": 42, "camera_fixed": True, "service_tier": "flex", "watermark": False}
    req, body = await submitted(job(resolution="720p", ratio="16:9", duration=5, **extras))
    assert (req.method, req.url) == ("POST", TASKS_URL)
    assert req.header("Authorization") == "Bearer ark-test-key-123456"
    assert req.header("Content-Type") == "application/json"
    assert body == {
        "model": S20,
        "content": [{"type": "text", "text": "a cat"}],
        "resolution": "720p",
        "ratio": "16:9",
        "duration": 5,
        "watermark": False,
    }


def test_seedance_1_5_takes_seed_and_camera_fixed_and_keep_ratio_is_adaptive() -> None:
    body = build(job(S15, resolution="1080p", ratio="keep_ratio", duration=12, seed=7,
                     camera_fixed=False, generate_audio=False))  # fmt: skip
    assert body["seed"] == 7 and body["camera_fixed"] is False
    assert body["generate_audio"] is False
    assert body["ratio"] == "adaptive"
    assert "service_tier" not in body  # the offline tier changes the price: never chosen here


def test_first_and_last_frame_roles() -> None:
    first, last = media("image/png", "a"), media("image/jpeg", "b")
    body = build(job(S20, "i2v", {"image1_file": [first], "image2_file": [last]}))
    assert body["content"] == [
        {"type": "text", "text": "a cat"},
        {"type": "image_url", "image_url": {"url": first.url}, "role": "first_frame"},
        {"type": "image_url", "image_url": {"url": last.url}, "role": "last_frame"},
    ]
    only_first = build(job(S15, "i2v", {"image1_file": [first]}))
    assert [i.get("role") for i in only_first["content"]] == [None, "first_frame"]
    text_only = build(job(S15, "i2v", {}))
    assert text_only["content"] == [{"type": "text", "text": "a cat"}]
    err = refused(job(S15, "i2v", {"image2_file": [last]}))
    assert "image1_file" in err.message


def test_reference_images_videos_and_audio_on_2_0() -> None:
    imgs = [media("image/png", f"i{n}") for n in range(2)]
    vid, aud = media("video/mp4", "v"), media("audio/wav", "a")
    body = build(
        job(S20, "r2v", {"image_files": imgs, "video_files": [vid], "audio_files": [aud]},
            resolution="720p", ratio="9:16", duration=8, camera_fixed=True)
    )  # fmt: skip
    assert [(i["type"], i.get("role")) for i in body["content"]] == [
        ("text", None),
        ("image_url", "reference_image"),
        ("image_url", "reference_image"),
        ("video_url", "reference_video"),
        ("audio_url", "reference_audio"),
    ]
    assert body["content"][3]["video_url"] == {"url": vid.url}
    assert "camera_fixed" not in body
    too_many = {"image_files": [media("image/png", str(n)) for n in range(10)]}
    assert "at most 9" in refused(job(S20, "r2v", too_many)).message
    assert "image or video" in refused(job(S20, "r2v", {"audio_files": [aud]})).message


def test_reference_mode_on_1_5_pro_is_routed_to_the_reference_model() -> None:
    refs = {f"image{n}_file": [media("image/png", str(n))] for n in (1, 2, 3)}
    body = build(job(S15, "r2v", refs, resolution="720p", duration=6, seed=3))
    assert body["model"] == S20  # Seedance 1.5 pro has no reference mode upstream
    assert [i.get("role") for i in body["content"][1:]] == ["reference_image"] * 3
    assert "seed" not in body  # the rules of the model that runs it apply
    mapped = channel(model_map={S20: "ep-20250101-ref"})
    assert build(job(S15, "r2v", refs), mapped)["model"] == "ep-20250101-ref"
    chosen = channel(options={"reference_model": "doubao-seedance-1-0-lite-i2v-250428"})
    lite = build(job(S15, "r2v", refs, seed=3), chosen)
    assert lite["model"] == "doubao-seedance-1-0-lite-i2v-250428" and lite["seed"] == 3
    nowhere = channel(options={"reference_model": S15})
    assert "no reference-to-video mode" in refused(job(S15, "r2v", refs), nowhere).message
    byteplus = build(job("seedance-1-5-pro-251215", "r2v", refs), adapter=BytePlusAdapter())
    assert byteplus["model"] == "dreamina-seedance-2-0-260128"


@pytest.mark.parametrize(
    ("j", "param"),
    [
        (job(S20_FAST, resolution="1080p"), "resolution"),
        (job("dreamina-seedance-2-0-fast-260128", resolution="1080p"), "resolution"),
        (job(S20, ratio="9:21"), "ratio"),
        (job(S15, duration=15), "duration"),
        (job(S20, duration=3), "duration"),
        (job(S15, seed="abc"), "seed"),
        (job(S15, camera_fixed="maybe"), "camera_fixed"),
    ],
)
def test_what_a_model_refuses_is_refused_before_sending(j: TaskJob, param: str) -> None:
    err = refused(j)
    assert err.upstream_code == f"invalid_{param}"
    if param == "resolution":
        assert "allowed: 480p, 720p" in err.message


def test_an_endpoint_id_is_judged_by_the_model_it_stands_for() -> None:
    ep = channel(model_map={S20: "ep-20250927-abc"})
    body = build(job("ep-20250927-abc", seed=5, duration=15), ep)
    assert body["model"] == "ep-20250927-abc" and "seed" not in body
    unknown = build(job("ep-unknown", seed=5, resolution="720p"))
    assert unknown == {"model": "ep-unknown", "content": [{"type": "text", "text": "a cat"}],
                       "resolution": "720p"}  # fmt: skip


def test_seedream_generation_and_editing_bodies() -> None:
    gen = build(job(SEEDREAM, "t2i", kind="image", size="2K", n=1))
    assert gen == {"model": SEEDREAM, "prompt": "a cat", "size": "2K", "response_format": "url"}
    several = build(job(SEEDREAM, "t2i", kind="image", size="2048x2048", n=3))
    assert several["sequential_image_generation"] == "auto"
    assert several["sequential_image_generation_options"] == {"max_images": 3}
    one = media("image/png", "x")
    edit = build(job(SEEDREAM, "i2i", {"image_files": [one]}, kind="image", size="1k"))
    assert edit["image"] == one.url and edit["size"] == "1K"
    two = build(job(SEEDREAM, "i2i", {"image_files": [one, one]}, kind="image"))
    assert two["image"] == [one.url, one.url]
    b64 = channel(options={"response_format": "b64_json"})
    assert build(job(SEEDREAM, "t2i", kind="image"), b64)["response_format"] == "b64_json"
    assert "size" in refused(job(SEEDREAM, "t2i", kind="image", size="64x64")).message
    solo = job("doubao-seedream-3-0-t2i-250415", "t2i", kind="image", n=2)
    assert refused(solo).upstream_code == "invalid_n"


# -- replies --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("task_queued.json", TaskStatus.PENDING),
        ("task_running.json", TaskStatus.RUNNING),
        ("task_succeeded.json", TaskStatus.SUCCEEDED),
        ("task_failed.json", TaskStatus.FAILED),
        ("task_failed_output_moderation.json", TaskStatus.FAILED),
        ("task_cancelled.json", TaskStatus.FAILED),
        ("task_expired.json", TaskStatus.FAILED),
        ("task_unknown_status.json", TaskStatus.RUNNING),
    ],
)
async def test_every_status_maps_to_ours(name: str, status: TaskStatus) -> None:
    up = MockUpstream(lambda req: reply(200, fixture(name)))
    ref = TaskRef("cgt-20250927100000-abcde", {}, job())
    result = await TaskExecutor(up).poll(ARK, channel(), ref)
    assert result.status is status
    (req,) = up.requests
    assert (req.method, req.url) == ("GET", TASKS_URL + "/cgt-20250927100000-abcde")
    if status is TaskStatus.FAILED:
        assert result.error_code and result.error_message


def test_success_reports_the_video_and_what_ark_bills() -> None:
    result = ARK.parse_poll(TaskRef("x", {}, job()), reply(200, fixture("task_succeeded.json")))
    (video,) = result.outputs
    assert (video.kind, video.content_type) == ("video", "video/mp4")
    assert video.url is not None and "X-Tos-Expires=86400" in video.url
    # No cover from Ark (last_frame_url is the last frame): the gateway cuts the first frame.
    assert result.usage == Usage(seconds=10.0, resolution="720p", ratio="21:9", tokens=108900)


def test_failures_carry_the_kind_code_and_reason() -> None:
    ref = TaskRef("x", {}, job())
    moderated = ARK.parse_poll(ref, reply(200, fixture("task_failed_output_moderation.json")))
    assert moderated.error_kind is UpstreamKind.OUTPUT_MODERATION
    assert moderated.error_code == "OutputVideoSensitiveContentDetected.PolicyViolation"
    failed = ARK.parse_poll(ref, reply(200, fixture("task_failed.json")))
    assert (failed.error_kind, failed.error_code) == (None, "InternalServiceError")
    expired = ARK.parse_poll(ref, reply(200, fixture("task_expired.json")))
    assert expired.error_code == "expired" and "expired" in (expired.error_message or "")
    cancelled = ARK.parse_poll(ref, reply(200, fixture("task_cancelled.json")))
    assert cancelled.error_code == "cancelled"


def test_a_succeeded_task_without_a_video_is_the_upstreams_bug() -> None:
    data = json.loads(fixture("task_succeeded.json"))
    del data["content"]
    with pytest.raises(UpstreamError) as info:
        ARK.parse_poll(TaskRef("x", {}, job()), reply(200, data))
    assert info.value.kind is UpstreamKind.UPSTREAM_BUG


async def test_seedream_is_synchronous_and_billed_per_generated_image() -> None:
    up = MockUpstream(lambda req: reply(200, fixture("images.json")))
    done = await TaskExecutor(up).submit(ARK, channel(), job(SEEDREAM, "t2i", kind="image", n=2))
    assert done.result is not None and done.result.status is TaskStatus.SUCCEEDED
    assert [o.kind for o in done.result.outputs] == ["image", "image"]
    assert done.result.usage == Usage(images=2, tokens=32768)
    assert up.requests[0].url == "https://ark.example/api/v3/images/generations"
    moderated = ARK.parse_submit(job(kind="image"), reply(200, fixture("images_moderated.json")))
    assert moderated.result is not None and moderated.result.status is TaskStatus.FAILED
    assert moderated.result.error_kind is UpstreamKind.OUTPUT_MODERATION


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("auth", UpstreamKind.AUTH),
        ("access_denied", UpstreamKind.AUTH),
        ("overdue", UpstreamKind.QUOTA),
        ("quota", UpstreamKind.QUOTA),
        ("not_open", UpstreamKind.MODEL_NOT_ENABLED),
        ("no_model", UpstreamKind.MODEL_NOT_ENABLED),
        ("access_disabled", UpstreamKind.MODEL_NOT_ENABLED),
        ("closed_endpoint", UpstreamKind.MODEL_NOT_ENABLED),
        ("rpm", UpstreamKind.RATE_LIMITED),
        ("account_rpm", UpstreamKind.RATE_LIMITED),
        ("overloaded", UpstreamKind.RATE_LIMITED),
        ("invalid", UpstreamKind.BAD_REQUEST),
        ("missing", UpstreamKind.BAD_REQUEST),
        ("input_text", UpstreamKind.INPUT_MODERATION),
        ("input_image_privacy", UpstreamKind.INPUT_MODERATION),
        ("severe", UpstreamKind.INPUT_MODERATION),
        ("risk", UpstreamKind.INPUT_MODERATION),
        ("task_gone", UpstreamKind.TASK_GONE),
        ("internal", UpstreamKind.RETRYABLE),
        ("unavailable", UpstreamKind.RETRYABLE),
        ("gateway_shape", UpstreamKind.AUTH),
        ("html_502", UpstreamKind.RETRYABLE),
    ],
)
def test_error_kinds(name: str, kind: UpstreamKind) -> None:
    case = errors()[name]
    body = case["body"]
    raw = body.encode() if isinstance(body, str) else orjson.dumps(body)
    err = ARK.classify(reply(case["status"], raw, retry_after="3"))
    assert err is not None and err.kind is kind
    assert err.upstream_status == case["status"] and err.retry_after == 3.0
    if isinstance(body, dict) and "error" in body:
        assert err.upstream_code == body["error"]["code"]
        assert err.message == body["error"]["message"]
    assert ARK.classify(reply(200, {"id": "cgt-1"})) is None


def test_byteplus_reads_a_403_as_the_model_not_available() -> None:
    err = BytePlusAdapter().classify(reply(403, orjson.dumps(errors()["access_denied"]["body"])))
    assert err is not None and err.kind is UpstreamKind.MODEL_NOT_ENABLED
    overdue = BytePlusAdapter().classify(reply(403, orjson.dumps(errors()["overdue"]["body"])))
    assert overdue is not None and overdue.kind is UpstreamKind.QUOTA


async def test_a_create_answered_5xx_is_unknown_a_429_certainly_made_nothing() -> None:
    internal = errors()["internal"]
    up = MockUpstream(lambda req: reply(internal["status"], internal["body"]))
    with pytest.raises(SubmitOutcomeUnknown):
        await TaskExecutor(up).submit(ARK, channel(), job())
    assert len(up.requests) == 1  # never resent
    rpm = errors()["rpm"]
    limited = MockUpstream(lambda req: reply(rpm["status"], rpm["body"]))
    with pytest.raises(UpstreamError) as info:
        await TaskExecutor(limited).submit(ARK, channel(), job())
    assert info.value.kind is UpstreamKind.RATE_LIMITED
    assert not isinstance(info.value, SubmitOutcomeUnknown)


# -- cancel, recover, probe, signing --------------------------------------------------------------


async def test_cancel_is_a_delete_of_the_task() -> None:
    up = MockUpstream(lambda req: reply(200, {}))
    ref = TaskRef("cgt-9", {}, job())
    assert await TaskExecutor(up).cancel(ARK, channel(), ref)
    assert (up.requests[0].method, up.requests[0].url) == ("DELETE", TASKS_URL + "/cgt-9")
    image_ref = TaskRef("img-1", {}, job(SEEDREAM, "t2i", kind="image"))
    assert not await TaskExecutor(up).cancel(ARK, channel(), image_ref)


async def test_recovery_lists_the_model_and_finds_our_task() -> None:
    up = MockUpstream(lambda req: reply(200, fixture("list.json")))
    # The later twin of the same shape is another task of ours (its create was answered).
    j = job(resolution="720p", ratio="16:9", duration=5, claimed={"cgt-ours-twin-later"})
    found = await TaskExecutor(up).recover(ARK, channel(), j)
    assert found is not None and found.upstream_id == "cgt-ours"
    (req,) = up.requests
    assert req.method == "GET"
    assert req.url == TASKS_URL + "?page_num=1&page_size=100&filter.model=" + S20
    other = job(resolution="1080p", duration=5)  # nothing in the list echoes 1080p
    assert ARK.parse_recover(other, reply(200, fixture("list.json"))) is None
    later = dataclasses.replace(j, submitted_at_ms=1_758_941_600_000)
    assert ARK.parse_recover(later, reply(200, fixture("list.json"))) is None
    # Two tasks of our shape that none of ours owns: either could be ours, so neither is taken.
    unsure = dataclasses.replace(j, claimed=frozenset())
    assert ARK.parse_recover(unsure, reply(200, fixture("list.json"))) is None
    # The task made just before our create (inside the clock-skew allowance) that another
    # task of ours owns is never taken for ours, however it echoes.
    near = {"id": "cgt-theirs", "created_at": 1_758_941_478, "resolution": "720p",
            "ratio": "16:9", "duration": 5}  # fmt: skip
    mine = {**near, "id": "cgt-mine", "created_at": 1_758_941_481}
    listed = reply(200, {"items": [mine, near]})
    assert ARK.parse_recover(dataclasses.replace(j, claimed=frozenset()), listed) is None
    found = ARK.parse_recover(dataclasses.replace(j, claimed=frozenset({"cgt-theirs"})), listed)
    assert found is not None and found.upstream_id == "cgt-mine"
    routed = job(S15, "r2v", {"image1_file": [media("image/png", "r")]})
    ctx = TaskExecutor(up).context(ARK, channel())
    recover = ARK.recover_request(ctx, routed)
    assert recover is not None and recover.url.endswith("filter.model=" + S20)
    assert ARK.recover_request(ctx, job(SEEDREAM, "t2i", kind="image")) is None


async def test_probe_is_a_one_item_list_signed_with_the_pool_key_in_use() -> None:
    up = MockUpstream(lambda req: reply(200, {"total": 0, "items": []}))
    pool = channel(credentials=KeyPool(("ark-key-a-000000", "ark-key-b-000000")))
    ex = TaskExecutor(up)
    ctx = ex.context(ARK, pool, key_index=1)
    probe = ARK.probe_request(ctx)
    assert probe is not None
    await ex.call(ARK, ctx, probe, op="probe")
    (req,) = up.requests
    assert req.url == TASKS_URL + "?page_num=1&page_size=1"
    assert req.header("Authorization") == "Bearer ark-key-b-000000"


# -- the rest of each model's rules ---------------------------------------------------------------


def test_frame_rules_of_older_families() -> None:
    img = media("image/png", "f")
    three = {"image_files": [img, img, img]}
    assert "first and a last" in refused(job(S20, "i2v", three)).message
    lite_t2v = "doubao-seedance-1-0-lite-t2v-250428"
    assert "first-frame" in refused(job(lite_t2v, "i2v", {"image1_file": [img]})).message
    pro_fast = "doubao-seedance-1-0-pro-fast-251015"
    frames = {"image1_file": [img], "image2_file": [img]}
    assert "last-frame" in refused(job(pro_fast, "i2v", frames)).message
    lite_i2v = "doubao-seedance-1-0-lite-i2v-250428"
    assert "needs an input image" in refused(job(lite_i2v, "t2v")).message
    video = {"video_files": [media("video/mp4", "v")]}
    assert "0 reference videos" in refused(job(lite_i2v, "r2v", video)).message
    # Two plain images in an image-to-video slot other than the numbered ones: first + last.
    body = build(job(S15, "i2v", {"image_files": [img, img]}))
    assert [i.get("role") for i in body["content"][1:]] == ["first_frame", "last_frame"]


def test_a_model_the_table_does_not_know_gets_the_inputs_as_asked() -> None:
    refs = {"image_files": [media("image/png", "r")], "audio_files": [media("audio/mpeg", "a")]}
    body = build(job("ep-unknown", "r2v", refs, duration=99))
    assert body["model"] == "ep-unknown" and body["duration"] == 99
    assert [i.get("role") for i in body["content"][1:]] == ["reference_image", "reference_audio"]


def test_prompt_is_optional_with_an_image_and_extras_are_typed() -> None:
    img = media("image/png", "f")
    body = build(job(S15, "i2v", {"image1_file": [img]}, prompt="  ", seed="12",
                     watermark="true", camera_fixed="N"))  # fmt: skip
    assert body["content"] == [{"type": "image_url", "image_url": {"url": img.url},
                                "role": "first_frame"}]  # fmt: skip
    assert (body["seed"], body["watermark"], body["camera_fixed"]) == (12, True, False)
    assert refused(job(S15, prompt="")).upstream_code == "invalid_prompt"
    assert refused(job(S15, seed=2**32)).upstream_code == "invalid_seed"
    assert refused(job(S15, seed=1.5)).upstream_code == "invalid_seed"
    assert refused(job(S15, seed=True)).upstream_code == "invalid_seed"


def test_image_rules_of_every_family() -> None:
    img = media("image/png", "i")
    edit = build(job("doubao-seededit-3-0-i2i-250628", "i2i", {"image_files": [img]},
                     kind="image", size="2048x2048", seed=9))  # fmt: skip
    assert (edit["size"], edit["seed"], edit["image"]) == ("adaptive", 9, img.url)
    gen3 = build(job("doubao-seedream-3-0-t2i-250415", "t2i", kind="image", size="1024x1024",
                     watermark=False))  # fmt: skip
    assert gen3["size"] == "1024x1024" and gen3["watermark"] is False
    assert "seed" not in build(job(SEEDREAM, "t2i", kind="image", seed=9))
    eleven = {"image_files": [img] * 11}
    assert (
        refused(job(SEEDREAM, "i2i", eleven, kind="image")).upstream_code == "invalid_image_files"
    )
    ten = {"image_files": [img] * 10}
    assert refused(job(SEEDREAM, "i2i", ten, kind="image", n=6)).upstream_code == "invalid_n"
    other = build(job("some-image-model", "t2i", kind="image", size="999x999", n=2))
    assert other["size"] == "999x999" and other["sequential_image_generation"] == "auto"
    assert "size" not in build(job("some-image-model", "t2i", kind="image"))
    assert refused(job(SEEDREAM, "t2i", kind="image", size="huge")).upstream_code == "invalid_size"


def test_unreadable_replies_are_the_upstreams_bug() -> None:
    with pytest.raises(UpstreamError) as info:
        ARK.parse_submit(job(), reply(200, {"error": None}))
    assert info.value.kind is UpstreamKind.UPSTREAM_BUG
    with pytest.raises(UpstreamError):
        ARK.parse_submit(job(kind="image"), reply(200, {"data": [{"b64_json": "%%%"}]}))
    hello = {"data": ["junk", {"size": "1x1"}, {"b64_json": "aGVsbG8="}]}
    result = ARK.parse_submit(job(kind="image"), reply(200, hello))
    assert result.result is not None
    assert [o.data for o in result.result.outputs] == [b"hello"]
    assert result.result.usage == Usage(images=1)
    empty = ARK.parse_submit(job(kind="image"), reply(200, {"data": []}))
    assert empty.result is not None and empty.result.error_code == "no_image"
    data = json.loads(fixture("task_succeeded.json"))
    data.update(duration="soon", usage={"total_tokens": "many"}, resolution=None)
    odd = ARK.parse_poll(TaskRef("x", {}, job()), reply(200, data))
    assert odd.usage == Usage(ratio="21:9")


def test_recovery_skips_items_without_an_id_or_a_time() -> None:
    items = [{"id": 7, "created_at": 1758941481}, {"id": "cgt-no-time"},
             {"id": "cgt-bad-time", "created_at": "later"},
             {"id": "cgt-ok", "created_at": 1758941482, "duration": "5"}]  # fmt: skip
    found = ARK.parse_recover(job(duration=5, resolution="720p"), reply(200, {"items": items}))
    assert found is not None and found.upstream_id == "cgt-ok"
    assert ARK.parse_recover(job(), reply(200, {"total": 0})) is None
