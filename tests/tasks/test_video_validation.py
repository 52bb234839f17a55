"""/llmage/video validates against the catalog schema: a clear 400 in the seed's shape
(`{"error": "..."}`) naming the parameter and the allowed values, nothing held, no task. Image
URLs go through the guarded fetcher: loopback is refused unless the operator allow-listed it."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from taskhelp import (
    HH_I2V,
    SD2_R2V,
    SD15_T2V,
    WAN_T2V,
    ChannelSpec,
    LocalHTTP,
    TaskEnv,
    envs_for_backends,
    jpeg_bytes,
    pick,
    png_bytes,
    video_llmids,
)

from conftest import Account
from llmage.domain.stored_files import StoredFile
from support.backends import BACKENDS

# Demo-like: every video model is served, so a 400 is the schema's doing, never a missing channel.
CHANNELS = [ChannelSpec("sim-video", video_llmids(), {"latency_ms": 300})]
IMAGE = jpeg_bytes(80, 60, (1, 2, 3))


@dataclass
class Hosts:
    allowed: LocalHTTP
    blocked: LocalHTTP


@pytest.fixture(scope="module")
def hosts() -> Iterator[Hosts]:
    files = {"/frame.jpg": (IMAGE, "image/jpeg"), "/frame.png": (png_bytes(), "image/png")}
    h = Hosts(LocalHTTP(files), LocalHTTP(files))
    try:
        yield h
    finally:
        h.allowed.close()
        h.blocked.close()


@pytest.fixture(scope="module")
def envs(
    tmp_path_factory: pytest.TempPathFactory, hosts: Hosts
) -> Iterator[dict[str, TaskEnv | str]]:
    with envs_for_backends(
        tmp_path_factory, "validate", CHANNELS, fetch_allow_hosts=[hosts.allowed.host]
    ) as out:
        yield out


@dataclass
class Ctx:
    env: TaskEnv
    acc: Account
    hosts: Hosts


@pytest.fixture(params=BACKENDS)
def ctx(request: pytest.FixtureRequest, envs: dict[str, TaskEnv | str], hosts: Hosts) -> Ctx:
    env = pick(envs, request.param)
    return Ctx(env, env.account("100"), hosts)


def refused(ctx: Ctx, status: int = 400, **request: Any) -> str:
    """Submit; expect `status` in the native shape and no trace in money or tasks."""
    before = ctx.env.balance(ctx.acc.user_id)
    r = ctx.env.post("/llmage/video", ctx.acc, **request)
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error"} and isinstance(body["error"], str), body
    assert ctx.env.balance(ctx.acc.user_id) == before
    assert ctx.env.tasks_of(ctx.acc.user_id) == []
    assert ctx.env.holds_of(ctx.acc.user_id) == []
    return str(body["error"])


def test_missing_prompt(ctx: Ctx) -> None:
    r = ctx.env.post("/llmage/video", ctx.acc, json={"llmid": SD15_T2V, "duration": 5})
    assert r.status_code == 400
    assert r.json() == {"error": "Missing required parameter: prompt"}  # seed 000, verbatim
    refused(ctx, json={"llmid": SD15_T2V, "prompt": "", "duration": 5})
    refused(ctx, data={"llmid": SD15_T2V, "duration": "5"})  # multipart too


def test_invalid_api_key(ctx: Ctx) -> None:
    r = ctx.env.post(
        "/llmage/video",
        None,
        json={"llmid": SD15_T2V, "prompt": "x"},
        headers={"Authorization": "Bearer sk-not-a-key"},
    )
    assert r.status_code == 401
    assert r.json() == {"error": "Invalid API Key"}


def test_bad_duration_names_allowed_values(ctx: Ctx) -> None:
    error = refused(ctx, json={"llmid": WAN_T2V, "prompt": "x", "duration": 7})
    assert "duration" in error
    assert "5, 10, 15" in error, error
    # The allowed ones pass (a quote, not a run).
    ok = ctx.env.post(
        "/llmage/estimate", ctx.acc, json={"llmid": WAN_T2V, "prompt": "x", "duration": 10}
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["params"]["duration"] == 10


def test_allowed_values_are_listed_once(ctx: Ctx) -> None:
    """The 400 names the allowed values once, not twice ("Allowed values: 5, 10, 15 (allowed:
    5, 10, 15)")."""
    error = refused(ctx, json={"llmid": WAN_T2V, "prompt": "x", "duration": 7})
    assert error.count("5, 10, 15") == 1, error


def test_bad_ratio(ctx: Ctx) -> None:
    error = refused(ctx, json={"llmid": SD15_T2V, "prompt": "x", "ratio": "2:1"})
    assert "ratio" in error and "2:1" in error
    assert "16:9" in error and "9:16" in error, error
    error = refused(ctx, json={"llmid": SD15_T2V, "prompt": "x", "radio": "2:1"})  # via the alias
    assert "ratio" in error


def test_radio_alias_accepted(ctx: Ctx) -> None:
    body = {
        "llmid": SD15_T2V,
        "prompt": "tall",
        "radio": "9:16",
        "duration": 4,
        "resolution": "480p",
    }
    est = ctx.env.post("/llmage/estimate", ctx.acc, json=body)
    assert est.status_code == 200, est.text
    assert est.json()["params"]["ratio"] == "9:16"
    taskid = ctx.env.submit(ctx.acc, body)
    row = ctx.env.task(taskid)
    assert row.params["ratio"] == "9:16" and "radio" not in row.params, row.params
    view = ctx.env.wait(ctx.acc, taskid)
    assert view["status"] == "SUCCEEDED", view
    assert view["usage"]["ratio"] == "9:16"
    assert (view["usage"]["width"], view["usage"]["height"]) == (480, 854)  # really portrait


def test_too_many_reference_images(ctx: Ctx) -> None:
    files = [("image_files", (f"{i}.jpg", IMAGE, "image/jpeg")) for i in range(10)]
    data = {"llmid": SD2_R2V, "prompt": "refs", "duration": "4"}
    error = refused(ctx, data=data, files=files)
    assert "image_files" in error and "9" in error, error
    # Nine is the limit, and is accepted.
    r = ctx.env.post("/llmage/estimate", ctx.acc, data=data, files=files[:9])
    assert r.status_code == 200, r.text
    assert r.json()["params"]["image_files"] == ["<file>"] * 9


def test_image_to_video_needs_its_frame(ctx: Ctx) -> None:
    """happyhorse-1.0-i2v requires image1_file: without it, a 400 — not a silent switch to the
    text-to-video sibling (which would run, and bill, a different model than asked for)."""
    error = refused(ctx, data={"llmid": HH_I2V, "prompt": "no frame", "duration": "5"})
    assert error == "Missing required parameter: image1_file"
    error = refused(ctx, json={"llmid": HH_I2V, "prompt": "no frame", "duration": 5})
    assert error == "Missing required parameter: image1_file"


def test_wrong_file_type_in_image_slot(ctx: Ctx) -> None:
    error = refused(
        ctx,
        data={"llmid": HH_I2V, "prompt": "x"},
        files={"image1_file": ("a.jpg", b"this is not an image at all", "image/jpeg")},
    )
    assert "image1_file" in error


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{blocked}/frame.jpg",
        "http://localhost:{blocked}/frame.jpg",
        "http://[::1]:{blocked}/frame.jpg",
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:{allowed_port_other_path}/frame.jpg",
        "file:///etc/passwd",
    ],
)
def test_private_image_urls_are_refused(ctx: Ctx, url: str) -> None:
    url = url.format(
        blocked=ctx.hosts.blocked.port,
        # Same host, other port: the allow-list is host:port, not host.
        allowed_port_other_path=ctx.hosts.blocked.port,
    )
    seen = len(ctx.hosts.blocked.requests)
    error = refused(ctx, json={"llmid": HH_I2V, "prompt": "ssrf", "image1_file": url})
    assert "image1_file" in error, error
    assert len(ctx.hosts.blocked.requests) == seen  # never contacted


def test_allow_listed_image_url_works(ctx: Ctx) -> None:
    seen = len(ctx.hosts.allowed.requests)
    url = f"{ctx.hosts.allowed.url}/frame.jpg"
    taskid = ctx.env.submit(
        ctx.acc, {"llmid": HH_I2V, "prompt": "fetched", "image1_file": url, "duration": 3}
    )
    assert len(ctx.hosts.allowed.requests) == seen + 1
    ref = ctx.env.task(taskid).inputs["image1_file"]
    assert isinstance(ref, StoredFile), ref
    assert ref.sha256 == hashlib.sha256(IMAGE).hexdigest(), ref
    assert ref.content_type == "image/jpeg"
    assert ctx.env.wait(ctx.acc, taskid)["status"] == "SUCCEEDED"
    # A 404 on the allowed host is a clear 400 too, not a task.
    error = refused_after(
        ctx,
        json={
            "llmid": HH_I2V,
            "prompt": "x",
            "image1_file": f"{ctx.hosts.allowed.url}/missing.jpg",
        },
    )
    assert "image1_file" in error


def refused_after(ctx: Ctx, **request: Any) -> str:
    """Like `refused`, for a user that already has tasks."""
    tasks = ctx.env.tasks_of(ctx.acc.user_id)
    holds = ctx.env.holds_of(ctx.acc.user_id)
    r = ctx.env.post("/llmage/video", ctx.acc, **request)
    assert r.status_code == 400, (r.status_code, r.text)
    assert ctx.env.tasks_of(ctx.acc.user_id) == tasks
    assert len(ctx.env.holds_of(ctx.acc.user_id)) == len(holds)
    return str(r.json()["error"])
