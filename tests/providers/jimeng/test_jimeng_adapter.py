"""The Jimeng adapter on recorded replies, through the shared executor with a MockUpstream: no
network. Volcengine V4 signing (the known-answer vector of PROVIDERS §7, byte for byte), request
shapes per mode, the query reusing the submit's req_key, status mapping, both result shapes,
error codes of both body shapes, usage from frames, no recovery, probe."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from llmage.domain.credentials import ApiKey, KeyPair
from llmage.domain.errors import UpstreamError, UpstreamKind
from llmage.domain.tasks import TaskStatus
from llmage.providers.contract import Channel
from llmage.providers.executor import SubmitOutcomeUnknown, TaskExecutor
from llmage.providers.jimeng.adapter import JimengAdapter, frames, video_url
from llmage.providers.jimeng.errors import classify
from llmage.providers.jimeng.signing import canonical_query, host_of, sign_headers
from llmage.providers.registry import SPECS
from llmage.providers.tasks import MediaInput, TaskJob, TaskRef
from llmage.providers.upstream import MockUpstream
from llmage.providers.wire import UpstreamReply, UpstreamRequest

NOW = datetime(2024, 1, 15, 12, 0, 0, tzinfo=UTC).timestamp()
AK, SK = "AKTEST", "SKTEST"
PNG = b"\x89PNG\r\n\x1a\nfake-png-bytes"
BASE = "https://visual.volcengineapi.com"
SUBMIT_URL = BASE + "/?Action=CVSync2AsyncSubmitTask&Version=2022-08-31"
QUERY_URL = BASE + "/?Action=CVSync2AsyncGetResult&Version=2022-08-31"
KAT_BODY = b'{"req_key":"jimeng_vgfm_t2v_l20","task_id":"abc"}'
KAT_SIG = "5cbe194cc35a9fe8a0dcf34cbfc8f10d2c989caa3059aa6fe4f186977c0fef7a"
KAT_HASH = "2e83d6a6ed2aef0fb0dd7125abe5bad97718ec9bd6be63d52418921ea3133955"

# Recorded replies (PROVIDERS §7 shapes).
CREATE_OK = {"code": 10000, "message": "Success", "request_id": "r1", "time_elapsed": "104ms",
             "data": {"task_id": "7392616336519610409"}}  # fmt: skip


def poll_reply(status: str, code: int = 10000, **data: Any) -> dict[str, Any]:
    return {"code": code, "message": "Success" if code == 10000 else "failed",
            "request_id": "r2", "status": code, "time_elapsed": "9ms",
            "data": {"status": status, **data}}  # fmt: skip


def gw(code: str, message: str = "refused") -> dict[str, Any]:
    return {"ResponseMetadata": {"RequestId": "r", "Action": "CVSync2AsyncSubmitTask",
            "Version": "2022-08-31", "Service": "cv", "Region": "cn-north-1",
            "Error": {"Code": code, "Message": message}}}  # fmt: skip


def channel(**overrides: Any) -> Channel:
    values: dict[str, Any] = {
        "id": 7,
        "name": "jm",
        "provider": "jimeng",
        "platform": "jimeng",
        "base_url": BASE,
        "credentials": KeyPair(AK, SK),
        "models": frozenset({"*"}),
        "model_map": {},
        "options": {},
    }
    values.update(overrides)
    return Channel(**values)


def job(
    first: bool = False, tail: bool = False, model: str = "jimeng_vgfm_t2v_l20", **params: Any
) -> TaskJob:
    async def read() -> bytes:
        return PNG

    media: dict[str, list[MediaInput]] = {}
    if first:
        media["image1_file"] = [MediaInput("image/png", "https://gw.example/m/first", read)]
    if tail:
        media["image2_file"] = [MediaInput("image/png", "https://gw.example/m/last", read)]
    return TaskJob(
        task_id="vt_TASK123",
        kind="video",
        mode="i2v" if first else "t2v",
        model=model,
        params={"prompt": "a cat", **params},
        media=media,
    )


def reply(status: int, body: bytes | Any, **headers: str) -> UpstreamReply:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return UpstreamReply(status, {k.replace("_", "-"): v for k, v in headers.items()}, data)


def executor(up: MockUpstream) -> TaskExecutor:
    return TaskExecutor(up, clock=lambda: NOW)


def ref(req_key: str = "jimeng_vgfm_t2v_l20", **params: Any) -> TaskRef:
    return TaskRef("7392616336519610409", {"req_key": req_key}, job(**params))


# -- signing -----------------------------------------------------------------------------------


def test_v4_known_answer_vector_byte_for_byte() -> None:
    headers = sign_headers("POST", QUERY_URL, KAT_BODY, AK, SK, NOW)
    assert headers["X-Content-Sha256"] == KAT_HASH
    assert headers["X-Date"] == "20240115T120000Z"
    assert "Host" not in headers  # the transport writes it; it is signed all the same
    assert headers["Authorization"] == (
        "HMAC-SHA256 Credential=AKTEST/20240115/cn-north-1/cv/request, "
        f"SignedHeaders=content-type;host;x-content-sha256;x-date, Signature={KAT_SIG}"
    )


def test_query_is_sorted_and_encoded_and_host_as_the_transport_sends_it() -> None:
    assert canonical_query("Version=2022-08-31&Action=X") == "Action=X&Version=2022-08-31"
    assert canonical_query("a=b%20c&&z=") == "a=b%20c&z="
    assert host_of("https://visual.volcengineapi.com/") == "visual.volcengineapi.com"
    assert host_of("http://h.example:8080/x") == "h.example:8080"
    assert host_of("http://127.0.0.1:8123/") == "127.0.0.1:8123"


async def test_adapter_signs_with_the_channel_pair_and_the_context_clock() -> None:
    up = MockUpstream(lambda req: reply(200, poll_reply("in_queue")))
    await executor(up).poll(JimengAdapter(), channel(), TaskRef("abc", {"req_key":
                            "jimeng_vgfm_t2v_l20"}, job()))  # fmt: skip
    (req,) = up.requests
    assert (req.method, req.url, req.body) == ("POST", QUERY_URL, KAT_BODY)
    assert req.header("Authorization") == sign_headers("POST", QUERY_URL, KAT_BODY, AK, SK,
                                                       NOW)["Authorization"]  # fmt: skip
    assert KAT_SIG in (req.header("Authorization") or "")


async def test_unsigned_without_a_key_pair() -> None:
    up = MockUpstream(lambda req: reply(401, gw("MissingAuthenticationToken")))
    with pytest.raises(UpstreamError) as err:
        await executor(up).submit(JimengAdapter(), channel(credentials=ApiKey("k")), job())
    assert up.requests[0].header("Authorization") is None
    assert err.value.kind is UpstreamKind.AUTH


# -- submit ------------------------------------------------------------------------------------


async def test_text_to_video_body_defaults_the_ratio_and_stores_the_req_key() -> None:
    up = MockUpstream(lambda req: reply(200, CREATE_OK))
    done = await executor(up).submit(JimengAdapter(), channel(), job(duration=10))
    assert done.upstream_id == "7392616336519610409"
    assert done.state == {"req_key": "jimeng_vgfm_t2v_l20"}
    (req,) = up.requests
    assert req.url == SUBMIT_URL
    assert json.loads(req.body) == {"req_key": "jimeng_vgfm_t2v_l20", "prompt": "a cat",
                                    "seed": -1, "frames": 241, "aspect_ratio": "16:9"}  # fmt: skip


async def test_image_to_video_sends_urls_and_the_ratio_only_when_asked() -> None:
    up = MockUpstream(lambda req: reply(200, CREATE_OK))
    a = JimengAdapter()
    await executor(up).submit(a, channel(), job(True, model="jimeng_i2v_first_v30", seed=7))
    body = json.loads(up.requests[0].body)
    assert body["image_urls"] == ["https://gw.example/m/first"] and body["seed"] == 7
    assert "aspect_ratio" not in body and body["frames"] == 121
    await executor(up).submit(a, channel(), job(True, True, "jimeng_i2v_first_tail_v30",
                                                ratio="9:16"))  # fmt: skip
    body = json.loads(up.requests[1].body)
    assert body["image_urls"] == ["https://gw.example/m/first", "https://gw.example/m/last"]
    assert body["aspect_ratio"] == "9:16" and body["req_key"] == "jimeng_i2v_first_tail_v30"


async def test_image_base64_option_sends_raw_base64() -> None:
    up = MockUpstream(lambda req: reply(200, CREATE_OK))
    await executor(up).submit(JimengAdapter(), channel(options={"image_base64": True}),
                              job(True))  # fmt: skip
    body = json.loads(up.requests[0].body)
    assert body["binary_data_base64"] == [base64.b64encode(PNG).decode()]
    assert "image_urls" not in body


async def test_numeric_task_id_is_kept_as_text() -> None:
    up = MockUpstream(lambda req: reply(200, {"code": 10000, "data": {"task_id": 42}}))
    done = await executor(up).submit(JimengAdapter(), channel(), job())
    assert done.upstream_id == "42"


async def test_create_reply_without_task_id_is_an_unknown_outcome() -> None:
    up = MockUpstream(lambda req: reply(200, {"code": 10000, "message": "Success", "data": {}}))
    with pytest.raises(SubmitOutcomeUnknown):
        await executor(up).submit(JimengAdapter(), channel(), job())


async def test_a_5xx_create_is_an_unknown_outcome_that_cannot_be_recovered() -> None:
    up = MockUpstream(lambda req: reply(500, {"code": 50500, "message": "Internal Error"}))
    with pytest.raises(SubmitOutcomeUnknown):
        await executor(up).submit(JimengAdapter(), channel(), job())
    with pytest.raises(LookupError):  # no list, no idempotency key: never resent
        await executor(up).recover(JimengAdapter(), channel(), job())
    assert len(up.requests) == 1


@pytest.mark.parametrize(
    ("duration", "want"), [(None, 121), (5, 121), ("10", 241), ("x", 121), (10.0, 241)]
)
def test_frames_from_duration(duration: Any, want: int) -> None:
    assert frames(duration) == want


# -- poll --------------------------------------------------------------------------------------


async def poll(body: Any, status: int = 200, r: TaskRef | None = None) -> Any:
    up = MockUpstream(lambda req: reply(status, body))
    result = await executor(up).poll(JimengAdapter(), channel(), r or ref())
    return result, up.requests[0]


async def test_query_reuses_the_submit_req_key() -> None:
    _, req = await poll(poll_reply("in_queue"), r=ref("jimeng_vgfm_i2v_l20"))
    assert json.loads(req.body) == {"req_key": "jimeng_vgfm_i2v_l20",
                                    "task_id": "7392616336519610409"}  # fmt: skip
    r = TaskRef("9", {}, job(model="jimeng_t2v_v30"))  # a row stored before the key: the model
    _, req = await poll(poll_reply("in_queue"), r=r)
    assert json.loads(req.body)["req_key"] == "jimeng_t2v_v30"


@pytest.mark.parametrize(
    ("word", "status", "progress"),
    [
        ("in_queue", TaskStatus.PENDING, 0),
        ("processing", TaskStatus.PENDING, 0),
        ("generating", TaskStatus.RUNNING, None),
        ("something_new", TaskStatus.RUNNING, None),
    ],
)
async def test_running_statuses(word: str, status: TaskStatus, progress: int | None) -> None:
    result, _ = await poll(poll_reply(word))
    assert (result.status, result.progress) == (status, progress)


async def test_done_with_video_url_is_success_billed_from_frames() -> None:
    result, _ = await poll(poll_reply("done", video_url="https://tos.example/v.mp4?X=1"),
                           r=ref(duration=10))  # fmt: skip
    assert result.status is TaskStatus.SUCCEEDED and result.progress == 100
    (out,) = result.outputs
    assert (out.kind, out.url) == ("video", "https://tos.example/v.mp4?X=1")
    assert (result.usage.frames, result.usage.seconds) == (241, 10)


async def test_older_resp_data_urls_are_accepted() -> None:
    data = json.dumps({"urls": ["https://tos.example/old.mp4"]})
    result, _ = await poll(poll_reply("done", resp_data=data))
    assert result.outputs[0].url == "https://tos.example/old.mp4"
    assert video_url({"resp_data": {"urls": ["u"]}}) == "u"
    assert video_url({"resp_data": "not json"}) is None
    assert video_url({"resp_data": json.dumps({"urls": []})}) is None


async def test_done_without_a_video_is_an_upstream_bug() -> None:
    with pytest.raises(UpstreamError) as err:
        await poll(poll_reply("done"))
    assert err.value.kind is UpstreamKind.UPSTREAM_BUG


@pytest.mark.parametrize("word", ["not_found", "expired"])
async def test_gone_tasks_fail(word: str) -> None:
    result, _ = await poll(poll_reply(word))
    assert result.status is TaskStatus.FAILED
    assert (result.error_kind, result.error_code) == (UpstreamKind.TASK_GONE, word)


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (50511, UpstreamKind.OUTPUT_MODERATION),
        (50412, UpstreamKind.INPUT_MODERATION),
        (50500, UpstreamKind.RETRYABLE),
        (50999, UpstreamKind.RETRYABLE),
        (50429, UpstreamKind.RETRYABLE),
    ],
)
async def test_done_with_a_failure_code_ends_the_task(code: int, kind: UpstreamKind) -> None:
    result, _ = await poll(poll_reply("done", code=code))
    assert result.status is TaskStatus.FAILED
    assert (result.error_kind, result.error_code) == (kind, str(code))
    assert result.error_message == "failed"


async def test_done_with_a_codeless_failure_still_ends_with_a_reason() -> None:
    body = {"code": "oops", "message": "", "data": {"status": "done"}}
    up = MockUpstream(lambda req: reply(200, body))
    a = JimengAdapter()
    assert a.classify(reply(200, body)) is not None  # a code that is no number: not success
    with pytest.raises(UpstreamError):
        await executor(up).poll(a, channel(), ref())
    raw = reply(200, {"code": 50000, "message": "", "data": {"status": "done"}})
    result = a.parse_poll(ref(), raw)
    assert result.error_message == "The video generation failed"
    nocode = a.parse_poll(ref(), reply(200, {"data": {"status": "done"}}))
    assert (nocode.status, nocode.error_code) == (TaskStatus.FAILED, "failed")


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "kind", "code"),
    [
        (401, gw("SignatureDoesNotMatch"), UpstreamKind.AUTH, "SignatureDoesNotMatch"),
        (403, gw("Access Denied"), UpstreamKind.AUTH, "Access Denied"),
        (400, gw("NoFeatAuth"), UpstreamKind.MODEL_NOT_ENABLED, "NoFeatAuth"),
        (404, gw("FeatNotFound"), UpstreamKind.MODEL_NOT_ENABLED, "FeatNotFound"),
        (418, gw("SomethingElse"), UpstreamKind.UPSTREAM_BUG, "SomethingElse"),
        (429, gw("Unlisted"), UpstreamKind.RATE_LIMITED, "Unlisted"),
        (400, {"code": 50411, "message": "image risk"}, UpstreamKind.INPUT_MODERATION, "50411"),
        (400, {"code": 50413, "message": "words"}, UpstreamKind.INPUT_MODERATION, "50413"),
        (400, {"code": 50513, "message": "video"}, UpstreamKind.INPUT_MODERATION, "50513"),
        (400, {"code": 50514, "message": "audio"}, UpstreamKind.INPUT_MODERATION, "50514"),
        (400, {"code": 50512, "message": "out"}, UpstreamKind.OUTPUT_MODERATION, "50512"),
        (400, {"code": 50215, "message": "Invalid Input"}, UpstreamKind.BAD_REQUEST, "50215"),
        (429, {"code": 50429, "message": "QPS"}, UpstreamKind.RATE_LIMITED, "50429"),
        (429, {"code": "50430", "message": "busy"}, UpstreamKind.RATE_LIMITED, "50430"),
        (500, {"code": 50501, "message": "rpc"}, UpstreamKind.RETRYABLE, "50501"),
        (200, {"code": 50400, "message": "Access Denied"}, UpstreamKind.AUTH, "50400"),
        (200, {"code": 12345, "message": "?"}, UpstreamKind.UPSTREAM_BUG, "12345"),
        (200, {"message": "no code"}, UpstreamKind.UPSTREAM_BUG, None),
        (502, {"code": 1, "message": "?"}, UpstreamKind.RETRYABLE, "1"),
        (503, b"<html>busy</html>", UpstreamKind.RETRYABLE, None),
    ],
)
def test_error_kinds(status: int, body: Any, kind: UpstreamKind, code: str | None) -> None:
    err = classify(reply(status, body))
    assert err is not None
    assert (err.kind, err.upstream_code) == (kind, code)


def test_gateway_message_and_retry_after() -> None:
    err = classify(reply(429, {"code": 50429, "message": "QPS limit"}, retry_after="3"))
    assert err is not None and err.retry_after == 3.0 and err.message == "QPS limit"
    bare = classify(reply(401, {"ResponseMetadata": {"Error": {"Code": "SignatureDoesNotMatch"}}}))
    assert bare is not None and bare.message == "Jimeng: SignatureDoesNotMatch"
    assert classify(reply(200, CREATE_OK)) is None
    assert classify(reply(500, b"")) is not None


# -- registry and probe ------------------------------------------------------------------------


def test_registry_line() -> None:
    spec = SPECS["jimeng"]
    assert (spec.platform, spec.credentials) == ("jimeng", ("pair",))
    assert spec.default_base_url == BASE and spec.task is JimengAdapter


async def test_probe_queries_an_unknown_task_signed() -> None:
    a = JimengAdapter()
    up = MockUpstream(lambda req: reply(200, poll_reply("not_found")))
    ex = executor(up)
    ctx = ex.context(a, channel())
    request = a.probe_request(ctx)
    assert isinstance(request, UpstreamRequest)
    await ex.call(a, ctx, request, op="probe")
    (sent,) = up.requests
    assert sent.url == QUERY_URL and (sent.header("Authorization") or "").startswith("HMAC")
    assert a.cancel_request(ctx, ref()) is None
