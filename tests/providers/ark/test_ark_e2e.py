"""Volcengine Ark and BytePlus ModelArk end to end: the real server (SQLite and PostgreSQL)
submits through the public API (native /llmage/video, OpenAI /v1/videos and /v1/images) to the
fake Ark / ModelArk upstreams. Every mode of the seed models ends SUCCEEDED, the result is
re-hosted before the fake's URL expires, the cover is cut from the first frame (Ark has none),
and the charge is the reported token usage at the catalog's settle prices; every failure
releases the hold and a channel problem is never billed."""

from __future__ import annotations

import base64
import io
import math
import time
import wave
from collections.abc import Iterator
from fractions import Fraction
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from ark_fake import ArkFake, tokens_for

from conftest import Account, Stack
from llmage.catalog import load_catalog
from llmage.domain.catalog import MediaPrice
from llmage.domain.credentials import ApiKey
from support.fakes import FakeUpstream, Lifecycle, tiny_jpeg, tiny_mp4, tiny_png
from support.fakes.drive import (
    account,
    drive_native,
    drive_openai_video,
    rehosted,
    video_content,
    wire_channel,
)

S20 = "doubao-seedance-2-0-260128"
S20_FAST = "doubao-seedance-2-0-fast-260128"
S15 = "doubao-seedance-1-5-pro-251215"
SEEDREAM = "doubao-seedream-4-0-250828"
CHAT = "doubao-1-5-pro-32k-250115"
D20 = "dreamina-seedance-2-0-260128"
D20_FAST = "dreamina-seedance-2-0-fast-260128"
T2V_20 = "YjjGgxO_Xma8PWsMjJvps"
T2V_15 = "CrEMkFQfRCmbmopZsCqLj"
I2V_20 = "UeYax4591ytnPcr9eumry"
I2V_15 = "7RTOJD6K8A7RXCMG4GnQ9"
R2V_20 = "dmPXF65TD1riKj9KaxLmg"
R2V_15 = "VooAIOtJdawpZjusWEzrh"  # seed 001
BP_T2V = "TWay-xd0p0pkEX-_Kuhto"
BP_I2V = "tb0VSY6WeyGbzaolU1_qE"
BP_R2V = "nVbH7lEO51soqTbLGIHE_"
SEEDREAM_PRICE = 200_000
CATALOG = load_catalog()


def expected_charge(llmid: str, model: str, resolution: str, seconds: int, tokens: int) -> int:
    """The catalog's settle rate per million reported tokens (times the model's multiplier),
    never above the hold (per-second rate x requested seconds), rounded up."""
    entry = CATALOG.by_llmid(llmid)
    assert entry is not None and isinstance(entry.price, MediaPrice)
    price = entry.price
    factor = Fraction(str(price.multipliers.get("model", {}).get(model, 1)))
    hold = math.ceil(Fraction(price.rates[resolution]) * seconds * factor)
    rate = price.settle_rates.get(resolution, price.settle_rates.get("*"))
    assert rate is not None
    return min(math.ceil(Fraction(rate) * tokens / 1_000_000 * factor), hold)


def tiny_wav() -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x00" * 8000 * 2)
    return out.getvalue()


def data_uri(data: bytes, ctype: str) -> str:
    return f"data:{ctype};base64,{base64.b64encode(data).decode()}"


@pytest.fixture(scope="module")
def fakes(stack: Stack) -> Iterator[tuple[ArkFake, ArkFake]]:
    ark, byteplus = ArkFake(), ArkFake(byteplus=True)
    stack.admin.call(ark.start())
    stack.admin.call(byteplus.start())
    wire_channel(
        stack, ark, provider="ark", platform="volcengine", name=f"ark-{stack.backend}",
        base_url=ark.url + "/api/v3", credentials=ApiKey(ark.api_key),
        models=[S20, S20_FAST, S15, SEEDREAM, CHAT],
    )  # fmt: skip
    wire_channel(
        stack, byteplus, provider="byteplus", platform="byteplus",
        name=f"byteplus-{stack.backend}", base_url=byteplus.url + "/api/v3",
        credentials=ApiKey(byteplus.api_key), models=[D20, D20_FAST],
    )  # fmt: skip
    # A channel with a wrong key: only requests pinned to its platform go to it alone; others
    # may fail over to it, and it refuses them.
    wire_channel(
        stack, ark, provider="ark", platform="volcengine-badkey",
        name=f"ark-badkey-{stack.backend}", base_url=ark.url + "/api/v3",
        credentials=ApiKey("ark-wrong-key-00000000"), models=[S20], priority=1,
    )  # fmt: skip
    yield ark, byteplus
    stack.admin.call(ark.stop())
    stack.admin.call(byteplus.stop())


def _reset(fake: ArkFake) -> ArkFake:
    fake.lifecycle = Lifecycle.succeeding()
    fake.report_duration = None
    fake.images_made = None
    fake.image_moderation = False
    fake.lose_replies = 0
    fake.closed_models.clear()
    fake._expired = False
    fake._failures.clear()
    fake.requests.clear()
    fake.creates = 0
    return fake


@pytest.fixture
def ark(fakes: tuple[ArkFake, ArkFake]) -> ArkFake:
    return _reset(fakes[0])


@pytest.fixture
def byteplus(fakes: tuple[ArkFake, ArkFake]) -> ArkFake:
    return _reset(fakes[1])


def keyed_creates(fake: ArkFake) -> list[Any]:
    """The creates sent with the fake's own key: those of the good channel."""
    return [
        s
        for s in fake.requests
        if s.op == "create" and s.headers.get("Authorization") == f"Bearer {fake.api_key}"
    ]


def creates(fake: FakeUpstream) -> list[dict[str, Any]]:
    import json

    return [json.loads(s.body) for s in fake.requests if s.op == "create"]


def only_task(fake: ArkFake) -> Any:
    (task,) = fake.tasks.values() if len(fake.tasks) == 1 else [list(fake.tasks.values())[-1]]
    return task


def roles(body: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(item["type"], item.get("role")) for item in body["content"]]


def our_copy(stack: Stack, url: str) -> bytes:
    """An input URL we gave the upstream points at our own media route and our file."""
    path = urlsplit(url).path
    assert path.startswith("/media/"), url
    r = httpx.get(stack.url + path, timeout=30)
    assert r.status_code == 200, (url, r.status_code)
    return r.content


def charged(stack: Stack, acc: Account, before: int) -> int:
    return before - stack.wait_settled(acc.user_id)[0]


# -- every mode succeeds, re-hosted, charged from reported tokens ---------------------------------


def test_native_text_to_video_2_0(stack: Stack, ark: ArkFake) -> None:
    acc = account(stack)
    before = stack.balance(acc.user_id)[0]
    body = {"llmid": T2V_20, "prompt": "a lighthouse", "duration": 5, "resolution": "720p",
            "ratio": "16:9"}  # fmt: skip
    done = drive_native(stack, acc, body)
    assert done["status"] == "SUCCEEDED", done
    (sent,) = creates(ark)
    assert sent == {"model": S20, "content": [{"type": "text", "text": "a lighthouse"}],
                    "resolution": "720p", "ratio": "16:9", "duration": 5}  # fmt: skip
    assert all(s.headers["Authorization"] == f"Bearer {ark.api_key}" for s in ark.requests)
    assert rehosted(done["video"], ark) == tiny_mp4()
    assert rehosted(done["image"], ark) == tiny_jpeg()  # no cover upstream: the first frame
    tokens = tokens_for("720p", "16:9", 5)
    assert charged(stack, acc, before) == expected_charge(T2V_20, S20, "720p", 5, tokens)
    assert done["usage"]["tokens"] == tokens and done["usage"]["duration"] == 5
    assert stack.reconcile() == []


def test_charge_follows_the_duration_and_tokens_ark_reports(stack: Stack, ark: ArkFake) -> None:
    ark.report_duration = 4  # asked for 10, Ark made (and bills) 4
    acc = account(stack)
    before = stack.balance(acc.user_id)[0]
    body = {"llmid": T2V_15, "prompt": "a short one", "duration": 10, "resolution": "480p",
            "ratio": "keep_ratio"}  # fmt: skip
    done = drive_native(stack, acc, body)
    assert done["status"] == "SUCCEEDED", done
    assert creates(ark)[0]["ratio"] == "adaptive" and creates(ark)[0]["model"] == S15
    tokens = tokens_for("480p", "16:9", 4)
    assert charged(stack, acc, before) == expected_charge(T2V_15, S15, "480p", 10, tokens)


def test_native_first_and_last_frame(stack: Stack, ark: ArkFake) -> None:
    acc = account(stack)
    before = stack.balance(acc.user_id)[0]
    first, last = tiny_png(seed=1), tiny_png(seed=2)
    files = {"image1_file": ("a.png", first, "image/png"),
             "image2_file": ("b.png", last, "image/png")}  # fmt: skip
    body = {"llmid": I2V_20, "prompt": "morph", "duration": 4, "resolution": "480p"}
    done = drive_native(stack, acc, body, files=files)
    assert done["status"] == "SUCCEEDED", done
    (sent,) = creates(ark)
    assert roles(sent) == [("text", None), ("image_url", "first_frame"),
                           ("image_url", "last_frame")]  # fmt: skip
    assert our_copy(stack, sent["content"][1]["image_url"]["url"]) == first
    assert our_copy(stack, sent["content"][2]["image_url"]["url"]) == last
    assert sent["ratio"] == "adaptive"  # the catalog default, which follows the first frame
    tokens = tokens_for("480p", "16:9", 4)
    assert charged(stack, acc, before) == expected_charge(I2V_20, S20, "480p", 4, tokens)
    assert rehosted(done["video"], ark) == tiny_mp4()


def test_native_first_frame_on_1_5_pro(stack: Stack, ark: ArkFake) -> None:
    acc = account(stack)
    files = {"image_file1": ("a.png", tiny_png(seed=3), "image/png")}
    body = {"llmid": I2V_15, "prompt": "wave", "duration": 5, "resolution": "720p"}
    done = drive_native(stack, acc, body, files=files)
    assert done["status"] == "SUCCEEDED", done
    (sent,) = creates(ark)
    assert sent["model"] == S15 and roles(sent) == [("text", None), ("image_url", "first_frame")]


def test_native_reference_images_video_and_audio(stack: Stack, ark: ArkFake) -> None:
    acc = account(stack)
    before = stack.balance(acc.user_id)[0]
    body = {
        "llmid": R2V_20, "prompt": "the cat from image 1 dances to the audio",
        "image_files": [data_uri(tiny_png(seed=4), "image/png"),
                        data_uri(tiny_png(seed=5), "image/png")],
        "video_files": [data_uri(tiny_mp4(), "video/mp4")],
        "audio_files": [data_uri(tiny_wav(), "audio/wav")],
        "resolution": "720p", "ratio": "9:16", "duration": 6,
    }  # fmt: skip
    done = drive_native(stack, acc, body)
    assert done["status"] == "SUCCEEDED", done
    (sent,) = creates(ark)
    assert roles(sent) == [("text", None), ("image_url", "reference_image"),
                           ("image_url", "reference_image"), ("video_url", "reference_video"),
                           ("audio_url", "reference_audio")]  # fmt: skip
    assert our_copy(stack, sent["content"][3]["video_url"]["url"]) == tiny_mp4()
    assert our_copy(stack, sent["content"][4]["audio_url"]["url"]) == tiny_wav()
    tokens = tokens_for("720p", "9:16", 6)
    assert charged(stack, acc, before) == expected_charge(R2V_20, S20, "720p", 6, tokens)


def test_seed_001_reference_on_1_5_pro_runs_on_2_0(stack: Stack, ark: ArkFake) -> None:
    acc = account(stack)
    before = stack.balance(acc.user_id)[0]
    files = {f"image_file{n}": (f"{n}.png", tiny_png(seed=10 + n), "image/png") for n in (1, 2, 3)}
    body = {"llmid": R2V_15, "prompt": "three friends", "duration": 5, "resolution": "720p",
            "radio": "16:9"}  # fmt: skip
    done = drive_native(stack, acc, body, files=files)
    assert done["status"] == "SUCCEEDED", done
    (sent,) = creates(ark)
    assert sent["model"] == S20  # 1.5 pro has no reference mode upstream
    assert roles(sent)[1:] == [("image_url", "reference_image")] * 3
    assert "seed" not in sent and "camera_fixed" not in sent
    tokens = tokens_for("720p", "16:9", 5)
    assert charged(stack, acc, before) == expected_charge(R2V_15, S15, "720p", 5, tokens)


def test_openai_dialect_on_byteplus_fast(stack: Stack, byteplus: ArkFake, ark: ArkFake) -> None:
    acc = account(stack)
    before = stack.balance(acc.user_id)[0]
    fields = {"model": D20_FAST, "prompt": "night city", "seconds": "5", "size": "1280x720"}
    video = drive_openai_video(stack, acc, fields)
    assert video["status"] == "completed", video
    (sent,) = creates(byteplus)
    assert (sent["model"], sent["resolution"], sent["ratio"]) == (D20_FAST, "720p", "16:9")
    assert not creates(ark)  # BytePlus models go to the BytePlus channel only
    byteplus.expire_files()
    assert video_content(stack, acc, video["id"]) == tiny_mp4()
    assert video_content(stack, acc, video["id"], "thumbnail")[:3] == b"\xff\xd8\xff"
    tokens = tokens_for("720p", "16:9", 5)
    assert charged(stack, acc, before) == expected_charge(BP_T2V, D20_FAST, "720p", 5, tokens)


@pytest.mark.parametrize("llmid", [BP_I2V, BP_R2V])
def test_byteplus_frames_and_references(stack: Stack, byteplus: ArkFake, llmid: str) -> None:
    acc = account(stack)
    slots = ("image1_file", "image2_file") if llmid == BP_I2V else ("image_files", "image_files")
    files = [
        (slot, (f"{n}.png", tiny_png(seed=20 + n), "image/png")) for n, slot in enumerate(slots)
    ]
    r = httpx.post(
        stack.url + "/llmage/video",
        data={"llmid": llmid, "prompt": "harbour", "duration": "4", "resolution": "480p"},
        files=files,
        headers={"Authorization": f"Bearer {acc.key}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    done = _wait(stack, acc, r.json()["taskid"])
    assert done["status"] == "SUCCEEDED", done
    (sent,) = creates(byteplus)
    want = ["first_frame", "last_frame"] if llmid == BP_I2V else ["reference_image"] * 2
    assert sent["model"] == D20 and [role for _, role in roles(sent)[1:]] == want


def _wait(stack: Stack, acc: Account, taskid: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        view: dict[str, Any] = httpx.get(
            stack.url + "/llmage/tasks", params={"taskid": taskid},
            headers={"Authorization": f"Bearer {acc.key}"}, timeout=30,
        ).json()  # fmt: skip
        if view["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
            return view
        assert time.monotonic() < deadline, view
        time.sleep(0.05)


def test_seedream_generation_and_editing(stack: Stack, ark: ArkFake) -> None:
    acc = account(stack)
    before = stack.balance(acc.user_id)[0]
    headers = {"Authorization": f"Bearer {acc.key}"}
    r = httpx.post(
        stack.url + "/v1/images/generations",
        json={"model": SEEDREAM, "prompt": "a red square", "n": 2, "size": "2K"},
        headers=headers, timeout=30,
    )  # fmt: skip
    assert r.status_code == 200, r.text
    images = [base64.b64decode(d["b64_json"]) for d in r.json()["data"]]
    assert images == [tiny_png(seed=0), tiny_png(seed=1)]  # copied before the URLs expire
    gen = [s for s in ark.requests if s.op == "images"][-1]
    assert gen.headers["Content-Type"] == "application/json"
    assert charged(stack, acc, before) == 2 * SEEDREAM_PRICE

    ark.images_made = 1  # asked for up to 3, the model made 1: one is billed
    before = stack.balance(acc.user_id)[0]
    r = httpx.post(
        stack.url + "/v1/images/edits",
        data={"model": SEEDREAM, "prompt": "bluer", "n": "3"},
        files={"image": ("in.png", tiny_png(seed=9), "image/png")},
        headers=headers, timeout=30,
    )  # fmt: skip
    assert r.status_code == 200, r.text
    assert len(r.json()["data"]) == 1
    import json

    edit = json.loads([s for s in ark.requests if s.op == "images"][-1].body)
    assert our_copy(stack, edit["image"]) == tiny_png(seed=9)
    assert edit["sequential_image_generation_options"] == {"max_images": 3}
    assert charged(stack, acc, before) == SEEDREAM_PRICE
    assert stack.reconcile() == []


def test_seedream_output_moderation_is_refused_and_refunded(stack: Stack, ark: ArkFake) -> None:
    ark.image_moderation = True
    acc = account(stack)
    before = stack.balance(acc.user_id)
    r = httpx.post(
        stack.url + "/v1/images/generations",
        json={"model": SEEDREAM, "prompt": "edgy"},
        headers={"Authorization": f"Bearer {acc.key}"}, timeout=30,
    )  # fmt: skip
    assert r.status_code == 400, r.text
    assert "moderation" in r.json()["error"]["message"]
    assert stack.wait_settled(acc.user_id) == (before[0], 0)


# -- failures release the hold --------------------------------------------------------------------


def _failed(stack: Stack, body: dict[str, Any], code: str) -> dict[str, Any]:
    acc = account(stack)
    before = stack.balance(acc.user_id)
    done = drive_native(stack, acc, body)
    assert done["status"] == "FAILED", done
    assert done["error"]["code"] == code, done
    assert stack.wait_settled(acc.user_id) == (before[0], 0)
    return done


T2V = {"llmid": T2V_20, "prompt": "x", "duration": 5, "resolution": "720p"}


def test_a_failed_upstream_task_fails_and_releases(stack: Stack, ark: ArkFake) -> None:
    ark.lifecycle = Lifecycle.failing("InternalServiceError", "the model gave up")
    done = _failed(stack, T2V, "InternalServiceError")
    assert "the model gave up" in done["error"]["message"]


@pytest.mark.parametrize("word", ["expired", "cancelled"])
def test_expired_and_cancelled_upstream_end_failed_unbilled(
    stack: Stack, ark: ArkFake, word: str
) -> None:
    ark.lifecycle = Lifecycle(("queued", word))
    _failed(stack, T2V, word)


def test_output_moderation_is_a_clear_refusal(stack: Stack, ark: ArkFake) -> None:
    ark.lifecycle = Lifecycle.output_moderation("OutputVideoSensitiveContentDetected")
    done = _failed(stack, T2V, "output_moderation")
    assert "moderation" in done["error"]["message"]


def test_input_moderation_at_create(stack: Stack, ark: ArkFake) -> None:
    message = "The request failed because the input text may contain sensitive information."
    code = "InputTextSensitiveContentDetected"
    body = {"error": {"code": code, "type": "BadRequest", "param": "", "message": message}}
    ark.fail_next("create", 400, body)
    done = _failed(stack, T2V, "input_moderation")
    assert "input text may contain sensitive" in done["error"]["message"]
    assert ark.creates == 0


def test_what_the_model_refuses_never_reaches_it(stack: Stack, ark: ArkFake) -> None:
    body = {**T2V, "model": S20_FAST, "resolution": "1080p"}
    done = _failed(stack, body, "bad_request")
    assert "allowed: 480p, 720p" in done["error"]["message"]
    assert not [s for s in ark.requests if s.op == "create"]


def test_9_21_is_refused_at_the_gateway(stack: Stack, ark: ArkFake) -> None:
    acc = account(stack)
    r = httpx.post(
        stack.url + "/llmage/video",
        json={"llmid": T2V_15, "prompt": "tall", "ratio": "9:21"},
        headers={"Authorization": f"Bearer {acc.key}"}, timeout=30,
    )  # fmt: skip
    assert r.status_code == 400 and "ratio" in r.text and "21:9" in r.text
    assert stack.balance(acc.user_id)[1] == 0


@pytest.mark.parametrize(
    ("status", "error", "code"),
    [
        (403, {"code": "AccountOverdueError", "message": "overdue balance"}, "upstream_quota"),
        (404, {"code": "ModelNotOpen", "message": "not activated"}, "model_not_enabled"),
    ],
)
def test_channel_problems_are_never_billed(
    stack: Stack, ark: ArkFake, status: int, error: dict[str, str], code: str
) -> None:
    ark.fail_next("create", status, {"error": {**error, "param": "", "type": "Forbidden"}})
    done = _failed(stack, T2V, code)
    assert error["message"] not in done["error"]["message"]  # our account's words stay ours
    scrape = httpx.get(stack.url + "/metrics").text
    assert f'channel="ark-{stack.backend}",op="submit",outcome="{code}"' in scrape


def test_wrong_credential_marks_the_channel_unhealthy(stack: Stack, ark: ArkFake) -> None:
    acc = account(stack)
    before = stack.balance(acc.user_id)
    r = httpx.post(
        stack.url + "/volcengine-badkey/v1/videos",
        data={"model": S20, "prompt": "x", "seconds": "5"},
        headers={"Authorization": f"Bearer {acc.key}"}, timeout=30,
    )  # fmt: skip
    assert r.status_code == 200, r.text
    done = _wait_openai(stack, acc, r.json()["id"])
    assert done["status"] == "failed" and done["error"]["code"] == "auth", done
    assert "ark-wrong" not in str(done)
    assert stack.wait_settled(acc.user_id) == (before[0], 0)
    scrape = httpx.get(stack.url + "/metrics").text
    assert f'llmage_channel_healthy{{channel="ark-badkey-{stack.backend}"}} 0.0' in scrape
    assert ark.creates == 0


def _wait_openai(stack: Stack, acc: Account, video_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        view: dict[str, Any] = httpx.get(
            f"{stack.url}/v1/videos/{video_id}", headers={"Authorization": f"Bearer {acc.key}"},
            timeout=30,
        ).json()  # fmt: skip
        if view["status"] in ("completed", "failed"):
            return view
        assert time.monotonic() < deadline, view
        time.sleep(0.05)


def test_rate_limited_create_is_retried(stack: Stack, ark: ArkFake) -> None:
    ark.fail_next("create", 429, {"error": {"code": "RateLimitExceeded.EndpointRPMExceeded",
                                            "message": "RPM exceeded", "param": "",
                                            "type": "TooManyRequests"}})  # fmt: skip
    acc = account(stack)
    done = drive_native(stack, acc, T2V)
    assert done["status"] == "SUCCEEDED", done
    # The 429 created nothing (the task also tried the wrong-key channel, which refused it).
    assert len(keyed_creates(ark)) == 2 and ark.creates == 1


def test_a_lost_create_reply_is_recovered_from_the_list_never_resent(
    stack: Stack, ark: ArkFake
) -> None:
    # Earlier tests' tasks of the same model and shape are in the fake's list, some created
    # within the clock-skew allowance before this create: each is owned by its own task, so
    # recovery takes the one this create made, never theirs.
    twin = drive_native(stack, account(stack), T2V)
    assert twin["status"] == "SUCCEEDED", twin
    # Make that finished twin look made at the same moment as the lost create, for certain
    # (the recovery used to take the earliest match, so it took this one).
    only_task(ark).created_at = time.time()
    ark.requests.clear()
    ark.creates = 0
    ark.lose_replies = 1  # Ark made the task, then its reply was a 500
    acc = account(stack)
    before = stack.balance(acc.user_id)[0]
    done = drive_native(stack, acc, {**T2V, "prompt": "lost reply"})
    assert done["status"] == "SUCCEEDED", done
    assert len(creates(ark)) == 1 and ark.creates == 1
    lists = [s for s in ark.requests if s.op == "list"]
    assert lists and lists[0].query["filter.model"] == S20
    made = [s for s in ark.requests if s.op == "poll"]
    assert made and all(s.path.endswith(only_task(ark).id) for s in made)  # ours, nobody else's
    tokens = tokens_for("720p", "16:9", 5)
    assert charged(stack, acc, before) == expected_charge(T2V_20, S20, "720p", 5, tokens)


def test_a_5xx_create_that_made_nothing_fails_unbilled(stack: Stack, ark: ArkFake) -> None:
    ark.fail_next("create", 500, {"error": {"code": "InternalServiceError", "message": "boom"}})
    _failed(stack, T2V, "submit_lost")
    # Looked up, never resent here (offered to the wrong-key channel, which refused it).
    assert len(keyed_creates(ark)) == 1
    assert any(s.op == "list" for s in ark.requests)


def test_a_task_gone_upstream_ends_and_refunds(stack: Stack, ark: ArkFake) -> None:
    ark.lifecycle = Lifecycle(("queued", "gone"))
    _failed(stack, T2V, "task_gone")
    assert len([s for s in ark.requests if s.op == "poll"]) == 2


def test_an_undocumented_status_is_still_running(stack: Stack, ark: ArkFake) -> None:
    ark.lifecycle = Lifecycle(("queued", "mystery", "running", "succeeded"))
    acc = account(stack)
    done = drive_native(stack, acc, T2V)
    assert done["status"] == "SUCCEEDED", done


def test_cancelling_a_queued_task_deletes_it_upstream(stack: Stack, ark: ArkFake) -> None:
    ark.lifecycle = Lifecycle(("queued",) * 10_000 + ("succeeded",))
    acc = account(stack)
    before = stack.balance(acc.user_id)
    auth = {"Authorization": f"Bearer {acc.key}"}
    r = httpx.post(stack.url + "/llmage/video", json=T2V, headers=auth, timeout=30)
    taskid = r.json()["taskid"]
    deadline = time.monotonic() + 30
    while not any(s.op == "poll" for s in ark.requests):  # created upstream, queued there
        assert time.monotonic() < deadline
        time.sleep(0.02)
    r = httpx.post(stack.url + "/llmage/tasks/cancel", json={"taskid": taskid}, headers=auth,
                   timeout=30)  # fmt: skip
    assert r.status_code == 200, r.text
    while not any(s.op == "cancel" for s in ark.requests):
        assert time.monotonic() < deadline, "no DELETE reached the upstream"
        time.sleep(0.02)
    (cancel,) = [s for s in ark.requests if s.op == "cancel"]
    assert cancel.method == "DELETE" and cancel.path.endswith(only_task(ark).id)
    assert only_task(ark).result.get("cancelled") is True
    assert _wait(stack, acc, taskid)["status"] == "CANCELLED"
    assert stack.wait_settled(acc.user_id) == (before[0], 0)


def test_channel_test_probes_with_a_list_never_a_create(stack: Stack, ark: ArkFake) -> None:
    ops = stack.platform.channel_ops
    good = stack.admin.call(ops.test(f"byteplus-{stack.backend}"))
    assert good.ok and good.call == "probe", good
    bad = stack.admin.call(ops.test(f"ark-badkey-{stack.backend}"))
    assert (bad.ok, bad.call, bad.kind) == (False, "probe", "auth")
    assert ark.creates == 0
    assert [s.query for s in ark.requests if s.op == "list"] == [
        {"page_num": "1", "page_size": "1"}
    ]


def test_chat_relays_through_an_ark_channel(stack: Stack, ark: ArkFake) -> None:
    acc = account(stack)
    r = httpx.post(
        stack.url + "/v1/chat/completions",
        json={"model": CHAT, "messages": [{"role": "user", "content": "你好"}]},
        headers={"Authorization": f"Bearer {acc.key}"}, timeout=30,
    )  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "你好"
    (call,) = [s for s in ark.requests if s.op == "chat"]
    assert call.path == "/api/v3/chat/completions"
    assert call.headers["Authorization"] == f"Bearer {ark.api_key}"
