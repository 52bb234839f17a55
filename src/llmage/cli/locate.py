"""Which database an admin command works on, and where the server answers.

The default data directory is `./var`, relative to where a command runs: an admin command run
from another directory used to create a second, empty database there and report success on it.
Now `llmage serve` leaves a marker (`$XDG_CONFIG_HOME/llmage/server.json`, default
`~/.config/llmage/`) naming its data directory and address, and an admin command decides:

1. `LLMAGE_DATA_DIR`, `LLMAGE_DATABASE_URL` or `LLMAGE_CONFIG` set: that database, as told
   (a note on stderr when it creates a new SQLite file);
2. else `./var/llmage.db` exists: that one;
3. else the marker's data directory, with a note on stderr saying so;
4. else nothing is created: the command stops and says how to choose (`llmage --init ...`
   creates a new empty database in ./var on purpose).

The marker holds no secret: a server whose database URL came from its environment is recorded
as such, and the command asks for the same variable instead of guessing.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from llmage.settings import Settings, get_settings

EXPLICIT = ("LLMAGE_DATA_DIR", "LLMAGE_DATABASE_URL", "LLMAGE_CONFIG")


def marker_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "llmage" / "server.json"


def write_marker(settings: Settings, host: str, port: int) -> Path | None:
    """Record the data directory and address of the server being started (best effort)."""
    client_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
    record = {
        "data_dir": str(settings.data_dir.resolve()),
        "database": "sqlite" if settings.database_url is None else "environment",
        "base_url": settings.public_base_url or f"http://{client_host}:{port}",
        "cwd": str(Path.cwd()),
        "pid": os.getpid(),
        "started_at": int(time.time()),
    }
    path = marker_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".server.json.{os.getpid()}")
        tmp.write_text(json.dumps(record, indent=2))
        tmp.replace(path)
    except OSError:
        return None
    return path


def read_marker() -> dict[str, Any] | None:
    try:
        data = json.loads(marker_path().read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def default_base_url() -> str:
    """Where client commands (video, image, tasks cancel) find the server when
    LLMAGE_BASE_URL is unset: LLMAGE_PUBLIC_BASE_URL, else LLMAGE_HOST/LLMAGE_PORT when set,
    else the address the last started server recorded, else http://127.0.0.1:8000."""
    s = get_settings()
    if s.public_base_url:
        return s.public_base_url.rstrip("/")
    if "LLMAGE_PORT" not in os.environ and "LLMAGE_HOST" not in os.environ:
        marker = read_marker()
        if marker and isinstance(marker.get("base_url"), str):
            return str(marker["base_url"])
    host = "127.0.0.1" if s.host in ("0.0.0.0", "::", "") else s.host  # noqa: S104
    return f"http://{host}:{s.port}"


@dataclass(frozen=True)
class Choice:
    settings: Settings
    note: str | None  # said on stderr before the command runs


def _sqlite_file(settings: Settings) -> Path | None:
    if settings.database_url is not None:
        url = settings.database_url
        if not url.startswith("sqlite"):
            return None
        return Path(url.split("///", 1)[1]) if "///" in url else None
    return settings.data_dir / "llmage.db"


def choose(init: bool) -> Choice:
    settings = get_settings()
    if any(os.environ.get(name) for name in EXPLICIT):
        db = _sqlite_file(settings)
        note = None
        if db is not None and not db.exists():
            note = f"llmage: creating a new database at {db.resolve()}"
        return Choice(settings, note)
    here = settings.data_dir / "llmage.db"
    if here.exists():
        return Choice(settings, None)
    if init:
        return Choice(settings, f"llmage: creating a new database at {here.resolve()}")
    marker = read_marker()
    if marker:
        data_dir = Path(str(marker.get("data_dir", "")))
        if marker.get("database") == "environment":
            raise click.ClickException(
                f"no database in {settings.data_dir.resolve()}; the server started from "
                f"{marker.get('cwd')} uses LLMAGE_DATABASE_URL from its environment: "
                "set the same LLMAGE_DATABASE_URL (and LLMAGE_SECRET_KEY) here"
            )
        if (data_dir / "llmage.db").exists():
            chosen = Settings(data_dir=data_dir)
            return Choice(
                chosen,
                f"llmage: using the server's data directory {data_dir} "
                f"(recorded in {marker_path()}; set LLMAGE_DATA_DIR to choose another)",
            )
    raise click.ClickException(
        f"no llmage database at {here.resolve()}. Run this in the directory where you start "
        "the server, or set LLMAGE_DATA_DIR to its data directory (the demo uses "
        "<checkout>/var); `llmage --init ...` creates a new, empty database here instead."
    )


def settings_for_admin() -> Settings:
    """The settings an admin command should use (see the module docstring); says on stderr
    which database when that is not the obvious one."""
    ctx = click.get_current_context(silent=True)
    init = bool(ctx and ctx.find_root().params.get("init"))
    choice = choose(init)
    if choice.note:
        click.echo(choice.note, err=True)
    return choice.settings
