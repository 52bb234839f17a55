"""The finance API on SQLite and PostgreSQL over real usage: a top-up, a chat request and a video
task that is still running (its hold open), seen through the ledger, usage (JSON and CSV) and
the summary with its daily totals."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from payhelp import PayEnv, User, pay_env

from llmage.console.finance import csv_cell
from support.backends import BACKENDS

SD15_T2V = "CrEMkFQfRCmbmopZsCqLj"  # doubao-seedance-1-5-pro-251215, text-to-video (seed 000)


@dataclass
class Usage:
    user: User
    chat_id: str
    chat_charge: int
    task_id: str
    task_hold: int


@pytest.fixture(scope="module", params=BACKENDS)
def env(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PayEnv]:
    yield from pay_env(request.param, tmp_path_factory)


def today(env: PayEnv, days: int = 0) -> str:
    now = datetime.now(UTC).astimezone(ZoneInfo(env.settings.timezone))
    return (now + timedelta(days=days)).date().isoformat()


@pytest.fixture(scope="module")
def usage(env: PayEnv) -> Usage:
    u = env.user("100")
    with httpx.Client(
        base_url=env.url, headers={"Authorization": f"Bearer {u.key}"}, timeout=30
    ) as c:
        r = c.post(
            "/llmage/v1/chat/completions",
            json={"model": "qwen3-max", "prompt": "你好", "max_tokens": 16},
        )
        assert r.status_code == 200, r.text
        chat_id = r.json()["llmusageid"]
        r = c.post(
            "/llmage/video",
            json={
                "llmid": SD15_T2V,
                "prompt": "a cat",
                "duration": 5,
                "ratio": "16:9",
                "resolution": "480p",
            },
        )
        assert r.status_code == 200, r.text
        task_id = r.json()["taskid"]
    [(charge,)] = env.sql("SELECT amount FROM usage_records WHERE id = :i", i=chat_id)
    [(hold,)] = env.sql("SELECT quoted FROM tasks WHERE id = :i", i=task_id)
    assert charge > 0 and hold > 0
    return Usage(u, chat_id, int(charge), task_id, int(hold))


async def test_ledger_lists_topups_holds_and_charges(env: PayEnv, usage: Usage) -> None:
    async with env.client(usage.user) as c:
        got = (await c.get("/api/ledger")).json()
        kinds = [e["kind"] for e in got["items"]]
        assert (
            kinds.count("topup") == 1 and kinds.count("capture") == 1 and kinds.count("hold") == 2
        )
        topup = next(e for e in got["items"] if e["kind"] == "topup")
        assert topup["category"] == "topup"
        assert topup["amount"] == {"amount": "100.000000", "micros": 100_000_000}
        charge = next(e for e in got["items"] if e["kind"] == "capture")
        assert charge["category"] == "charge" and charge["amount"]["micros"] == -usage.chat_charge
        ids = [e["id"] for e in got["items"]]
        assert ids == sorted(ids, reverse=True)  # newest first

        only = (await c.get("/api/ledger", params={"kind": "capture,topup"})).json()["items"]
        assert sorted(e["kind"] for e in only) == ["capture", "topup"]
        first = (await c.get("/api/ledger", params={"page_size": 1})).json()
        second = (await c.get("/api/ledger", params={"page_size": 1, "page": 2})).json()
        assert first["has_more"] and first["items"][0]["id"] == ids[0]
        assert second["items"][0]["id"] == ids[1]
        day = (await c.get("/api/ledger", params={"from": today(env), "to": today(env)})).json()
        assert len(day["items"]) == len(ids)
        later = (await c.get("/api/ledger", params={"from": today(env, 1)})).json()
        assert later["items"] == []

        r = await c.get("/api/ledger", params={"kind": "gift"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "kind"
        assert "topup" in r.json()["error"]["allowed"]
        for params, param in (
            ({"from": "yesterday"}, "from"),
            ({"to": "2025-13-01"}, "to"),
            ({"from": today(env, 1), "to": today(env)}, "from"),
            ({"page": 0}, "page"),
            ({"page_size": 201}, "page_size"),
        ):
            r = await c.get("/api/ledger", params=params)
            assert r.status_code == 400 and r.json()["error"]["param"] == param, (params, r.text)


async def test_usage_merges_requests_and_tasks_with_filters(env: PayEnv, usage: Usage) -> None:
    async with env.client(usage.user) as c:
        items = (await c.get("/api/usage")).json()["items"]
        assert [i["id"] for i in items] == [usage.task_id, usage.chat_id]
        task, chat = items
        assert (chat["kind"], chat["status"], chat["model"]) == ("chat", "succeeded", "qwen3-max")
        assert chat["amount"]["micros"] == usage.chat_charge and chat["prompt_tokens"] > 0
        assert chat["completion_tokens"] > 0 and chat["finished_at"] >= chat["created_at"]
        assert (task["kind"], task["status"], task["llmid"]) == ("video", "running", SD15_T2V)
        assert task["amount"]["micros"] == usage.task_hold and task["prompt_tokens"] is None

        async def ids(**params: str) -> list[str]:
            r = await c.get("/api/usage", params=params)
            assert r.status_code == 200, r.text
            return [i["id"] for i in r.json()["items"]]

        assert await ids(kind="chat") == [usage.chat_id]
        assert await ids(kind="video") == [usage.task_id]
        assert await ids(kind="image") == []
        assert await ids(status="running") == [usage.task_id]
        assert await ids(status="failed") == []
        assert await ids(model="qwen3-max") == [usage.chat_id]
        assert await ids(**{"from": today(env), "to": today(env)}) == [usage.task_id, usage.chat_id]
        assert await ids(to=today(env, -1)) == []
        assert await ids(page_size="1", page="2") == [usage.chat_id]
        for params in (
            {"kind": "audio"},
            {"status": "ok"},
            {"format": "xml"},
            {"from": "2025/01/01"},
        ):
            r = await c.get("/api/usage", params=params)
            assert r.status_code == 400, (params, r.text)


async def test_usage_exports_csv(env: PayEnv, usage: Usage) -> None:
    async with env.client(usage.user) as c:
        r = await c.get("/api/usage", params={"format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    assert r.text.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))
    assert [row["id"] for row in rows] == [usage.task_id, usage.chat_id]
    assert rows[1]["amount_micros"] == str(usage.chat_charge) and rows[1]["status"] == "succeeded"
    assert rows[0]["status"] == "running" and rows[0]["finished_at"] == ""
    assert rows[1]["created_at"].endswith("Z")


def test_csv_cells_cannot_become_formulas() -> None:
    assert csv_cell('=HYPERLINK("http://x")') == '\'=HYPERLINK("http://x")'
    assert csv_cell("+1") == "'+1" and csv_cell("@SUM(A1)") == "'@SUM(A1)"
    assert csv_cell("-cmd") == "'-cmd" and csv_cell(-5) == "-5"
    assert csv_cell(None) == "" and csv_cell("qwen3-max") == "qwen3-max"


async def test_summary_has_balance_holds_and_daily_totals(env: PayEnv, usage: Usage) -> None:
    async with env.client(usage.user) as c:
        s = (await c.get("/api/finance/summary", params={"days": 7})).json()
        bad = await c.get("/api/finance/summary", params={"days": 0})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "days"
    balance = 100_000_000 - usage.chat_charge
    assert (s["balance"]["micros"], s["held"]["micros"]) == (balance, usage.task_hold)
    assert s["available"]["micros"] == balance - usage.task_hold
    assert s["currency"] == "CNY"
    assert [h["purpose"] for h in s["open_holds"]] == ["task"]
    assert s["open_holds"][0]["amount"]["micros"] == usage.task_hold
    assert s["open_holds"][0]["ref"] == usage.task_id
    assert len(s["days"]) == 7 and s["days"][-1]["date"] == today(env)
    assert s["days"][0]["date"] == today(env, -6)
    last = s["days"][-1]
    assert (last["spend"]["micros"], last["topup"]["micros"], last["adjust"]["micros"]) == (
        usage.chat_charge,
        100_000_000,
        0,
    )
    assert all(d["spend"]["micros"] == 0 for d in s["days"][:-1])


async def test_finance_is_private(env: PayEnv, usage: Usage) -> None:
    stranger = env.user()
    async with env.client(stranger) as c:
        assert (await c.get("/api/ledger")).json()["items"] == []
        assert (await c.get("/api/usage")).json()["items"] == []
        s = (await c.get("/api/finance/summary")).json()
        assert s["open_holds"] == [] and s["balance"]["micros"] == 0
    async with env.client() as c:
        for path in ("/api/ledger", "/api/usage", "/api/finance/summary"):
            r = await c.get(path)
            assert r.status_code == 401, path
    # An API key is not a console session.
    async with httpx.AsyncClient(base_url=env.url, timeout=30) as c:
        r = await c.get("/api/ledger", headers={"Authorization": f"Bearer {usage.user.key}"})
        assert r.status_code == 401


async def test_openapi_documents_the_money_routes(env: PayEnv) -> None:
    async with httpx.AsyncClient(base_url=env.url, timeout=30) as c:
        spec = (await c.get("/openapi.json")).json()
    paths = spec["paths"]
    for path, method in (
        ("/api/topups", "post"),
        ("/api/topups", "get"),
        ("/api/topups/{out_trade_no}", "get"),
        ("/api/topups/{out_trade_no}/qr.svg", "get"),
        ("/api/payments/alipay/notify", "post"),
        ("/api/payments/alipay/return", "get"),
        ("/api/redeem", "post"),
        ("/api/ledger", "get"),
        ("/api/usage", "get"),
        ("/api/finance/summary", "get"),
        ("/api/admin/users/{user_id}/credit", "post"),
        ("/api/admin/users/{user_id}/debit", "post"),
        ("/api/admin/redeem-codes", "post"),
        ("/api/admin/redeem-codes", "get"),
        ("/api/admin/redeem-batches", "get"),
        ("/api/admin/orders", "get"),
    ):
        assert method in paths.get(path, {}), (path, method)
    topup = spec["components"]["schemas"]["TopupIn"]
    assert set(topup["required"]) == {"amount", "method"}
