"""`serve --demo`: a ready account, key and `sim` channels, and how to call them."""

from __future__ import annotations

import secrets
import shutil
import sys
from pathlib import Path

import click

from llmage.domain.money import MICROS_PER_UNIT, format_amount
from llmage.services.accounts import AccountService
from llmage.services.platform import Platform

DEMO_USER = "demo"
DEMO_CREDIT = 100 * MICROS_PER_UNIT


async def prepare_demo(p: Platform) -> str:
    """Idempotent: the user, its first credit and the sim channel are created once; a key is
    created per start (keys are stored hashed, so an old one cannot be shown again) unless
    LLMAGE_DEMO_KEY names one."""
    svc = AccountService(p)
    user = await p.accounts.user_by_name(DEMO_USER)
    user_id = user.id if user else await svc.create_user(DEMO_USER, secrets.token_urlsafe(16))
    await p.ledger.credit(user_id, DEMO_CREDIT, "demo:initial-credit", memo="demo balance")
    if not any(c.name == "sim" for c in await p.channels.list()):
        await p.channels.add(
            name="sim",
            provider="sim",
            platform="sim",
            base_url="",
            credential_enc=None,
            models=["*"],
        )
    wanted = p.settings.demo_key
    if wanted:
        from llmage.auth.keys import hash_key

        if await p.accounts.key_auth(hash_key(wanted), 0) is None:
            await svc.create_key(user_id, name="demo", value=wanted)
        return wanted
    return (await svc.create_key(user_id, name="demo")).key


def path_hint() -> str:
    """Whether `llmage` (this install's) is on the PATH, and how to put it there if not."""
    mine = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else None
    found = shutil.which("llmage")
    if found and mine is not None and Path(found).resolve() == mine:
        return f"`llmage` is on your PATH ({found})"
    venv_bin = Path(sys.executable).parent
    return (
        f'`llmage` is not on your PATH: run `export PATH="{venv_bin}:$PATH"` '
        f"(or call {venv_bin / 'llmage'})"
    )


def print_demo(key: str, base: str, balance: int) -> None:
    chat = "qwen3-max"
    click.secho("\nllmage demo is ready", bold=True)
    click.echo(f"  user: {DEMO_USER}   balance: {format_amount(balance)}   API key: {key}")
    click.echo(f"  docs: {base}/docs   metrics: {base}/metrics")
    click.echo(f"  {path_hint()}")
    click.echo(
        f"  more balance (a default video costs a few yuan): llmage credit {DEMO_USER} 100\n"
        f"    run it in {Path.cwd()} (or any directory: admin commands find this server's data"
        " via `llmage where`)\n"
    )
    click.echo("Native chat (seed 000):")
    click.echo(
        f"  curl -s {base}/llmage/v1/chat/completions -H 'Content-Type: application/json' \\\n"
        f'    -H \'Authorization: Bearer {key}\' -d \'{{"model": "{chat}", '
        f'"prompt": "你是谁", "stream": false}}\'\n'
    )
    click.echo("Video task (seed 000), then poll it with the returned taskid:")
    click.echo(
        f"  curl -s -X POST {base}/llmage/video -H 'Content-Type: application/json' \\\n"
        f'    -H \'Authorization: Bearer {key}\' -d \'{{"llmid": "CrEMkFQfRCmbmopZsCqLj", '
        f'"prompt": "小猫在抓老鼠", "duration": 5, "resolution": "480p"}}\'\n'
        f"  curl -s -X POST '{base}/llmage/tasks?taskid=<taskid>' \\\n"
        f"    -H 'Authorization: Bearer {key}'\n"
    )
    click.echo("OpenAI SDK:")
    click.echo(
        "  from openai import OpenAI\n"
        f"  client = OpenAI(base_url='{base}/v1', api_key='{key}')\n"
        f"  r = client.chat.completions.create(model='{chat}', "
        "messages=[{'role': 'user', 'content': 'Hello'}])\n"
        "  print(r.choices[0].message.content)\n"
    )
