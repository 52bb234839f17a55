"""Every dialect types its fields at the edge (issue 6, item 1).

A list or an object where one value is expected (a JSON array, or a multipart field sent twice),
or a value of the wrong JSON type, is a 400 in the dialect's own error shape that names the field
(native: the sentence names it; OpenAI and new-api: `param` is it) — never a 500, and nothing
reaches the money store: the caller's balance and holds are untouched afterwards."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from apihelp import TIMEOUT, account

from conftest import Account, Stack

SD15_T2V = "CrEMkFQfRCmbmopZsCqLj"  # doubao-seedance-1-5-pro-251215, text-to-video (seed 000)
SD15 = "doubao-seedance-1-5-pro-251215"
NATIVE = {"llmid": SD15_T2V, "prompt": "a cat"}
OPENAI_VIDEO = {"model": SD15, "prompt": "a cat"}
IMAGE = {"model": "qwen-image", "prompt": "a cat"}
CHAT = {"model": "qwen3-max", "messages": [{"role": "user", "content": "hi"}]}
NATIVE_CHAT = {"model": "qwen3-max", "prompt": "hi"}
NEWAPI = {"model": SD15, "prompt": "a cat"}


@dataclass
class Case:
    path: str
    param: str
    json: dict[str, Any] | None = None
    form: list[tuple[str, str]] | None = None  # repeated names allowed
    method: str = "POST"
    query: list[tuple[str, str]] | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)


def form(base: dict[str, Any], *extra: tuple[str, str]) -> list[tuple[str, str]]:
    return [*((k, str(v)) for k, v in base.items()), *extra]


CASES: dict[str, Case] = {
    # native (seed 000): JSON and multipart submits, estimate, task query, chat
    "native callback_url list": Case(
        "/llmage/video", "callback_url", {**NATIVE, "callback_url": ["x"]}
    ),
    "native callback_url object": Case(
        "/llmage/video", "callback_url", {**NATIVE, "callback_url": {"url": "http://a.example"}}
    ),
    "native callback_url not http": Case(
        "/llmage/video", "callback_url", {**NATIVE, "callback_url": "ftp://a.example/x"}
    ),
    "native llmid list": Case("/llmage/video", "llmid", {**NATIVE, "llmid": [SD15_T2V]}),
    "native model object": Case("/llmage/video", "model", {**NATIVE, "model": {"a": 1}}),
    "native prompt list": Case("/llmage/video", "prompt", {**NATIVE, "prompt": ["a", "b"]}),
    "native duration list": Case("/llmage/video", "duration", {**NATIVE, "duration": [5]}),
    "native form callback_url twice": Case(
        "/llmage/video",
        "callback_url",
        form=form(
            NATIVE, ("callback_url", "http://a.example"), ("callback_url", "http://b.example")
        ),
    ),
    "native form prompt twice": Case(
        "/llmage/video", "prompt", form=form({"llmid": SD15_T2V}, ("prompt", "a"), ("prompt", "b"))
    ),
    "native form llmid twice": Case(
        "/llmage/video", "llmid", form=form(NATIVE, ("llmid", SD15_T2V))
    ),
    "native estimate callback_url list": Case(
        "/llmage/estimate", "callback_url", {**NATIVE, "callback_url": ["x"]}
    ),
    "native task query twice": Case(
        "/llmage/tasks", "taskid", method="GET", query=[("taskid", "a"), ("taskid", "b")]
    ),
    "native task body list": Case("/llmage/tasks", "taskid", {"taskid": ["a"]}),
    "native chat prompt list": Case(
        "/llmage/v1/chat/completions", "prompt", {**NATIVE_CHAT, "prompt": ["x"]}
    ),
    "native chat temperature string": Case(
        "/llmage/v1/chat/completions", "temperature", {**NATIVE_CHAT, "temperature": "hot"}
    ),
    # OpenAI chat, and its platform-prefixed mirror
    "openai chat user list": Case("/v1/chat/completions", "user", {**CHAT, "user": ["x"]}),
    "openai chat content number": Case(
        "/v1/chat/completions",
        "messages[0].content",
        {**CHAT, "messages": [{"role": "user", "content": 5}]},
    ),
    "openai chat stop number": Case("/v1/chat/completions", "stop", {**CHAT, "stop": 5}),
    "openai chat tools object": Case("/v1/chat/completions", "tools", {**CHAT, "tools": {}}),
    "platform chat temperature list": Case(
        "/sim/v1/chat/completions", "temperature", {**CHAT, "temperature": [1]}
    ),
    # OpenAI videos, and the platform mirror
    "openai video callback_url list": Case(
        "/v1/videos", "callback_url", {**OPENAI_VIDEO, "callback_url": ["x"]}
    ),
    "openai video model list": Case("/v1/videos", "model", {**OPENAI_VIDEO, "model": [SD15]}),
    "openai video seconds list": Case("/v1/videos", "seconds", {**OPENAI_VIDEO, "seconds": ["4"]}),
    "openai video size object": Case("/v1/videos", "size", {**OPENAI_VIDEO, "size": {"w": 1}}),
    "openai video form callback_url twice": Case(
        "/v1/videos",
        "callback_url",
        form=form(
            OPENAI_VIDEO, ("callback_url", "http://a.example"), ("callback_url", "http://b.example")
        ),
    ),
    "openai video form seconds twice": Case(
        "/v1/videos", "seconds", form=form(OPENAI_VIDEO, ("seconds", "4"), ("seconds", "8"))
    ),
    "openai video form prompt twice": Case(
        "/v1/videos", "prompt", form=form(OPENAI_VIDEO, ("prompt", "a dog"))
    ),
    "platform video callback_url list": Case(
        "/sim/v1/videos", "callback_url", {**OPENAI_VIDEO, "callback_url": ["x"]}
    ),
    # OpenAI images, and the platform mirror
    "openai image callback_url list": Case(
        "/v1/images/generations", "callback_url", {**IMAGE, "callback_url": ["x"]}
    ),
    "openai image response_format list": Case(
        "/v1/images/generations", "response_format", {**IMAGE, "response_format": ["url"]}
    ),
    "openai image quality list": Case(
        "/v1/images/generations", "quality", {**IMAGE, "quality": ["hd"]}
    ),
    "openai image n string": Case("/v1/images/generations", "n", {**IMAGE, "n": "many"}),
    "openai image edit form model twice": Case(
        "/v1/images/edits",
        "model",
        form=form(IMAGE, ("model", "qwen-image"), ("image", "https://a.example/x.png")),
    ),
    "platform image callback_url object": Case(
        "/sim/v1/images/generations", "callback_url", {**IMAGE, "callback_url": {"a": 1}}
    ),
    # new-api style (seeds 002, 004)
    "newapi callback_url list": Case(
        "/v1/video/generations", "callback_url", {**NEWAPI, "callback_url": ["x"]}
    ),
    "newapi metadata callback_url list": Case(
        "/v1/video/generations",
        "metadata.callback_url",
        {**NEWAPI, "metadata": {"callback_url": ["x"]}},
    ),
    "newapi user list": Case("/v1/video/generations", "user", {**NEWAPI, "user": ["x"]}),
    "newapi seed string": Case("/v1/video/generations", "seed", {**NEWAPI, "seed": "abc"}),
    "newapi prompt list": Case("/v1/video/generations", "prompt", {**NEWAPI, "prompt": ["x"]}),
    "newapi form model twice": Case(
        "/v1/video/generations", "model", form=form(NEWAPI, ("model", SD15))
    ),
    # headers every submit reads
    "idempotency key too long": Case(
        "/llmage/video", "Idempotency-Key", NATIVE, headers=[("Idempotency-Key", "k" * 201)]
    ),
    "idempotency key twice": Case(
        "/v1/videos",
        "Idempotency-Key",
        OPENAI_VIDEO,
        headers=[("Idempotency-Key", "a"), ("Idempotency-Key", "b")],
    ),
}


def dialect_of(path: str) -> str:
    if path.startswith("/llmage/"):
        return "native"
    return "newapi" if path.startswith("/v1/video/generations") else "openai"


def send(stack: Stack, acct: Account, case: Case) -> httpx.Response:
    headers = [("Authorization", f"Bearer {acct.key}"), *case.headers]
    files = [(k, (None, v)) for k, v in case.form] if case.form is not None else None
    with httpx.Client(base_url=stack.url, timeout=TIMEOUT) as client:
        return client.request(
            case.method,
            case.path,
            params=case.query,
            json=case.json if case.form is None and case.method == "POST" else None,
            files=files,
            headers=headers,
        )


@pytest.fixture(scope="module")
def acct(stack: Stack) -> Account:
    return account(stack, "100")


@pytest.mark.parametrize("name", list(CASES))
def test_wrong_shape_is_a_400_naming_the_field(stack: Stack, acct: Account, name: str) -> None:
    case = CASES[name]
    r = send(stack, acct, case)
    assert r.status_code == 400, (r.status_code, r.text)
    body = r.json()
    dialect = dialect_of(case.path)
    if dialect == "native":
        assert set(body) == {"error"}, body
        message = body["error"]
    elif dialect == "newapi":
        assert set(body) == {"code", "message", "param", "type"}, body
        assert body["param"] == case.param, body
        message = body["message"]
    else:
        assert set(body) == {"error"} and body["error"]["param"] == case.param, body
        message = body["error"]["message"]
    assert case.param in message, message
    assert "Traceback" not in r.text and "Error binding" not in r.text


def test_nothing_reached_the_money_store(stack: Stack, acct: Account) -> None:
    for case in CASES.values():
        assert send(stack, acct, case).status_code == 400
    assert stack.balance(acct.user_id) == (100_000_000, 0)
    records = stack.admin.call(stack.platform.usage.list(acct.user_id))
    assert records == []
    assert stack.reconcile() == []
