"""The OpenAI-style media adapter on recorded replies, through the shared executor with a
MockUpstream: no network. Request shapes, status mapping, error kinds, downloads, recovery."""

from __future__ import annotations

import dataclasses
import json
from email.parser import BytesParser
from email.policy import HTTP
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
from llmage.providers.openai_media.adapter import OpenAIMediaAdapter, video_size
from llmage.providers.tasks import MediaInput, TaskJob, TaskRef
from llmage.providers.upstream import MockUpstream, TransportFailure
from llmage.providers.wire import UpstreamReply, UpstreamRequest

FIXTURES = Path(__file__).parent / "fixtures"
ADAPTER = OpenAIMediaAdapter()
PNG = b"\x89PNG\r\n\x1a\nfake-png-bytes"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def channel(**overrides: Any) -> Channel:
    values: dict[str, Any] = {
        "id": 7,
        "name": "om",
        "provider": "openai_compat",
        "platform": "openai",
        "base_url": "https://reseller.example/v1/",
        "credentials": ApiKey("sk-test-key-123456"),
        "models": frozenset({"*"}),
        "model_map": {},
        "options": {},
    }
    values.update(overrides)
    return Channel(**values)


def job(kind: str = "video", images: int = 0, **params: Any) -> TaskJob:
    async def read() -> bytes:
        return PNG

    media = (
        {"image1_file": [MediaInput("image/png", "https://gw/media/x", read)] * images}
        if images
        else {}
    )
    return TaskJob(
        task_id="TASKID123",
        kind=kind,
        mode="i2v" if images else "t2v",
        model="sora-2",
        params={"prompt": "a cat", **params},
        media=media,
        submitted_at_ms=1_758_941_480_000,
    )


def form_fields(request: UpstreamRequest) -> dict[str, tuple[bytes, str | None, str | None]]:
    """A multipart body parsed back: name -> (bytes, filename, content type)."""
    head = f"Content-Type: {request.header('Content-Type')}\r\n\r\n".encode()
    msg = BytesParser(policy=HTTP).parsebytes(head + request.body)
    out = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        out[str(name)] = (payload, part.get_filename(), part.get("Content-Type"))
    return out


def reply(status: int, body: bytes | Any, **headers: str) -> UpstreamReply:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return UpstreamReply(status, {k.replace("_", "-"): v for k, v in headers.items()}, data)


async def test_video_create_is_multipart_signed_with_the_channel_key() -> None:
    up = MockUpstream(lambda req: reply(200, fixture("video_queued.json")))
    done = await TaskExecutor(up).submit(
        ADAPTER, channel(), job(images=1, duration=8, resolution="720p", ratio="9:16")
    )
    assert done.upstream_id.startswith("video_") and done.result is None
    (req,) = up.requests
    assert (req.method, req.url) == ("POST", "https://reseller.example/v1/videos")
    assert req.header("Authorization") == "Bearer sk-test-key-123456"
    fields = form_fields(req)
    assert fields["prompt"][0] == b"a cat" and fields["model"][0] == b"sora-2"
    assert fields["seconds"][0] == b"8" and fields["size"][0] == b"720x1280"
    assert fields["input_reference"] == (PNG, "input1.png", "image/png")


@pytest.mark.parametrize(
    ("params", "size"),
    [
        ({"size": "1280*720"}, "1280x720"),
        ({"resolution": "720p", "ratio": "16:9"}, "1280x720"),
        ({"resolution": "1080p", "ratio": "9:16"}, "1080x1920"),
        ({"resolution": "720p"}, "1280x720"),
        ({}, None),
    ],
)
def test_video_size(params: dict[str, Any], size: str | None) -> None:
    assert video_size(params) == size


@pytest.mark.parametrize(
    ("name", "status", "progress"),
    [
        ("video_queued.json", TaskStatus.PENDING, 0),
        ("video_in_progress.json", TaskStatus.RUNNING, 33),
    ],
)
async def test_open_statuses(name: str, status: TaskStatus, progress: int) -> None:
    up = MockUpstream(lambda req: reply(200, fixture(name), openai_poll_after_ms="1500"))
    result = await TaskExecutor(up).poll(ADAPTER, channel(), TaskRef("video_1", {}, job()))
    assert (result.status, result.progress, result.poll_after) == (status, progress, 1.5)
    assert up.requests[0].url == "https://reseller.example/v1/videos/video_1"


async def test_completed_downloads_video_and_thumbnail_with_auth() -> None:
    def answer(req: UpstreamRequest) -> UpstreamReply:
        if req.url.endswith("/content?variant=video"):
            return reply(200, b"MP4DATA", content_type="video/mp4")
        if req.url.endswith("/content?variant=thumbnail"):
            return reply(200, b"\xff\xd8\xffJPEG", content_type="image/jpeg")
        return reply(200, fixture("video_completed.json"))

    up = MockUpstream(answer)
    result = await TaskExecutor(up).poll(ADAPTER, channel(), TaskRef("video_1", {}, job()))
    assert result.status is TaskStatus.SUCCEEDED
    assert [(o.kind, o.content_type, o.data) for o in result.outputs] == [
        ("video", "video/mp4", b"MP4DATA"),
        ("cover", "image/jpeg", b"\xff\xd8\xffJPEG"),
    ]
    assert result.usage == Usage(seconds=8.0, resolution="1080p")
    downloads = up.requests[1:]
    assert all(r.header("Authorization") == "Bearer sk-test-key-123456" for r in downloads)
    assert all(r.header("Accept") == "application/binary" for r in downloads)


async def test_failures_carry_a_kind_and_a_reason() -> None:
    ref = TaskRef("video_1", {}, job())
    moderated = await TaskExecutor(
        MockUpstream(lambda r: reply(200, fixture("video_failed_moderation.json")))
    ).poll(ADAPTER, channel(), ref)
    assert moderated.status is TaskStatus.FAILED
    assert moderated.error_kind is UpstreamKind.OUTPUT_MODERATION
    assert moderated.error_code == "moderation_blocked"
    bare = await TaskExecutor(
        MockUpstream(lambda r: reply(200, fixture("video_failed_no_reason.json")))
    ).poll(ADAPTER, channel(), ref)
    assert (bare.status, bare.error_code) == (TaskStatus.FAILED, "failed")
    assert bare.error_message  # always a reason, generic if the upstream gave none


@pytest.mark.parametrize("case", json.loads(fixture("errors.json")), ids=lambda c: c["kind"])
async def test_error_kinds(case: dict[str, Any]) -> None:
    body = case["body"] if isinstance(case["body"], dict) else case["body"].encode()
    up = MockUpstream(lambda r: reply(case["status"], body, **case.get("headers", {})))
    with pytest.raises(UpstreamError) as caught:
        await TaskExecutor(up).poll(ADAPTER, channel(), TaskRef("video_1", {}, job()))
    assert caught.value.kind is UpstreamKind(case["kind"])
    assert caught.value.retry_after == case.get("retry_after")
    assert "sk-abc" not in caught.value.message


async def test_a_5xx_or_lost_create_has_an_unknown_outcome() -> None:
    for failure in (
        lambda r: reply(500, {"error": {"message": "x", "type": "server_error"}}),
        lambda r: (_ for _ in ()).throw(
            TransportFailure(UpstreamKind.TIMEOUT, "no answer", maybe_sent=True)
        ),
        lambda r: reply(200, b"<html>not json"),
    ):
        up = MockUpstream(failure)
        with pytest.raises(SubmitOutcomeUnknown):
            await TaskExecutor(up).submit(ADAPTER, channel(), job())
        assert len(up.requests) == 1  # never resent


async def test_a_create_that_never_left_is_a_plain_retryable_error() -> None:
    def refused(r: UpstreamRequest) -> UpstreamReply:
        raise TransportFailure(UpstreamKind.RETRYABLE, "refused", maybe_sent=False)

    with pytest.raises(UpstreamError) as caught:
        await TaskExecutor(MockUpstream(refused)).submit(ADAPTER, channel(), job())
    assert not isinstance(caught.value, SubmitOutcomeUnknown)


async def test_recover_finds_the_video_our_create_made() -> None:
    listing = {
        "data": [
            {"id": "video_new", "model": "sora-2", "prompt": "a cat", "created_at": 1758941490},
            {"id": "video_other", "model": "sora-2", "prompt": "a dog", "created_at": 1758941489},
            {"id": "video_ours", "model": "sora-2", "prompt": "a cat", "created_at": 1758941481},
            {"id": "video_old", "model": "sora-2", "prompt": "a cat", "created_at": 1758940000},
        ]
    }
    up = MockUpstream(lambda r: reply(200, listing))
    found = await TaskExecutor(up).recover(ADAPTER, channel(), job())
    assert found is not None and found.upstream_id == "video_ours"
    assert up.requests[0].url == "https://reseller.example/v1/videos?limit=100&order=desc"
    # A video another task of ours owns is never taken for this one.
    owned = dataclasses.replace(job(), claimed=frozenset({"video_ours"}))
    found = await TaskExecutor(up).recover(ADAPTER, channel(), owned)
    assert found is not None and found.upstream_id == "video_new"
    empty = MockUpstream(lambda r: reply(200, {"data": []}))
    assert await TaskExecutor(empty).recover(ADAPTER, channel(), job()) is None


async def test_images_generate_json_and_edit_multipart_complete_at_once() -> None:
    b64 = "iVBORw0KGgo="
    answer = {"created": 1, "data": [{"b64_json": b64}, {"b64_json": b64}],
              "usage": {"total_tokens": 300}}  # fmt: skip
    up = MockUpstream(lambda r: reply(200, answer))
    done = await TaskExecutor(up).submit(ADAPTER, channel(), job("image", n=2, size="1024*1024"))
    assert done.result is not None and done.result.status is TaskStatus.SUCCEEDED
    assert done.result.usage == Usage(images=2, tokens=300)
    gen = up.requests[0]
    assert gen.url.endswith("/images/generations")
    assert orjson.loads(gen.body) == {"model": "sora-2", "prompt": "a cat", "n": 2,
                                      "size": "1024x1024"}  # fmt: skip

    up = MockUpstream(lambda r: reply(200, answer))
    await TaskExecutor(up).submit(ADAPTER, channel(), job("image", images=2))
    edit = up.requests[0]
    assert edit.url.endswith("/images/edits")
    assert edit.body.count(b'name="image[]"') == 2  # a list of files → repeated image[]


async def test_a_pool_signs_with_the_key_the_task_was_submitted_with() -> None:
    up = MockUpstream(lambda r: reply(200, fixture("video_queued.json")))
    pooled = channel(credentials=KeyPool(("sk-pool-key-aaaa", "sk-pool-key-bbbb")))
    await TaskExecutor(up).poll(ADAPTER, pooled, TaskRef("video_1", {}, job()), key_index=1)
    assert up.requests[0].header("Authorization") == "Bearer sk-pool-key-bbbb"
