"""Pure translation of the OpenAI videos API: request fields → TaskDraft, TaskRow → Video."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from llmage.catalog import load_catalog
from llmage.dialects.openai.task_detail import public_params, task_detail
from llmage.dialects.openai.video_sizes import allowed_sizes
from llmage.dialects.openai.video_translate import (
    deleted_object,
    video_draft,
    video_object,
    video_page,
)
from llmage.dialects.submission import file_slots
from llmage.domain.errors import InvalidParameter, MissingParameter
from llmage.domain.stored_files import StoredFile
from llmage.domain.tasks import MediaSource, TaskRow, TaskStatus

CATALOG = load_catalog()
SLOTS = file_slots(CATALOG)
PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8"
    "z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def draft(**fields: Any) -> Any:
    return video_draft(fields, CATALOG, SLOTS)


# -- seconds ------------------------------------------------------------------------------------


def test_seconds_becomes_duration() -> None:
    d = draft(model="happyhorse-1.0-t2v", prompt="p", seconds="4")
    assert d.kind == "video" and d.model == "happyhorse-1.0-t2v"
    assert d.raw == {"prompt": "p", "duration": 4}
    assert "seconds" not in d.raw


def test_seconds_checked_against_the_duration_enum_and_named_seconds() -> None:
    with pytest.raises(InvalidParameter) as exc:
        draft(model="wan2.6-t2v", prompt="p", seconds="4")
    assert exc.value.param == "seconds"
    assert exc.value.allowed == (5, 10, 15)


def test_seconds_checked_against_the_duration_range() -> None:
    with pytest.raises(InvalidParameter) as exc:
        draft(model="happyhorse-1.0-t2v", prompt="p", seconds="20")
    assert exc.value.param == "seconds"
    assert "at most 15" in exc.value.message
    with pytest.raises(InvalidParameter) as exc:
        draft(model="happyhorse-1.0-t2v", prompt="p", seconds="four")
    assert exc.value.param == "seconds"


def test_seconds_and_a_different_duration_conflict() -> None:
    assert (
        draft(model="happyhorse-1.0-t2v", prompt="p", seconds="5", duration=5).raw["duration"] == 5
    )
    with pytest.raises(InvalidParameter):
        draft(model="happyhorse-1.0-t2v", prompt="p", seconds="5", duration=6)


# -- size ---------------------------------------------------------------------------------------


def test_size_goes_to_the_models_own_size_param() -> None:
    d = draft(model="wan2.6-t2v", prompt="p", size="1280x720")
    assert d.raw["size"] == "1280*720"
    assert "resolution" not in d.raw


def test_size_becomes_resolution_and_ratio() -> None:
    d = draft(model="happyhorse-1.0-t2v", prompt="p", size="1280x720")
    assert (d.raw["resolution"], d.raw["ratio"]) == ("720p", "16:9")
    d = draft(model="happyhorse-1.0-t2v", prompt="p", size="1080x1920")
    assert (d.raw["resolution"], d.raw["ratio"]) == ("1080p", "9:16")
    d = draft(model="happyhorse-1.0-t2v", prompt="p", size="854x480")  # 16:9 within 2 %
    assert (d.raw["resolution"], d.raw["ratio"]) == ("480p", "16:9")


def test_size_without_a_ratio_param_sets_resolution_only() -> None:
    d = draft(model="happyhorse-1.0-i2v", prompt="p", size="720x1280", input_reference=PNG)
    assert d.raw["resolution"] == "720p"
    assert "ratio" not in d.raw


@pytest.mark.parametrize(
    ("model", "size"),
    [
        ("happyhorse-1.0-t2v", "1792x1024"),  # 7:4 is no ratio of the model
        ("happyhorse-1.0-t2v", "1000x500"),  # short side 500 is no tier
        ("wan2.6-t2v", "1792x1024"),
        ("wan2.6-t2v", "big"),
    ],
)
def test_unknown_size_is_a_400_naming_size_with_allowed_values(model: str, size: str) -> None:
    with pytest.raises(InvalidParameter) as exc:
        draft(model=model, prompt="p", size=size)
    assert exc.value.param == "size"
    assert exc.value.allowed
    assert "1280x720" in exc.value.allowed


def test_allowed_sizes_from_the_schema() -> None:
    horse = CATALOG.by_llmid("o5vfXYD5BURJWRTWpopE5")
    assert horse is not None
    sizes = allowed_sizes(horse)
    assert {"854x480", "1280x720", "720x1280", "1920x1080", "720x720"} <= set(sizes)
    wan = CATALOG.by_llmid("u9HZyfDoqU6uKI6M1BTks")
    assert wan is not None
    assert allowed_sizes(wan)[:2] == ["832x480", "480x832"]


def test_size_conflicting_with_a_direct_param() -> None:
    d = draft(model="happyhorse-1.0-t2v", prompt="p", size="1280x720", resolution="720P")
    assert d.raw["resolution"] == "720p"  # the same tier in another case is no conflict
    with pytest.raises(InvalidParameter):
        draft(model="happyhorse-1.0-t2v", prompt="p", size="1280x720", resolution="1080p")


def test_model_params_may_be_sent_directly() -> None:
    d = draft(model="happyhorse-1.0-t2v", prompt="p", duration="6", ratio="1:1")
    assert d.raw == {"prompt": "p", "duration": "6", "ratio": "1:1"}


def test_model_is_required() -> None:
    with pytest.raises(MissingParameter):
        draft(prompt="p")


# -- input_reference ----------------------------------------------------------------------------


def test_one_input_reference_is_the_first_frame() -> None:
    d = draft(model="happyhorse-1.0-i2v", prompt="p", input_reference=PNG)
    ref = d.raw["image1_file"]
    assert isinstance(ref, MediaSource) and ref.data and ref.content_type == "image/png"
    assert "input_reference" not in d.raw


@pytest.mark.parametrize(
    "value",
    [
        {"image_url": PNG},
        [PNG],
        [{"image_url": "https://example.com/a.png"}],
    ],
)
def test_input_reference_spellings_for_one_image(value: Any) -> None:
    d = draft(model="happyhorse-1.0-i2v", prompt="p", input_reference=value)
    assert isinstance(d.raw["image1_file"], MediaSource)


def test_multipart_object_field_and_uploads() -> None:
    d = draft(model="happyhorse-1.0-i2v", prompt="p", **{"input_reference[image_url]": PNG})
    assert isinstance(d.raw["image1_file"], MediaSource)
    upload = MediaSource(data=b"\x89PNG...", filename="a.png", content_type="image/png")
    d = draft(model="happyhorse-1.0-i2v", prompt="p", input_reference=upload)
    assert d.raw["image1_file"] is upload


def test_several_input_references_are_reference_images() -> None:
    d = draft(model="happyhorse-1.0-r2v", prompt="p", input_reference=[PNG, PNG], size="1280x720")
    assert [isinstance(x, MediaSource) for x in d.raw["image_files"]] == [True, True]
    assert d.raw["ratio"] == "16:9"  # the r2v entry's schema decided (no "adaptive" there)


@pytest.mark.parametrize(
    ("model", "count", "slots"),
    [
        ("happyhorse-1.0-i2v", 1, {"image1_file"}),
        ("happyhorse-1.0-r2v", 1, {"image_files"}),  # no first-frame entry under this name
        ("doubao-seedance-2-0-260128", 1, {"image_files"}),  # its i2v needs a last frame too
        ("doubao-seedance-2-0-260128", 2, {"image_files"}),
        ("doubao-seedance-1-5-pro-251215", 1, {"image1_file"}),  # last frame optional there
        ("viduq3-pro", 1, {"image1_file"}),
        ("wan2.6-r2v", 2, {"image1_file", "image2_file"}),  # first and last frame only
        ("happyhorse-1.0-r2v", 3, {"image_files"}),
        ("no-such-model", 1, {"image1_file"}),
    ],
)
def test_references_go_where_the_model_can_use_them(
    model: str, count: int, slots: set[str]
) -> None:
    d = draft(model=model, prompt="p", input_reference=[PNG] * count)
    assert {k for k in d.raw if k != "prompt"} == slots


def test_file_id_reference_is_refused() -> None:
    with pytest.raises(InvalidParameter) as exc:
        draft(model="happyhorse-1.0-i2v", prompt="p", **{"input_reference[file_id]": "file-1"})
    assert exc.value.param == "input_reference"
    with pytest.raises(InvalidParameter):
        draft(model="happyhorse-1.0-i2v", prompt="p", input_reference={"file_id": "file-1"})


# -- task → Video -------------------------------------------------------------------------------


def row(**changes: Any) -> TaskRow:
    base = TaskRow(
        id="task1", user_id=1, key_id=2, kind="video", llmid="o5vfXYD5BURJWRTWpopE5",
        model="happyhorse-1.0-t2v", dialect="openai", platform=None, status=TaskStatus.RUNNING,
        progress=42, params={"prompt": "a cat", "duration": 4, "resolution": "720p",
        "ratio": "16:9"}, channel_id=1, provider="sim", upstream_id="up-secret",
        key_index=0, upstream_state={}, hold_id="h1", quoted=2_400_000, charged=None,
        usage=None, inputs={}, outputs={},
        error_code=None, error_message=None, idempotency_key=None, request_hash=None,
        callback_url=None, remix_of=None, created_at=1_700_000_000_123,
        updated_at=1_700_000_001_000, finished_at=None, deadline_at=1_700_003_600_000,
        next_poll_at=0, polls=3, deleted_at=None,
    )  # fmt: skip
    return dataclasses.replace(base, **changes)


def test_running_video_object() -> None:
    assert video_object(row()) == {
        "id": "task1",
        "object": "video",
        "model": "happyhorse-1.0-t2v",
        "status": "in_progress",
        "progress": 42,
        "created_at": 1_700_000_000,
        "completed_at": None,
        "expires_at": None,
        "prompt": "a cat",
        "seconds": "4",
        "size": "1280x720",
        "remixed_from_video_id": None,
        "error": None,
    }


def test_completed_video_object_uses_measured_size() -> None:
    done = row(
        status=TaskStatus.SUCCEEDED, progress=100, finished_at=1_700_000_009_999,
        usage={"duration": 4, "width": 1280, "height": 720}, remix_of="task0",
        params={"prompt": "a cat", "duration": 4, "size": "1280*720"},
    )  # fmt: skip
    obj = video_object(done)
    assert obj["status"] == "completed" and obj["progress"] == 100
    assert obj["completed_at"] == 1_700_000_009
    assert obj["size"] == "1280x720"
    assert obj["remixed_from_video_id"] == "task0"


@pytest.mark.parametrize(
    ("status", "word"),
    [
        (TaskStatus.CREATED, "queued"),
        (TaskStatus.PENDING, "queued"),
        (TaskStatus.FAILED, "failed"),
        (TaskStatus.CANCELLED, "failed"),
    ],
)
def test_statuses_and_errors(status: TaskStatus, word: str) -> None:
    failed = status.terminal
    r = row(
        status=status,
        error_code="sim_failure" if failed else None,
        error_message="boom" if failed else None,
        finished_at=1_700_000_002_000 if failed else None,
    )
    obj = video_object(r)
    assert obj["status"] == word
    assert obj["error"] == ({"code": "sim_failure", "message": "boom"} if failed else None)


def test_size_from_wan_params_and_unknown_ratio() -> None:
    assert video_object(row(params={"prompt": "p", "size": "1920*1080"}))["size"] == "1920x1080"
    adaptive = row(params={"prompt": "p", "resolution": "720p", "ratio": "adaptive"})
    assert video_object(adaptive)["size"] == "720p"


def test_page_and_deleted() -> None:
    rows = [row(id=f"t{i}") for i in range(3)]
    page = video_page(rows, 2)
    assert page["object"] == "list" and page["has_more"] is True
    assert [v["id"] for v in page["data"]] == ["t0", "t1"]
    assert (page["first_id"], page["last_id"]) == ("t0", "t1")
    last = video_page(rows[2:], 2)
    assert last["has_more"] is False and last["last_id"] == "t2"
    empty = video_page([], 5)
    assert empty == {"object": "list", "data": [], "has_more": False, "first_id": None,
                     "last_id": None}  # fmt: skip
    assert deleted_object("t1") == {"id": "t1", "object": "video.deleted", "deleted": True}


def test_detail_hides_storage_keys_and_upstream_ids() -> None:
    file = StoredFile(key="ab/cd", size=3, sha256="x", content_type="image/png")
    r = row(
        status=TaskStatus.SUCCEEDED, charged=2_400_000, finished_at=1_700_000_005_000,
        params={"prompt": "p"}, inputs={"image1_file": file, "image_files": (file, file)},
        usage={"duration": 4},
    )  # fmt: skip
    detail = task_detail(r, "CNY", lambda file, name: f"https://x/media/{name}")
    assert detail["llmid"] == "o5vfXYD5BURJWRTWpopE5"
    assert detail["params"] == {
        "prompt": "p",
        "image1_file": "https://x/media/image1_file",
        "image_files": ["https://x/media/image_files1", "https://x/media/image_files2"],
    }
    assert detail["charged"] == "2.400000" and detail["quoted"] == "2.400000"
    assert detail["usage"] == {"duration": 4}
    assert (detail["created_at"], detail["finished_at"]) == (1_700_000_000, 1_700_000_005)
    assert "up-secret" not in repr(detail) and "ab/cd" not in repr(detail)
    assert public_params(r, None) == {"prompt": "p"}


def test_detail_mints_links_only_from_the_task_records() -> None:
    """A parameter shaped like a file record is a plain value the client sent: it is shown back
    as it was, and no link is made from it (the old way a client could get one signed)."""
    forged = {"key": "sha256/ab/" + "c" * 62 + ".png", "content_type": "text/html",
              "size": 3, "sha256": "c" * 64}  # fmt: skip
    r = row(params={"prompt": "p", "evil": forged, "evils": [forged, forged]})
    minted: list[Any] = []

    def url_of(file: StoredFile, name: str) -> str:
        minted.append(file)
        return "https://x/media/minted"

    detail = task_detail(r, "CNY", url_of)
    assert minted == []
    assert detail["params"]["evil"] == forged and detail["params"]["evils"] == [forged, forged]
