"""Vidu end to end: the real server (SQLite and PostgreSQL) submits through the public API — the
native `/llmage/video`, the new-api `/v1/video/generations` (seed 002 and 004 names) and the
OpenAI `/v1/videos` — to the fake Vidu, in every mode (text, first frame, first + last frame,
reference images). Each task ends SUCCEEDED with the result and Vidu's cover re-hosted before
the fake's URLs expire, and is charged the credits Vidu reports at the catalog's credit prices.
Failures (a failing task, moderation, the upstream's own empty balance, a wrong key, a gone
task, a lost create) end FAILED with the hold released."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from vidu_fake import COVER, ViduFake

from conftest import Account, Stack
from llmage.domain.credentials import ApiKey
from support.fakes import Lifecycle, tiny_jpeg, tiny_mp4, tiny_png
from support.fakes.drive import TIMEOUT, account, rehosted, wire_channel

PNG = tiny_png()
DATA_URI = "data:image/png;base64," + base64.b64encode(PNG).decode()
MODELS = ["viduq3-pro", "viduq3-turbo", "viduq2-turbo", "viduq1"]
R0ILL = "r0ill7L0s6PtBS8mkmg-7"  # seed 000 t2v viduq3-pro
FK_H7 = "FK_h7FLYnosv2TkMN4ATC"  # seed 000 first + last frame
OPEN = ("SUCCEEDED", "FAILED", "CANCELLED")


@pytest.fixture(scope="module")
def fake(stack: Stack) -> Iterator[ViduFake]:
    up = ViduFake()
    stack.admin.call(up.start())
    wire_channel(stack, up, provider="vidu", name=f"vidu-{stack.backend}", models=MODELS,
                 credentials=ApiKey(up.api_key))  # fmt: skip
    # A second channel with a wrong key, reachable only on its own platform (`/vidubad/v1/...`).
    wire_channel(stack, up, provider="vidu", name=f"vidu-badkey-{stack.backend}",
                 platform="vidubad", models=["viduq3-pro"], priority=1,
                 credentials=ApiKey("vidu-wrong-key-000000000000"))  # fmt: skip
    yield up
    stack.admin.call(up.stop())


@pytest.fixture
def up(fake: ViduFake) -> ViduFake:
    fake.reset()
    return fake


# -- driving the public API -----------------------------------------------------------------------


def _auth(acc: Account) -> dict[str, str]:
    return {"Authorization": f"Bearer {acc.key}"}


def native(stack: Stack, acc: Account, body: dict[str, Any]) -> str:
    images = {k: v for k, v in body.items() if isinstance(v, bytes)}
    if images:
        form = {k: str(v) for k, v in body.items() if k not in images}
        files = {k: (f"{k}.png", v, "image/png") for k, v in images.items()}
        r = httpx.post(stack.url + "/llmage/video", data=form, files=files, headers=_auth(acc),
                       timeout=TIMEOUT)  # fmt: skip
    else:
        r = httpx.post(stack.url + "/llmage/video", json=body, headers=_auth(acc), timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    return str(r.json()["taskid"])


def newapi(stack: Stack, acc: Account, body: dict[str, Any]) -> str:
    r = httpx.post(stack.url + "/v1/video/generations", json=body, headers=_auth(acc),
                   timeout=TIMEOUT)  # fmt: skip
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def openai(stack: Stack, acc: Account, body: dict[str, Any], prefix: str = "") -> str:
    files = {"input_reference": ("ref.png", body.pop("input_reference"), "image/png")} if (
        "input_reference" in body) else None  # fmt: skip
    r = httpx.post(stack.url + prefix + "/v1/videos", data=body, files=files, headers=_auth(acc),
                   timeout=TIMEOUT)  # fmt: skip
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def finish(stack: Stack, acc: Account, taskid: str, timeout: float = 30) -> dict[str, Any]:
    """The task's native view (seed 001), polled until it ends."""
    deadline = time.monotonic() + timeout
    while True:
        r = httpx.get(stack.url + "/llmage/tasks", params={"taskid": taskid}, headers=_auth(acc),
                      timeout=TIMEOUT)  # fmt: skip
        assert r.status_code == 200, r.text
        view: dict[str, Any] = r.json()
        if view["status"] in OPEN:
            return view
        assert time.monotonic() < deadline, view
        time.sleep(0.05)


@dataclass(frozen=True)
class Ran:
    acc: Account
    taskid: str
    done: dict[str, Any]  # the native view at the end
    charged: int


def run(stack: Stack, submit: Callable[[Account], str]) -> Ran:
    acc = account(stack)
    before = stack.balance(acc.user_id)[0]
    taskid = submit(acc)
    done = finish(stack, acc, taskid)
    return Ran(acc, taskid, done, before - stack.wait_settled(acc.user_id)[0])


def creates(up: ViduFake) -> list[Any]:
    return [s for s in up.requests if s.op == "create"]


# -- every mode, every dialect --------------------------------------------------------------------


@dataclass(frozen=True)
class Mode:
    name: str
    submit: Callable[[Stack, Account], str]
    endpoint: str
    sent: dict[str, Any]  # fields the fake must have received, as Vidu spells them
    hold: int  # the per-second quote (micro-units), held while it runs
    credits: int  # what the fake bills
    rate: int  # the catalog's price of one credit at that resolution

    @property
    def charge(self) -> int:
        return self.credits * self.rate

    def __str__(self) -> str:
        return self.name


MODES = [
    # viduq3-pro 540p 4 s: hold 0.3/s x 4; 14 credits/s x 4 = 56 at 0.021428
    Mode("native-t2v", lambda s, a: native(s, a, {"llmid": R0ILL, "prompt": "a lighthouse",
         "duration": 4, "resolution": "540p", "ratio": "9:16"}), "text2video",
         {"model": "viduq3-pro", "duration": 4, "resolution": "540p", "aspect_ratio": "9:16"},
         1_200_000, 56, 21_428),
    # viduq2-turbo (seed 000 `model`) off-peak 1080p 8 s: hold 0.8 x 8 x 0.5 x 0.6;
    # 16 credits/s x 8 / 2 = 64 at 0.025
    Mode("native-first-last", lambda s, a: native(s, a, {"llmid": FK_H7, "model": "viduq2-turbo",
         "prompt": "turn around", "off_peak": "Y", "duration": 8, "image1_file": PNG,
         "image2_file": tiny_png(seed=9)}), "start-end2video",
         {"model": "viduq2-turbo", "off_peak": True, "duration": 8, "resolution": "1080p"},
         1_920_000, 64, 25_000),
    # seed 002 single image: viduq3-turbo 540p 5 s: hold 0.3 x 5 x 0.6; 8 x 5 = 40 credits
    Mode("newapi-i2v", lambda s, a: newapi(s, a, {"model": "viduq3t-540p", "prompt": "look up",
         "image": DATA_URI, "duration": 5, "extra_body": {"seed": 42}}), "img2video",
         {"model": "viduq3-turbo", "resolution": "540p", "seed": 42}, 900_000, 40, 21_428),
    # seed 002 mix: viduq3-pro → viduq3-mix 720p 5 s: 30 x 5 = 150 credits at 0.02
    Mode("newapi-mix", lambda s, a: newapi(s, a, {"model": "viduq3p-mix-720p",
         "prompt": "@Image1 on a beach in the style of @Image2", "duration": 5,
         "aspect_ratio": "16:9", "reference_image_urls": [DATA_URI, DATA_URI],
         "extra_body": {"audio": False, "seed": 42}}), "reference2video",
         {"model": "viduq3-mix", "aspect_ratio": "16:9", "audio": False, "resolution": "720p"},
         3_000_000, 150, 20_000),
    # seed 002 text, turbo off-peak 1080p 4 s: hold 0.48 x 4 x 0.5; 19 x 4 / 2 = 38 credits
    Mode("newapi-t2v-offpeak", lambda s, a: newapi(s, a, {"model": "viduq3t-1080p-offpeak",
         "prompt": "aerial city", "duration": 4}), "text2video",
         {"model": "viduq3-turbo", "off_peak": True, "resolution": "1080p"}, 960_000, 38, 25_000),
    # seed 004's Vidu example (minus its callback): viduq1 5 s 1080p, 80 credits at 0.03125
    Mode("newapi-seed004-viduq1", lambda s, a: newapi(s, a, {"model": "viduq1",
         "prompt": "astronaut on the moon", "size": "1920x1080", "image": DATA_URI,
         "duration": 5, "metadata": {"duration": 5, "seed": 0, "resolution": "1080p",
         "movement_amplitude": "auto", "bgm": False, "payload": ""}}), "img2video",
         {"model": "viduq1", "seed": 0, "bgm": False, "movement_amplitude": "auto"},
         2_500_000, 80, 31_250),
    # OpenAI dialect, text: viduq3-pro 720p 16:9 4 s, 30 x 4 credits
    Mode("openai-t2v", lambda s, a: openai(s, a, {"model": "viduq3-pro", "prompt": "waves",
         "seconds": "4", "size": "1280x720"}), "text2video",
         {"model": "viduq3-pro", "resolution": "720p", "aspect_ratio": "16:9"},
         2_400_000, 120, 20_000),
    # OpenAI dialect, first frame: viduq3-turbo 1080p (the entry's default) 5 s, 19 x 5
    Mode("openai-i2v", lambda s, a: openai(s, a, {"model": "viduq3-turbo", "prompt": "wave",
         "seconds": "5", "input_reference": PNG}), "img2video",
         {"model": "viduq3-turbo", "duration": 5}, 2_400_000, 95, 25_000),
]  # fmt: skip


@pytest.mark.parametrize("mode", MODES, ids=str)
def test_every_mode_succeeds_rehosted_and_charged_by_credits(
    stack: Stack, up: ViduFake, mode: Mode
) -> None:
    ran = run(stack, lambda a: mode.submit(stack, a))
    done = ran.done
    assert done["status"] == "SUCCEEDED", done
    (create,) = creates(up)
    assert create.path == f"/ent/v2/{mode.endpoint}"
    assert all(s.headers["Authorization"] == f"Token {up.api_key}" for s in up.requests)
    (task,) = up.tasks.values()
    assert {k: task.body.get(k) for k in mode.sent} == mode.sent
    assert task.body["payload"] == ran.taskid  # our id rides along (the recovery key)
    # Every documented state was seen on the way (created, queueing, processing, success).
    assert [s.op for s in up.requests].count("poll") == 4
    # Our copies outlive the fake's URLs; the cover is Vidu's own, not a cut frame.
    assert rehosted(done["video"], up) == tiny_mp4()
    assert rehosted(done["image"], up) == COVER
    row = stack.admin.call(stack.platform.task_repo.get(ran.taskid))
    assert row is not None and row.quoted == mode.hold
    # An off-peak run may start hours later at Vidu: its deadline is sized for that.
    s = stack.settings
    limit = s.task_off_peak_timeout_seconds if mode.sent.get("off_peak") else s.task_timeout_seconds
    assert row.deadline_at - row.created_at == limit * 1000
    assert ran.charged == mode.charge <= mode.hold
    usage = done["usage"]
    assert usage["credits"] == mode.credits
    assert usage["off_peak"] is bool(mode.sent.get("off_peak"))
    assert stack.reconcile() == []


# -- covers, failures, refusals -------------------------------------------------------------------

T2V = {"llmid": R0ILL, "prompt": "a lighthouse", "duration": 4, "resolution": "720p"}


def test_no_cover_from_vidu_is_cut_from_the_first_frame(stack: Stack, up: ViduFake) -> None:
    up.with_cover = False
    ran = run(stack, lambda a: native(stack, a, T2V))
    assert ran.done["status"] == "SUCCEEDED", ran.done
    assert rehosted(ran.done["image"], up) == tiny_jpeg()  # the first frame of the MP4


def test_failed_task_fails_and_releases(stack: Stack, up: ViduFake) -> None:
    up.lifecycle = Lifecycle.failing("InternalServiceFailure")
    ran = run(stack, lambda a: native(stack, a, T2V))
    assert ran.done["status"] == "FAILED"
    assert ran.done["error"]["code"] == "InternalServiceFailure"
    assert ran.charged == 0 and stack.balance(ran.acc.user_id)[1] == 0


def test_output_moderation_is_a_clear_refusal_refunded(stack: Stack, up: ViduFake) -> None:
    up.lifecycle = Lifecycle.output_moderation("CreationPolicyViolation")
    ran = run(stack, lambda a: native(stack, a, T2V))
    assert ran.done["status"] == "FAILED"
    assert ran.done["error"]["code"] == "output_moderation"
    assert "moderation refused the result" in ran.done["error"]["message"]
    assert "content review" in ran.done["error"]["message"]
    assert ran.charged == 0


def test_input_moderation_at_create_fails_with_the_reason(stack: Stack, up: ViduFake) -> None:
    ran = run(stack, lambda a: native(stack, a, {**T2V, "prompt": "a forbidden-topic"}))
    assert ran.done["status"] == "FAILED"
    assert ran.done["error"]["code"] == "input_moderation"
    assert "prompt violates the content policy" in ran.done["error"]["message"]
    assert ran.charged == 0 and up.creates == 0


def metrics(stack: Stack) -> str:
    return httpx.get(stack.url + "/metrics", timeout=TIMEOUT).text


def test_upstream_out_of_credits_is_a_channel_problem_never_billed(
    stack: Stack, up: ViduFake
) -> None:
    """`CreditInsufficient` comes as HTTP 400 like a bad field, but it is OUR account's."""
    up.credit_balance = 150  # one 720p 4 s task takes 120 credits (30 a second)
    healthy = f'llmage_channel_healthy{{channel="vidu-{stack.backend}"}}'
    first = run(stack, lambda a: native(stack, a, T2V))
    assert first.done["status"] == "SUCCEEDED" and up.credit_balance == 30
    assert f"{healthy} 1.0" in metrics(stack)
    ran = run(stack, lambda a: native(stack, a, T2V))
    assert ran.done["status"] == "FAILED"
    assert ran.done["error"]["code"] == "upstream_quota"
    assert "credit insufficient" not in ran.done["error"]["message"]  # our words, not Vidu's
    assert ran.charged == 0 and up.creates == 1
    scrape = metrics(stack)
    assert f"{healthy} 0.0" in scrape
    assert f'channel="vidu-{stack.backend}",op="submit",outcome="upstream_quota"' in scrape


def test_wrong_key_marks_the_channel_unhealthy_and_charges_nothing(
    stack: Stack, up: ViduFake
) -> None:
    ran = run(stack, lambda a: openai(stack, a, {"model": "viduq3-pro", "prompt": "x",
                                                 "seconds": "4"}, prefix="/vidubad"))  # fmt: skip
    assert ran.done["status"] == "FAILED"
    assert ran.done["error"]["code"] == "auth"
    assert "vidu-wrong" not in ran.done["error"]["message"]
    assert ran.charged == 0 and up.creates == 0
    (sent,) = creates(up)
    assert sent.headers["Authorization"] == "Token vidu-wrong-key-000000000000"
    scrape = metrics(stack)
    assert f'llmage_channel_healthy{{channel="vidu-badkey-{stack.backend}"}} 0.0' in scrape


def test_concurrency_limit_at_create_is_retried(stack: Stack, up: ViduFake) -> None:
    up.fail_next("create", 429, {"code": 429, "reason": "QuotaExceeded", "message": "busy"},
                 headers={"Retry-After": "0"})  # fmt: skip
    ran = run(stack, lambda a: native(stack, a, T2V))
    assert ran.done["status"] == "SUCCEEDED", ran.done
    # The 429 created nothing; the task failed over (to the wrong-key channel, refused), then
    # came back to this one.
    good = [s for s in creates(up) if s.headers["Authorization"] == f"Token {up.api_key}"]
    assert len(good) == 2 and up.creates == 1


def test_creates_of_unknown_outcome_are_looked_up_by_payload_never_resent(
    stack: Stack, up: ViduFake
) -> None:
    """Two creates answered 500 after Vidu took the body. The first made nothing: the list
    has no task with its payload, so it fails unbilled. The second made the task before the
    500: the gateway finds it in the list by the payload (our task id) and finishes it,
    charged once. Neither create is ever sent again. (Both wait out the recovery delay
    together.)"""
    up.fail_next("create", 500, {"code": 500, "reason": "InternalServiceFailure",
                                 "message": "internal error"})  # fmt: skip
    up.fail_after_create = 1
    lost, made = account(stack), account(stack)
    before = stack.balance(made.user_id)[0]
    lost_id = native(stack, lost, {**T2V, "prompt": "never made"})
    deadline = time.monotonic() + 30
    while len(creates(up)) < 1:  # in this order: the injected 500 answers the first create
        assert time.monotonic() < deadline
        time.sleep(0.02)
    made_id = native(stack, made, {**T2V, "prompt": "made, reply lost"})
    failed, done = finish(stack, lost, lost_id), finish(stack, made, made_id)

    assert failed["status"] == "FAILED" and failed["error"]["code"] == "submit_lost"
    assert stack.wait_settled(lost.user_id)[1] == 0
    assert done["status"] == "SUCCEEDED", done
    # One create each on this channel, never resent (the lost one, proven absent by the
    # list, was offered to the wrong-key channel too, which refused it).
    good = [s for s in creates(up) if s.headers["Authorization"] == f"Token {up.api_key}"]
    assert len(good) == 2 and up.creates == 1
    listing = [s for s in up.requests if s.op == "list"]
    assert len(listing) == 2 and {s.query["pager.pagesz"] for s in listing} == {"100"}
    (task,) = up.tasks.values()
    assert task.body["payload"] == made_id
    row = stack.admin.call(stack.platform.task_repo.get(made_id))
    assert row is not None and row.upstream_id == task.id
    charged = before - stack.wait_settled(made.user_id)[0]
    assert charged == 120 * 20_000  # 720p 4 s: 30 credits/s
    assert stack.reconcile() == []


def test_a_task_gone_upstream_ends_and_refunds(stack: Stack, up: ViduFake) -> None:
    up.lifecycle = Lifecycle(("queued", "gone"))
    ran = run(stack, lambda a: native(stack, a, T2V))
    assert ran.done["status"] == "FAILED"
    assert ran.done["error"]["code"] == "task_gone"
    assert ran.charged == 0
    assert [s.op for s in up.requests].count("poll") == 2  # one 404 ends it


def test_cancel_before_scheduling_cancels_at_vidu(stack: Stack, up: ViduFake) -> None:
    up.lifecycle = Lifecycle(("queued",) * 1000 + ("succeeded",))
    acc = account(stack)
    before = stack.balance(acc.user_id)[0]
    video_id = openai(stack, acc, {"model": "viduq3-pro", "prompt": "later", "seconds": "4"})
    deadline = time.monotonic() + 30
    while not [s for s in up.requests if s.op == "poll"]:  # Vidu has the task and it is queued
        assert time.monotonic() < deadline
        time.sleep(0.02)
    r = httpx.delete(f"{stack.url}/v1/videos/{video_id}", headers=_auth(acc), timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    while not up.cancelled:
        assert time.monotonic() < deadline, "the upstream task was never cancelled"
        time.sleep(0.02)
    (task,) = up.tasks.values()
    assert up.cancelled == [task.id]
    (sent,) = [s for s in up.requests if s.op == "cancel"]
    assert sent.path == f"/ent/v2/tasks/{task.id}/cancel"
    assert stack.wait_settled(acc.user_id) == (before, 0)


def test_too_many_reference_images_are_refused_before_anything_is_sent(
    stack: Stack, up: ViduFake
) -> None:
    acc = account(stack)
    r = httpx.post(stack.url + "/v1/video/generations", headers=_auth(acc), timeout=TIMEOUT,
                   json={"model": "viduq3p-mix-720p", "prompt": "five",
                         "reference_image_urls": [DATA_URI] * 5})  # fmt: skip
    assert r.status_code == 400, r.text
    assert "image_files" in r.text or "reference_image_urls" in r.text
    assert up.requests == []


def test_channel_test_probes_with_a_one_item_list(stack: Stack, up: ViduFake) -> None:
    ops = stack.platform.channel_ops
    good = stack.admin.call(ops.test(f"vidu-{stack.backend}"))
    assert good.ok and good.call == "probe", good
    bad = stack.admin.call(ops.test(f"vidu-badkey-{stack.backend}"))
    assert (bad.ok, bad.call, bad.kind) == (False, "probe", "auth")
    assert up.creates == 0
    assert [s.query for s in up.requests if s.op == "list"] == [{"pager.pagesz": "1"}] * 2
