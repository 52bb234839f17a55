"""Pure translation of the OpenAI images API (and seed 003's variant)."""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

import pytest

from llmage.catalog import load_catalog
from llmage.dialects.openai.image_translate import (
    b64_item,
    failure,
    image_draft,
    image_task,
    images_response,
    is_async,
    response_format,
)
from llmage.dialects.submission import file_slots
from llmage.domain.errors import InvalidParameter
from llmage.domain.tasks import MediaSource, TaskRow, TaskStatus

CATALOG = load_catalog()
SLOTS = file_slots(CATALOG)
PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8"
    "z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def gen(**fields: Any) -> Any:
    return image_draft(fields, CATALOG, SLOTS, edit=False)


def edit(**fields: Any) -> Any:
    return image_draft(fields, CATALOG, SLOTS, edit=True)


def test_generation_keeps_model_params_and_drops_openai_only_knobs() -> None:
    d = gen(
        model="qwen-image", prompt="p", n=2, size="1328x1328", response_format="url",
        quality="hd", style="vivid", user="u1", background="auto", output_format="png",
    )  # fmt: skip
    assert d.kind == "image" and d.model == "qwen-image"
    assert d.raw == {"prompt": "p", "n": 2, "size": "1328*1328"}


def test_size_spelling_follows_the_model() -> None:
    assert (
        gen(model="doubao-seedream-4-0-250828", prompt="p", size="2048x2048").raw["size"]
        == "2048x2048"
    )
    assert gen(model="doubao-seedream-4-0-250828", prompt="p", size="2K").raw["size"] == "2K"
    # Not a size of the model: left for the schema to refuse by name.
    assert gen(model="qwen-image", prompt="p", size="1024x1024").raw["size"] == "1024x1024"


def test_mask_and_stream_are_refused() -> None:
    with pytest.raises(InvalidParameter) as exc:
        edit(model="doubao-seedream-4-0-250828", prompt="p", image=PNG, mask=PNG)
    assert exc.value.param == "mask"
    with pytest.raises(InvalidParameter) as exc:
        gen(model="qwen-image", prompt="p", stream="true")
    assert exc.value.param == "stream"
    assert gen(model="qwen-image", prompt="p", stream=False).raw == {"prompt": "p"}


@pytest.mark.parametrize(
    "image",
    [
        PNG,
        [PNG],
        MediaSource(data=b"\x89PNG", content_type="image/png"),
        {"image_url": PNG},
    ],
)
def test_edit_with_one_image(image: Any) -> None:
    d = edit(model="doubao-seedream-4-0-250828", prompt="p", image=image)
    files = d.raw["image_files"]
    assert len(files) == 1 and isinstance(files[0], MediaSource)
    assert "image" not in d.raw


def test_edit_with_several_images_and_urls() -> None:
    uploads = [MediaSource(data=b"a"), MediaSource(data=b"b")]
    d = edit(model="doubao-seedream-4-0-250828", prompt="p", image=uploads)
    assert d.raw["image_files"] == uploads
    d = edit(model="doubao-seedream-4-0-250828", prompt="p", image=["https://e.com/a.png", PNG])
    assert d.raw["image_files"][0].url == "https://e.com/a.png"


def test_edit_needs_an_image() -> None:
    with pytest.raises(InvalidParameter) as exc:
        edit(model="doubao-seedream-4-0-250828", prompt="p")
    assert exc.value.param == "image"


def test_response_format_and_async_flags() -> None:
    assert response_format(None) == "b64_json"
    assert response_format("url") == "url"
    with pytest.raises(InvalidParameter) as exc:
        response_format("png")
    assert exc.value.param == "response_format" and exc.value.allowed == ("b64_json", "url")
    assert is_async(None, None) is False
    assert is_async("true", None) is True
    assert is_async(None, True) is True
    assert is_async("false", True) is False  # the query string wins
    with pytest.raises(InvalidParameter):
        is_async("maybe", None)


def row(**changes: Any) -> TaskRow:
    base = TaskRow(
        id="img1", user_id=1, key_id=2, kind="image", llmid="56xed0ECerNOuvtEXyiKF",
        model="qwen-image", dialect="openai", platform="sim", status=TaskStatus.PENDING,
        progress=0, params={"prompt": "p", "n": 1}, channel_id=1, provider="sim",
        upstream_id="u", key_index=0, upstream_state={},
        hold_id="h", quoted=250_000, charged=None, usage=None, inputs={},
        outputs={},
        error_code=None, error_message=None, idempotency_key=None, request_hash=None,
        callback_url=None, remix_of=None, created_at=1_700_000_000_500, updated_at=0,
        finished_at=None, deadline_at=0, next_poll_at=0, polls=0, deleted_at=None,
    )  # fmt: skip
    return dataclasses.replace(base, **changes)


def test_b64_items_raw_for_openai_and_data_uri_for_seed_003() -> None:
    raw = b64_item(b"\x89PNGdata", "image/png", data_uri=False)["b64_json"]
    assert base64.b64decode(raw) == b"\x89PNGdata"
    uri = b64_item(b"\x89PNGdata", "image/png", data_uri=True)["b64_json"]
    assert uri == "data:image/png;base64," + raw


def test_images_response_and_task_object() -> None:
    done = row(status=TaskStatus.SUCCEEDED, finished_at=1_700_000_003_000)
    items = [{"url": "https://x/media/t"}]
    assert images_response(done, items) == {"created": 1_700_000_000, "data": items}
    assert image_task(row(), None) == {
        "id": "img1",
        "object": "image.task",
        "status": "queued",
        "model": "qwen-image",
        "created_at": 1_700_000_000,
    }
    finished = image_task(done, items)
    assert finished["status"] == "completed" and finished["data"] == items
    assert finished["completed_at"] == 1_700_000_003


@pytest.mark.parametrize(
    ("code", "status"),
    [("bad_request", 400), ("content_policy", 400), ("sim_failure", 502), ("timeout", 504)],
)
def test_failed_task_as_an_error(code: str, status: int) -> None:
    failed = row(status=TaskStatus.FAILED, error_code=code, error_message="it broke")
    err = failure(failed)
    assert err.status == status and err.code == code and err.message == "it broke"
    obj = image_task(failed, None)
    assert obj["status"] == "failed" and obj["error"] == {"code": code, "message": "it broke"}
