"""The fake Kling checks what Kling checks, over real HTTP: the JWT's signature, `exp` and `nbf`
against its own clock (codes 1001-1004), and the body rules the adapter must respect."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from kling_fake import KlingFake

from llmage.providers.kling.signing import make_token

NOW = 1_800_000_000


@pytest.fixture
async def fake() -> AsyncIterator[KlingFake]:
    up = KlingFake(clock=lambda: float(NOW))
    await up.start()
    yield up
    await up.stop()


async def get(fake: KlingFake, auth: str | None) -> tuple[int, Any]:
    headers = {"Authorization": auth} if auth is not None else {}
    async with httpx.AsyncClient() as client:
        r = await client.get(fake.url + "/v1/videos/text2video?pageNum=1&pageSize=1",
                             headers=headers)  # fmt: skip
    return r.status_code, r.json()["code"]


async def test_jwt_checked_exactly(fake: KlingFake) -> None:
    ak, sk = fake.access_key, fake.secret_key
    assert await get(fake, f"Bearer {make_token(ak, sk, NOW)}") == (200, 0)
    # still valid one second before exp; expired at exp
    assert await get(fake, f"Bearer {make_token(ak, sk, NOW - 1799)}") == (200, 0)
    assert await get(fake, f"Bearer {make_token(ak, sk, NOW - 1800)}") == (401, 1004)
    # nbf = issued - 5: a token issued 5 s ahead is already valid, 6 s ahead is not
    assert await get(fake, f"Bearer {make_token(ak, sk, NOW + 5)}") == (200, 0)
    assert await get(fake, f"Bearer {make_token(ak, sk, NOW + 6)}") == (401, 1003)
    assert await get(fake, f"Bearer {make_token(ak, 'wrong', NOW)}") == (401, 1002)
    assert await get(fake, f"Bearer {make_token('other-ak', sk, NOW)}") == (401, 1002)
    assert await get(fake, f"Bearer{make_token(ak, sk, NOW)}") == (401, 1002)  # space required
    assert await get(fake, "Bearer not.a.jwt") == (401, 1002)
    assert await get(fake, None) == (401, 1001)


@pytest.mark.parametrize(
    ("family", "body", "problem"),
    [
        ("text2video", {"prompt": "x", "duration": 5}, "duration"),
        ("text2video", {"prompt": "x", "aspect_ratio": "4:3"}, "aspect_ratio"),
        ("text2video", {"prompt": "x", "image": "https://a/b.png"}, "image"),
        ("text2video", {"prompt": "x", "model_name": "kling-v9"}, "model_name"),
        ("text2video", {"prompt": "x", "model_name": "kling-v2-master", "cfg_scale": 0.5},
         "cfg_scale"),
        ("image2video", {"prompt": "x"}, "image"),
        ("image2video", {"image": "data:image/png;base64,iVBORw0KGgo="}, "image"),
        ("image2video", {"image": "https://a/b.png", "image_tail": "%%%"}, "image_tail"),
        ("image2video", {"image": "https://a/b.png", "aspect_ratio": "16:9"}, "aspect_ratio"),
    ],
)  # fmt: skip
async def test_refuses_what_kling_refuses(
    fake: KlingFake, family: str, body: dict[str, Any], problem: str
) -> None:
    auth = {"Authorization": f"Bearer {make_token(fake.access_key, fake.secret_key, NOW)}"}
    async with httpx.AsyncClient() as client:
        r = await client.post(f"{fake.url}/v1/videos/{family}", json=body, headers=auth)
    assert (r.status_code, r.json()["code"]) == (400, 1201)
    assert problem in r.json()["message"]
    assert fake.creates == 0


async def test_external_task_id_is_unique_and_queryable(fake: KlingFake) -> None:
    auth = {"Authorization": f"Bearer {make_token(fake.access_key, fake.secret_key, NOW)}"}
    body = {"prompt": "x", "duration": "5", "external_task_id": "ours-1"}
    async with httpx.AsyncClient() as client:
        first = await client.post(f"{fake.url}/v1/videos/text2video", json=body, headers=auth)
        again = await client.post(f"{fake.url}/v1/videos/text2video", json=body, headers=auth)
        by_ext = await client.get(f"{fake.url}/v1/videos/text2video/ours-1", headers=auth)
        other = await client.get(f"{fake.url}/v1/videos/image2video/ours-1", headers=auth)
    assert first.json()["code"] == 0 and again.json()["code"] == 1201
    assert by_ext.json()["data"]["task_id"] == first.json()["data"]["task_id"]
    assert (other.status_code, other.json()["code"]) == (404, 1203)
    assert fake.creates == 1
