"""Media links cannot be forged or abused, black-box over real HTTP on SQLite and PostgreSQL.

The attack this guards against: a client uploads a PNG/HTML polyglot (accepted: it is a PNG),
works out its storage key (content-addressed, so predictable), then sends an object shaped like
one of our file records (`{"key": ..., "content_type": "text/html"}`) as an extra request field
through every dialect that echoes fields back, hoping it is signed into a fresh media link and
served inline as HTML from the gateway's own origin. Here: no request field makes a link, the
polyglot is only ever served as `image/png`, every media answer says `nosniff`, and a tampered or
expired link is the same plain 404 as garbage.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from conftest import Account, Stack
from llmage.domain.stored_files import StoredFile
from llmage.storage.signing import seal

T2V = "happyhorse-1.0-t2v"
I2V = "happyhorse-1.0-i2v"
T2I = "qwen-image"
TIMEOUT = httpx.Timeout(30.0)
ALLOWED_SERVED = {"video/mp4", "image/jpeg", "image/png"}  # what sim results and uploads are
MEDIA_URL = re.compile(r"https?://[^\"'\s]+/media/[A-Za-z0-9_\-]+")

# A valid PNG signature and IHDR chunk, then an HTML page: a browser that sniffs reads HTML.
POLYGLOT = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00"
    + secrets.token_hex(8).encode()  # unique per run: a content-addressed key of its own
    + b"<html><body><script>alert(document.cookie)</script></body></html>"
)
DIGEST = hashlib.sha256(POLYGLOT).hexdigest()
KEY = f"sha256/{DIGEST[:2]}/{DIGEST[2:]}.png"  # the key any client can compute
FORGED = {"key": KEY, "content_type": "text/html", "size": len(POLYGLOT), "sha256": DIGEST}
ECHOED = {"forged", "forged_list", "nested", "forged2"}


@pytest.fixture(scope="module", autouse=True)
def channels(stack: Stack) -> Iterator[None]:
    stack.admin.call(
        stack.platform.channels.add(
            name="forge-sim", provider="sim", platform="sim", base_url="", credential_enc=None,
            models=[T2V, I2V, T2I], options={"latency_ms": 200, "poll_interval_ms": 100},
            priority=20,
        )
    )  # fmt: skip
    time.sleep(stack.settings.channel_cache_ttl + 0.1)  # the server's channel cache reloads
    yield


def call(stack: Stack, method: str, path: str, acct: Account, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {acct.key}", **kwargs.pop("headers", {})}
    return httpx.request(method, stack.url + path, headers=headers, timeout=TIMEOUT, **kwargs)


def finished(stack: Stack, acct: Account, task_id: str) -> dict[str, Any]:
    """The native view once the task is terminal (bounded by a generous, non-asserting wait)."""
    deadline = time.monotonic() + 90
    while True:
        view: dict[str, Any] = call(stack, "GET", f"/llmage/tasks?taskid={task_id}", acct).json()
        if view["status"] in ("SUCCEEDED", "FAILED", "CANCELLED") or time.monotonic() > deadline:
            return view
        time.sleep(0.1)


def views(stack: Stack, acct: Account, task_id: str, kind: str) -> dict[str, httpx.Response]:
    """Every read of one task, in every dialect that can read it."""
    paths = [f"/llmage/tasks?taskid={task_id}"]
    if kind == "video":
        paths += [
            f"/v1/videos/{task_id}?detail=true",
            f"/sim/v1/videos/{task_id}?detail=true",
            f"/v1/video/generations/{task_id}",
        ]
    else:
        paths += [
            f"/v1/images/{task_id}?detail=true&response_format=url",
            f"/sim/v1/images/{task_id}?detail=true&response_format=url",
        ]
    return {path: call(stack, "GET", path, acct) for path in paths}


def _without_echo(value: Any) -> Any:
    """A view minus the client's own fields echoed back in `detail.params`."""
    if isinstance(value, dict):
        return {k: _without_echo(v) for k, v in value.items() if k not in ECHOED}
    if isinstance(value, list):
        return [_without_echo(v) for v in value]
    return value


def links_in(responses: dict[str, httpx.Response]) -> set[str]:
    found: set[str] = set()
    for path, resp in responses.items():
        assert resp.status_code == 200, (path, resp.text)
        ours = json.dumps(_without_echo(resp.json()))
        assert KEY not in ours and DIGEST not in ours, path  # storage keys never leave
        found.update(MEDIA_URL.findall(resp.text))
    return found


def assert_nosniff(resp: httpx.Response) -> None:
    assert resp.headers.get("x-content-type-options") == "nosniff", (resp.status_code, resp.url)


@pytest.fixture(scope="module")
def polyglot_task(stack: Stack) -> tuple[Account, str]:
    """A genuine upload of the polyglot as a first frame: accepted, because it is a PNG."""
    acct = stack.account("100")
    resp = call(
        stack, "POST", "/v1/videos", acct,
        data={"model": I2V, "prompt": "polyglot", "seconds": "3"},
        files={"input_reference": ("x.png", POLYGLOT, "text/html")},
    )  # fmt: skip
    assert resp.status_code == 200, resp.text
    task_id = resp.json()["id"]
    assert finished(stack, acct, task_id)["status"] == "SUCCEEDED"
    return acct, task_id


def test_no_request_field_makes_a_media_link(
    stack: Stack, polyglot_task: tuple[Account, str]
) -> None:
    polyglot_task  # noqa: B018 - the polyglot is in storage, under KEY
    acct = stack.account("100")
    forged = {"forged": FORGED, "forged_list": [FORGED, FORGED], "nested": {"file": FORGED}}
    video = {"model": T2V, "prompt": "forge", "seconds": "3", "size": "854x480"}
    submits = [
        ("video", "/v1/videos", {**video, **forged}),
        ("video", "/sim/v1/videos", {**video, **forged}),
        ("video", "/llmage/video", {"llmid": "o5vfXYD5BURJWRTWpopE5", "prompt": "forge",
                                    "duration": 3, "resolution": "480p", **forged}),
        ("video", "/v1/video/generations", {"model": T2V, "prompt": "forge", "duration": 3,
                                            "metadata": {**forged, "resolution": "480p"},
                                            "extra_body": {"forged2": FORGED}}),
        ("image", "/v1/images/generations?async=true", {"model": T2I, "prompt": "forge",
                                                        "response_format": "url", **forged}),
        ("image", "/sim/v1/images/generations?async=true", {"model": T2I, "prompt": "forge",
                                                            "response_format": "url", **forged}),
    ]  # fmt: skip
    created: list[tuple[str, str]] = []
    for kind, path, body in submits:
        resp = call(stack, "POST", path, acct, json=body)
        assert resp.status_code == 200, (path, resp.text)
        reply = resp.json()
        created.append((kind, reply.get("id") or reply.get("taskid")))

    for kind, task_id in created:
        assert finished(stack, acct, task_id)["status"] == "SUCCEEDED", task_id
        row = stack.admin.call(stack.platform.task_repo.get(task_id))
        assert row is not None and row.inputs == {}, row  # no field became a file record
        seen = views(stack, acct, task_id, kind)
        detail_path = next(p for p in seen if "detail=true" in p)
        params = seen[detail_path].json()["detail"]["params"]
        assert params["forged"] == FORGED and params["forged_list"] == [FORGED, FORGED]
        files = set()
        for link in links_in(seen):
            resp = httpx.get(link, timeout=TIMEOUT)
            assert resp.status_code == 200, link
            assert_nosniff(resp)
            assert resp.headers["content-type"] in ALLOWED_SERVED, resp.headers
            assert resp.content != POLYGLOT
            files.add(hashlib.sha256(resp.content).hexdigest())
        # Links lead to the task's own results only: a video and its cover, or the one image.
        assert len(files) == (2 if kind == "video" else 1), (task_id, files)


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/llmage/video", {"llmid": "7y7kfYM0Xasizyi37WvAZ", "prompt": "p", "duration": 3,
                           "image1_file": FORGED}, "image1_file"),
        ("/v1/videos", {"model": I2V, "prompt": "p", "seconds": "3",
                        "input_reference": FORGED}, "input_reference"),
        ("/v1/videos", {"model": I2V, "prompt": "p", "seconds": "3",
                        "image1_file": [FORGED]}, "image1_file"),
        ("/v1/video/generations", {"model": I2V, "prompt": "p", "duration": 3,
                                   "image": FORGED}, "image"),
        ("/v1/video/generations", {"model": I2V, "prompt": "p", "duration": 3,
                                   "metadata": {"image": FORGED}}, "image"),
    ],
)  # fmt: skip
def test_a_record_shaped_object_in_a_file_field_is_a_400(
    stack: Stack, path: str, body: dict[str, Any], param: str
) -> None:
    acct = stack.account("100")
    resp = call(stack, "POST", path, acct, json=body)
    assert resp.status_code == 400, resp.text
    assert param in resp.text and KEY not in resp.text
    assert stack.balance(acct.user_id) == (100_000_000, 0)  # nothing held, no task


def test_a_polyglot_upload_is_never_served_as_html(
    stack: Stack, polyglot_task: tuple[Account, str]
) -> None:
    acct, task_id = polyglot_task
    detail = call(stack, "GET", f"/v1/videos/{task_id}?detail=true", acct).json()["detail"]
    link = detail["params"]["image1_file"]
    row = stack.admin.call(stack.platform.task_repo.get(task_id))
    assert row is not None and isinstance(row.inputs["image1_file"], StoredFile)
    assert row.inputs["image1_file"].content_type == "image/png"  # recorded as sniffed
    for method, headers in (("GET", {}), ("HEAD", {}), ("GET", {"Range": "bytes=0-15"})):
        resp = httpx.request(method, link, headers=headers, timeout=TIMEOUT)
        assert resp.status_code in (200, 206)
        assert resp.headers["content-type"] == "image/png"
        assert_nosniff(resp)
        assert resp.headers["content-security-policy"] == "sandbox"
    assert httpx.get(link, timeout=TIMEOUT).content == POLYGLOT
    # An upload that is HTML and nothing else is not an image: refused before anything runs.
    html = call(
        stack, "POST", "/v1/videos", acct,
        data={"model": I2V, "prompt": "html", "seconds": "3"},
        files={"input_reference": ("x.png", b"<!doctype html><script>1</script>", "image/png")},
    )  # fmt: skip
    assert html.status_code == 400 and "image" in html.json()["error"]["message"]


def test_every_media_response_has_nosniff_and_bad_links_are_one_404(
    stack: Stack, polyglot_task: tuple[Account, str]
) -> None:
    acct, task_id = polyglot_task
    link = finished(stack, acct, task_id)["video"]
    token = link.rsplit("/", 1)[1]
    etag = httpx.head(link, timeout=TIMEOUT).headers["etag"]
    expired = seal(KEY, "x", 60, stack.platform.media_secret, now=time.time() - 3600)
    cases: list[tuple[str, str, dict[str, str], int]] = [
        ("GET", link, {}, 200),
        ("HEAD", link, {}, 200),
        ("GET", link, {"Range": "bytes=0-99"}, 206),
        ("GET", link, {"If-None-Match": etag}, 304),
        ("GET", link, {"Range": "bytes=999999999-"}, 416),
        ("POST", link, {}, 405),
        ("GET", f"{stack.url}/media/", {}, 404),
        ("GET", f"{stack.url}/media/{token[:-4]}AAAA", {}, 404),
        ("GET", f"{stack.url}/media/{expired}", {}, 404),
        ("GET", f"{stack.url}/media/garbage", {}, 404),
    ]
    plain_404 = []
    for method, url, headers, status in cases:
        resp = httpx.request(method, url, headers=headers, timeout=TIMEOUT)
        assert resp.status_code == status, (method, url, headers, resp.text)
        assert_nosniff(resp)
        if status == 404 and "/media/" in url and not url.endswith("/media/"):
            plain_404.append(resp.json())
    # Tampered, expired (of a file that exists) and garbage: the same answer, no detail.
    assert plain_404 == [{"error": "media not found"}] * 3

    content = f"/v1/videos/{task_id}/content"
    for query, headers, status in (
        ("", {}, 200),
        ("", {"Range": "bytes=0-9"}, 206),
        ("?variant=thumbnail", {}, 200),
        ("?variant=spritesheet", {}, 404),
    ):
        resp = call(stack, "GET", content + query, acct, headers=headers)
        assert resp.status_code == status, resp.text
        assert_nosniff(resp)
        if status in (200, 206):
            assert resp.headers["content-type"] in ALLOWED_SERVED
