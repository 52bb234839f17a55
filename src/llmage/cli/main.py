"""The `llmage` command."""

from __future__ import annotations

import os

import click

from llmage.cli.accounts import credit, key, user
from llmage.cli.channels import channel
from llmage.cli.generate import image, video
from llmage.cli.locate import (
    choose,
    default_base_url,
    marker_path,
    read_marker,
    settings_for_admin,
    write_marker,
)
from llmage.cli.runtime import run
from llmage.cli.tasks import tasks
from llmage.observability.logs import configure
from llmage.services.platform import Platform, upgrade_schema
from llmage.settings import get_settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--init",
    is_flag=True,
    help="Let an admin command create a new, empty database in ./var when none is found.",
)
def cli(init: bool) -> None:
    """llmage: one billed API in front of many chat, image and video models.

    Configuration comes from LLMAGE_* environment variables or a TOML file named by
    LLMAGE_CONFIG (e.g. LLMAGE_DATA_DIR, LLMAGE_DATABASE_URL). Every command upgrades the
    database schema in place first.

    Admin commands use ./var when it holds a database, else the data directory of the last
    server started (see `llmage where`); they never create an empty one without --init.

    Start here:  llmage serve --demo
    """


@cli.command()
@click.option("--host", default=None, help="Bind address (default LLMAGE_HOST or 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default LLMAGE_PORT or 8000).")
@click.option(
    "--demo",
    is_flag=True,
    help="Create a demo user with balance, an API key and sim channels; print them.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Processes serving one port (PostgreSQL only; SQLite has one writer).",
)
@click.option(
    "--poller-only",
    is_flag=True,
    help="Run only the task poller, webhooks and sweepers; HTTP answers /healthz and /metrics "
    "(same as LLMAGE_SERVE_API=false). API-only instances: LLMAGE_TASK_WORKERS=false.",
)
def serve(host: str | None, port: int | None, demo: bool, workers: int, poller_only: bool) -> None:
    """Run the HTTP server (the database is migrated first)."""
    import uvicorn

    from llmage.app import create_app
    from llmage.cli.demo import prepare_demo, print_demo

    if poller_only:
        # Through the environment: worker processes build their settings from it.
        os.environ["LLMAGE_SERVE_API"] = "false"
        get_settings.cache_clear()
    settings = get_settings()
    if workers > 1 and settings.is_sqlite:
        raise click.UsageError(
            f"--workers {workers} needs PostgreSQL (set LLMAGE_DATABASE_URL): a SQLite database "
            "has one writer, so more processes would only queue behind each other. "
            "Use --workers 1, or move to PostgreSQL."
        )
    if not settings.serve_api and not settings.task_workers:
        raise click.UsageError(
            "this instance would do nothing: LLMAGE_SERVE_API and LLMAGE_TASK_WORKERS are "
            "both false"
        )
    configure(settings.log_level, settings.log_json)
    host = host or settings.host
    port = port or settings.port
    write_marker(settings, host, port)  # lets admin commands elsewhere find this database
    if demo:

        async def work(p: Platform) -> tuple[str, int]:
            key = await prepare_demo(p)
            user_row = await p.accounts.user_by_name("demo")
            assert user_row is not None
            balance, held = await p.accounts.balance(user_row.id)
            return key, balance - held

        demo_key, balance = run(work, settings)
        print_demo(demo_key, f"http://{host}:{port}", balance)
    if workers > 1:
        # Each worker process builds its own app from the same environment; the parent binds
        # the one port and hands it to all of them.
        uvicorn.run(
            "llmage.app:create_worker_app",
            factory=True,
            workers=workers,
            # A worker still importing on a busy machine is not a hung one.
            timeout_worker_healthcheck=60,
            host=host,
            port=port,
            loop="uvloop",
            http="httptools",
            access_log=False,
            log_config=None,
            timeout_graceful_shutdown=30,
        )
        return
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=30,
    )


@cli.command()
def migrate() -> None:
    """Upgrade the database schema to the newest version (in place)."""
    upgrade_schema(settings_for_admin())
    click.echo("database is at the newest schema")


@cli.command()
def where() -> None:
    """Show which data directory and server address the commands here would use."""
    marker = read_marker()
    try:
        s = choose(init=False).settings
        db = s.effective_database_url
        if "@" in db:  # user:password@host: never print the password
            scheme, _, rest = db.partition("://")
            db = f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
        click.echo(f"data dir:  {s.data_dir.resolve()}")
        click.echo(f"database:  {db}")
    except click.ClickException as exc:
        click.echo(f"database:  none found ({exc.message})")
    click.echo(f"server:    {default_base_url()}")
    if marker:
        click.echo(
            f"last serve: from {marker.get('cwd')} with data dir {marker.get('data_dir')} "
            f"(recorded in {marker_path()})"
        )


@cli.command()
def reconcile() -> None:
    """Check every money invariant; exit 1 and list offending rows if any is broken."""
    from llmage.billing.reconcile import CHECKS

    violations = run(lambda p: p.reconcile())
    for v in violations:
        click.secho(f"BROKEN: {v.rule}", fg="red", err=True)
        for row in v.rows:
            click.echo(f"  {row}", err=True)
    if violations:
        raise SystemExit(1)
    click.echo(f"ledger consistent: {len(CHECKS)} invariants hold")


@cli.command("reload-catalog")
def reload_catalog() -> None:
    """Make every running instance re-read its catalog (LLMAGE_CATALOG_FILE): new models and
    prices apply within a second with LLMAGE_REDIS_URL set (else when each instance restarts)."""
    from llmage.services.invalidation import CATALOG

    async def work(p: Platform) -> int:
        await p.invalidate(CATALOG)
        return len(p.catalog)

    n = run(work)
    click.echo(f"announced a catalog of {n} models to every instance")


cli.add_command(user)
cli.add_command(key)
cli.add_command(credit)
cli.add_command(channel)
cli.add_command(video)
cli.add_command(image)
cli.add_command(tasks)


def main() -> None:
    cli(prog_name="llmage")
