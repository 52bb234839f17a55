"""The OpenAI videos API through a real server, with the official `openai` SDK."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import openai
import pytest
from omhelp import (
    HAPPYHORSE_I2V,
    HAPPYHORSE_R2V,
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

warnings.filterwarnings("ignore", category=DeprecationWarning)  # the SDK marks Sora deprecated


@pytest.fixture(scope="module", autouse=True)
def channels(stack: Stack) -> Iterator[None]:
    media_channels(stack)
    yield


def test_create_and_poll_retrieve_and_download(stack: Stack) -> None:
    acct = account(stack)
    with client(stack, acct.key) as c:
        video = c.videos.create_and_poll(
            model="happyhorse-1.0-t2v", prompt="a red fox", seconds="4", size="1280x720",
            poll_interval_ms=100,
        )  # fmt: skip
        assert video.status == "completed", video
        assert video.object == "video" and video.model == "happyhorse-1.0-t2v"
        assert video.progress == 100
        assert video.seconds == "4" and video.size == "1280x720"
        assert video.prompt == "a red fox"
        assert video.completed_at is not None and video.completed_at >= video.created_at
        assert video.error is None and video.remixed_from_video_id is None

        again = c.videos.retrieve(video.id)
        assert again.id == video.id and again.status == "completed"

        mp4 = c.videos.download_content(video.id).content
        assert is_mp4(mp4)
        thumb = c.videos.download_content(video.id, variant="thumbnail").content
        assert is_jpeg(thumb)


def test_poll_after_header_while_open_and_sdk_default_polling(stack: Stack) -> None:
    acct = account(stack)
    resp = http(
        stack, "POST", "/v1/videos", acct.key,
        json={"model": "wan2.6-t2v", "prompt": "waves", "seconds": "5", "size": "1280x720"},
    )  # fmt: skip
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["status"] == "queued" and body["size"] == "1280x720" and body["seconds"] == "5"
    assert resp.headers["openai-poll-after-ms"] == "1000"
    # The SDK paces itself by the header (no poll_interval_ms given).
    with client(stack, acct.key) as c:
        video = c.videos.poll(body["id"])
    assert video.status == "completed"
    done = http(stack, "GET", f"/v1/videos/{body['id']}", acct.key)
    assert "openai-poll-after-ms" not in done.headers


def test_content_supports_ranges(stack: Stack) -> None:
    acct = account(stack)
    with client(stack, acct.key) as c:
        video = c.videos.create_and_poll(
            model="happyhorse-1.0-t2v", prompt="x", seconds="3", poll_interval_ms=100
        )
    whole = http(stack, "GET", f"/v1/videos/{video.id}/content", acct.key)
    assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-type"] == "video/mp4"
    part = http(
        stack, "GET", f"/v1/videos/{video.id}/content", acct.key, headers={"Range": "bytes=4-7"}
    )
    assert part.status_code == 206 and part.content == b"ftyp"
    assert part.headers["content-range"] == f"bytes 4-7/{len(whole.content)}"
    bad = http(stack, "GET", f"/v1/videos/{video.id}/content?variant=poster", acct.key)
    assert_openai_error(bad, 400, "variant")
    sprites = http(stack, "GET", f"/v1/videos/{video.id}/content?variant=spritesheet", acct.key)
    assert_openai_error(sprites, 404)


def test_input_reference_file_is_the_first_frame(stack: Stack) -> None:
    acct = account(stack)
    with client(stack, acct.key) as c:
        video = c.videos.create_and_poll(
            model="happyhorse-1.0-i2v", prompt="animate", seconds="3",
            input_reference=("frame.png", png_bytes(), "image/png"), poll_interval_ms=100,
        )  # fmt: skip
    assert video.status == "completed", video
    detail = http(stack, "GET", f"/v1/videos/{video.id}?detail=true", acct.key).json()["detail"]
    assert detail["llmid"] == HAPPYHORSE_I2V
    frame = httpx_get(detail["params"]["image1_file"])
    assert is_png(frame)


def test_input_reference_object_and_several_images(stack: Stack) -> None:
    acct = account(stack)
    uri = "data:image/png;base64," + __import__("base64").b64encode(png_bytes()).decode()
    # An `{image_url}` object, as JSON and as the multipart field `input_reference[image_url]`
    # (the SDK's create() refuses to send the object form itself).
    fields = {"model": "happyhorse-1.0-i2v", "prompt": "go", "seconds": "3"}
    as_json = http(
        stack,
        "POST",
        "/v1/videos",
        acct.key,
        json={**fields, "input_reference": {"image_url": uri}},
    )
    as_form = http(
        stack, "POST", "/v1/videos", acct.key, data={**fields, "input_reference[image_url]": uri}
    )
    for resp in (as_json, as_form):
        assert resp.status_code == 200, resp.text
        assert resp.json()["status"] == "queued"
        one = resp.json()["id"]
        detail = http(stack, "GET", f"/v1/videos/{one}?detail=true", acct.key).json()["detail"]
        assert detail["llmid"] == HAPPYHORSE_I2V and "image1_file" in detail["params"]
    files = [
        ("input_reference[]", ("a.png", png_bytes(color="red"), "image/png")),
        ("input_reference[]", ("b.png", png_bytes(color="blue"), "image/png")),
    ]
    data = {"model": "happyhorse-1.0-r2v", "prompt": "both", "seconds": "3", "size": "1280x720"}
    resp = http(stack, "POST", "/v1/videos", acct.key, data=data, files=files)
    assert resp.status_code == 200, resp.text
    body = poll(stack, f"/v1/videos/{resp.json()['id']}?detail=true", acct.key)
    assert body["status"] == "completed"
    assert body["detail"]["llmid"] == HAPPYHORSE_R2V
    assert len(body["detail"]["params"]["image_files"]) == 2
    assert body["detail"]["params"]["ratio"] == "16:9"


def httpx_get(url: str) -> bytes:
    import httpx

    resp = httpx.get(url, timeout=10)
    assert resp.status_code == 200
    return resp.content


def test_list_is_a_cursor_page(stack: Stack) -> None:
    acct = account(stack)
    with client(stack, acct.key) as c:
        ids = [
            c.videos.create(model="happyhorse-1.0-t2v", prompt=f"v{i}", seconds="3").id
            for i in range(3)
        ]
        first = c.videos.list(limit=2)
        assert [v.id for v in first.data] == ids[::-1][:2]
        assert first.has_more is True
        assert [v.id for v in c.videos.list(limit=2)] == ids[::-1]  # the SDK follows last_id
        asc = c.videos.list(limit=100, order="asc")
        assert [v.id for v in asc.data] == ids and asc.has_more is False
    page = http(stack, "GET", f"/v1/videos?limit=1&after={ids[2]}", acct.key).json()
    assert page["object"] == "list" and [v["id"] for v in page["data"]] == [ids[1]]
    assert page["first_id"] == page["last_id"] == ids[1] and page["has_more"] is True
    assert_openai_error(http(stack, "GET", "/v1/videos?limit=0", acct.key), 400, "limit")
    assert_openai_error(http(stack, "GET", "/v1/videos?limit=101", acct.key), 400, "limit")
    assert_openai_error(http(stack, "GET", "/v1/videos?order=up", acct.key), 400, "order")


def test_remix_a_completed_video(stack: Stack) -> None:
    acct = account(stack)
    with client(stack, acct.key) as c:
        original = c.videos.create_and_poll(
            model="happyhorse-1.0-t2v", prompt="a cat", seconds="3", size="720x1280",
            poll_interval_ms=100,
        )  # fmt: skip
        remix = c.videos.remix(original.id, prompt="a cat in the rain")
        assert remix.remixed_from_video_id == original.id
        assert remix.model == original.model and remix.seconds == "3"
        assert remix.prompt == "a cat in the rain"
        done = c.videos.poll(remix.id, poll_interval_ms=100)
        assert done.status == "completed" and done.size == "720x1280"
        assert done.remixed_from_video_id == original.id


def test_remix_of_an_i2v_video_keeps_its_frame(stack: Stack) -> None:
    acct = account(stack)
    with client(stack, acct.key) as c:
        original = c.videos.create_and_poll(
            model="happyhorse-1.0-i2v", prompt="a", seconds="3",
            input_reference=("f.png", png_bytes(), "image/png"), poll_interval_ms=100,
        )  # fmt: skip
        remix = c.videos.remix(original.id, prompt="b")
    detail = http(stack, "GET", f"/v1/videos/{remix.id}?detail=true", acct.key).json()["detail"]
    assert detail["llmid"] == HAPPYHORSE_I2V and detail["remix_of"] == original.id
    assert is_png(httpx_get(detail["params"]["image1_file"]))


def test_remix_needs_a_completed_video(stack: Stack) -> None:
    acct = account(stack)
    resp = http(
        stack, "POST", "/slowsim/v1/videos", acct.key,
        json={"model": "happyhorse-1.0-t2v", "prompt": "slow", "seconds": "3"},
    )  # fmt: skip
    with client(stack, acct.key) as c, pytest.raises(openai.BadRequestError):
        c.videos.remix(resp.json()["id"], prompt="again")


def test_bad_size_and_seconds_are_400s_naming_the_field(stack: Stack) -> None:
    acct = account(stack)
    with client(stack, acct.key) as c:
        with pytest.raises(openai.BadRequestError) as exc:
            c.videos.create(model="happyhorse-1.0-t2v", prompt="p", size="1792x1024")
        assert exc.value.param == "size"
        assert "1280x720" in exc.value.message
        with pytest.raises(openai.BadRequestError) as exc:
            c.videos.create(model="wan2.6-t2v", prompt="p", seconds="4")
        assert exc.value.param == "seconds"
        assert "5, 10, 15" in exc.value.message
        with pytest.raises(openai.NotFoundError):
            c.videos.create(model="sora-2", prompt="p")
        with pytest.raises(openai.BadRequestError) as exc:
            c.videos.create(model="happyhorse-1.0-t2v", prompt="")
        assert exc.value.param == "prompt"
    assert stack.balance(acct.user_id) == (parse_amount("100"), 0)


def test_a_file_in_a_field_that_takes_none_is_a_400(stack: Stack) -> None:
    acct = account(stack)
    data = {"model": "happyhorse-1.0-t2v", "prompt": "p", "seconds": "3"}
    for name in ("foo", "image_files"):
        files = {name: ("a.png", png_bytes(), "image/png")}
        resp = http(stack, "POST", "/v1/videos", acct.key, data=data, files=files)
        assert_openai_error(resp, 400, name)


def test_delete_an_open_video_releases_its_hold(stack: Stack) -> None:
    acct = account(stack)
    resp = http(
        stack, "POST", "/slowsim/v1/videos", acct.key,
        json={"model": "happyhorse-1.0-t2v", "prompt": "slow", "seconds": "4", "size": "1280x720"},
    )  # fmt: skip
    video = resp.json()
    assert stack.balance(acct.user_id) == (parse_amount("100"), parse_amount("2.4"))
    with client(stack, acct.key) as c:
        with pytest.raises(openai.NotFoundError):
            c.videos.download_content(video["id"])  # not ready
        deleted = c.videos.delete(video["id"])
        assert (deleted.id, deleted.object, deleted.deleted) == (video["id"], "video.deleted", True)
        assert stack.balance(acct.user_id) == (parse_amount("100"), 0)
        with pytest.raises(openai.NotFoundError):
            c.videos.retrieve(video["id"])
        with pytest.raises(openai.NotFoundError):
            c.videos.delete(video["id"])
        assert video["id"] not in [v.id for v in c.videos.list()]
    assert stack.reconcile() == []


def test_success_is_charged_once(stack: Stack) -> None:
    acct = account(stack)
    with client(stack, acct.key) as c:
        video = c.videos.create_and_poll(
            model="happyhorse-1.0-t2v", prompt="paid", seconds="4", size="1280x720",
            poll_interval_ms=100,
        )  # fmt: skip
        detail = c.videos.retrieve(video.id, extra_query={"detail": "true"}).model_extra
    assert detail is not None
    charged = parse_amount(detail["detail"]["charged"])
    assert charged == parse_amount("2.4")  # 4 s at 720p, 0.6 a second
    assert stack.balance(acct.user_id) == (parse_amount("100") - charged, 0)
    with client(stack, acct.key) as c:
        c.videos.delete(video.id)  # deleting a finished video refunds nothing
    assert stack.balance(acct.user_id) == (parse_amount("100") - charged, 0)
    assert stack.reconcile() == []


def test_failed_video_reads_failed_and_costs_nothing(stack: Stack) -> None:
    acct = account(stack)
    resp = http(
        stack, "POST", "/failsim/v1/videos", acct.key,
        json={"model": "happyhorse-1.0-t2v", "prompt": "doomed", "seconds": "3"},
    )  # fmt: skip
    with client(stack, acct.key) as c:
        video = c.videos.poll(resp.json()["id"], poll_interval_ms=100)
        assert video.status == "failed"
        assert video.error is not None and video.error.code == "sim_failure"
        with pytest.raises(openai.NotFoundError):
            c.videos.download_content(video.id)
    assert stack.balance(acct.user_id) == (parse_amount("100"), 0)


def test_another_users_video_is_a_404_everywhere(stack: Stack) -> None:
    owner, other = account(stack), account(stack)
    with client(stack, owner.key) as c:
        video = c.videos.create_and_poll(
            model="happyhorse-1.0-t2v", prompt="mine", seconds="3", poll_interval_ms=100
        )
    with client(stack, other.key) as c:
        with pytest.raises(openai.NotFoundError):
            c.videos.retrieve(video.id)
        with pytest.raises(openai.NotFoundError):
            c.videos.download_content(video.id)
        with pytest.raises(openai.NotFoundError):
            c.videos.remix(video.id, prompt="theirs")
        with pytest.raises(openai.NotFoundError):
            c.videos.delete(video.id)
        assert video.id not in [v.id for v in c.videos.list()]
        # A cursor from another account's video is no window into it either.
        page = http(stack, "GET", f"/v1/videos?after={video.id}", other.key).json()
        assert all(v["id"] != video.id for v in page["data"])
    for path in (f"/sim/v1/videos/{video.id}", f"/sim/v1/videos/{video.id}/content"):
        assert_openai_error(http(stack, "GET", path, other.key), 404)
    with client(stack, owner.key) as c:
        assert c.videos.retrieve(video.id).status == "completed"  # still there for its owner
    assert stack.balance(other.user_id) == (parse_amount("100"), 0)


def test_needs_an_api_key(stack: Stack) -> None:
    assert_openai_error(http(stack, "GET", "/v1/videos", None), 401)
    assert_openai_error(http(stack, "POST", "/v1/videos", "sk-wrong", json={}), 401)


async def test_async_client_create_and_poll_and_download(stack: Stack) -> None:
    acct = account(stack)
    async with openai.AsyncOpenAI(
        base_url=stack.url + "/v1", api_key=acct.key, timeout=60.0, max_retries=0
    ) as c:
        video = await c.videos.create_and_poll(
            model="happyhorse-1.0-t2v", prompt="async", seconds="3", poll_interval_ms=100
        )
        assert video.status == "completed"
        assert (await c.videos.retrieve(video.id)).id == video.id
        assert video.id in [v.id async for v in c.videos.list()]
        assert is_mp4((await c.videos.download_content(video.id)).content)
