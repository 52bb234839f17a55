"""The OpenAI images API through a real server: the official SDK, plus async tasks by httpx."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import openai
import pytest
from omhelp import (
    SEEDREAM_I2I,
    account,
    assert_openai_error,
    client,
    http,
    is_png,
    media_channels,
    png_bytes,
    poll,
)

from conftest import Stack
from llmage.domain.money import parse_amount

SEEDREAM = "doubao-seedream-4-0-250828"


@pytest.fixture(scope="module", autouse=True)
def channels(stack: Stack) -> Iterator[None]:
    media_channels(stack)
    yield


def test_generate_b64_json_decodes_to_png(stack: Stack) -> None:
    acct = account(stack)
    with client(stack, acct.key) as c:
        resp = c.images.generate(
            model="qwen-image", prompt="a lighthouse", response_format="b64_json", n=2
        )
    assert resp.created > 0 and resp.data is not None and len(resp.data) == 2
    for item in resp.data:
        assert item.b64_json is not None and item.url is None
        assert is_png(base64.b64decode(item.b64_json))
    # Two images at 0.25 each, charged once, nothing left held.
    assert stack.balance(acct.user_id) == (parse_amount("99.5"), 0)
    assert stack.reconcile() == []


def test_generate_defaults_to_b64_json_and_url_is_a_signed_link(stack: Stack) -> None:
    acct = account(stack)
    with client(stack, acct.key) as c:
        default = c.images.generate(model="qwen-image", prompt="x", size="1140x1472")
        assert default.data and default.data[0].b64_json
        linked = c.images.generate(model="qwen-image", prompt="x", response_format="url")
    assert linked.data and linked.data[0].url and linked.data[0].b64_json is None
    assert "/media/" in linked.data[0].url
    assert is_png(httpx.get(linked.data[0].url, timeout=10).content)


def test_edit_with_one_file_and_with_a_list(stack: Stack) -> None:
    acct = account(stack)
    with client(stack, acct.key) as c:
        one = c.images.edit(
            model=SEEDREAM, image=("in.png", png_bytes(), "image/png"), prompt="make it blue",
            size="1K",
        )  # fmt: skip
        several = c.images.edit(
            model=SEEDREAM, prompt="merge", size="1K",
            image=[("a.png", png_bytes(color="red"), "image/png"),
                   ("b.png", png_bytes(color="green"), "image/png")],
        )  # fmt: skip
    for resp in (one, several):
        assert resp.data and is_png(base64.b64decode(resp.data[0].b64_json or ""))


def test_edit_as_json_with_base64_strings(stack: Stack) -> None:
    acct = account(stack)
    uri = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()
    for image in (uri, [uri, base64.b64encode(png_bytes(color="blue")).decode()]):
        resp = http(
            stack, "POST", "/v1/images/edits?async=true", acct.key,
            json={"model": SEEDREAM, "prompt": "p", "image": image, "size": "1K"},
        )  # fmt: skip
        assert resp.status_code == 200, resp.text
        task = resp.json()
        body = poll(stack, f"/sim/v1/images/{task['id']}?detail=true", acct.key)
        assert body["status"] == "completed"
        detail = body["detail"]
        assert detail["llmid"] == SEEDREAM_I2I
        count = 1 if isinstance(image, str) else 2
        assert len(detail["params"]["image_files"]) == count


def test_async_generation_on_v1(stack: Stack) -> None:
    acct = account(stack)
    resp = http(
        stack, "POST", "/v1/images/generations?async=true", acct.key,
        json={"model": "qwen-image", "prompt": "later"},
    )  # fmt: skip
    assert resp.status_code == 200, resp.text
    task = resp.json()
    assert task["object"] == "image.task" and task["status"] == "queued"
    assert task["model"] == "qwen-image" and isinstance(task["created_at"], int)
    assert "data" not in task
    done = poll(stack, f"/v1/images/{task['id']}", acct.key)
    assert done["status"] == "completed" and done["id"] == task["id"]
    assert is_png(base64.b64decode(done["data"][0]["b64_json"]))  # raw base64 on /v1
    linked = http(stack, "GET", f"/v1/images/{task['id']}?response_format=url", acct.key).json()
    assert is_png(httpx.get(linked["data"][0]["url"], timeout=10).content)


def test_bad_requests_are_openai_400s(stack: Stack) -> None:
    acct = account(stack)
    with client(stack, acct.key) as c:
        with pytest.raises(openai.BadRequestError) as exc:
            c.images.generate(model="qwen-image", prompt="p", size="1024x1024")
        assert exc.value.param == "size" and "1328*1328" in exc.value.message
        with pytest.raises(openai.BadRequestError) as exc:
            c.images.generate(model="qwen-image", prompt="p", extra_body={"response_format": "gif"})
        assert exc.value.param == "response_format"
        with pytest.raises(openai.BadRequestError) as exc:
            c.images.edit(model=SEEDREAM, prompt="p", image=b"", extra_body={})
        with pytest.raises(openai.NotFoundError):
            c.images.generate(model="dall-e-3", prompt="p")
    assert stack.balance(acct.user_id) == (parse_amount("100"), 0)


def test_failed_sync_generation_is_an_error_and_costs_nothing(stack: Stack) -> None:
    acct = account(stack)
    resp = http(
        stack, "POST", "/failsim/v1/images/generations", acct.key,
        json={"model": "qwen-image", "prompt": "doomed"},
    )  # fmt: skip
    err = assert_openai_error(resp, 502)
    assert err["code"] == "sim_failure"
    assert stack.balance(acct.user_id) == (parse_amount("100"), 0)


def test_image_tasks_belong_to_their_owner(stack: Stack) -> None:
    owner, other = account(stack), account(stack)
    resp = http(
        stack, "POST", "/v1/images/generations?async=true", owner.key,
        json={"model": "qwen-image", "prompt": "mine"},
    )  # fmt: skip
    task_id = resp.json()["id"]
    assert_openai_error(http(stack, "GET", f"/v1/images/{task_id}", other.key), 404)
    assert_openai_error(http(stack, "GET", f"/sim/v1/images/{task_id}", other.key), 404)
    assert http(stack, "GET", f"/v1/images/{task_id}", owner.key).status_code == 200
    # An image task is not a video, and the other way round.
    assert_openai_error(http(stack, "GET", f"/v1/videos/{task_id}", owner.key), 404)
