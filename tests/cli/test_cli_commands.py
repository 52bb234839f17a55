"""The real `llmage` executable, as an operator runs it: a fresh data directory (SQLite by
default) and, as a second variant, a fresh PostgreSQL database via LLMAGE_DATABASE_URL."""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from llmage.auth.crypto import CredentialBox
from llmage.db.migrate import alembic_config
from support.backends import BACKENDS, database_url

LLMAGE = str(Path(sys.executable).with_name("llmage"))
SECRET = "SECRET-upstream-" + secrets.token_hex(8)


def base_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMAGE_")}
    env.update(
        LLMAGE_DATA_DIR=str(data_dir),
        # `serve` records its data directory here: keep it out of the real home directory.
        XDG_CONFIG_HOME=str(data_dir / "xdg-config"),
        LLMAGE_LOG_LEVEL="WARNING",
        PYTHONIOENCODING="utf-8",
        PYTHONUNBUFFERED="1",
    )
    return env


@dataclass
class Cli:
    backend: str
    url: str  # the database the commands use (for reading it back directly)
    data_dir: Path
    env: dict[str, str]

    def run(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [LLMAGE, *args],
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=60,
            check=False,
            stdin=subprocess.DEVNULL,
        )

    def ok(self, *args: str) -> str:
        p = self.run(*args)
        assert p.returncode == 0, f"llmage {' '.join(args)} failed:\n{p.stdout}\n{p.stderr}"
        assert "Traceback" not in p.stderr
        return p.stdout

    def parallel(self, commands: Sequence[Sequence[str]]) -> list[subprocess.CompletedProcess[str]]:
        """Independent commands at once (each is a ~1 s Python start-up)."""
        procs = [
            subprocess.Popen(
                [LLMAGE, *args],
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                text=True,
                encoding="utf-8",
            )
            for args in commands
        ]
        out = []
        for args, proc in zip(commands, procs, strict=True):
            stdout, stderr = proc.communicate(timeout=60)
            out.append(
                subprocess.CompletedProcess([LLMAGE, *args], proc.returncode, stdout, stderr)
            )
        return out

    def query(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        async def go() -> list[tuple[Any, ...]]:
            engine = create_async_engine(self.url)
            try:
                async with engine.connect() as conn:
                    return [tuple(r) for r in (await conn.execute(text(sql), params)).all()]
            finally:
                await engine.dispose()

        return asyncio.run(go())


@pytest.fixture(scope="module", params=BACKENDS)
def cli(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    tmp = tmp_path_factory.mktemp(f"cli-{request.param}")
    with database_url(request.param, tmp) as url:
        env = base_env(tmp)
        if request.param != "sqlite":
            env["LLMAGE_DATABASE_URL"] = url
        # SQLite: no URL given, so the default <data_dir>/llmage.db is used, i.e. `url`.
        yield Cli(request.param, url, tmp, env)


def assert_one_line_error(p: subprocess.CompletedProcess[str], *phrases: str) -> None:
    assert p.returncode != 0, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr, p.stderr
    assert "Traceback" not in p.stdout, p.stdout
    errors = [line for line in p.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, p.stderr
    for phrase in phrases:
        assert phrase in errors[0], p.stderr
    assert SECRET not in p.stdout + p.stderr


# -- help ----------------------------------------------------------------------------------------

HELP = {
    (): ("llmage: one billed API", "serve --demo", "LLMAGE_DATA_DIR"),
    ("user",): ("Create and list users",),
    ("key",): ("API keys", "stored hashed"),
    ("channel",): ("upstream channels",),
    ("credit",): ("Add AMOUNT", "--ref", "--memo"),
}
COMMANDS = {
    (): (
        "serve",
        "migrate",
        "reconcile",
        "user",
        "key",
        "credit",
        "channel",
        "video",
        "image",
        "tasks",
        "where",
    ),
    ("tasks",): ("list", "show", "cancel"),
    ("user",): ("create", "list"),
    ("key",): ("create", "list", "revoke"),
    ("channel",): ("add", "list", "show", "test", "enable", "disable", "remove"),
}


def test_help_on_every_group_explains_itself(tmp_path: Path) -> None:
    runner = Cli("sqlite", "", tmp_path, base_env(tmp_path))
    results = runner.parallel([[*cmd, "--help"] for cmd in HELP])
    for (cmd, phrases), p in zip(HELP.items(), results, strict=True):
        assert p.returncode == 0, p.stderr
        assert p.stdout.startswith("Usage: llmage" + "".join(f" {c}" for c in cmd)), p.stdout
        for phrase in phrases:
            assert phrase in p.stdout, (cmd, p.stdout)
        if cmd not in COMMANDS:
            continue
        # Every subcommand is listed with a summary that reads as a phrase, not a fragment.
        listed = p.stdout.split("Commands:", 1)[1].strip().splitlines()
        names = []
        for line in listed:
            name, _, summary = line.strip().partition(" ")
            summary = summary.strip()
            assert name and summary, (cmd, line)
            names.append(name)
            if not summary.endswith("..."):
                # click cuts a summary at the first ". ": a cut inside parentheses reads as a
                # broken sentence ("Add AMOUNT (currency units, e.g.").
                assert summary.count("(") == summary.count(")"), (cmd, line)
        assert set(names) >= set(COMMANDS[cmd]), (cmd, names)
    assert not any(tmp_path.iterdir()), "--help must not create anything"


# -- migrate -------------------------------------------------------------------------------------


def test_migrate(cli: Cli) -> None:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(cli.url)).get_current_head()
    out = cli.ok("migrate")
    assert "newest schema" in out
    assert cli.query("SELECT version_num FROM alembic_version") == [(head,)]
    for table in ("users", "accounts", "api_keys", "ledger_entries", "holds", "usage_records"):
        assert cli.query(f"SELECT COUNT(*) FROM {table}")[0][0] >= 0


# -- users and keys ------------------------------------------------------------------------------


def test_users_and_keys(cli: Cli) -> None:
    out = cli.ok("user", "create", "alice", "--password", "password-123")
    m = re.search(r"created user alice \(id (\d+), role user\)", out)
    assert m, out
    alice_id = int(m.group(1))
    # The password is stored hashed.
    [(pw_hash,)] = cli.query("SELECT password_hash FROM users WHERE id = :i", i=alice_id)
    assert "password-123" not in pw_hash

    dup, quiet, loud = cli.parallel(
        [
            ["user", "create", "alice", "--password", "password-123"],
            ["key", "create", "alice", "--name", "x", "--quiet"],
            ["key", "create", "alice", "--name", "y", "--spend-limit", "2.5"],
        ]
    )
    assert_one_line_error(dup, "already exists")
    assert quiet.returncode == 0, quiet.stderr
    assert re.fullmatch(r"sk-[A-Za-z0-9]{48}\n", quiet.stdout), repr(quiet.stdout)
    key = quiet.stdout.strip()
    assert loud.returncode == 0, loud.stderr
    m = re.search(r"key (\d+) for alice", loud.stdout)
    assert m, loud.stdout
    y_id = int(m.group(1))
    key_y = loud.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"sk-[A-Za-z0-9]{48}", key_y) and key_y != key

    users, keys = cli.parallel([["user", "list"], ["key", "list"]])
    [row] = [line for line in users.stdout.splitlines() if " alice " in line]
    assert row.split() == [str(alice_id), "alice", "user", "0.000000", "0.000000", "0.000000"]
    assert keys.returncode == 0, keys.stderr
    assert key not in keys.stdout and key_y not in keys.stdout
    for k in (key, key_y):
        assert f"{k[:7]}…{k[-4:]}" in keys.stdout
        assert k[7:-4] not in keys.stdout  # not even the middle of it
    [y_row] = [line for line in keys.stdout.splitlines() if line.split()[:1] == [str(y_id)]]
    assert "active" in y_row and "2.500000" in y_row

    # Keys are stored hashed: the secret is in no column of any key row.
    for db_row in cli.query("SELECT * FROM api_keys"):
        for value in db_row:
            assert key not in str(value) and key_y not in str(value)

    assert f"revoked key {y_id}" in cli.ok("key", "revoke", str(y_id))
    mine, again = cli.parallel([["key", "list", "--user", "alice"], ["key", "revoke", str(y_id)]])
    assert_one_line_error(again, f"no active key {y_id}")
    lines = mine.stdout.strip().splitlines()
    assert len(lines) == 1 + 2  # header + alice's two keys
    [y_row] = [line for line in lines if line.split()[:1] == [str(y_id)]]
    assert "revoked" in y_row


def test_credit_once_per_ref(cli: Cli) -> None:
    cli.ok("user", "create", "bob", "--password", "password-456")
    out = cli.ok("credit", "bob", "12.5")
    assert "bob: balance 12.500000, available 12.500000" in out
    ref = "order-" + secrets.token_hex(4)
    first = cli.ok("credit", "bob", "5.000001", "--ref", ref, "--memo", "alipay")
    assert "balance 17.500001" in first and "already" not in first
    second = cli.ok("credit", "bob", "5.000001", "--ref", ref)
    assert "already credited" in second
    assert "balance 17.500001" in second
    [row] = [line for line in cli.ok("user", "list").splitlines() if " bob " in line]
    assert row.split()[-3:] == ["17.500001", "0.000000", "17.500001"]
    entries = cli.query(
        "SELECT e.kind, e.delta_balance, e.ref, e.memo FROM ledger_entries e JOIN users u"
        " ON u.id = e.user_id WHERE u.username = 'bob' ORDER BY e.id"
    )
    assert [(k, d) for k, d, _, _ in entries] == [("topup", 12_500_000), ("topup", 5_000_001)]
    assert entries[1][2:] == (ref, "alipay")


def test_channels_never_show_the_secret(cli: Cli) -> None:
    out = cli.ok(
        "channel",
        "add",
        "--name",
        "up1",
        "--provider",
        "openai_compat",
        "--base-url",
        "http://127.0.0.1:9/v1",
        "--api-key",
        SECRET,
        "--models",
        "a,b",
    )
    m = re.search(r"added channel up1 \(id (\d+)\)", out)
    assert m, out
    ch_id = m.group(1)
    assert SECRET not in out

    listing = cli.run("channel", "list")
    assert listing.returncode == 0
    assert SECRET not in listing.stdout + listing.stderr
    [row] = [line for line in listing.stdout.splitlines() if " up1 " in line]
    assert "enabled" in row and "models=a,b" in row and "credential=key" in row
    assert "http://127.0.0.1:9/v1" in row

    # At rest: not plaintext, and sealed with this deployment's key.
    [(enc,)] = cli.query("SELECT credential_enc FROM channels WHERE name = 'up1'")
    assert enc and SECRET not in enc
    box = CredentialBox.from_settings(None, cli.data_dir)
    assert box.open(enc) == SECRET

    assert "channel up1 disabled" in cli.ok("channel", "disable", "up1")
    [(enabled,)] = cli.query("SELECT enabled FROM channels WHERE name = 'up1'")
    assert not enabled
    assert f"channel {ch_id} enabled" in cli.ok("channel", "enable", ch_id)
    [(enabled,)] = cli.query("SELECT enabled FROM channels WHERE name = 'up1'")
    assert enabled


def test_channel_update_sets_routing_options(cli: Cli) -> None:
    cli.ok("channel", "add", "--name", "lim1", "--provider", "openai_compat", "--base-url",
           "http://127.0.0.1:9/v1", "--api-key", SECRET, "--models", "a",
           "--option", "poll_interval_ms=2000")  # fmt: skip
    out = cli.ok("channel", "update", "lim1", "--option", "max_concurrency=2",
                 "--option", "max_chat_concurrency=4", "--priority", "7")  # fmt: skip
    assert '"max_concurrency": 2' in out and '"poll_interval_ms": 2000' in out
    [(options, priority)] = cli.query("SELECT options, priority FROM channels WHERE name = 'lim1'")
    assert json.loads(options) == {
        "poll_interval_ms": 2000,
        "max_concurrency": 2,
        "max_chat_concurrency": 4,
    }
    assert priority == 7
    cli.ok("channel", "update", "lim1", "--option", "max_chat_concurrency=null")
    [(options,)] = cli.query("SELECT options FROM channels WHERE name = 'lim1'")
    assert "max_chat_concurrency" not in json.loads(options)
    bad = cli.run("channel", "update", "lim1", "--option", "max_concurrency=0")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "max_concurrency" in bad.stdout + bad.stderr


# -- bad input: one clear line, exit status non-zero, no traceback -------------------------------


def channel_add(name: str, base_url: str = "http://127.0.0.1:9/v1") -> list[str]:
    return [
        "channel",
        "add",
        "--name",
        name,
        "--provider",
        "openai_compat",
        "--base-url",
        base_url,
        "--api-key",
        SECRET,
        "--models",
        "a",
    ]


CAROL = ["user", "create", "carol", "--password", "password-789"]
# Refused while parsing arguments, before any database work: the backend does not matter.
BAD_ARGUMENTS: dict[str, tuple[list[str], tuple[str, ...]]] = {
    "negative credit": (["credit", "carol", "--", "-5"], ("must be positive",)),
    "amount not a number": (["credit", "carol", "lots"], ("lots",)),
    # would make Alipay's payment of order 42 look already credited
    "reserved ref": (["credit", "carol", "5", "--ref", "TOPUP:42"], ("--ref", "topup:")),
    "spend limit not a number": (
        ["key", "create", "carol", "--spend-limit", "plenty"],
        ("plenty",),
    ),
    "bad base url": (channel_add("bad", "ftp://example.org"), ("--base-url", "http(s) URL")),
    "short password": (["user", "create", "dave", "--password", "short"], ("8 characters",)),
}
# Refused by what the database holds: run on each backend.
BAD_STATE: dict[str, tuple[list[str], tuple[str, ...]]] = {
    "unknown user": (["credit", "nobody-here", "5"], ("no user 'nobody-here'",)),
    "unknown channel": (["channel", "disable", "no-such-channel"], ("no-such-channel",)),
    "duplicate channel name": (channel_add("dup"), ("dup",)),
    # Parses, but does not fit the BIGINT balance column.
    "amount too large": (["credit", "carol", "1e30"], ()),
}


def run_bad(
    cli: Cli, cases: dict[str, tuple[list[str], tuple[str, ...]]], *setup: list[str]
) -> dict[str, Any]:
    # In sequence: on a fresh data directory the first command also creates the secret key.
    for args in setup:
        cli.ok(*args)
    before = cli.query("SELECT user_id, balance, held FROM accounts ORDER BY user_id")
    channels = cli.query("SELECT COUNT(*) FROM channels")
    results = cli.parallel([args for args, _ in cases.values()])
    # Nothing a refused command did may have touched the money or the channels.
    assert cli.query("SELECT user_id, balance, held FROM accounts ORDER BY user_id") == before
    assert cli.query("SELECT COUNT(*) FROM channels") == channels
    return dict(zip(cases, results, strict=True))


@pytest.fixture(scope="module")
def bad_arguments(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, subprocess.CompletedProcess[str]]:
    tmp = tmp_path_factory.mktemp("cli-bad-args")
    runner = Cli("sqlite", f"sqlite+aiosqlite:///{tmp / 'llmage.db'}", tmp, base_env(tmp))
    # carol exists, so that her key's bad --spend-limit is really parsed.
    return run_bad(runner, BAD_ARGUMENTS, CAROL)


@pytest.fixture(scope="module")
def bad_state(cli: Cli) -> dict[str, subprocess.CompletedProcess[str]]:
    # A first "dup" channel is fine: the duplicate case adds it again.
    return run_bad(cli, BAD_STATE, CAROL, channel_add("dup"))


@pytest.mark.parametrize("case", list(BAD_ARGUMENTS))
def test_bad_arguments_fail_with_one_clear_line(
    case: str, bad_arguments: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    assert_one_line_error(bad_arguments[case], *BAD_ARGUMENTS[case][1])


@pytest.mark.parametrize("case", list(BAD_STATE))
def test_bad_input_against_the_database_fails_with_one_clear_line(
    case: str, bad_state: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    assert_one_line_error(bad_state[case], *BAD_STATE[case][1])


# -- serve --demo ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def drain(stream: IO[str], sink: list[str]) -> None:
    for line in iter(stream.readline, ""):
        sink.append(line)


def test_serve_demo_prints_a_working_curl(cli: Cli) -> None:
    port = free_port()
    demo_key = "sk-demo" + secrets.token_hex(20)
    env = {**cli.env, "LLMAGE_DEMO_KEY": demo_key, "LLMAGE_PORT": str(port)}
    proc = subprocess.Popen(
        [LLMAGE, "serve", "--demo"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        encoding="utf-8",
    )
    lines: list[str] = []
    errors: list[str] = []
    assert proc.stdout is not None and proc.stderr is not None
    readers = [
        threading.Thread(target=drain, args=(proc.stdout, lines), daemon=True),
        threading.Thread(target=drain, args=(proc.stderr, errors), daemon=True),
    ]
    for t in readers:
        t.start()
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, "".join(errors)
            assert time.monotonic() < deadline, "server did not come up:\n" + "".join(errors)
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        while not any("curl" in line for line in lines) and time.monotonic() < deadline:
            time.sleep(0.05)
        out = "".join(lines)
        assert f"API key: {demo_key}" in out, out
        start = next(i for i, line in enumerate(lines) if line.strip().startswith("curl "))
        end = next(i for i in range(start, len(lines)) if not lines[i].rstrip().endswith("\\"))
        curl = "".join(lines[start : end + 1]).strip()
        assert f"http://127.0.0.1:{port}/llmage/v1/chat/completions" in curl
        assert demo_key in curl and "qwen3-max" in curl
        # Run the printed command exactly as a user would paste it.
        r = subprocess.run(
            ["bash", "-c", curl + " -w '\\n%{http_code}'"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        body, _, status = r.stdout.rpartition("\n")
        assert status == "200", r.stdout + r.stderr
        answer = httpx.Response(200, content=body.encode()).json()
        assert answer["finish"] == "1" and answer["llmusageid"] and answer["content"]
        assert answer["model"] == "qwen3-max"
        assert "llmage credit demo 100" in out  # how to top the demo up
        marker = json.loads((cli.data_dir / "xdg-config" / "llmage" / "server.json").read_text())
        assert marker["base_url"] == f"http://127.0.0.1:{port}"
        assert marker["data_dir"] == str(cli.data_dir.resolve())
        assert marker["database"] == ("sqlite" if cli.backend == "sqlite" else "environment")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    # uvicorn re-raises the SIGTERM it handled after its graceful shutdown.
    assert proc.returncode in (0, -signal.SIGTERM), "".join(errors)
    assert "Traceback" not in "".join(errors)
    # The call was billed to the demo user.
    [(balance, held)] = cli.query(
        "SELECT a.balance, a.held FROM accounts a JOIN users u ON u.id = a.user_id"
        " WHERE u.username = 'demo'"
    )
    assert held == 0 and balance < 100_000_000


# -- start-up of a fresh data directory --------------------------------------------------------


def test_first_start_on_a_fresh_data_dir_is_race_free(tmp_path: Path) -> None:
    """Two processes starting at once on a fresh data directory (a server and a CLI command,
    or two instances) must agree on one secret key. Threads stand in for the processes: the
    key file is created with O_EXCL and read back without waiting for its writer."""
    failures: list[str] = []
    for attempt in range(10):
        data_dir = tmp_path / f"d{attempt}"
        barrier = threading.Barrier(8)

        def start(data_dir: Path = data_dir, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            try:
                CredentialBox.from_settings(None, data_dir)
            except Exception as exc:
                failures.append(repr(exc))

        threads = [threading.Thread(target=start) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        # Whatever happened, every box built on this directory must open what another sealed.
        sealed = CredentialBox.from_settings(None, data_dir).seal("probe")
        assert CredentialBox.from_settings(None, data_dir).open(sealed) == "probe"
    assert failures == []
