"""Seed 003's platform-prefixed videos and images: `/{platform}/v1/...`, pinned to the channels
of one upstream platform, with `?detail=true` and data-URI `b64_json`."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from omhelp import (
    HAPPYHORSE_I2V,
    HAPPYHORSE_T2V,
    account,
    assert_openai_error,
    client,
    http,
    is_jpeg,
    is_mp4,
    is_png,
    media_channels,
    png_bytes,
    poll,
)

from conftest import Stack
from llmage.domain.money import parse_amount

PNG_PREFIX = "data:image/png;base64,"


@pytest.fixture(scope="module", autouse=True)
def channels(stack: Stack) -> Iterator[None]:
    media_channels(stack)
    yield


def test_seed_video_json_with_input_reference_and_detail(stack: Stack) -> None:
    acct = account(stack)
    uri = PNG_PREFIX + base64.b64encode(png_bytes()).decode()
    resp = http(
        stack, "POST", "/sim/v1/videos", acct.key,
        json={"prompt": "<视频描述>", "model": "happyhorse-1.0-i2v", "input_reference": uri,
              "seconds": "3"},
    )  # fmt: skip
    assert resp.status_code == 200, resp.text
    created = resp.json()
    assert created["object"] == "video" and created["status"] == "queued"
    plain = http(stack, "GET", f"/sim/v1/videos/{created['id']}", acct.key).json()
    assert "detail" not in plain
    body = poll(stack, f"/sim/v1/videos/{created['id']}?detail=true", acct.key)
    assert body["status"] == "completed" and body["model"] == "happyhorse-1.0-i2v"
    detail = body["detail"]
    assert detail["llmid"] == HAPPYHORSE_I2V and detail["platform"] == "sim"
    assert detail["native_status"] == "SUCCEEDED"
    assert parse_amount(detail["charged"]) == parse_amount("1.8")  # 3 s at 720p
    assert detail["usage"]["duration"] == 3
    assert detail["params"]["image1_file"].startswith(stack.url + "/media/")
    assert detail["created_at"] <= detail["finished_at"]
    assert "upstream_id" not in detail and "hold_id" not in detail

    video = http(stack, "GET", f"/sim/v1/videos/{created['id']}/content", acct.key)
    assert video.status_code == 200 and is_mp4(video.content)
    thumb = http(
        stack, "GET", f"/sim/v1/videos/{created['id']}/content?variant=thumbnail", acct.key
    )
    assert is_jpeg(thumb.content)
    part = http(
        stack, "GET", f"/sim/v1/videos/{created['id']}/content", acct.key,
        headers={"Range": "bytes=0-99"},
    )  # fmt: skip
    assert part.status_code == 206 and part.content == video.content[:100]


def test_seed_video_multipart_with_several_references_and_remix(stack: Stack) -> None:
    acct = account(stack)
    files = [
        ("input_reference[]", ("1.png", png_bytes(color="red"), "image/png")),
        ("input_reference[]", ("2.png", png_bytes(color="blue"), "image/png")),
    ]
    data = {"prompt": "<视频描述>", "model": "happyhorse-1.0-r2v", "seconds": "3"}
    resp = http(stack, "POST", "/sim/v1/videos", acct.key, data=data, files=files)
    assert resp.status_code == 200, resp.text
    original = poll(stack, f"/sim/v1/videos/{resp.json()['id']}", acct.key)
    assert original["status"] == "completed"
    remix = http(
        stack, "POST", f"/sim/v1/videos/{original['id']}/remix", acct.key,
        json={"prompt": "<视频编辑提示词>", "model": "happyhorse-1.0-r2v"},
    )  # fmt: skip
    assert remix.status_code == 200, remix.text
    assert remix.json()["remixed_from_video_id"] == original["id"]
    done = poll(stack, f"/sim/v1/videos/{remix.json()['id']}?detail=true", acct.key)
    assert done["status"] == "completed"
    assert len(done["detail"]["params"]["image_files"]) == 2
    # Seed 003 lets a remix bring new reference images (multipart input_reference[]).
    again = http(
        stack, "POST", f"/sim/v1/videos/{original['id']}/remix", acct.key,
        data={"prompt": "one frame now"},
        files=[("input_reference[]", ("3.png", png_bytes(color="green"), "image/png"))],
    )  # fmt: skip
    assert again.status_code == 200, again.text
    detail = http(stack, "GET", f"/sim/v1/videos/{again.json()['id']}?detail=true", acct.key)
    assert detail.json()["detail"]["params"].get("image1_file") is None  # r2v keeps image_files
    assert len(detail.json()["detail"]["params"]["image_files"]) == 1


def test_platform_pins_the_channel(stack: Stack) -> None:
    acct = account(stack)
    resp = http(
        stack, "POST", "/slowsim/v1/videos", acct.key,
        json={"prompt": "p", "model": "happyhorse-1.0-t2v", "seconds": "3"},
    )  # fmt: skip
    video_id = resp.json()["id"]
    body = poll(stack, f"/slowsim/v1/videos/{video_id}?detail=true", acct.key, timeout=1.5)
    assert body["status"] in ("queued", "in_progress")  # the slow platform's minute-long job
    assert body["detail"]["platform"] == "slowsim" and body["detail"]["llmid"] == HAPPYHORSE_T2V
    assert resp.headers["openai-poll-after-ms"] == "1000"
    listed = http(stack, "GET", "/slowsim/v1/videos", acct.key).json()
    assert [v["id"] for v in listed["data"]] == [video_id]
    gone = http(stack, "DELETE", f"/slowsim/v1/videos/{video_id}", acct.key)
    assert gone.json() == {"id": video_id, "object": "video.deleted", "deleted": True}
    assert stack.balance(acct.user_id) == (parse_amount("100"), 0)


def test_unknown_platform_is_a_404(stack: Stack) -> None:
    acct = account(stack)
    body = {"prompt": "p", "model": "happyhorse-1.0-t2v"}
    for method, path in (
        ("POST", "/nowhere/v1/videos"),
        ("GET", "/nowhere/v1/videos/abc"),
        ("POST", "/nowhere/v1/images/generations"),
        ("GET", "/nowhere/v1/images/abc"),
    ):
        err = assert_openai_error(http(stack, method, path, acct.key, json=body), 404, "platform")
        assert "nowhere" in err["message"]
    # A known platform whose channels do not serve the model: no channel, no task, no charge.
    resp = http(stack, "POST", "/fakeplat/v1/videos", acct.key, json=body)
    assert_openai_error(resp, 503)
    assert stack.balance(acct.user_id) == (parse_amount("100"), 0)
    assert_openai_error(http(stack, "POST", "/nowhere/v1/videos", None, json=body), 401)


def test_seed_images_sync_json_and_multipart_b64_is_a_data_uri(stack: Stack) -> None:
    acct = account(stack)
    as_json = http(
        stack, "POST", "/sim/v1/images/generations", acct.key,
        json={"prompt": "<图片描述>", "model": "qwen-image"},
    )  # fmt: skip
    as_form = http(
        stack, "POST", "/sim/v1/images/generations", acct.key,
        files={"prompt": (None, "<图片描述>"), "model": (None, "qwen-image")},
    )  # fmt: skip
    for resp in (as_json, as_form):
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert set(body) == {"created", "data"}
        b64 = body["data"][0]["b64_json"]
        assert b64.startswith(PNG_PREFIX)
        assert is_png(base64.b64decode(b64[len(PNG_PREFIX) :]))
    url = http(
        stack, "POST", "/sim/v1/images/generations", acct.key,
        json={"prompt": "p", "model": "qwen-image", "response_format": "url"},
    ).json()  # fmt: skip
    assert url["data"][0]["url"].startswith(stack.url + "/media/")


def test_seed_images_async_and_task_detail(stack: Stack) -> None:
    acct = account(stack)
    resp = http(
        stack, "POST", "/sim/v1/images/generations?async=true", acct.key,
        json={"prompt": "<图片描述>", "model": "qwen-image"},
    )  # fmt: skip
    task = resp.json()
    assert task["object"] == "image.task" and task["status"] == "queued"
    done = poll(stack, f"/sim/v1/images/{task['id']}?detail=true", acct.key)
    assert done["status"] == "completed"
    assert done["data"][0]["b64_json"].startswith(PNG_PREFIX)
    assert done["detail"]["platform"] == "sim" and done["detail"]["charged"] == "0.250000"


def test_seed_image_edits_multipart_and_json(stack: Stack) -> None:
    acct = account(stack)
    form = http(
        stack, "POST", "/sim/v1/images/edits", acct.key,
        files=[
            ("image[]", ("1.png", png_bytes(color="red"), "image/png")),
            ("image[]", ("2.png", png_bytes(color="blue"), "image/png")),
            ("prompt", (None, "<图片描述>")),
            ("model", (None, "doubao-seedream-4-0-250828")),
            ("size", (None, "1K")),
        ],
    )  # fmt: skip
    assert form.status_code == 200, form.text
    assert form.json()["data"][0]["b64_json"].startswith(PNG_PREFIX)
    uri = PNG_PREFIX + base64.b64encode(png_bytes()).decode()
    js = http(
        stack, "POST", "/sim/v1/images/edits?async=true", acct.key,
        json={"image": uri, "prompt": "<图片描述>", "model": "doubao-seedream-4-0-250828",
              "size": "1K"},
    )  # fmt: skip
    assert js.status_code == 200 and js.json()["object"] == "image.task"
    assert poll(stack, f"/sim/v1/images/{js.json()['id']}", acct.key)["status"] == "completed"


def test_sdk_works_against_a_platform_prefix(stack: Stack) -> None:
    acct = account(stack)
    with client(stack, acct.key, base_url=stack.url + "/sim/v1") as c:
        video = c.videos.create_and_poll(
            model="happyhorse-1.0-t2v", prompt="p", seconds="3", poll_interval_ms=100
        )
        assert video.status == "completed"
        assert is_mp4(c.videos.download_content(video.id).content)
        assert video.id in [v.id for v in c.videos.list()]
