"""DashScope request and reply branches its main suite leaves: seeds that are no number,
routes handed the wrong inputs, references a model refuses, an image job with files, sizes
off the table, durations and ratios per model, replies without output or video, and list
items of a recovery that carry no id."""

from __future__ import annotations

from typing import Any

import pytest

from llmage.domain.errors import UpstreamError, UpstreamKind
from llmage.domain.tasks import TaskStatus
from llmage.providers.dashscope import bodies
from llmage.providers.dashscope.adapter import DashScopeAdapter
from llmage.providers.dashscope.errors import kind_of_code
from llmage.providers.dashscope.models import (
    KF2V_PATH,
    VIDEO_PATH,
    Protocol,
    Route,
    check_duration,
    check_ratio,
    route,
    size_tier,
    video_resolutions,
)
from llmage.providers.dashscope.replies import parse_task
from llmage.providers.tasks import MediaInput, TaskJob
from llmage.providers.wire import UpstreamReply

URLS = {"media_urls": True}  # inputs as URLs: no bytes needed


async def _read() -> bytes:
    return b""


def f(ctype: str = "image/png", name: str = "a") -> MediaInput:
    return MediaInput(ctype, f"https://gw.example/media/{name}", _read)


def job(model: str, mode: str = "t2v", kind: str = "video", files: Any = None, **p: Any) -> TaskJob:
    return TaskJob(task_id="T", kind=kind, mode=mode, model=model,
                   params={"prompt": "a cat", **p}, media=files or {})  # fmt: skip


def refused(j: TaskJob, r: Route | None = None) -> UpstreamError:
    with pytest.raises(UpstreamError) as caught:
        bodies.create_body(j, r or route(j, URLS), URLS)
    assert caught.value.kind is UpstreamKind.BAD_REQUEST
    return caught.value


def test_a_seed_that_is_no_number_is_refused() -> None:
    assert "seed" in refused(job("wan2.6-t2v", seed="abc")).message
    assert "seed" in refused(job("wan2.6-t2v", seed=True)).message


def test_routes_handed_the_wrong_frames() -> None:
    i2v = Route(Protocol.I2V, "wan2.5-i2v-preview", VIDEO_PATH)
    assert "exactly one first-frame" in refused(job("wan2.5-i2v-preview", "i2v"), i2v).message
    kf2v = Route(Protocol.KF2V, "wan2.2-kf2v-flash", KF2V_PATH)
    one = job("wan2.2-kf2v-flash", "i2v", files={"image1_file": [f()]})
    assert "first and a last frame" in refused(one, kf2v).message


def test_frames_without_resolution_or_duration_send_neither() -> None:
    one = job("wan2.5-i2v-preview", "i2v", files={"image1_file": [f()]})
    body = bodies.create_body(one, route(one, URLS), URLS)
    sent = body.get("parameters", {})
    assert "resolution" not in sent and "duration" not in sent
    assert body["input"]["img_url"] == "https://gw.example/media/a"
    two = job("wan2.2-kf2v-flash", "i2v", files={"image1_file": [f()], "image2_file": [f()]})
    body = bodies.create_body(two, route(two, URLS), URLS)
    assert "resolution" not in body.get("parameters", {})
    assert route(two, URLS).path == KF2V_PATH


def test_references_a_model_refuses() -> None:
    audio = job("wan2.6-r2v", "r2v", files={"image_files": [f("audio/wav")]})
    assert "images and videos only" in refused(audio).message
    video = job("happyhorse-1.0-r2v", "r2v", files={"image_files": [f("video/mp4")]})
    assert "reference images only" in refused(video).message
    many = job("happyhorse-1.0-r2v", "r2v", files={"image_files": [f()] * 10})
    assert "1 to 9 reference images" in refused(many).message


def test_image_jobs_take_no_files_and_may_leave_the_size_to_the_model() -> None:
    edit = job("qwen-image", "i2i", kind="image", files={"image": [f()]})
    assert "text-to-image only" in refused(edit).message
    plain = job("qwen-image", "t2i", kind="image")
    assert "size" not in bodies.create_body(plain, route(plain, URLS), URLS).get("parameters", {})


def test_sizes_durations_ratios_per_model() -> None:
    assert size_tier("1000*500") == "480P" and size_tier("1400*1000") == "720P"
    assert size_tier("2000*1500") == "1080P"
    with pytest.raises(UpstreamError, match="not WIDTH"):
        size_tier("wide*tall")
    assert video_resolutions(Protocol.T2V, "wan2.5-t2v-preview") == ("480P", "720P", "1080P")
    with pytest.raises(UpstreamError, match="whole number"):
        check_duration("wan2.6-t2v", Protocol.T2V, "five")
    assert check_duration("wan2.6-t2v", Protocol.T2V, 10) == 10
    assert check_duration("wan2.5-t2v-preview", Protocol.T2V, 7) == 7  # no table: upstream says
    assert check_ratio("wan2.6-t2v", " 4:3 ", {}) == "4:3"


def test_unknown_codes_have_no_kind() -> None:
    assert kind_of_code("Totally.New.Code") is None


def test_replies_without_output_or_video() -> None:
    with pytest.raises(UpstreamError, match="no output"):
        parse_task({"request_id": "x"}, "video")
    done = parse_task({"output": {"task_status": "SUCCEEDED"}}, "video")
    assert (done.status, done.error_code) == (TaskStatus.FAILED, "no_result")


def test_recovery_skips_items_without_an_id_and_survives_a_mistyped_offset() -> None:
    adapter = DashScopeAdapter()
    j = TaskJob(task_id="T", kind="video", mode="t2v", model="wan2.6-t2v", params={},
                media={}, submitted_at_ms=1_758_941_480_000)  # fmt: skip
    import orjson

    items = [{"gmt_create": 1_758_941_481_000}, {"task_id": "", "gmt_create": 1_758_941_481_000},
             {"task_id": "t-ok", "gmt_create": 1_758_941_482_000}]  # fmt: skip
    found = adapter.parse_recover(j, UpstreamReply(200, {}, orjson.dumps({"data": items})))
    assert found is not None and found.upstream_id == "t-ok"
    from llmage.providers.contract import Channel
    from llmage.providers.executor import TaskExecutor
    from llmage.providers.upstream import MockUpstream

    ch = Channel(id=1, name="d", provider="dashscope", platform="aliyun", base_url="",
                 credentials=None, models=frozenset({"*"}), model_map={},
                 options={"list_utc_offset_minutes": "eight hours"})  # fmt: skip
    ctx = TaskExecutor(MockUpstream(lambda r: UpstreamReply(200, {}, b"{}"))).context(adapter, ch)
    req = adapter.recover_request(ctx, j)
    assert req is not None and "start_time=20250927104120" in req.url  # Beijing time
