"""Seed 000, video part: every curl example, run verbatim by bash + the real curl binary against
a live server (only the host and the API key substituted), then the seed's task query until
SUCCEEDED, then the `video` URL (an MP4 of the requested duration) and the `image` URL (a JPEG).

curl's own options (silent, no proxy, a status line after the body) come from a .curlrc in
CURL_HOME, so the command lines stay exactly the seed's.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from taskhelp import (
    DREAMINA_I2V,
    HH_I2V,
    HH_T2V,
    OPEN_LOWER,
    SD15_I2V,
    SD15_T2V,
    ChannelSpec,
    TaskEnv,
    ffprobe_codec,
    ffprobe_duration,
    task_env,
    video_llmids,
)

from conftest import Account
from llmage.domain.stored_files import StoredFile
from support.backends import BACKENDS

SEED_HOST = "https://opencomputing.ai"
_STATUS = "\n__HTTP_STATUS__"
_KEY_RE = re.compile(r"Bearer <[^\"]*")

# ---- the seed's examples, copied verbatim ------------------------------------------------------

T2V_SEEDANCE = """#!/usr/bin/env bash
curl -X POST https://opencomputing.ai/llmage/video \\
-H "Content-Type: application/json" \\
-H "Authorization: Bearer <your-apikey-from-opencomputing.ai" \\
-d '{
"llmid": "CrEMkFQfRCmbmopZsCqLj",
"prompt": "小猫在抓老鼠",
"duration": 5,
"ratio": "16:9",
"resolution": "480p"
}'
"""

I2V_HAPPYHORSE = """#!/usr/bin/env bash
curl -X POST https://opencomputing.ai/llmage/video \\
-H "Authorization: Bearer <your-apikey>" \\
-F "llmid=o5vfXYD5BURJWRTWpopE5" \\
-F "prompt=一起来调科目三" \\
-F "duration=15" \\
-F "resolution=720P" \\
-F "image1_file=@./02.jpg"
"""

FIRST_LAST_SEEDANCE15 = """#!/usr/bin/env bash
curl -X POST https://opencomputing.ai/llmage/video \\
-H "Authorization: Bearer <your-apikey-from-opencomputing.ai" \\
-F "model=dreamina-seedance-2-0-260128" \\
-F "llmid=CrEMkFQfRCmbmopZsCqLj" \\
-F "prompt=从图片1到图片2丝滑转换" \\
-F "duration=5" \\
-F "ratio=16:9" \\
-F "resolution=480p" \\
-F "image1_file=@./myimg1.jpg" \\
-F "image1_file=@./myimg2.jpg"
"""

R2V_SEEDANCE2 = """curl -X POST https://opencomputing.ai/llmage/video \\
-H "Authorization: Bearer <APIKEY>" \\
-F "llmid=dmPXF65TD1riKj9KaxLmg" \\
-F "model": "doubao-seedance-2-0-260128" \\
-F "image_files=@./1.jpg" \\
-F "image_files=@./2.jpg" \\
-F "prompt=平滑过度从第一张图片到第二张图片" \\
-F "ratio=4:3" \\
-F "resolution=720p" \\
-F "duration=4"
"""

TASK_QUERY = """#!/usr/bin/env bash
curl -X POST https://opencomputing.ai/llmage/tasks?taskid=<taskid> \\
-H "Authorization: Bearer <your-apikey-from-opencomputing.ai>"
"""


@dataclass
class CurlResult:
    exit_code: int
    status: int | None
    body: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Ctx:
    env: TaskEnv
    acc: Account
    cwd: Path


@pytest.fixture(scope="module", params=BACKENDS)
def ctx(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ctx]:
    tmp = tmp_path_factory.mktemp(f"seedcurl-{request.param}")
    channels = [
        # Demo-like: one sim channel serving every video model of the catalog.
        ChannelSpec("sim-video", video_llmids(), {"latency_ms": 300}),
    ]
    with task_env(request.param, tmp, channels) as env:
        cwd = tmp / "client"
        cwd.mkdir()
        colors = {
            "02.jpg": (220, 30, 30),
            "myimg1.jpg": (30, 220, 30),
            "myimg2.jpg": (30, 30, 220),
            "1.jpg": (200, 200, 30),
            "2.jpg": (30, 200, 200),
        }
        for name, color in colors.items():
            Image.new("RGB", (96, 64), color).save(cwd / name, "JPEG")
        (cwd / ".curlrc").write_text(
            'silent\nshow-error\nnoproxy = "*"\nmax-time = 60\n'
            'write-out = "\\n__HTTP_STATUS__%{http_code}"\n'
        )
        yield Ctx(env, env.account("1000"), cwd)


def run_seed(ctx: Ctx, script: str, **subst: str) -> CurlResult:
    """Run a seed example with bash in the client dir; only host, key (and <taskid>) change."""
    text = script.replace(SEED_HOST, ctx.env.url)
    text = _KEY_RE.sub(f"Bearer {ctx.acc.key}", text)
    for name, value in subst.items():
        text = text.replace(f"<{name}>", value)
    path = ctx.cwd / "example.sh"
    path.write_text(text)
    env = {"PATH": os.environ["PATH"], "HOME": str(ctx.cwd), "CURL_HOME": str(ctx.cwd)}
    proc = subprocess.run(
        ["bash", str(path)], cwd=ctx.cwd, env=env, capture_output=True, timeout=90, check=False
    )
    out = proc.stdout.decode()
    body, sep, status = out.rpartition(_STATUS)
    return CurlResult(
        proc.returncode,
        int(status) if sep and status.isdigit() else None,
        body,
        proc.stderr.decode(),
    )


def query_until_done(ctx: Ctx, taskid: str, timeout: float = 60) -> dict[str, Any]:
    """The seed's task query (curl -X POST /llmage/tasks?taskid=...) until a final status."""
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        res = run_seed(ctx, TASK_QUERY, taskid=taskid)
        assert res.exit_code == 0 and res.status == 200, res
        view = res.json()
        assert set(view) >= {"taskid", "status", "usage", "image", "video"}, view
        assert view["taskid"] == taskid
        seen.append(view["status"])
        assert view["status"] in ("CREATED", "PENDING", "RUNNING", "SUCCEEDED"), view
        if view["status"] == "SUCCEEDED":
            return view
        assert time.monotonic() < deadline, f"task {taskid} not done: {seen}"
        time.sleep(0.2)


def check_outputs(ctx: Ctx, view: dict[str, Any], seconds: int) -> None:
    video = httpx.get(view["video"], timeout=30)
    assert video.status_code == 200, video.text
    assert video.headers["content-type"] == "video/mp4"
    path = ctx.cwd / "out.mp4"
    path.write_bytes(video.content)
    assert abs(ffprobe_duration(path) - seconds) < 0.1, ffprobe_duration(path)
    assert ffprobe_codec(path) == "h264"
    cover = httpx.get(view["image"], timeout=30)
    assert cover.status_code == 200
    assert cover.headers["content-type"] == "image/jpeg"
    img = Image.open(io.BytesIO(cover.content))
    img.verify()
    assert img.format == "JPEG"


def submit_ok(ctx: Ctx, script: str) -> str:
    res = run_seed(ctx, script)
    assert res.exit_code == 0, res
    assert res.status == 200, res
    data = res.json()
    # The seed's submit answer: {"taskid": ..., "status": "created"} (a fast poller may have
    # moved the task on already; the spelling stays the seed's lower case).
    assert set(data) == {"taskid", "status"}, data
    assert data["status"] in OPEN_LOWER, data
    return str(data["taskid"])


def charged_once(ctx: Ctx, taskid: str, view: dict[str, Any]) -> None:
    row = ctx.env.task(taskid)
    assert row.charged is not None and 0 < row.charged <= row.quoted
    kinds = [k for k, _, _ in ctx.env.terminal_entries(row.hold_id)]
    assert kinds == ["capture"], kinds
    assert view["usage"]["amount"] is not None
    assert ctx.env.reconcile() == []


def test_text_to_video_seedance_json(ctx: Ctx) -> None:
    taskid = submit_ok(ctx, T2V_SEEDANCE)
    view = query_until_done(ctx, taskid)
    usage = view["usage"]
    assert usage["type"] == "text2video"
    assert usage["model"] == "doubao-seedance-1-5-pro-251215"
    assert usage["duration"] == 5
    assert usage["resolution"] == "480p"
    assert usage["ratio"] == "16:9"
    check_outputs(ctx, view, 5)
    charged_once(ctx, taskid, view)


def test_image_to_video_happyhorse_verbatim(ctx: Ctx) -> None:
    """The seed's image-to-video example sends the *text*-to-video llmid o5vfXYD5BURJWRTWpopE5
    (happyhorse-1.0-t2v) with image1_file; the acceptance says it works verbatim. It runs as the
    family's image-to-video entry, happyhorse-1.0-i2v (7y7kfYM0Xasizyi37WvAZ)."""
    before = ctx.env.tasks_of(ctx.acc.user_id)
    taskid = submit_ok(ctx, I2V_HAPPYHORSE)
    assert len(ctx.env.tasks_of(ctx.acc.user_id)) == len(before) + 1
    row = ctx.env.task(taskid)
    assert (row.llmid, row.model) == (HH_I2V, "happyhorse-1.0-i2v"), row
    assert isinstance(row.inputs.get("image1_file"), StoredFile), row.inputs  # the frame was stored
    view = query_until_done(ctx, taskid)
    assert view["usage"]["type"] == "image2video"
    assert view["usage"]["duration"] == 15
    assert view["usage"]["resolution"] == "720p"  # "720P" accepted, canonical spelling kept
    check_outputs(ctx, view, 15)
    charged_once(ctx, taskid, view)


def test_image_to_video_happyhorse_with_its_image_llmid(ctx: Ctx) -> None:
    """The same example with happyhorse-1.0-i2v's own llmid (7y7kfYM0Xasizyi37WvAZ) runs."""
    script = I2V_HAPPYHORSE.replace(HH_T2V, HH_I2V)
    assert script != I2V_HAPPYHORSE
    taskid = submit_ok(ctx, script)
    row = ctx.env.task(taskid)
    assert isinstance(row.inputs.get("image1_file"), StoredFile), row.inputs
    view = query_until_done(ctx, taskid)
    assert view["usage"]["type"] == "image2video"
    assert view["usage"]["model"] == "happyhorse-1.0-i2v"
    assert view["usage"]["duration"] == 15
    assert view["usage"]["resolution"] == "720p"
    check_outputs(ctx, view, 15)
    charged_once(ctx, taskid, view)


def test_first_last_frame_seedance15_verbatim(ctx: Ctx) -> None:
    """The seed's seedance 1.5 example sends llmid CrEMkFQfRCmbmopZsCqLj (seedance 1.5, the
    text-to-video entry) with model=dreamina-seedance-2-0-260128, a name of *another* entry,
    and two first/last frames. The server's rule (services/tasks.py, `_entry`): frames on a
    text-to-video llmid use the family's image-to-video entry, and an explicit `model` of the
    needed kind wins at its own price. So the example runs as dreamina-seedance-2-0-260128
    image-to-video (tb0VSY6WeyGbzaolU1_qE), first + last frame, priced as that model."""
    taskid = submit_ok(ctx, FIRST_LAST_SEEDANCE15)
    row = ctx.env.task(taskid)
    assert (row.llmid, row.model) == (DREAMINA_I2V, "dreamina-seedance-2-0-260128"), row
    first, last = row.inputs.get("image1_file"), row.inputs.get("image2_file")
    assert isinstance(first, StoredFile) and isinstance(last, StoredFile), row.inputs
    assert first.sha256 != last.sha256  # myimg1.jpg, then myimg2.jpg
    # Priced as the model that runs (480p, 5 s), and the quote says so before it runs.
    est = ctx.env.post(
        "/llmage/estimate",
        ctx.acc,
        data={
            "model": "dreamina-seedance-2-0-260128",
            "llmid": SD15_T2V,
            "prompt": "x",
            "duration": "5",
            "ratio": "16:9",
            "resolution": "480p",
        },
        files=[
            ("image1_file", ("a.jpg", (ctx.cwd / "myimg1.jpg").read_bytes(), "image/jpeg")),
            ("image1_file", ("b.jpg", (ctx.cwd / "myimg2.jpg").read_bytes(), "image/jpeg")),
        ],
    )
    assert est.status_code == 200, est.text
    assert est.json()["llmid"] == DREAMINA_I2V
    assert est.json()["amount_micros"] == row.quoted
    view = query_until_done(ctx, taskid)
    assert view["usage"]["type"] == "image2video"
    assert view["usage"]["model"] == "dreamina-seedance-2-0-260128"
    assert view["usage"]["duration"] == 5
    check_outputs(ctx, view, 5)
    charged_once(ctx, taskid, view)


def test_model_outside_the_family_is_refused(ctx: Ctx) -> None:
    """A `model` that is neither a name of the llmid nor of an entry of the needed kind is a
    400 naming `model` and the llmid's names; nothing is created or held."""
    before_tasks = ctx.env.tasks_of(ctx.acc.user_id)
    before_money = ctx.env.balance(ctx.acc.user_id)
    script = FIRST_LAST_SEEDANCE15.replace("dreamina-seedance-2-0-260128", "qwen3-max")
    res = run_seed(ctx, script)
    assert res.exit_code == 0, res
    assert res.status == 400, res
    err = res.json()
    assert set(err) == {"error"}
    assert "model" in err["error"] and "qwen3-max" in err["error"], err
    assert ctx.env.tasks_of(ctx.acc.user_id) == before_tasks
    assert ctx.env.balance(ctx.acc.user_id) == before_money


def test_first_last_frame_seedance15_without_foreign_model(ctx: Ctx) -> None:
    """The same example minus the foreign `model` line: seedance 1.5's text-to-video llmid with
    two frames runs as seedance 1.5 image-to-video (7RTOJD6K8A7RXCMG4GnQ9), first + last."""
    script = FIRST_LAST_SEEDANCE15.replace('-F "model=dreamina-seedance-2-0-260128" \\\n', "")
    assert script != FIRST_LAST_SEEDANCE15
    taskid = submit_ok(ctx, script)
    row = ctx.env.task(taskid)
    assert (row.llmid, row.model) == (SD15_I2V, "doubao-seedance-1-5-pro-251215"), row
    assert isinstance(row.inputs.get("image1_file"), StoredFile), row.inputs
    assert isinstance(row.inputs.get("image2_file"), StoredFile), row.inputs
    view = query_until_done(ctx, taskid)
    assert view["usage"]["type"] == "image2video"
    check_outputs(ctx, view, 5)
    charged_once(ctx, taskid, view)


def test_first_last_frame_seedance15_image_llmid(ctx: Ctx) -> None:
    """With the image-to-video llmid of seedance 1.5 (7RTOJD6K8A7RXCMG4GnQ9) and no foreign
    model, the example runs: `image1_file` sent twice is read as first + last frame."""
    script = FIRST_LAST_SEEDANCE15.replace(
        '-F "model=dreamina-seedance-2-0-260128" \\\n', ""
    ).replace(SD15_T2V, SD15_I2V)
    taskid = submit_ok(ctx, script)
    row = ctx.env.task(taskid)
    first, last = row.inputs.get("image1_file"), row.inputs.get("image2_file")
    assert isinstance(first, StoredFile) and isinstance(last, StoredFile), row.inputs
    assert first.sha256 != last.sha256  # myimg1.jpg then myimg2.jpg, in order
    assert first.content_type == last.content_type == "image/jpeg"
    view = query_until_done(ctx, taskid)
    assert view["usage"]["type"] == "image2video"
    check_outputs(ctx, view, 5)
    charged_once(ctx, taskid, view)


def test_reference_to_video_verbatim_is_rejected_by_curl(ctx: Ctx) -> None:
    """`-F "model": "doubao-seedance-2-0-260128"` reaches curl as `-F model:` plus a stray
    argument; curl refuses `model:` (no `=`) before sending anything (exit 2)."""
    before = ctx.env.tasks_of(ctx.acc.user_id)
    res = run_seed(ctx, R2V_SEEDANCE2)
    assert res.exit_code == 2, res
    assert "option -F: is badly used here" in res.stderr, res.stderr
    assert res.status is None  # no request was made
    assert ctx.env.tasks_of(ctx.acc.user_id) == before


def test_reference_to_video_with_model_field_fixed(ctx: Ctx) -> None:
    script = R2V_SEEDANCE2.replace(
        '-F "model": "doubao-seedance-2-0-260128"', '-F "model=doubao-seedance-2-0-260128"'
    )
    assert script != R2V_SEEDANCE2
    taskid = submit_ok(ctx, script)
    row = ctx.env.task(taskid)
    refs = row.inputs.get("image_files")
    assert isinstance(refs, tuple) and len(refs) == 2, row.inputs
    view = query_until_done(ctx, taskid)
    usage = view["usage"]
    assert usage["type"] == "reference2video"
    assert usage["model"] == "doubao-seedance-2-0-260128"
    assert usage["duration"] == 4
    assert usage["ratio"] == "4:3"
    check_outputs(ctx, view, 4)
    charged_once(ctx, taskid, view)


def test_balance_is_initial_minus_charges(ctx: Ctx) -> None:
    rows = [ctx.env.task(t) for t, _ in ctx.env.tasks_of(ctx.acc.user_id)]
    charged = sum(r.charged or 0 for r in rows)
    assert charged > 0
    assert ctx.env.balance(ctx.acc.user_id) == (1000 * 1_000_000 - charged, 0)
    assert ctx.env.reconcile() == []
