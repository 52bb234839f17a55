"""`llmage channel`: upstream channels (provider, base URL, encrypted credential, models).

Every operation goes through services/channels.py, like the admin API: the same checks, the
same views. Credentials: `--api-key` (one key), `--access-key` + `--secret-key` (Kling,
Jimeng), `--api-keys k1,k2,...` (a key pool); also read from LLMAGE_CHANNEL_API_KEY,
LLMAGE_CHANNEL_ACCESS_KEY, LLMAGE_CHANNEL_SECRET_KEY so secrets stay out of shell history.
"""

from __future__ import annotations

import json
from typing import Any

import click

from llmage.cli.runtime import run
from llmage.domain.credentials import from_fields
from llmage.providers.registry import PROVIDER_NAMES, PROVIDERS
from llmage.services.channels import ChannelView
from llmage.services.platform import Platform

_PROVIDER_HELP = "; ".join(
    f"{s.name} (platform {s.platform}, {'/'.join(s.credentials) or 'no credential'})"
    for s in PROVIDERS
)


def _pairs(values: tuple[str, ...], what: str) -> dict[str, str]:
    out = {}
    for v in values:
        k, sep, val = v.partition("=")
        if not sep:
            raise click.BadParameter(f"expected KEY=VALUE, got {v!r}", param_hint=what)
        out[k.strip()] = val.strip()
    return out


def _options(values: tuple[str, ...]) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    for k, v in _pairs(values, "--option").items():
        try:
            opts[k] = json.loads(v)
        except json.JSONDecodeError:
            opts[k] = v
    return opts


def _call(work: Any) -> Any:
    return run(work)  # a refused operation (LlmageError) becomes one clear line


def _line(c: ChannelView) -> str:
    state = "enabled" if c.enabled else "disabled"
    return (
        f"{c.id:>3} {c.name:<18} {c.provider:<14} {c.platform:<12} {state:<8} "
        f"prio={c.priority} weight={c.weight} {c.base_url or '-'} "
        f"models={','.join(c.models)} credential={c.credential}"
    )


@click.group("channel")
def channel() -> None:
    """Add, update, list, show, test, enable, disable and remove upstream channels."""


@channel.command("add")
@click.option("--name", required=True, help="Unique channel name.")
@click.option(
    "--provider",
    required=True,
    type=click.Choice(PROVIDER_NAMES),
    help=f"Adapter that speaks the upstream's protocol: {_PROVIDER_HELP}.",
)
@click.option("--base-url", default=None, help="Upstream base URL (default: the provider's).")
@click.option("--api-key", default=None, envvar="LLMAGE_CHANNEL_API_KEY", help="One API key.")
@click.option(
    "--access-key", default=None, envvar="LLMAGE_CHANNEL_ACCESS_KEY", help="Access key (pair)."
)
@click.option(
    "--secret-key", default=None, envvar="LLMAGE_CHANNEL_SECRET_KEY", help="Secret key (pair)."
)
@click.option("--api-keys", default=None, help="A key pool: comma-separated API keys.")
@click.option(
    "--models",
    required=True,
    help="Comma-separated model names or llmids this channel serves; '*' for all.",
)
@click.option(
    "--platform",
    default=None,
    help="Platform name for /{platform}/v1 routes (default: the provider's, e.g. ark → "
    "volcengine).",
)
@click.option(
    "--map", "mapping", multiple=True, help="OURS=UPSTREAM model name mapping; repeatable."
)
@click.option(
    "--option",
    "options",
    multiple=True,
    help="Channel option KEY=VALUE (JSON value), e.g. poll_interval_ms=2000; repeatable. "
    "Routing: max_concurrency (tasks running upstream), max_chat_concurrency, timeout_seconds "
    "(one chat attempt), breaker_failures, breaker_cooldown_seconds, key_cooldown_seconds.",
)
@click.option(
    "--priority", type=int, default=0, show_default=True, help="Higher priorities are tried first."
)
@click.option(
    "--weight",
    type=int,
    default=1,
    show_default=True,
    help="Share of traffic among channels of equal priority.",
)
def channel_add(
    name: str,
    provider: str,
    base_url: str | None,
    api_key: str | None,
    access_key: str | None,
    secret_key: str | None,
    api_keys: str | None,
    models: str,
    platform: str | None,
    mapping: tuple[str, ...],
    options: tuple[str, ...],
    priority: int,
    weight: int,
) -> None:
    """Add a channel (the credential is stored encrypted)."""
    if base_url is not None and not base_url.startswith(("http://", "https://")):
        raise click.BadParameter("an http(s) URL is required", param_hint="--base-url")
    try:
        creds = from_fields(
            api_key=api_key, access_key=access_key, secret_key=secret_key, api_keys=api_keys
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="credentials") from None

    async def work(p: Platform) -> ChannelView:
        return await p.channel_ops.add(
            name=name,
            provider=provider,
            credentials=creds,
            base_url=base_url,
            platform=platform,
            models=[m.strip() for m in models.split(",") if m.strip()],
            model_map=_pairs(mapping, "--map"),
            options=_options(options),
            priority=priority,
            weight=weight,
        )

    view: ChannelView = _call(work)
    click.echo(f"added channel {view.name} (id {view.id}) on platform {view.platform}")


@channel.command("update")
@click.argument("channel_id_or_name")
@click.option(
    "--option",
    "options",
    multiple=True,
    help="Set a channel option KEY=VALUE (JSON value; null removes it), e.g. "
    "max_concurrency=2; repeatable. Other options are kept.",
)
@click.option("--priority", type=int, default=None, help="Higher priorities are tried first.")
@click.option("--weight", type=int, default=None, help="Share among channels of equal priority.")
@click.option("--base-url", default=None, help="Upstream base URL.")
def channel_update(
    channel_id_or_name: str,
    options: tuple[str, ...],
    priority: int | None,
    weight: int | None,
    base_url: str | None,
) -> None:
    """Change a channel's options, priority, weight or base URL (running servers notice
    within seconds)."""
    if base_url is not None and not base_url.startswith(("http://", "https://")):
        raise click.BadParameter("an http(s) URL is required", param_hint="--base-url")
    changes = _options(options)

    async def work(p: Platform) -> ChannelView:
        current = await p.channel_ops.show(channel_id_or_name)
        merged = {**current.options, **changes}
        merged = {k: v for k, v in merged.items() if v is not None}
        return await p.channel_ops.update(
            str(current.id),
            options=merged if changes else None,
            priority=priority,
            weight=weight,
            base_url=base_url,
        )

    view: ChannelView = _call(work)
    click.echo(f"updated channel {view.name}: options {json.dumps(view.options, sort_keys=True)}")


@channel.command("list")
def channel_list() -> None:
    """Channels (credentials are never shown, only their type)."""

    async def work(p: Platform) -> list[ChannelView]:
        return await p.channel_ops.views()

    for c in _call(work):
        click.echo(_line(c))


@channel.command("show")
@click.argument("channel_id_or_name")
def channel_show(channel_id_or_name: str) -> None:
    """One channel, as JSON (no secret)."""

    async def work(p: Platform) -> ChannelView:
        return await p.channel_ops.show(channel_id_or_name)

    click.echo(json.dumps(_call(work).as_dict(), indent=2, ensure_ascii=False))


@channel.command("test")
@click.argument("channel_id_or_name")
def channel_test(channel_id_or_name: str) -> None:
    """Make a real minimal upstream call (a chat ping, or an authenticated list/GET)."""

    async def work(p: Platform) -> Any:
        return await p.channel_ops.test(channel_id_or_name)

    result = _call(work)
    if result.ok:
        click.echo(f"ok: {result.call} answered in {result.latency_ms} ms")
        return
    raise click.ClickException(f"failed ({result.call}, {result.kind or 'error'}): {result.detail}")


def _toggle(ident: str, enabled: bool) -> None:
    async def work(p: Platform) -> ChannelView:
        return await p.channel_ops.set_enabled(ident, enabled)

    _call(work)
    click.echo(f"channel {ident} {'enabled' if enabled else 'disabled'}")


@channel.command("disable")
@click.argument("channel_id_or_name")
def channel_disable(channel_id_or_name: str) -> None:
    """Stop routing to a channel (running servers notice within seconds)."""
    _toggle(channel_id_or_name, False)


@channel.command("enable")
@click.argument("channel_id_or_name")
def channel_enable(channel_id_or_name: str) -> None:
    """Route to a disabled channel again."""
    _toggle(channel_id_or_name, True)


@channel.command("remove")
@click.argument("channel_id_or_name")
@click.option(
    "--force", is_flag=True, help="Remove even with open tasks (they fail and are refunded)."
)
def channel_remove(channel_id_or_name: str, force: bool) -> None:
    """Delete a channel."""

    async def work(p: Platform) -> ChannelView:
        return await p.channel_ops.remove(channel_id_or_name, force=force)

    view = _call(work)
    click.echo(f"removed channel {view.name}")
