"""The provider core's remaining branches on recorded replies and stand-in transports: the
generic HTTP-status classification, the base adapter's defaults, channel credentials, the
executor's recovery and downloads, and HttpUpstream's reading of a reply (size cap, a deadline
or a broken connection mid-body)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from llmage.domain.credentials import ApiKey, KeyPair, KeyPool
from llmage.domain.errors import UpstreamError, UpstreamKind
from llmage.providers.contract import Channel
from llmage.providers.executor import TaskExecutor
from llmage.providers.http1 import HttpError
from llmage.providers.tasks import (
    BaseTaskAdapter,
    PollResult,
    TaskJob,
    TaskOutput,
    TaskRef,
    classify_http,
)
from llmage.providers.upstream import HttpUpstream, MockUpstream, TransportFailure
from llmage.providers.wire import UpstreamReply, UpstreamRequest


def channel(credentials: Any = None, **options: Any) -> Channel:
    return Channel(
        id=1, name="c", provider="p", platform="p", base_url="https://up.example/api/",
        credentials=credentials, models=frozenset({"*"}), model_map={}, options=options,
    )  # fmt: skip


JOB = TaskJob(task_id="T1", kind="video", mode="t2v", model="m", params={}, media={})


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, UpstreamKind.AUTH), (403, UpstreamKind.AUTH), (402, UpstreamKind.QUOTA),
        (404, UpstreamKind.TASK_GONE), (408, UpstreamKind.RETRYABLE),
        (503, UpstreamKind.RETRYABLE), (429, UpstreamKind.RATE_LIMITED),
        (422, UpstreamKind.BAD_REQUEST), (413, UpstreamKind.BAD_REQUEST),
        (418, UpstreamKind.UPSTREAM_BUG), (501, UpstreamKind.UPSTREAM_BUG),
    ],
)  # fmt: skip
def test_generic_status_classification(status: int, kind: UpstreamKind) -> None:
    err = classify_http(UpstreamReply(status, {"retry-after": "3"}, b""))
    assert (err.kind, err.upstream_status, err.retry_after) == (kind, status, 3.0)
    assert err.message == f"Upstream error {status}"
    assert classify_http(UpstreamReply(status, {}, b""), "said no").message == "said no"


class Minimal(BaseTaskAdapter):
    name = "minimal"


async def test_the_base_adapter_defaults() -> None:
    base = Minimal()
    ex = TaskExecutor(MockUpstream(lambda req: UpstreamReply(200, {}, b"{}")))
    ctx = ex.context(base, channel(ApiKey("k-1")))
    ref = TaskRef("u1", {}, JOB)
    for call in (
        lambda: base.submit_request(ctx, JOB),
        lambda: base.parse_submit(JOB, UpstreamReply(200, {}, b"")),
        lambda: base.poll_request(ctx, ref),
        lambda: base.parse_poll(ref, UpstreamReply(200, {}, b"")),
    ):
        with pytest.raises(NotImplementedError):
            call()
    assert base.cancel_request(ctx, ref) is None and not await ex.cancel(base, channel(), ref)
    assert base.recover_request(ctx, JOB) is None
    assert base.parse_recover(JOB, UpstreamReply(200, {}, b"")) is None
    assert base.probe_request(ctx) is None
    assert base.needs_bytes(JOB) is False
    with pytest.raises(LookupError, match="minimal cannot look up a lost create"):
        await ex.recover(base, channel(), JOB)
    request = UpstreamRequest("GET", "https://up.example/x")
    assert base.sign(ctx, request).headers["Authorization"] == "Bearer k-1"
    unsigned = ex.context(base, channel(KeyPair("ak", "sk")))
    assert "Authorization" not in base.sign(unsigned, request).headers
    assert base.classify(UpstreamReply(204, {}, b"")) is None
    failed = base.classify(UpstreamReply(500, {}, b""))
    assert failed is not None and failed.kind is UpstreamKind.RETRYABLE


def test_channel_keys_and_secrets() -> None:
    assert channel(ApiKey("k-1")).api_key == "k-1"
    assert channel(KeyPool(("k-a", "k-b"))).api_key == "k-a"
    assert channel(KeyPair("ak", "sk")).api_key is None
    ch = channel(KeyPair("ak", "sk"), callback_token="tok-1", region="cn", retries=3)
    assert set(ch.secrets) >= {"sk", "tok-1"} and "cn" not in ch.secrets


class Fetching(Minimal):
    def poll_request(self, ctx: Any, ref: TaskRef) -> UpstreamRequest:
        return UpstreamRequest("GET", f"{ctx.base_url}/tasks/{ref.upstream_id}")

    def parse_poll(self, ref: TaskRef, reply: UpstreamReply) -> PollResult:
        from llmage.domain.tasks import TaskStatus

        absolute = UpstreamRequest("GET", "https://files.example/v.mp4")
        return PollResult(
            TaskStatus.SUCCEEDED,
            outputs=(
                TaskOutput("video", "video/mp4", fetch=absolute),
                TaskOutput("cover", "image/jpeg", url="https://cdn.example/c.jpg"),
            ),
        )


async def test_downloads_keep_absolute_urls_and_leave_plain_outputs_alone() -> None:
    def answer(req: UpstreamRequest) -> UpstreamReply:
        if req.url.startswith("https://files.example/"):
            return UpstreamReply(200, {"content-type": "video/mp4; codecs=x"}, b"MP4")
        return UpstreamReply(200, {}, b"{}")

    up = MockUpstream(answer)
    result = await TaskExecutor(up).poll(Fetching(), channel(ApiKey("k")), TaskRef("u", {}, JOB))
    video, cover = result.outputs
    assert (video.data, video.content_type, video.fetch) == (b"MP4", "video/mp4", None)
    assert cover.url == "https://cdn.example/c.jpg" and cover.data is None
    assert [r.url for r in up.requests][1] == "https://files.example/v.mp4"


async def test_mock_upstream_async_handlers_and_its_size_cap() -> None:
    async def later(req: UpstreamRequest) -> UpstreamReply:
        return UpstreamReply(200, {}, b"x" * 10)

    up = MockUpstream(later)
    req = UpstreamRequest("GET", "https://up.example/")
    assert (await up.send(req, deadline=5, max_bytes=10)).body == b"x" * 10
    with pytest.raises(UpstreamError, match="too large"):
        await up.send(req, deadline=5, max_bytes=9)


class StubResponse:
    def __init__(self, parts: list[bytes], fail: BaseException | None = None) -> None:
        self.status = 200
        self.headers = {"content-type": "application/json"}
        self._parts = parts
        self._fail = fail
        self.closed = self.released = False

    async def chunks(self) -> AsyncIterator[bytes]:
        for part in self._parts:
            yield part
        if self._fail is not None:
            raise self._fail

    def close(self) -> None:
        self.closed = True

    def release(self) -> None:
        self.released = True


class StubTransport:
    def __init__(self, resp: StubResponse | BaseException) -> None:
        self.resp = resp

    async def request(self, *args: Any, **kwargs: Any) -> StubResponse:
        if isinstance(self.resp, BaseException):
            raise self.resp
        return self.resp


async def send(resp: StubResponse | BaseException, max_bytes: int = 100) -> UpstreamReply:
    up = HttpUpstream(StubTransport(resp))  # type: ignore[arg-type]
    return await up.send(UpstreamRequest("POST", "https://up.example/"), deadline=30,
                         max_bytes=max_bytes)  # fmt: skip


async def test_http_upstream_reads_a_reply_in_parts() -> None:
    resp = StubResponse([b'{"a":', b" 1}"])
    reply = await send(resp)
    assert (reply.status, reply.body, resp.released) == (200, b'{"a": 1}', True)


async def test_http_upstream_refuses_a_reply_over_its_cap() -> None:
    resp = StubResponse([b"x" * 60, b"x" * 60])
    with pytest.raises(UpstreamError, match="larger than 100 bytes") as caught:
        await send(resp)
    assert caught.value.kind is UpstreamKind.UPSTREAM_BUG and resp.closed


@pytest.mark.parametrize(
    ("fail", "kind", "message"),
    [
        (TimeoutError(), UpstreamKind.TIMEOUT, "did not answer in time"),
        (HttpError("connection closed"), UpstreamKind.RETRYABLE, "connection broke"),
    ],
)
async def test_a_reply_cut_mid_body_may_have_been_received(
    fail: BaseException, kind: UpstreamKind, message: str
) -> None:
    resp = StubResponse([b"{"], fail)
    with pytest.raises(TransportFailure, match=message) as caught:
        await send(resp)
    assert caught.value.kind is kind and caught.value.maybe_sent and resp.closed


def _wrapped(kind: UpstreamKind, cause: str) -> UpstreamError:
    err = UpstreamError(kind, "Upstream unreachable")
    err.__cause__ = HttpError(cause)
    return err


@pytest.mark.parametrize(
    ("fail", "kind", "maybe_sent"),
    [
        (TimeoutError(), UpstreamKind.TIMEOUT, True),
        (HttpError("reset"), UpstreamKind.RETRYABLE, True),
        (TransportFailure(UpstreamKind.RETRYABLE, "x", maybe_sent=False), None, False),
        (_wrapped(UpstreamKind.RETRYABLE, "upstream unreachable: X"), None, False),
        (_wrapped(UpstreamKind.TIMEOUT, "upstream connect timed out"), None, False),
        (_wrapped(UpstreamKind.TIMEOUT, "upstream read timed out"), None, True),
    ],
)
async def test_failures_before_the_response_head(
    fail: BaseException, kind: UpstreamKind | None, maybe_sent: bool
) -> None:
    with pytest.raises(TransportFailure) as caught:
        await send(fail)
    assert caught.value.maybe_sent is maybe_sent
    if kind is not None:
        assert caught.value.kind is kind


@pytest.mark.parametrize(
    ("headers", "want"),
    [
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "soon", "retry-after": "4"}, 4.0),  # unreadable ms: the seconds
        ({"retry-after-ms": "soon"}, None),
    ],
)
def test_retry_after_in_milliseconds(headers: dict[str, str], want: float | None) -> None:
    assert UpstreamReply(429, headers, b"").retry_after() == want
