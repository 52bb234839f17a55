"""`llmage tasks list|show|cancel`, and the HTTP client the generation commands share.

`list` and `show` read the database directly, like the other admin commands (the native API has
no listing route, and an operator wants every user's tasks with their money). `cancel` goes
through the running server's API with the task owner's key: the server releases the hold and
tells the upstream to stop, which a database edit could not do.

The client (`Api`, `Ui`, `follow`) talks to a running server: errors become one `Error:` line,
progress goes to stderr (rich bars on a terminal, plain lines elsewhere so CI logs stay readable).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from llmage.cli.locate import default_base_url
from llmage.cli.runtime import run
from llmage.domain.money import format_amount
from llmage.domain.stored_files import files_record
from llmage.domain.tasks import TaskStatus
from llmage.services.accounts import AccountService
from llmage.services.platform import Platform

if TYPE_CHECKING:
    import httpx

    from llmage.domain.tasks import TaskRow

F = TypeVar("F", bound=Callable[..., Any])
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")


def api_options(f: F) -> F:
    """--base-url and --api-key, also read from LLMAGE_BASE_URL and LLMAGE_API_KEY."""
    f = click.option(
        "--api-key",
        envvar="LLMAGE_API_KEY",
        required=True,
        show_envvar=True,
        help="An API key (sk-...) of the account that pays and owns the task.",
    )(f)
    return click.option(
        "--base-url",
        envvar="LLMAGE_BASE_URL",
        default=default_base_url,
        show_default="LLMAGE_PUBLIC_BASE_URL, else LLMAGE_HOST:LLMAGE_PORT, else the last "
        "started server's address, else http://127.0.0.1:8000",
        show_envvar=True,
        help="Where the llmage server answers.",
    )(f)


def one_line(text: str) -> str:
    return " ".join(text.split())


def _error_text(resp: httpx.Response) -> str:
    """The server's own sentence: native `{"error": "..."}` or an OpenAI-style error object."""
    try:
        body = resp.json()
    except ValueError:
        body = None
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        err = err.get("message")
    message = str(err) if err else (resp.text.strip()[:200] or resp.reason_phrase)
    return f"{one_line(message)} (HTTP {resp.status_code})"


class Api:
    """A running server's native API. Every failure becomes one ClickException line."""

    def __init__(self, base_url: str, api_key: str, timeout: float = 60.0) -> None:
        try:
            import httpx
        except ImportError as exc:  # a dev dependency in older installs
            raise click.ClickException("this command needs httpx: pip install httpx") from exc
        self._httpx = httpx
        self.base_url = base_url.rstrip("/")
        limits = httpx.Timeout(timeout, connect=10.0)
        auth = {"Authorization": f"Bearer {api_key}"}
        self._client = httpx.Client(base_url=self.base_url, headers=auth, timeout=limits)
        # Media links are signed and may point at another host: they never get the key.
        self._media = httpx.Client(timeout=limits, follow_redirects=True)

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.close()
        self._media.close()

    def _unreachable(self, exc: Exception) -> click.ClickException:
        return click.ClickException(
            f"cannot reach {self.base_url}: {one_line(str(exc)) or type(exc).__name__}"
        )

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            resp = self._client.request(method, path, **kwargs)
        except self._httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
        if resp.status_code >= 400:
            raise click.ClickException(_error_text(resp))
        try:
            body = resp.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise click.ClickException(f"unexpected answer from {path} (HTTP {resp.status_code})")
        return body

    def download(self, url: str, label: str, target: Callable[[str], Path], ui: Ui) -> Path:
        """Stream `url` to the path `target(content_type)` picks, through a `.part` file."""
        if url.startswith("/"):
            url = self.base_url + url
        part: Path | None = None
        try:
            with self._media.stream("GET", url) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise click.ClickException(f"download of the {label}: {_error_text(resp)}")
                ctype = resp.headers.get("content-type", "").split(";")[0].strip()
                dest = target(ctype)
                dest.parent.mkdir(parents=True, exist_ok=True)
                part = dest.with_name(dest.name + ".part")
                size = int(resp.headers.get("content-length") or 0) or None
                with ui.transfer(label, size) as advance, part.open("wb") as fh:
                    for chunk in resp.iter_bytes(1 << 16):
                        fh.write(chunk)
                        advance(len(chunk))
            part.replace(dest)
            return dest
        except self._httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
        finally:
            if part is not None:
                part.unlink(missing_ok=True)


class Ui:
    """Progress on stderr: live rich bars on a terminal, plain lines anywhere else."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.live = self.console.is_terminal

    def say(self, text: str) -> None:
        click.echo(text, err=True)

    @contextmanager
    def status(self, label: str) -> Iterator[Callable[[str, int | None], None]]:
        """Yields update(status, percent or None) for a task being followed."""
        if not self.live:
            start, last = time.monotonic(), [""]

            def line(status: str, pct: int | None) -> None:
                text = status if pct is None else f"{status} {pct}%"
                if text != last[0]:
                    last[0] = text
                    self.say(f"{label}: {text} ({time.monotonic() - start:.0f} s)")

            yield line
            return
        from rich import progress as rp

        columns = (rp.SpinnerColumn(), rp.TextColumn("{task.description}"), rp.BarColumn())
        status_col = rp.TextColumn("{task.fields[status]}")
        with rp.Progress(*columns, status_col, rp.TimeElapsedColumn(), console=self.console) as bar:
            tid = bar.add_task(label, total=None, status="submitted")

            def update(status: str, pct: int | None) -> None:
                done = 100 if status == "SUCCEEDED" else pct
                bar.update(tid, status=status, total=None if done is None else 100)
                if done is not None:
                    bar.update(tid, completed=done)

            yield update

    @contextmanager
    def transfer(self, label: str, size: int | None) -> Iterator[Callable[[int], None]]:
        """Yields advance(nbytes) for a download."""
        if not self.live:
            yield lambda n: None
            return
        from rich import progress as rp

        cols = (rp.TextColumn(label), rp.BarColumn(), rp.DownloadColumn(), rp.TransferSpeedColumn())
        with rp.Progress(*cols, console=self.console) as bar:
            tid = bar.add_task(label, total=size)
            yield lambda n: bar.advance(tid, n)


def follow(api: Api, taskid: str, ui: Ui, timeout: float) -> dict[str, Any]:
    """Poll the task until it is terminal; its last native view."""
    deadline = time.monotonic() + timeout
    delay = 0.3
    with ui.status(f"task {taskid}") as update:
        while True:
            view = api.call("GET", "/llmage/tasks", params={"taskid": taskid})
            status = str(view.get("status") or "?").upper()
            pct = view.get("progress")
            update(status, pct if isinstance(pct, int) else None)
            if status in TERMINAL:
                return view
            if time.monotonic() >= deadline:
                raise click.ClickException(
                    f"task {taskid} is still {status} after {timeout:g} s; it keeps running"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 2.0)


# -- llmage tasks --------------------------------------------------------------------------------


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


# Task ids may start with "-" (URL-safe alphabet): read an unknown "-..." as the id.
_ID_ARG = {"ignore_unknown_options": True}


def _money(micros: int | None) -> str:
    return "-" if micros is None else format_amount(micros)


@click.group("tasks")
def tasks() -> None:
    """List, show and cancel video and image generation tasks.

    `list` and `show` read the database (like `user list`): every user's tasks, with their hold
    and charge. `cancel` asks the running server, with the owner's API key.

    \b
    Example:
      llmage tasks list --user alice --status RUNNING
      llmage tasks show 3qHbX0Yd1cVt4mL9nE2aW
      LLMAGE_API_KEY=sk-... llmage tasks cancel 3qHbX0Yd1cVt4mL9nE2aW
    """


@tasks.command("list", short_help="Tasks of every user, newest first (from the database).")
@click.option("--user", "username", default=None, help="Only this user's tasks (name or id).")
@click.option(
    "--status",
    type=click.Choice([s.value for s in TaskStatus], case_sensitive=False),
    default=None,
    help="Only tasks in this status.",
)
@click.option("--kind", type=click.Choice(["video", "image"]), default=None, help="Only this kind.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
def tasks_list(username: str | None, status: str | None, kind: str | None, limit: int) -> None:
    """Newest tasks first: id, user, model, status, money held and charged.

    \b
    Example:
      llmage tasks list --user alice --status FAILED --limit 50
    """
    wanted = TaskStatus(status.upper()) if status else None

    async def work(p: Platform) -> tuple[list[TaskRow], dict[int, str]]:
        uid = await AccountService(p).user_id(username) if username else None
        rows: list[TaskRow] = []
        after: str | None = None
        while len(rows) < limit:  # the repository pages by time; the status filter is ours
            page = await p.task_repo.page(
                uid, kind=kind, limit=200, after=after, include_deleted=True
            )
            rows += [r for r in page if wanted is None or r.status == wanted]
            if len(page) < 200:
                break
            after = page[-1].id
        names = {u.id: u.username for u, _, _ in await p.accounts.list_users()}
        return rows[:limit], names

    rows, names = run(work)
    click.echo(
        f"{'task':<24} {'user':<14} {'kind':<5} {'model':<28} {'status':<10} {'quoted':>12} "
        f"{'charged':>12} {'created':<20}"
    )
    for r in rows:
        state = r.status.value + ("*" if r.deleted_at else "")
        click.echo(
            f"{r.id:<24} {names.get(r.user_id, str(r.user_id))[:14]:<14} {r.kind:<5} "
            f"{r.model[:28]:<28} {state:<10} {_money(r.quoted):>12} {_money(r.charged):>12} "
            f"{_when(r.created_at):<20}"
        )
    if not rows:
        click.echo("no tasks", err=True)


@tasks.command(
    "show",
    short_help="Every field of one task, its hold and charge included.",
    context_settings=_ID_ARG,
)
@click.argument("taskid")
def tasks_show(taskid: str) -> None:
    """Every field of TASKID, with its hold and charge, from the database.

    \b
    Example:
      llmage tasks show 3qHbX0Yd1cVt4mL9nE2aW
    """

    async def work(p: Platform) -> tuple[TaskRow, str, dict[str, Any] | None] | None:
        row = await p.task_repo.get(taskid)
        if row is None:
            return None
        user = await p.accounts.user_by_id(row.user_id)
        hold = await p.holds.get(row.hold_id)
        summary = None
        if hold is not None:
            summary = {
                "state": hold.state,
                "amount": hold.amount,
                "captured": hold.captured,
                "settled_at": hold.settled_at,
            }
        return row, user.username if user else "?", summary

    found = run(work)
    if found is None:
        raise click.ClickException(f"no task '{taskid}'")
    r, username, hold = found
    hold_text = "-"
    if hold is not None:
        hold_text = (
            f"{r.hold_id} {hold['state']}: amount {_money(hold['amount'])}, captured "
            f"{_money(hold['captured'])}, settled {_when(hold['settled_at'])}"
        )
    lines = [
        ("task", r.id),
        ("user", f"{username} (id {r.user_id}), key {r.key_id if r.key_id is not None else '-'}"),
        ("kind", f"{r.kind}, dialect {r.dialect}, platform {r.platform or '-'}"),
        ("model", f"{r.model} (llmid {r.llmid})"),
        ("status", f"{r.status.value}, progress {r.progress}%"),
        ("error", f"{r.error_code}: {r.error_message}" if r.error_code else "-"),
        ("quoted", _money(r.quoted)),
        ("charged", _money(r.charged)),
        ("hold", hold_text),
        (
            "channel",
            f"{r.channel_id or '-'} ({r.provider or '-'}), upstream id {r.upstream_id or '-'}",
        ),
        ("created", _when(r.created_at)),
        ("updated", _when(r.updated_at)),
        ("finished", _when(r.finished_at)),
        ("deadline", _when(r.deadline_at)),
        ("polls", f"{r.polls}, next {_when(r.next_poll_at)}"),
        ("deleted", _when(r.deleted_at)),
        ("idempotency", r.idempotency_key or "-"),
        ("callback", r.callback_url or "-"),
        ("remix of", r.remix_of or "-"),
        ("params", json.dumps(r.params, ensure_ascii=False, sort_keys=True)),
        ("usage", json.dumps(r.usage, ensure_ascii=False, sort_keys=True) if r.usage else "-"),
        ("inputs", json.dumps(files_record(r.inputs), sort_keys=True) if r.inputs else "-"),
        ("outputs", json.dumps(files_record(r.outputs), sort_keys=True) if r.outputs else "-"),
    ]
    for label, value in lines:
        click.echo(f"{label + ':':<13}{value}")


@tasks.command(
    "cancel",
    short_help="Cancel a task through the server, with its owner's key.",
    context_settings=_ID_ARG,
)
@click.argument("taskid")
@api_options
def tasks_cancel(taskid: str, base_url: str, api_key: str) -> None:
    """Cancel TASKID through the running server; its hold is released in full.

    This goes through the HTTP API (POST /llmage/tasks/cancel), not the database, so the
    server can stop the upstream job too. It needs the API key of the user who owns the task
    (--api-key or LLMAGE_API_KEY): another user's task reads as not found. Cancelling a task
    that already finished changes nothing and exits 1.

    \b
    Example:
      LLMAGE_API_KEY=sk-... llmage tasks cancel 3qHbX0Yd1cVt4mL9nE2aW
    """
    with Api(base_url, api_key) as api:
        view = api.call("POST", "/llmage/tasks/cancel", params={"taskid": taskid})
    status = str(view.get("status") or "?").upper()
    if status != "CANCELLED":
        raise click.ClickException(f"task {taskid} already finished ({status}); nothing cancelled")
    click.echo(f"task {taskid} CANCELLED; its hold is released")
