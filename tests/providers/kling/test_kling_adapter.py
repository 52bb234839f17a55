"""The Kling adapter on recorded replies, through the shared executor with a MockUpstream: no
network. JWT signing (a known-answer vector and an independent check), request shapes per mode,
status mapping, failure reasons from task_status_msg, error codes, units as usage, recovery by
external_task_id, probe."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from llmage.domain.credentials import ApiKey, KeyPair
from llmage.domain.errors import UpstreamError, UpstreamKind
from llmage.domain.tasks import TaskStatus
from llmage.providers.contract import Channel
from llmage.providers.executor import SubmitOutcomeUnknown, TaskExecutor
from llmage.providers.kling.adapter import KlingAdapter
from llmage.providers.kling.errors import classify
from llmage.providers.kling.signing import LIFETIME, RENEW_BEFORE, TokenCache, make_token
from llmage.providers.registry import SPECS
from llmage.providers.tasks import MediaInput, TaskJob, TaskRef
from llmage.providers.upstream import MockUpstream
from llmage.providers.wire import UpstreamReply, UpstreamRequest

FIXTURES = Path(__file__).parent / "fixtures"
NOW = 1_700_000_000.0
AK, SK = "ak-test-0001", "sk-test-secret-0002"
PNG = b"\x89PNG\r\n\x1a\nfake-png-bytes"
KNOWN_TOKEN = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJpc3MiOiJBSy1FWEFNUExFIiwiZXhwIjoxNzAwMDAxODAwLCJuYmYiOjE2OTk5OTk5OTV9"
    ".wOcHecz9CbFDCUEGlyJfBH2t9kqV7TsTqdci6eu59OU"
)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def channel(**overrides: Any) -> Channel:
    values: dict[str, Any] = {
        "id": 3,
        "name": "kl",
        "provider": "kling",
        "platform": "kling",
        "base_url": "https://api-singapore.klingai.com/",
        "credentials": KeyPair(AK, SK),
        "models": frozenset({"*"}),
        "model_map": {},
        "options": {},
    }
    values.update(overrides)
    return Channel(**values)


def job(first: bool = False, tail: bool = False, model: str = "kling-v1", **params: Any) -> TaskJob:
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
        submitted_at_ms=1_733_851_250_000,
    )


def reply(status: int, body: bytes | Any, **headers: str) -> UpstreamReply:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return UpstreamReply(status, {k.replace("_", "-"): v for k, v in headers.items()}, data)


def executor(up: MockUpstream) -> TaskExecutor:
    return TaskExecutor(up, clock=lambda: NOW)


def claims(token: str, secret: str = SK) -> dict[str, Any]:
    """An independent JWT check: HS256 header, signature over `header.payload`, the claims."""
    head, payload, sig = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    assert json.loads(base64.urlsafe_b64decode(pad(head))) == {"alg": "HS256", "typ": "JWT"}
    want = hmac.new(secret.encode(), f"{head}.{payload}".encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(pad(sig)) == want
    out: dict[str, Any] = json.loads(base64.urlsafe_b64decode(pad(payload)))
    return out


# -- signing -----------------------------------------------------------------------------------


def test_jwt_known_answer() -> None:
    assert make_token("AK-EXAMPLE", "SK-EXAMPLE", 1_700_000_000) == KNOWN_TOKEN
    assert claims(KNOWN_TOKEN, "SK-EXAMPLE") == {
        "iss": "AK-EXAMPLE", "exp": 1_700_001_800, "nbf": 1_699_999_995
    }  # fmt: skip


def test_token_is_cached_per_key_pair_and_renewed_before_expiry() -> None:
    cache = TokenCache()
    first = cache.token(AK, SK, NOW)
    assert cache.token(AK, SK, NOW + 60) == first  # reused while far from expiry
    assert cache.token(AK, "other-secret", NOW + 60) != first  # per pair (a rotated secret)
    assert cache.token("ak-other", SK, NOW + 60) != first
    renewed = cache.token(AK, SK, NOW + LIFETIME - RENEW_BEFORE)
    assert renewed != first
    assert claims(renewed)["exp"] == int(NOW) + 2 * LIFETIME - RENEW_BEFORE
    assert cache.token(AK, SK, NOW - 3600) != renewed  # a clock that went back: never pre-nbf


def test_cache_is_bounded() -> None:
    cache = TokenCache(size=2)
    a = cache.token("a", SK, NOW)
    cache.token("b", SK, NOW)
    cache.token("c", SK, NOW)
    assert cache.token("a", SK, NOW + 1) != a  # evicted, so issued anew (one second later)


# -- submit ------------------------------------------------------------------------------------


async def test_text2video_body_and_jwt() -> None:
    up = MockUpstream(lambda req: reply(200, fixture("create_ok.json")))
    done = await executor(up).submit(
        KlingAdapter(), channel(), job(duration=10, ratio="9:16", mode="pro", cfg_scale=0.7,
                                       negative_prompt="blur")
    )  # fmt: skip
    assert done.upstream_id == "863847926574817338"
    assert done.state == {"family": "text2video"}
    (req,) = up.requests
    assert (req.method, req.url) == (
        "POST", "https://api-singapore.klingai.com/v1/videos/text2video"
    )  # fmt: skip
    assert json.loads(req.body) == {
        "model_name": "kling-v1", "prompt": "a cat", "external_task_id": "vt_TASK123",
        "negative_prompt": "blur", "duration": "10", "mode": "pro", "cfg_scale": 0.7,
        "aspect_ratio": "9:16",
    }  # fmt: skip
    auth = req.header("Authorization") or ""
    assert auth.startswith("Bearer ")
    assert claims(auth.removeprefix("Bearer ")) == {
        "iss": AK, "exp": int(NOW) + 1800, "nbf": int(NOW) - 5
    }  # fmt: skip


async def test_image2video_with_tail_sends_urls_and_no_aspect_ratio() -> None:
    up = MockUpstream(lambda req: reply(200, fixture("create_ok.json")))
    done = await executor(up).submit(
        KlingAdapter(), channel(), job(first=True, tail=True, duration=5, ratio="1:1")
    )
    assert done.state == {"family": "image2video"}
    body = json.loads(up.requests[0].body)
    assert up.requests[0].url.endswith("/v1/videos/image2video")
    assert body["image"] == "https://gw.example/m/first"
    assert body["image_tail"] == "https://gw.example/m/last"
    assert "aspect_ratio" not in body and body["duration"] == "5"


async def test_image_base64_option_sends_raw_base64_without_data_prefix() -> None:
    up = MockUpstream(lambda req: reply(200, fixture("create_ok.json")))
    await executor(up).submit(
        KlingAdapter(), channel(options={"image_base64": True}), job(first=True)
    )
    body = json.loads(up.requests[0].body)
    assert body["image"] == base64.b64encode(PNG).decode()
    assert not body["image"].startswith("data:") and "image_tail" not in body


async def test_v2_models_never_get_cfg_scale() -> None:
    up = MockUpstream(lambda req: reply(200, fixture("create_ok.json")))
    await executor(up).submit(
        KlingAdapter(), channel(), job(model="kling-v2-master", cfg_scale=0.5)
    )
    assert "cfg_scale" not in json.loads(up.requests[0].body)


async def test_unsigned_without_a_key_pair() -> None:
    up = MockUpstream(lambda req: reply(401, fixture("error_1004_expired.json")))
    with pytest.raises(UpstreamError) as err:
        await executor(up).submit(KlingAdapter(), channel(credentials=ApiKey("k")), job())
    assert up.requests[0].header("Authorization") is None
    assert err.value.kind is UpstreamKind.AUTH


async def test_create_reply_without_task_id_is_an_unknown_outcome() -> None:
    up = MockUpstream(lambda req: reply(200, {"code": 0, "message": "SUCCEED", "data": {}}))
    with pytest.raises(SubmitOutcomeUnknown):
        await executor(up).submit(KlingAdapter(), channel(), job())


async def test_create_5xx_is_an_unknown_outcome() -> None:
    up = MockUpstream(lambda req: reply(503, fixture("error_5001_maintenance.json")))
    with pytest.raises(SubmitOutcomeUnknown):
        await executor(up).submit(KlingAdapter(), channel(), job())


# -- poll --------------------------------------------------------------------------------------


def ref(family: str = "text2video", **params: Any) -> TaskRef:
    return TaskRef("863847926574817338", {"family": family}, job(**params))


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("poll_submitted.json", TaskStatus.PENDING),
        ("poll_processing.json", TaskStatus.RUNNING),
        ("poll_undocumented.json", TaskStatus.RUNNING),  # never leaked: still in progress
    ],
)
async def test_open_statuses(name: str, status: TaskStatus) -> None:
    up = MockUpstream(lambda req: reply(200, fixture(name)))
    result = await executor(up).poll(KlingAdapter(), channel(), ref("image2video"))
    assert result.status is status and not result.outputs
    assert up.requests[0].url == (
        "https://api-singapore.klingai.com/v1/videos/image2video/863847926574817338"
    )


async def test_succeed_gives_the_video_units_and_duration_without_cover() -> None:
    up = MockUpstream(lambda req: reply(200, fixture("poll_succeed.json")))
    result = await executor(up).poll(KlingAdapter(), channel(), ref(mode="pro"))
    assert result.status is TaskStatus.SUCCEEDED
    (video,) = result.outputs
    assert (video.kind, video.url) == (
        "video",
        "https://cdn.klingai.example/bs2/upload/a6b1c2d3.mp4",
    )
    assert result.usage.credits == 3.5 and result.usage.seconds == 5.042
    assert result.usage.pricing_params() == {"duration": 5.042, "credits": 3.5}


@pytest.mark.parametrize(
    ("name", "kind", "message"),
    [
        ("poll_failed.json", UpstreamKind.RETRYABLE,
         "Video generation failed due to an internal error, please try again"),
        ("poll_failed_risk.json", UpstreamKind.OUTPUT_MODERATION,
         "Failure to pass the risk control system"),
        ("poll_failed_silent.json", UpstreamKind.RETRYABLE, "The video generation failed"),
    ],
)  # fmt: skip
async def test_failed_reason_only_from_task_status_msg(
    name: str, kind: UpstreamKind, message: str
) -> None:
    up = MockUpstream(lambda req: reply(200, fixture(name)))
    result = await executor(up).poll(KlingAdapter(), channel(), ref())
    assert result.status is TaskStatus.FAILED
    assert (result.error_kind, result.error_message) == (kind, message)
    assert "SUCCEED" not in (result.error_message or "")


async def test_succeed_without_a_video_is_an_upstream_bug() -> None:
    body = json.loads(fixture("poll_succeed.json"))
    body["data"]["task_result"]["videos"] = []
    up = MockUpstream(lambda req: reply(200, body))
    with pytest.raises(UpstreamError) as err:
        await executor(up).poll(KlingAdapter(), channel(), ref())
    assert err.value.kind is UpstreamKind.UPSTREAM_BUG


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "name", "kind", "code"),
    [
        (401, "error_1004_expired.json", UpstreamKind.AUTH, "1004"),
        (429, "error_1102_balance.json", UpstreamKind.QUOTA, "1102"),
        (403, "error_1103_model.json", UpstreamKind.MODEL_NOT_ENABLED, "1103"),
        (400, "error_1201_param.json", UpstreamKind.BAD_REQUEST, "1201"),
        (400, "error_1301_moderation.json", UpstreamKind.INPUT_MODERATION, "1301"),
        (429, "error_1303_concurrency.json", UpstreamKind.RATE_LIMITED, "1303"),
        (503, "error_5001_maintenance.json", UpstreamKind.RETRYABLE, "5001"),
        (404, "error_1203_task.json", UpstreamKind.TASK_GONE, "1203"),
        # code != 0 is an error even with HTTP 200
        (200, "error_1201_param.json", UpstreamKind.BAD_REQUEST, "1201"),
        (200, "error_1303_concurrency.json", UpstreamKind.RATE_LIMITED, "1303"),
    ],
)
def test_error_codes(status: int, name: str, kind: UpstreamKind, code: str) -> None:
    err = classify(reply(status, fixture(name), retry_after="7"))
    assert err is not None
    assert (err.kind, err.upstream_code, err.upstream_status) == (kind, code, status)
    assert err.message == json.loads(fixture(name))["message"]
    assert err.retry_after == 7.0


@pytest.mark.parametrize(
    ("code", "kind"),
    [(1000, "auth"), (1001, "auth"), (1002, "auth"), (1003, "auth"), (1101, "upstream_quota"),
     (1200, "bad_request"), (1302, "rate_limited"), (5000, "retryable"), (5002, "retryable")],
)  # fmt: skip
def test_every_documented_code(code: int, kind: str) -> None:
    err = classify(reply(200, {"code": code, "message": "m", "data": None}))
    assert err is not None and err.kind.value == kind


def test_odd_bodies() -> None:
    assert classify(reply(200, fixture("poll_succeed.json"))) is None
    bug = classify(reply(200, {"code": 4242, "message": "new"}))
    assert bug is not None and bug.kind is UpstreamKind.UPSTREAM_BUG
    model = classify(reply(404, {"code": 1203, "message": "model not found"}))
    assert model is not None and model.kind is UpstreamKind.MODEL_NOT_ENABLED
    html = classify(reply(502, b"<html>bad gateway</html>"))
    assert html is not None and html.kind is UpstreamKind.RETRYABLE and html.upstream_code is None
    no_json_200 = classify(reply(200, b"oops"))
    assert no_json_200 is not None and no_json_200.kind is UpstreamKind.UPSTREAM_BUG


# -- recover, probe, registry ------------------------------------------------------------------


async def test_recover_queries_by_external_task_id() -> None:
    up = MockUpstream(lambda req: reply(200, fixture("poll_processing.json")))
    found = await executor(up).recover(KlingAdapter(), channel(), job(first=True))
    assert found is not None and found.upstream_id == "863847926574817338"
    assert found.state == {"family": "image2video"}
    assert up.requests[0].method == "GET"
    assert up.requests[0].url.endswith("/v1/videos/image2video/vt_TASK123")


async def test_recover_of_someone_elses_task_is_none_and_not_found_ends_the_task() -> None:
    body = json.loads(fixture("poll_processing.json"))
    body["data"]["task_info"]["external_task_id"] = "other"
    up = MockUpstream(lambda req: reply(200, body))
    assert await executor(up).recover(KlingAdapter(), channel(), job()) is None
    gone = MockUpstream(lambda req: reply(404, fixture("error_1203_task.json")))
    with pytest.raises(UpstreamError) as err:
        await executor(gone).recover(KlingAdapter(), channel(), job())
    assert err.value.kind is UpstreamKind.TASK_GONE and not err.value.kind.transient


def test_probe_and_registry() -> None:
    adapter = KlingAdapter()
    ctx = executor(MockUpstream(lambda r: reply(200, {}))).context(adapter, channel(), 0)
    probe = adapter.probe_request(ctx)
    assert probe == UpstreamRequest(
        "GET", "https://api-singapore.klingai.com/v1/videos/text2video?pageNum=1&pageSize=1"
    )
    assert adapter.cancel_request(ctx, ref()) is None  # Kling documents no cancel
    spec = SPECS["kling"]
    assert (spec.platform, spec.credentials, spec.default_base_url) == (
        "kling", ("pair",), "https://api-beijing.klingai.com"
    )  # fmt: skip
