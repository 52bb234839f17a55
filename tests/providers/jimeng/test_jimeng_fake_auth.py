"""The fake Jimeng checks what the Volcengine gateway checks, over real HTTP: the V4 signature
recomputed over whatever SignedHeaders lists, the body hash, X-Date within 15 minutes of its own
clock; and the body rules the adapter must respect (known req_key, a non-empty aspect_ratio,
3.0 frames, the query's req_key)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from jimeng_fake import JimengFake

from llmage.providers.jimeng.signing import sign_headers

NOW = 1_800_000_000.0
SUBMIT = "/?Action=CVSync2AsyncSubmitTask&Version=2022-08-31"
QUERY = "/?Action=CVSync2AsyncGetResult&Version=2022-08-31"


@pytest.fixture
async def fake() -> AsyncIterator[JimengFake]:
    up = JimengFake(clock=lambda: NOW)
    await up.start()
    yield up
    await up.stop()


async def post(
    fake: JimengFake,
    path: str,
    payload: Any,
    *,
    now: float = NOW,
    secret: str | None = None,
    access: str | None = None,
    tamper: dict[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[int, Any]:
    raw = json.dumps(payload).encode()
    url = fake.url + path
    headers = sign_headers(
        "POST", url, raw, access or fake.access_key, secret or fake.secret_key, now
    )
    headers.update(tamper or {})
    async with httpx.AsyncClient() as client:
        r = await client.post(url, content=body if body is not None else raw, headers=headers)
    data = r.json()
    code = data.get("code") if "code" in data else data["ResponseMetadata"]["Error"]["Code"]
    return r.status_code, code


T2V = {"req_key": "jimeng_t2v_v30", "prompt": "p", "frames": 121, "aspect_ratio": "16:9"}


async def test_signature_checked_exactly(fake: JimengFake) -> None:
    assert await post(fake, SUBMIT, T2V) == (200, 10000)
    assert await post(fake, SUBMIT, T2V, secret="wrong") == (401, "SignatureDoesNotMatch")
    assert await post(fake, SUBMIT, T2V, access="AKother") == (401, "InvalidAccessKey")
    # a body other than the one signed: its hash no longer matches
    assert await post(fake, SUBMIT, T2V, body=b'{"req_key":"x"}') == (401, "SignatureDoesNotMatch")
    # a signed header changed after signing
    tampered = {"Content-Type": "application/json; charset=utf-8"}
    assert await post(fake, SUBMIT, T2V, tamper=tampered) == (401, "SignatureDoesNotMatch")
    assert await post(fake, SUBMIT, T2V, tamper={"Authorization": "Bearer x"}) == (
        401,
        "MissingAuthenticationToken",
    )


async def test_x_date_window_is_fifteen_minutes(fake: JimengFake) -> None:
    assert await post(fake, SUBMIT, T2V, now=NOW - 900) == (200, 10000)
    assert await post(fake, SUBMIT, T2V, now=NOW + 900) == (200, 10000)
    assert await post(fake, SUBMIT, T2V, now=NOW - 901) == (401, "InvalidTimestamp")
    assert await post(fake, SUBMIT, T2V, now=NOW + 901) == (401, "InvalidTimestamp")
    bad = {"X-Date": "yesterday"}
    assert await post(fake, SUBMIT, T2V, tamper=bad) == (401, "InvalidTimestamp")


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"req_key": "jimeng_unknown"}, "FeatNotFound"),
        ({"aspect_ratio": ""}, 50215),
        ({"aspect_ratio": None}, 50215),
        ({"frames": 120}, 50215),
        ({"prompt": 3}, 50215),
        ({"image_urls": ["https://x/a.png"]}, 50215),
        ({"req_key": "jimeng_i2v_first_v30", "image_urls": ["ftp://x"]}, 50215),
        ({"req_key": "jimeng_i2v_first_tail_v30", "image_urls": ["https://x/a"]}, 50215),
    ],
)
async def test_bodies_refused_like_the_provider(
    fake: JimengFake, change: dict[str, Any], code: Any
) -> None:
    body = {k: v for k, v in {**T2V, **change}.items() if v is not None}
    status, got = await post(fake, SUBMIT, body)
    assert got == code and status == 400
    assert fake.creates == 0


async def test_query_must_reuse_the_submit_req_key(fake: JimengFake) -> None:
    await post(fake, SUBMIT, T2V)
    (task_id,) = fake.tasks
    mine = {"req_key": "jimeng_t2v_v30", "task_id": task_id}
    assert await post(fake, QUERY, mine) == (200, 10000)
    other = {"req_key": "jimeng_vgfm_t2v_l20", "task_id": task_id}
    assert await post(fake, QUERY, other) == (400, 50215)
    assert await post(fake, QUERY, {**mine, "task_id": "nope"}) == (200, 10000)  # not_found


async def test_unknown_action_or_version(fake: JimengFake) -> None:
    bad = "/?Action=Nope&Version=2022-08-31"
    assert await post(fake, bad, T2V) == (404, "InvalidActionOrVersion")
    assert await post(fake, "/?Action=CVSync2AsyncSubmitTask&Version=1", T2V) == (
        404,
        "InvalidActionOrVersion",
    )
