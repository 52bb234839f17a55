"""BytePlus ModelArk: Ark's translation with BytePlus's own host, model ids and rules, on
recorded replies (no network)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from llmage.domain.credentials import ApiKey
from llmage.domain.errors import UpstreamError, UpstreamKind
from llmage.domain.tasks import TaskStatus
from llmage.domain.usage import Usage
from llmage.providers.byteplus.adapter import BytePlusAdapter
from llmage.providers.contract import Channel
from llmage.providers.executor import TaskExecutor
from llmage.providers.registry import ProviderRegistry
from llmage.providers.tasks import MediaInput, TaskJob, TaskRef
from llmage.providers.upstream import MockUpstream
from llmage.providers.wire import UpstreamReply

FIXTURES = Path(__file__).parent / "fixtures"
BP = BytePlusAdapter()
HOST = "https://ark.ap-southeast.bytepluses.com/api/v3"
D20 = "dreamina-seedance-2-0-260128"
D20_FAST = "dreamina-seedance-2-0-fast-260128"


async def _read() -> bytes:
    return b""


def channel(**overrides: Any) -> Channel:
    values: dict[str, Any] = {
        "id": 5, "name": "bp", "provider": "byteplus", "platform": "byteplus", "base_url": "",
        "credentials": ApiKey("bp-test-key-123456"), "models": frozenset({"*"}),
        "model_map": {}, "options": {},
    }  # fmt: skip
    values.update(overrides)
    return Channel(**values)


def job(model: str, mode: str = "t2v", **params: Any) -> TaskJob:
    media = {}
    if mode == "r2v":
        media = {"image_files": [MediaInput("image/png", "https://gw.example/media/r", _read)]}
    return TaskJob("T9", "video", mode, model, {"prompt": "harbour", **params}, media)


def reply(status: int, body: Any) -> UpstreamReply:
    return UpstreamReply(status, {}, body if isinstance(body, bytes) else orjson.dumps(body))


def errors() -> dict[str, Any]:
    return json.loads((FIXTURES / "errors.json").read_bytes())  # type: ignore[no-any-return]


async def test_defaults_to_the_byteplus_host_and_never_sends_what_2_0_refuses() -> None:
    spec = ProviderRegistry.spec("byteplus")
    assert spec is not None and spec.platform == "byteplus" and spec.default_base_url == HOST
    up = MockUpstream(lambda req: reply(200, {"id": "cgt-1"}))
    extras = {"seed": 1, "camera_fixed": True, "service_tier": "flex"}
    await TaskExecutor(up).submit(BP, channel(), job(D20, resolution="1080p", **extras))
    (req,) = up.requests
    assert req.url == HOST + "/contents/generations/tasks"
    assert req.header("Authorization") == "Bearer bp-test-key-123456"
    assert req.header("x-ark-moderation-scene") is None  # undocumented: never sent
    body = json.loads(req.body)
    assert body == {"model": D20, "content": [{"type": "text", "text": "harbour"}],
                    "resolution": "1080p"}  # fmt: skip


def test_fast_refuses_1080p_and_1_5_reference_goes_to_dreamina_2_0() -> None:
    ctx = TaskExecutor(MockUpstream(lambda r: reply(200, {}))).context(BP, channel())
    with pytest.raises(UpstreamError) as info:
        BP.submit_request(ctx, job(D20_FAST, resolution="1080p"))
    assert info.value.kind is UpstreamKind.BAD_REQUEST and "480p, 720p" in info.value.message
    routed = json.loads(BP.submit_request(ctx, job("seedance-1-5-pro-251215", "r2v")).body)
    assert routed["model"] == D20
    assert routed["content"][1]["role"] == "reference_image"


def test_a_byteplus_task_reply_is_read_like_arks() -> None:
    raw = (FIXTURES / "task_succeeded.json").read_bytes()
    result = BP.parse_poll(TaskRef("cgt-20260301093000-x7k2p", {}, job(D20_FAST)), reply(200, raw))
    assert result.status is TaskStatus.SUCCEEDED
    assert result.usage == Usage(seconds=5.0, resolution="480p", ratio="16:9", tokens=48600)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("access_denied", UpstreamKind.MODEL_NOT_ENABLED),
        ("forbidden_unknown", UpstreamKind.MODEL_NOT_ENABLED),
        ("not_open", UpstreamKind.MODEL_NOT_ENABLED),
        ("auth", UpstreamKind.AUTH),
        ("privacy", UpstreamKind.INPUT_MODERATION),
    ],
)
def test_a_403_is_the_channel_unavailable_never_the_user(name: str, kind: UpstreamKind) -> None:
    case = errors()[name]
    err = BP.classify(reply(case["status"], case["body"]))
    assert err is not None and err.kind is kind
    assert err.upstream_code == case["body"]["error"]["code"]
