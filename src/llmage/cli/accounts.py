"""`llmage user|key|credit`: accounts, API keys and money from the command line."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import click

from llmage.cli.runtime import run
from llmage.domain.limits import LimitPolicy
from llmage.domain.money import format_amount, parse_amount, reserved_ref
from llmage.services.accounts import AccountService
from llmage.services.platform import Platform


def _amount(text: str, hint: str) -> int:
    try:
        return parse_amount(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=hint) from exc


class _LimitType(click.ParamType):  # type: ignore[type-arg]
    """A limit: a whole number of 0 or more (0 refuses everything), or `off` to clear it."""

    name = "N|off"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> int | None:
        if value is None or isinstance(value, int):
            return value
        text = str(value).strip().lower()
        if text in ("off", "none", "unlimited"):
            return _OFF
        if text.isdigit():
            return int(text)
        self.fail(f"{value!r} is not a whole number of 0 or more, or 'off'", param, ctx)
        return None


_OFF = -1  # `off` on the command line: clear the limit
LIMIT = _LimitType()


def _limit_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for name, what in reversed(
        (
            ("rpm", "requests per minute"),
            ("tpm", "tokens per minute (counted from the hold, corrected by the usage)"),
            ("concurrency", "requests in flight at once"),
            ("tasks", "open (unfinished) generation tasks"),
        )
    ):
        f = click.option(
            f"--{name}", type=LIMIT, default=None, help=f"Limit on {what}; 'off' clears it."
        )(f)
    return f


def _changes(**given: int | None) -> dict[str, int | None]:
    return {k: (None if v == _OFF else v) for k, v in given.items() if v is not None}


def _describe(policy: LimitPolicy | None) -> str:
    if policy is None or policy.empty:
        return "no limits"
    parts = [f"{k}={v}" for k, v in policy.base.as_dict().items()]
    parts += [
        f"[{model}] " + " ".join(f"{k}={v}" for k, v in lim.as_dict().items())
        for model, lim in policy.models
    ]
    return ", ".join(parts)


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@click.group("user")
def user() -> None:
    """Create and list users (accounts with a balance)."""


@user.command("create")
@click.argument("username")
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="At least 8 characters; prompted for when omitted.",
)
@click.option("--role", type=click.Choice(["user", "admin"]), default="user", show_default=True)
@click.option("--email", default=None, help="Optional e-mail address.")
@click.option("--phone", default=None, help="Optional phone number, for SMS log-in.")
def user_create(
    username: str, password: str, role: str, email: str | None, phone: str | None
) -> None:
    """Create USERNAME with an empty balance."""

    async def work(p: Platform) -> int:
        return await AccountService(p).create_user(
            username, password, role=role, email=email, phone=phone
        )

    user_id = run(work)
    click.echo(f"created user {username} (id {user_id}, role {role})")


@user.command("list")
def user_list() -> None:
    """Users with balance, held (open holds) and available money."""

    async def work(p: Platform) -> None:
        rows = await p.accounts.list_users()
        click.echo(
            f"{'id':>4}  {'username':<20} {'role':<6} {'balance':>16} {'held':>14} "
            f"{'available':>16}"
        )
        for u, balance, held in rows:
            click.echo(
                f"{u.id:>4}  {u.username:<20} {u.role:<6} {format_amount(balance):>16} "
                f"{format_amount(held):>14} {format_amount(balance - held):>16}"
            )

    run(work)


@user.command("limits")
@click.argument("username")
@_limit_options
@click.option("--model", default=None, help="Set the override for this model (name or llmid).")
def user_limits(
    username: str,
    rpm: int | None,
    tpm: int | None,
    concurrency: int | None,
    tasks: int | None,
    model: str | None,
) -> None:
    """Show or change USERNAME's limits (all of the user's keys together).

    A limit given with --model replaces the general one for requests to that model."""
    changes = _changes(rpm=rpm, tpm=tpm, concurrency=concurrency, tasks=tasks)

    async def work(p: Platform) -> LimitPolicy | None:
        svc = AccountService(p)
        uid = await svc.user_id(username)
        if not changes:
            row = await p.accounts.user_by_id(uid)
            return row.limits if row else None
        return await svc.update_user_limits(uid, changes, model)

    click.echo(f"{username}: {_describe(run(work))}")


def _set_disabled(username: str, disabled: bool) -> None:
    async def work(p: Platform) -> None:
        svc = AccountService(p)
        await svc.set_user_disabled(await svc.user_id(username), disabled)

    run(work)
    click.echo(f"{'disabled' if disabled else 'enabled'} user {username}")


@user.command("disable")
@click.argument("username")
def user_disable(username: str) -> None:
    """Disable USERNAME: every key of the user stops working (on every instance within 1 s)."""
    _set_disabled(username, True)


@user.command("enable")
@click.argument("username")
def user_enable(username: str) -> None:
    """Enable USERNAME again."""
    _set_disabled(username, False)


@click.group("key")
def key() -> None:
    """Create, list and revoke API keys (`sk-...`, shown once, stored hashed)."""


@key.command("create")
@click.argument("username")
@click.option("--name", default="default", show_default=True, help="A label for the key.")
@click.option(
    "--expires-days",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Expire after this many days (more than 0).",
)
@click.option(
    "--models",
    default=None,
    help="Comma-separated allow-list of model names or llmids (default: all).",
)
@click.option(
    "--spend-limit",
    default=None,
    help="Most this key may ever spend, in currency units (e.g. 50 or 12.5).",
)
@click.option(
    "--value",
    default=None,
    envvar="LLMAGE_KEY_VALUE",
    help="Use this exact key value instead of a random one (for scripts).",
)
@_limit_options
@click.option("--quiet", "-q", is_flag=True, help="Print only the key.")
def key_create(
    username: str,
    name: str,
    expires_days: float | None,
    models: str | None,
    spend_limit: str | None,
    value: str | None,
    rpm: int | None,
    tpm: int | None,
    concurrency: int | None,
    tasks: int | None,
    quiet: bool,
) -> None:
    """Create an API key for USERNAME and print it once."""

    async def work(p: Platform) -> tuple[int, str]:
        svc = AccountService(p)
        new = await svc.create_key(
            await svc.user_id(username),
            name=name,
            expires_in_days=expires_days,
            models=[m.strip() for m in models.split(",") if m.strip()] if models else None,
            spend_limit=_amount(spend_limit, "--spend-limit") if spend_limit else None,
            value=value,
            limits=_changes(rpm=rpm, tpm=tpm, concurrency=concurrency, tasks=tasks),
        )
        return new.id, new.key

    key_id, secret = run(work)
    if quiet:
        click.echo(secret)
    else:
        click.echo(f"key {key_id} for {username} (store it now; it is not shown again):")
        click.echo(secret)


@key.command("list")
@click.option("--user", "username", default=None, help="Only this user's keys.")
def key_list(username: str | None) -> None:
    """Keys with their visible prefix, times, limits and state."""

    async def work(p: Platform) -> None:
        uid = await AccountService(p).user_id(username) if username else None
        click.echo(
            f"{'id':>4} {'user':>4} {'name':<14} {'prefix':<14} {'state':<8} "
            f"{'spent':>14} {'limit':>14} {'last used':<20}"
        )
        for k in await p.accounts.list_keys(uid):
            state = "revoked" if k.revoked_at else "active"
            limit = format_amount(k.spend_limit) if k.spend_limit is not None else "-"
            click.echo(
                f"{k.id:>4} {k.user_id:>4} {k.name[:14]:<14} {k.prefix:<14} {state:<8} "
                f"{format_amount(k.spent):>14} {limit:>14} {_when(k.last_used_at):<20}"
            )

    run(work)


@key.command("update")
@click.argument("key_id", type=int)
@_limit_options
@click.option("--model", default=None, help="Set the override for this model (name or llmid).")
def key_update(
    key_id: int,
    rpm: int | None,
    tpm: int | None,
    concurrency: int | None,
    tasks: int | None,
    model: str | None,
) -> None:
    """Show or change the limits of KEY_ID (applied on every instance within 1 s).

    A limit given with --model replaces the general one for requests to that model."""
    changes = _changes(rpm=rpm, tpm=tpm, concurrency=concurrency, tasks=tasks)

    async def work(p: Platform) -> LimitPolicy | None:
        if not changes:
            row = await p.accounts.key_by_id(key_id)
            if row is None:
                raise click.ClickException(f"no key {key_id}")
            return row.limits
        return await AccountService(p).update_key_limits(key_id, changes, model)

    click.echo(f"key {key_id}: {_describe(run(work))}")


@key.command("revoke")
@click.argument("key_id", type=int)
def key_revoke(key_id: int) -> None:
    """Revoke KEY_ID at once (requests with it get 401)."""
    run(lambda p: AccountService(p).revoke_key(key_id))
    click.echo(f"revoked key {key_id}")


@click.command("credit", short_help="Add money to a user's balance (once per --ref).")
@click.argument("username")
@click.argument("amount")
@click.option(
    "--ref", default=None, help="External reference (order number); the same ref credits only once."
)
@click.option("--memo", default=None, help="Note stored with the ledger entry.")
def credit(username: str, amount: str, ref: str | None, memo: str | None) -> None:
    """Add AMOUNT (currency units, e.g. 100 or 0.5) to USERNAME's balance."""
    micros = _amount(amount, "AMOUNT")
    if micros <= 0:
        raise click.BadParameter("must be positive", param_hint="AMOUNT")
    if ref is not None and (prefix := reserved_ref(ref)) is not None:
        raise click.BadParameter(
            f"references starting with '{prefix}' are written by the platform itself",
            param_hint="--ref",
        )

    async def work(p: Platform) -> tuple[bool, int, int]:
        uid = await AccountService(p).user_id(username)
        done = await p.ledger.credit(uid, micros, ref or f"cli:{uuid.uuid4()}", memo=memo)
        balance, held = await p.accounts.balance(uid)
        return done, balance, held

    done, balance, held = run(work)
    if not done:
        click.echo(f"reference {ref} was already credited; nothing changed")
    click.echo(
        f"{username}: balance {format_amount(balance)}, available {format_amount(balance - held)}"
    )
