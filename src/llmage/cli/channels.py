"""`llmage channel`: upstream channels (provider, base URL, encrypted credential, models)."""

from __future__ import annotations

import json

import click

from llmage.cli.runtime import run
from llmage.providers.registry import CHAT_PROVIDERS
from llmage.services.invalidation import CHANNELS
from llmage.services.platform import Platform


def _pairs(values: tuple[str, ...], what: str) -> dict[str, str]:
    out = {}
    for v in values:
        k, sep, val = v.partition("=")
        if not sep:
            raise click.BadParameter(f"expected KEY=VALUE, got {v!r}", param_hint=what)
        out[k.strip()] = val.strip()
    return out


@click.group("channel")
def channel() -> None:
    """Add, list, enable and disable upstream channels."""


@channel.command("add")
@click.option("--name", required=True, help="Unique channel name.")
@click.option(
    "--provider",
    required=True,
    type=click.Choice(CHAT_PROVIDERS),
    help="Adapter that speaks the upstream's protocol.",
)
@click.option("--base-url", default="", help="Upstream base URL, e.g. https://host/v1.")
@click.option(
    "--api-key",
    default=None,
    envvar="LLMAGE_CHANNEL_API_KEY",
    help="Upstream credential (stored encrypted). Also read from LLMAGE_CHANNEL_API_KEY.",
)
@click.option(
    "--models",
    required=True,
    help="Comma-separated model names or llmids this channel serves; '*' for all.",
)
@click.option(
    "--platform",
    default=None,
    help="Platform name for /{platform}/v1 routes (default: the provider name).",
)
@click.option(
    "--map", "mapping", multiple=True, help="OURS=UPSTREAM model name mapping; repeatable."
)
@click.option(
    "--option",
    "options",
    multiple=True,
    help="Provider option KEY=VALUE (JSON value), e.g. latency_ms=200; repeatable.",
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
    base_url: str,
    api_key: str | None,
    models: str,
    platform: str | None,
    mapping: tuple[str, ...],
    options: tuple[str, ...],
    priority: int,
    weight: int,
) -> None:
    """Add a channel."""
    if provider != "sim" and not base_url.startswith(("http://", "https://")):
        raise click.BadParameter("an http(s) URL is required", param_hint="--base-url")
    opts = {}
    for k, v in _pairs(options, "--option").items():
        try:
            opts[k] = json.loads(v)
        except json.JSONDecodeError:
            opts[k] = v

    async def work(p: Platform) -> int:
        channel_id = await p.channels.add(
            name=name,
            provider=provider,
            platform=platform or provider,
            base_url=base_url,
            credential_enc=p.box.seal(api_key) if api_key else None,
            models=[m.strip() for m in models.split(",") if m.strip()],
            model_map=_pairs(mapping, "--map"),
            options=opts,
            priority=priority,
            weight=weight,
        )
        await p.invalidate(CHANNELS)  # every running instance picks it up within a second
        return channel_id

    channel_id = run(work)
    click.echo(f"added channel {name} (id {channel_id})")


@channel.command("list")
def channel_list() -> None:
    """Channels (credentials are never shown)."""

    async def work(p: Platform) -> None:
        for c in await p.channels.list():
            state = "enabled" if c.enabled else "disabled"
            click.echo(
                f"{c.id:>3} {c.name:<18} {c.provider:<14} {c.platform:<12} {state:<8} "
                f"prio={c.priority} weight={c.weight} {c.base_url or '-'} "
                f"models={','.join(c.models)} key={'set' if c.credential_enc else '-'}"
            )

    run(work)


def _toggle(ident: str, enabled: bool) -> None:
    async def work(p: Platform) -> bool:
        changed = await p.channels.set_enabled(ident, enabled)
        await p.invalidate(CHANNELS)
        return changed

    if not run(work):
        raise click.ClickException(f"no channel {ident!r}")
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
