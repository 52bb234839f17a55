"""The stack comes up on both backends and answers a chat through each path."""

from __future__ import annotations

import httpx

from conftest import Stack


def test_native_chat_charges_and_reconciles(stack: Stack) -> None:
    acct = stack.account("10")
    r = httpx.post(
        f"{stack.url}/llmage/v1/chat/completions",
        headers=stack.headers(acct),
        json={"model": "qwen3-max", "prompt": "你是谁"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["finish"] == "1" and body["llmusageid"]
    balance, held = stack.balance(acct.user_id)
    assert held == 0 and 10_000_000 - balance > 0
    assert stack.reconcile() == []
