"""Model lists (`/v1/models`, the `/llmage/models` plaza) and the operational routes."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest
from apihelp import TIMEOUT, account, assert_openai_error, post

from conftest import SIM_MODELS, Account, Stack

# Every video llmid of seed 000, with its kind and its model names (starred/first = default).
SEED_VIDEO_MODELS = {
    "o5vfXYD5BURJWRTWpopE5": ("t2v", ["happyhorse-1.0-t2v"]),
    "YjjGgxO_Xma8PWsMjJvps": ("t2v", ["doubao-seedance-2-0-260128"]),
    "TWay-xd0p0pkEX-_Kuhto": (
        "t2v",
        ["dreamina-seedance-2-0-260128", "dreamina-seedance-2-0-fast-260128"],
    ),
    "CrEMkFQfRCmbmopZsCqLj": ("t2v", ["doubao-seedance-1-5-pro-251215"]),
    "u9HZyfDoqU6uKI6M1BTks": ("t2v", ["wan2.6-t2v"]),
    "r0ill7L0s6PtBS8mkmg-7": ("t2v", ["viduq3-pro"]),
    "7y7kfYM0Xasizyi37WvAZ": ("i2v", ["happyhorse-1.0-i2v"]),
    "UeYax4591ytnPcr9eumry": ("i2v", ["doubao-seedance-2-0-260128"]),
    "tb0VSY6WeyGbzaolU1_qE": ("i2v", ["dreamina-seedance-2-0-260128"]),
    "7RTOJD6K8A7RXCMG4GnQ9": ("i2v", ["doubao-seedance-1-5-pro-251215"]),
    "FK_h7FLYnosv2TkMN4ATC": ("i2v", ["viduq3-pro", "viduq2-turbo"]),
    "x4HksKp9mXR1Yv60mw6Py": ("i2v", ["wan2.6-r2v"]),
    "6o9n_7u2K927hNlD8_72f": ("r2v", ["happyhorse-1.0-r2v"]),
    "dmPXF65TD1riKj9KaxLmg": (
        "r2v",
        ["doubao-seedance-2-0-260128", "doubao-seedance-2-0-fast-260128"],
    ),
    "nVbH7lEO51soqTbLGIHE_": (
        "r2v",
        ["dreamina-seedance-2-0-260128", "dreamina-seedance-2-0-fast-260128"],
    ),
}
KINDS = {"chat", "t2v", "i2v", "r2v", "t2i", "i2i"}


@pytest.fixture(scope="module")
def acct(stack: Stack) -> Account:
    return account(stack, "100")


@pytest.fixture(scope="module")
def plaza(stack: Stack) -> list[dict[str, Any]]:
    r = httpx.get(stack.url + "/llmage/models", timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["object"] == "list"
    data: list[dict[str, Any]] = body["data"]
    return data


# -- /v1/models -------------------------------------------------------------------------------


def test_v1_models_openai_list_shape(stack: Stack, acct: Account) -> None:
    r = httpx.get(stack.url + "/v1/models", headers=stack.headers(acct), timeout=TIMEOUT)
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "list"
    ids = [m["id"] for m in body["data"]]
    assert len(ids) == len(set(ids))
    for m in body["data"]:
        assert set(m) == {"id", "object", "created", "owned_by"}
        assert m["object"] == "model"
        assert isinstance(m["created"], int)
        assert isinstance(m["owned_by"], str) and m["owned_by"]
    assert set(SIM_MODELS) | {"deepseek-chat", "deepseek-reasoner"} <= set(ids)
    assert "happyhorse-1.0-t2v" in ids


def test_v1_models_needs_a_key(stack: Stack) -> None:
    r = httpx.get(stack.url + "/v1/models", timeout=TIMEOUT)
    assert_openai_error(r, 401, code="invalid_api_key")
    r = httpx.get(
        stack.url + "/v1/models", headers={"Authorization": "Bearer sk-nope-0000000000000000"}
    )
    assert_openai_error(r, 401, code="invalid_api_key")


def test_v1_models_through_the_sdk(stack: Stack, acct: Account) -> None:
    with openai.OpenAI(base_url=stack.url + "/v1", api_key=acct.key, timeout=20.0) as c:
        ids = {m.id for m in c.models.list()}
    assert {"qwen3-max", "deepseek-chat"} <= ids


def test_every_chat_model_listed_is_callable_by_name(
    stack: Stack, acct: Account, plaza: list[dict[str, Any]]
) -> None:
    """Names in /v1/models resolve: a chat name served by no channel is a 503, never a 404."""
    r = httpx.get(stack.url + "/v1/models", headers=stack.headers(acct), timeout=TIMEOUT)
    ids = {m["id"] for m in r.json()["data"]}
    chat_names = {n for e in plaza if e["kind"] == "chat" for n in e["models"]}
    assert chat_names <= ids
    r = post(
        stack,
        "/v1/chat/completions",
        acct.key,
        json={"model": "doubao-1-5-pro-32k-250115", "messages": [{"role": "user", "content": "x"}]},
    )
    assert_openai_error(r, 503, code="no_available_channel")


# -- /llmage/models (the plaza) ---------------------------------------------------------------


def test_plaza_needs_no_key_and_lists_the_catalog(
    stack: Stack, plaza: list[dict[str, Any]]
) -> None:
    llmids = [e["llmid"] for e in plaza]
    assert len(llmids) == len(set(llmids))
    assert set(SEED_VIDEO_MODELS) <= set(llmids)
    for entry in plaza:
        for key in ("llmid", "kind", "models", "default_model", "parameters", "price"):
            assert key in entry, (key, entry["llmid"])
        assert entry["kind"] in KINDS
        assert entry["models"] and all(isinstance(m, str) and m for m in entry["models"])
        assert entry["default_model"] == entry["models"][0]


@pytest.mark.parametrize("llmid", sorted(SEED_VIDEO_MODELS))
def test_plaza_video_entries_match_seed_000(plaza: list[dict[str, Any]], llmid: str) -> None:
    kind, names = SEED_VIDEO_MODELS[llmid]
    entry = next(e for e in plaza if e["llmid"] == llmid)
    assert entry["kind"] == kind
    assert entry["models"][: len(names)] == names
    assert entry["default_model"] == names[0]


def _check_schema(schema: dict[str, Any]) -> None:
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["type"] == "object"
    props = schema["properties"]
    assert isinstance(props, dict) and props
    assert set(schema["required"]) <= set(props)
    for name, prop in props.items():
        assert prop["type"] in {"string", "integer", "number", "boolean", "array"}, name
        if prop["type"] == "array":
            assert prop["items"]["type"] == "string", name
        if "enum" in prop:
            assert isinstance(prop["enum"], list) and prop["enum"], name
            if "default" in prop:
                assert prop["default"] in prop["enum"], name
        lo, hi = prop.get("minimum"), prop.get("maximum")
        if lo is not None and hi is not None:
            assert lo <= hi, name
        if "default" in prop and prop["type"] == "integer":
            assert isinstance(prop["default"], int), name
            assert (lo is None or prop["default"] >= lo) and (hi is None or prop["default"] <= hi)


def test_plaza_parameters_are_json_schema_for_media_models(plaza: list[dict[str, Any]]) -> None:
    media = [e for e in plaza if e["kind"] != "chat"]
    assert len(media) >= len(SEED_VIDEO_MODELS)
    for entry in media:
        schema = entry["parameters"]
        assert isinstance(schema, dict), entry["llmid"]
        _check_schema(schema)
        assert "prompt" in schema["required"], entry["llmid"]
    for entry in plaza:
        if entry["kind"] == "chat":
            assert entry["parameters"] is None


def test_plaza_seed_parameters(plaza: list[dict[str, Any]]) -> None:
    """Spot checks against seed 000's tables: values, defaults, aliases and file slots."""
    by_id = {e["llmid"]: e["parameters"]["properties"] for e in plaza if e["parameters"]}
    wan = by_id["u9HZyfDoqU6uKI6M1BTks"]
    assert wan["duration"]["enum"] == [5, 10, 15] and wan["duration"]["default"] == 15
    assert wan["size"]["default"] == "1920*1080" and "832*480" in wan["size"]["enum"]
    assert "negative_prompt" in wan
    seedance15 = by_id["CrEMkFQfRCmbmopZsCqLj"]
    assert "radio" in seedance15["ratio"]["x-aliases"]
    assert seedance15["resolution"]["enum"] == ["480p", "720p", "1080p"]
    happyhorse_i2v = by_id["7y7kfYM0Xasizyi37WvAZ"]
    assert happyhorse_i2v["image1_file"]["format"] == "binary"
    assert "image_file1" in happyhorse_i2v["image1_file"]["x-aliases"]
    r2v = by_id["6o9n_7u2K927hNlD8_72f"]
    assert r2v["image_files"]["type"] == "array" and r2v["image_files"]["maxItems"] == 9
    vidu = by_id["r0ill7L0s6PtBS8mkmg-7"]
    assert vidu["off_peak"]["default"] == "N"


def test_plaza_prices(plaza: list[dict[str, Any]]) -> None:
    for entry in plaza:
        price = entry["price"]
        assert price["currency"] == "CNY"
        if entry["kind"] == "chat":
            assert price["unit"] == "1M tokens"
            assert Decimal(price["input"]) > 0 and Decimal(price["output"]) > 0
        else:
            assert price["unit"] in {"second", "image", "request"}
            assert price["rates"] and all(Decimal(v) >= 0 for v in price["rates"].values())
            by = price["by"]
            if by not in (None, "model"):
                assert by in entry["parameters"]["properties"], entry["llmid"]
    qwen = next(e for e in plaza if e["llmid"] == "jdQBqVsYW3Aq52U7Ht7A3")
    assert qwen["price"]["input"] == "6.000000" and qwen["price"]["output"] == "24.000000"


# -- docs, metrics, health --------------------------------------------------------------------


def test_docs_and_openapi(stack: Stack) -> None:
    r = httpx.get(stack.url + "/docs", timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "swagger" in r.text.lower()
    r = httpx.get(stack.url + "/openapi.json", timeout=TIMEOUT)
    assert r.status_code == 200
    spec = r.json()
    assert spec["info"]["title"] == "llmage"
    paths = spec["paths"]
    for path in (
        "/v1/chat/completions",
        "/v1/models",
        "/llmage/v1/chat/completions",
        "/llmage/t2t",
        "/llmage/models",
        "/{platform}/v1/chat/completions",
        "/healthz",
    ):
        assert path in paths, path
    body = paths["/v1/chat/completions"]["post"]["requestBody"]["content"]["application/json"]
    assert "messages" in body["schema"]["properties"]


def test_openapi_operation_ids_are_unique(stack: Stack) -> None:
    """A valid OpenAPI document: client generators key methods on operationId."""
    paths = httpx.get(stack.url + "/openapi.json", timeout=TIMEOUT).json()["paths"]
    op_ids = [
        op["operationId"] for item in paths.values() for op in item.values() if "operationId" in op
    ]
    duplicates = sorted({o for o in op_ids if op_ids.count(o) > 1})
    assert duplicates == []


def _metric(text: str, name: str, labels: str) -> float:
    m = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def test_metrics_count_requests_and_holds(stack: Stack, acct: Account) -> None:
    before = httpx.get(stack.url + "/metrics", timeout=TIMEOUT).text
    r = post(
        stack,
        "/v1/chat/completions",
        acct.key,
        json={"model": "qwen3-max", "messages": [{"role": "user", "content": "count me"}]},
    )
    assert r.status_code == 200
    poor = account(stack, "0")
    r = post(
        stack,
        "/v1/chat/completions",
        poor.key,
        json={"model": "qwen3-max", "messages": [{"role": "user", "content": "x"}]},
    )
    assert r.status_code == 429
    resp = httpx.get(stack.url + "/metrics", timeout=TIMEOUT)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    after = resp.text
    assert "# TYPE llmage_requests_total counter" in after
    assert "# TYPE llmage_holds_total counter" in after
    req = ("llmage_requests_total", 'route="/v1/chat/completions",status="200"')
    assert _metric(after, *req) == _metric(before, *req) + 1
    req429 = ("llmage_requests_total", 'route="/v1/chat/completions",status="429"')
    assert _metric(after, *req429) == _metric(before, *req429) + 1
    for outcome, delta in (("opened", 1), ("captured", 1), ("rejected", 1)):
        labels = ("llmage_holds_total", f'outcome="{outcome}"')
        assert _metric(after, *labels) == _metric(before, *labels) + delta, outcome


def test_healthz(stack: Stack) -> None:
    r = httpx.get(stack.url + "/healthz", timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}
