"""Adapter branches the providers' own suites leave: odd numbers and codes in replies, image
replies with undecodable or missing images, sizes that name no tier, requests a model reads
differently (string fields, a last frame without a first), and the signing of channels whose
credential is not the provider's kind. Pure parse and build functions, recorded-style replies."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from llmage.domain.credentials import ApiKey, KeyPair
from llmage.domain.errors import UpstreamError, UpstreamKind
from llmage.providers.contract import Channel
from llmage.providers.executor import TaskExecutor
from llmage.providers.kling import adapter as kling_adapter
from llmage.providers.kling.errors import body_code
from llmage.providers.openai_media import adapter as om
from llmage.providers.tasks import MediaInput, TaskJob
from llmage.providers.upstream import MockUpstream
from llmage.providers.vidu import adapter as vidu_adapter
from llmage.providers.vidu import body as vidu_body
from llmage.providers.wire import UpstreamReply, UpstreamRequest


async def _read() -> bytes:
    return b"\x89PNG"


def image(name: str, ctype: str = "image/png") -> MediaInput:
    return MediaInput(ctype, f"https://gw.example/media/{name}", _read)


def job(model: str, kind: str = "video", mode: str = "t2v", **kw: Any) -> TaskJob:
    media = kw.pop("media", {})
    return TaskJob(task_id="T1", kind=kind, mode=mode, model=model, params=kw, media=media)


def channel(credentials: Any = None, **options: Any) -> Channel:
    return Channel(
        id=1, name="c", provider="p", platform="p", base_url="https://up.example/v1",
        credentials=credentials, models=frozenset({"*"}), model_map={}, options=options,
    )  # fmt: skip


def reply(data: Any, status: int = 200) -> UpstreamReply:
    import orjson

    return UpstreamReply(status, {"content-type": "application/json"}, orjson.dumps(data))


@pytest.mark.parametrize(
    ("value", "want"),
    [(True, None), ([1], None), ("5.5", 5.5), ("five", None), (3, 3.0)],
)
def test_numbers_in_replies(value: Any, want: float | None) -> None:
    assert kling_adapter._number(value) == want
    assert vidu_adapter._number(value) == want


@pytest.mark.parametrize(
    ("body", "want"),
    [({"code": "1102"}, 1102), ({"code": "E12"}, None), ({"code": True}, None), ([], None)],
)
def test_kling_body_codes(body: Any, want: int | None) -> None:
    assert body_code(reply(body)) == want


# -- OpenAI media -------------------------------------------------------------------------------

OM = om.OpenAIMediaAdapter()


def test_image_replies_without_a_usable_image() -> None:
    with pytest.raises(UpstreamError, match="not base64"):
        OM._image_result({"data": [{"b64_json": "not base64!"}]})
    with pytest.raises(UpstreamError, match="holds no image"):
        OM._image_result({"data": [{"revised_prompt": "x"}, "junk"]})
    urls = OM._image_result({"data": [{"url": "https://cdn.example/a.webp"}],
                             "output_format": "webp"})  # fmt: skip
    (out,) = urls.outputs
    assert (out.url, out.content_type, urls.usage.tokens) == (
        "https://cdn.example/a.webp", "image/webp", None,
    )  # fmt: skip
    raw = OM._image_result(
        {"data": [{"b64_json": base64.b64encode(b"PNG").decode()}], "usage": {"total_tokens": 9}}
    )
    assert raw.outputs[0].data == b"PNG" and raw.usage.tokens == 9


def test_a_video_create_reply_without_an_id() -> None:
    with pytest.raises(UpstreamError, match="has no id") as caught:
        OM.parse_submit(job("sora-2"), reply({"object": "video"}))
    assert caught.value.kind is UpstreamKind.UPSTREAM_BUG


def test_image_requests_take_the_channel_response_format_and_skip_non_images() -> None:
    ctx = TaskExecutor(MockUpstream(lambda r: reply({}))).context(
        OM, channel(ApiKey("k"), response_format="b64_json")
    )
    plain = job("gpt-image-1", kind="image", mode="t2i", prompt="a lamp", size="1024*1024",
                media={"audio": [image("a.wav", "audio/wav")]})  # fmt: skip
    req = OM.submit_request(ctx, plain)
    import orjson

    sent = orjson.loads(req.body)
    assert req.url.endswith("/images/generations")
    assert (sent["response_format"], sent["size"]) == ("b64_json", "1024x1024")
    assert OM.recover_request(ctx, plain) is None


@pytest.mark.parametrize(("value", "want"), [(True, False), (None, False), ("x", False),
                                             ("1.5", True), (2, True)])  # fmt: skip
def test_numbers_in_video_lists(value: Any, want: bool) -> None:
    assert om._is_number(value) is want


def test_sizes_that_name_no_tier() -> None:
    assert om._tier("huge") is None
    assert om._tier("1280x720") == "720p"


# -- Vidu ---------------------------------------------------------------------------------------


def test_vidu_signs_only_with_a_key() -> None:
    vidu = vidu_adapter.ViduAdapter()
    ex = TaskExecutor(MockUpstream(lambda r: reply({})))
    request = UpstreamRequest("GET", "https://api.vidu.cn/ent/v2/tasks")
    signed = vidu.sign(ex.context(vidu, channel(ApiKey("vk"))), request)
    assert signed.headers["Authorization"] == "Token vk"
    unsigned = vidu.sign(ex.context(vidu, channel(KeyPair("a", "b"))), request)
    assert "Authorization" not in unsigned.headers


def test_vidu_fields_refuse_the_wrong_type() -> None:
    with pytest.raises(UpstreamError, match="'seed' must be an integer"):
        vidu_body._int("seed", True)
    with pytest.raises(UpstreamError, match="'style' must be a string"):
        vidu_body._str("style", {"a": 1})
    assert vidu_body._str("style", 3) == "3"


def test_vidu_last_frame_needs_a_first() -> None:
    lonely = job("viduq2-pro", mode="i2v", media={"image2_file": [image("b.png")]})
    with pytest.raises(UpstreamError, match="needs a first frame") as caught:
        vidu_body.endpoint(lonely)
    assert caught.value.kind is UpstreamKind.BAD_REQUEST


def test_vidu_empty_prompt_is_left_out() -> None:
    path, body = vidu_body.create_body(
        job("viduq2-pro", mode="i2v", prompt="", media={"image1_file": [image("a.png")]})
    )
    assert path == vidu_body.IMAGE and "prompt" not in body
    assert body["images"] == ["https://gw.example/media/a.png"]
