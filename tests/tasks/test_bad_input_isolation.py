"""One user's malformed requests never hurt another user's money (issue 6, item 1), black-box on
the default deployment (SQLite, one process, the sim provider).

30 malformed submits by one user (issue 6's own bodies: `callback_url` as a JSON list, or sent
twice in multipart, across every dialect that takes it) race 120 valid calls by another user:
chat (OpenAI and native, streamed and not), native video tasks and OpenAI image generations.
Every valid call succeeds and is charged exactly what its usage prices at; the malformed ones
are 400s that touch nothing; `llmage reconcile` is clean and no hold is left open."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from taskhelp import SD15_T2V, ChannelSpec, TaskEnv, task_env

from conftest import Account
from llmage.catalog import load_catalog
from llmage.domain.catalog import ChatPrice
from llmage.domain.money import token_cost

QWEN_IMAGE = "56xed0ECerNOuvtEXyiKF"  # qwen-image, text-to-image (seed 000)
CHAT_MODEL = "qwen3-max"
VIDEO = {"llmid": SD15_T2V, "prompt": "a red fox", "resolution": "480p", "duration": 4}
VIDEO_FORM = [(k, (None, str(v))) for k, v in VIDEO.items()]
LLMAGE = str(Path(sys.executable).with_name("llmage"))


def _chat_body(i: int, *, stream: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": CHAT_MODEL,
        "messages": [{"role": "user", "content": f"question number {i}: say something"}],
        "max_tokens": 24,
        "stream": stream,
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


# (path, request kwargs): the malformed submits, cycled to 30.
MALFORMED: list[tuple[str, dict[str, Any]]] = [
    ("/llmage/video", {"json": {**VIDEO, "callback_url": ["x"]}}),
    (
        "/llmage/video",
        {
            "files": [
                *VIDEO_FORM,
                ("callback_url", (None, "http://a.example/hook")),
                ("callback_url", (None, "http://b.example/hook")),
            ]
        },
    ),
    (
        "/v1/videos",
        {"json": {"model": "doubao-seedance-1-5-pro-251215", "prompt": "x", "callback_url": ["x"]}},
    ),
    (
        "/v1/video/generations",
        {
            "json": {
                "model": "doubao-seedance-1-5-pro-251215",
                "prompt": "x",
                "metadata": {"callback_url": ["x"]},
            }
        },
    ),
    (
        "/v1/images/generations",
        {
            "json": {
                "model": "qwen-image",
                "prompt": "x",
                "callback_url": {"url": "http://a.example"},
            }
        },
    ),
    (
        "/sim/v1/videos",
        {
            "files": [
                ("model", (None, "doubao-seedance-1-5-pro-251215")),
                ("prompt", (None, "x")),
                ("callback_url", (None, "http://a.example/hook")),
                ("callback_url", (None, "http://b.example/hook")),
            ]
        },
    ),
]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TaskEnv]:
    catalog = load_catalog()
    models = [e.llmid for e in catalog.entries() if e.kind.is_video or e.kind.is_image]
    channel = ChannelSpec("sim", [*models, CHAT_MODEL], options={"latency_ms": 200})
    with task_env("sqlite", tmp_path_factory.mktemp("bad-input"), [channel]) as e:
        yield e


def _chat_cost(env: TaskEnv, prompt_tokens: int, completion_tokens: int) -> int:
    found = env.platform.catalog.chat_model(CHAT_MODEL)
    assert found is not None and isinstance(found[0].price, ChatPrice)
    price = found[0].price
    return token_cost(prompt_tokens, price.input_per_mtok) + token_cost(
        completion_tokens, price.output_per_mtok
    )


async def _stream(c: httpx.AsyncClient, body: dict[str, Any]) -> tuple[int, str, str, str]:
    async with c.stream("POST", "/v1/chat/completions", json=body) as r:
        text = (await r.aread()).decode()
    return r.status_code, "stream", r.headers.get("x-llmage-usage-id", ""), text


async def _call(c: httpx.AsyncClient, kind: str, i: int) -> tuple[int, str, str, str]:
    if kind == "chat":
        r = await c.post("/v1/chat/completions", json=_chat_body(i))
    elif kind == "native-chat":
        r = await c.post(
            "/llmage/v1/chat/completions",
            json={"model": CHAT_MODEL, "prompt": f"question number {i}", "max_tokens": 24},
        )
    elif kind == "stream":
        return await _stream(c, _chat_body(i, stream=True))
    elif kind == "video":
        r = await c.post("/llmage/video", json=VIDEO)
    else:
        r = await c.post(
            "/v1/images/generations",
            json={"model": "qwen-image", "prompt": f"a cat {i}", "response_format": "url"},
        )
    return r.status_code, kind, r.headers.get("x-llmage-usage-id", ""), r.text


def test_malformed_submits_never_hurt_concurrent_valid_calls(env: TaskEnv) -> None:
    attacker = env.account("100")
    user: Account = env.account("1000")
    start = env.balance(user.user_id)
    assert start == (1_000_000_000, 0)
    estimate = env.post("/llmage/estimate", user, json=VIDEO)
    assert estimate.status_code == 200, estimate.text
    video_price = int(estimate.json()["amount_micros"])

    valid = ["chat"] * 45 + ["native-chat"] * 25 + ["stream"] * 20 + ["video"] * 20 + ["image"] * 10
    assert len(valid) == 120
    plan: list[tuple[str, int]] = [(kind, i) for i, kind in enumerate(valid)]
    plan += [("bad", i) for i in range(30)]
    random.Random(6).shuffle(plan)  # interleaved, the same way on every run

    async def race() -> list[tuple[int, str, str, str]]:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        timeout = httpx.Timeout(60.0)
        async with (
            httpx.AsyncClient(
                base_url=env.url, headers=env.headers(user), limits=limits, timeout=timeout
            ) as good,
            httpx.AsyncClient(
                base_url=env.url, headers=env.headers(attacker), limits=limits, timeout=timeout
            ) as bad,
        ):

            async def one(kind: str, i: int) -> tuple[int, str, str, str]:
                if kind != "bad":
                    return await _call(good, kind, i)
                path, kwargs = MALFORMED[i % len(MALFORMED)]
                r = await bad.post(path, **kwargs)
                return r.status_code, "bad", path, r.text

            return await asyncio.gather(*(one(kind, i) for kind, i in plan))

    results = asyncio.run(race())

    # Every valid call succeeded.
    good = [r for r in results if r[1] != "bad"]
    failed = [(status, kind, text[:200]) for status, kind, _, text in good if status != 200]
    assert failed == [], failed
    # The malformed ones: 400s naming the field, in their dialect's shape.
    bad = [r for r in results if r[1] == "bad"]
    assert len(bad) == 30
    for status, _, path, text in bad:
        assert status == 400, (path, status, text)
        assert "callback_url" in text, (path, text)
    assert env.balance(attacker.user_id) == (100_000_000, 0)
    assert env.holds_of(attacker.user_id) == [] and env.tasks_of(attacker.user_id) == []

    streamed_usage: dict[str, dict[str, int]] = {}
    for _, kind, usage_id, text in good:
        if kind == "stream":
            events = [line[5:].strip() for line in text.splitlines() if line.startswith("data:")]
            assert events[-1] == "[DONE]"
            final = json.loads(events[-2])
            assert "error" not in final, final
            streamed_usage[usage_id] = final["usage"]
    task_ids = [str(json.loads(text)["taskid"]) for _, kind, _, text in good if kind == "video"]
    statuses = env.wait_all([*task_ids, *(i for i, _ in env.tasks_of(user.user_id))], timeout=120)
    assert set(statuses.values()) == {"SUCCEEDED"}, statuses

    # ... and was charged exactly: chat by its reported tokens, tasks by the catalog price.
    records = env.admin.call(env.platform.usage.list(user.user_id, limit=1000))
    chat_ids = {
        usage_id for _, kind, usage_id, _ in good if kind in ("chat", "native-chat", "stream")
    }
    assert {r.id for r in records} == chat_ids and len(records) == 90
    for rec in records:
        assert rec.status == "ok" and not rec.estimated, rec
        assert rec.amount == _chat_cost(env, rec.prompt_tokens, rec.completion_tokens) > 0, rec
        if rec.id in streamed_usage:
            told = streamed_usage[rec.id]
            assert (told["prompt_tokens"], told["completion_tokens"]) == (
                rec.prompt_tokens,
                rec.completion_tokens,
            )
    rows = [env.task(task_id) for task_id, _ in env.tasks_of(user.user_id)]
    assert sorted(r.kind for r in rows) == ["image"] * 10 + ["video"] * 20
    for row in rows:
        expected = video_price if row.kind == "video" else 250_000  # qwen-image: one image
        assert row.quoted == row.charged == expected, row
    spent = sum(rec.amount for rec in records) + sum(row.charged or 0 for row in rows)
    assert env.balance(user.user_id) == (start[0] - spent, 0)

    # Nothing left open, every invariant holds, and the operator's command agrees.
    assert env.sql("SELECT COUNT(*) FROM holds WHERE state = 'open'") == [(0,)]
    assert env.reconcile() == []
    cli = subprocess.run(
        [LLMAGE, "reconcile"],
        env={
            **os.environ,
            "LLMAGE_DATA_DIR": str(env.tmp),
            "LLMAGE_DATABASE_URL": env.db_url,
            "LLMAGE_LOG_LEVEL": "WARNING",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert cli.returncode == 0, cli.stderr
    assert "invariants hold" in cli.stdout
