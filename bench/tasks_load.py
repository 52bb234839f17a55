"""Task poller load test: N open video tasks on the sim provider while chat keeps flowing.

The issue's acceptance: "The poller keeps up: 5,000 open tasks on the sim provider with 1-second
upstream latency complete without starving chat requests (record tasks/s and chat p99 during
the run)". This script:

1. makes a fresh data dir (SQLite) and sets it up with the `llmage` CLI: a user with credit,
   an API key, a sim channel serving one video model at `latency_ms` (default 1000) and a sim
   chat channel;
2. starts `llmage serve` (a real process; uvloop, workers on) and waits for /healthz;
3. measures chat alone for a few seconds (baseline), then keeps a steady chat load (default
   20 requests/s, open loop: a request is fired on schedule whether or not earlier ones have
   answered) while it submits N tasks over HTTP with bounded concurrency;
4. watches the task table until every task is final, then reports: submit rate, completion
   time and tasks/s, per-task latency (finished − created), chat p50/p99/max during the run vs
   the baseline, errors, and `llmage reconcile`;
5. prints a markdown table (and JSON with --json); exits 1 if anything failed or the whole run
   did not finish inside --deadline seconds.

    .venv/bin/python bench/tasks_load.py                      # the acceptance run: 5,000 tasks
    .venv/bin/python bench/tasks_load.py --tasks 300 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

VIDEO_LLMID = "r0ill7L0s6PtBS8mkmg-7"  # viduq3-pro text-to-video (seed 000)
CHAT_MODEL = "qwen3-max"
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")


def llmage_bin() -> str:
    here = Path(sys.executable).with_name("llmage")
    return str(here) if here.exists() else (shutil.which("llmage") or "llmage")


def git_commit() -> str | None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
            check=False,
        )
        return out.stdout.strip() or None
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


@dataclass
class Latencies:
    ok: list[float] = field(default_factory=list)
    errors: int = 0
    late_starts: int = 0  # requests fired more than 50 ms after their slot (load gen lag)

    def summary(self) -> dict[str, Any]:
        ms = [v * 1000 for v in self.ok]
        return {
            "requests": len(ms) + self.errors,
            "errors": self.errors,
            "p50_ms": pct(ms, 50),
            "p99_ms": pct(ms, 99),
            "max_ms": max(ms) if ms else None,
            "mean_ms": statistics.fmean(ms) if ms else None,
            "late_starts": self.late_starts,
        }


@dataclass
class Result:
    mode: str
    tasks: int
    latency_ms: int
    chat_rps: float
    submit_concurrency: int
    submitted: int = 0
    submit_errors: int = 0
    submit_seconds: float = 0.0
    complete_seconds: float = 0.0  # first submit → last task final
    tasks_per_second: float = 0.0
    succeeded: int = 0
    failed: int = 0
    open_at_end: int = 0
    peak_open: int = 0
    task_latency: dict[str, Any] = field(default_factory=dict)
    chat_baseline: dict[str, Any] = field(default_factory=dict)
    chat_during: dict[str, Any] = field(default_factory=dict)
    reconcile_ok: bool = False
    reconcile_output: str = ""
    timed_out: bool = False
    machine: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return (
            not self.timed_out
            and self.submit_errors == 0
            and self.succeeded == self.tasks
            and self.reconcile_ok
            and self.chat_during.get("errors", 1) == 0
        )


class Server:
    def __init__(self, data_dir: Path, port: int, latency_ms: int) -> None:
        self.data_dir = data_dir
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.env = {
            **os.environ,
            "LLMAGE_DATA_DIR": str(data_dir),
            "LLMAGE_HOST": "127.0.0.1",
            "LLMAGE_PORT": str(port),
            "LLMAGE_LOG_LEVEL": "WARNING",
            "LLMAGE_LOG_JSON": "false",
        }
        self.env.pop("LLMAGE_CONFIG", None)  # nothing from a developer's config file
        self.latency_ms = latency_ms
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / "server.log"

    def cli(self, *args: str) -> str:
        proc = subprocess.run(
            [llmage_bin(), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"llmage {' '.join(args)} failed: {proc.stderr or proc.stdout}")
        return proc.stdout

    def setup(self, credit: str) -> str:
        self.cli("user", "create", "bench", "--password", "bench-password-123")
        self.cli("credit", "bench", credit, "--ref", "bench:credit")
        key = self.cli("key", "create", "bench", "--quiet").strip()
        self.cli(
            "channel",
            "add",
            "--name",
            "sim-video",
            "--provider",
            "sim",
            "--models",
            VIDEO_LLMID,
            "--option",
            f"latency_ms={self.latency_ms}",
        )
        self.cli(
            "channel", "add", "--name", "sim-chat", "--provider", "sim", "--models", CHAT_MODEL
        )
        return key

    def start(self, workers: bool = True) -> None:
        log = self.log_path.open("ab")
        env = {**self.env, "LLMAGE_TASK_WORKERS": "true" if workers else "false"}
        self.proc = subprocess.Popen(
            [llmage_bin(), "serve"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-2000:]}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(self.url + "/healthz", timeout=2) as r,  # noqa: S310
            ):
                if r.status == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError("server did not start in 60 s")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(40)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def reconcile(self) -> tuple[bool, str]:
        proc = subprocess.run(
            [llmage_bin(), "reconcile"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        return proc.returncode == 0, (proc.stdout + proc.stderr).strip()


class Chat:
    """Open-loop chat load: one request every 1/rps seconds, each timed on its own."""

    def __init__(self, session: aiohttp.ClientSession, url: str, key: str, rps: float) -> None:
        self.session = session
        self.url = url + "/llmage/v1/chat/completions"
        self.headers = {"Authorization": f"Bearer {key}"}
        self.interval = 1.0 / rps
        self.current = Latencies()
        self._inflight: set[asyncio.Task[None]] = set()

    async def _one(self, into: Latencies) -> None:
        start = time.perf_counter()
        try:
            async with self.session.post(
                self.url,
                json={"model": CHAT_MODEL, "prompt": "hello", "max_tokens": 16},
                headers=self.headers,
            ) as r:
                await r.read()
                if r.status != 200:
                    into.errors += 1
                    return
        except (TimeoutError, aiohttp.ClientError):
            into.errors += 1
            return
        into.ok.append(time.perf_counter() - start)

    async def run(self, stop: asyncio.Event) -> None:
        next_at = time.perf_counter()
        while not stop.is_set():
            now = time.perf_counter()
            if now - next_at > 0.05:
                self.current.late_starts += 1
            task = asyncio.create_task(self._one(self.current))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
            next_at += self.interval
            delay = next_at - time.perf_counter()
            if delay > 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)

    async def drain(self) -> None:
        if self._inflight:
            await asyncio.wait(self._inflight, timeout=30)


def task_counts(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        rows = conn.execute("SELECT status, COUNT(*) FROM tasks GROUP BY status").fetchall()
    finally:
        conn.close()
    return {str(s): int(n) for s, n in rows}


def task_latencies(db: Path) -> list[float]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        rows = conn.execute(
            "SELECT finished_at - created_at FROM tasks WHERE finished_at IS NOT NULL"
        ).fetchall()
    finally:
        conn.close()
    return [float(r[0]) for r in rows]


async def submit_all(
    session: aiohttp.ClientSession, url: str, key: str, n: int, concurrency: int, res: Result
) -> None:
    body_base = {"llmid": VIDEO_LLMID, "duration": 1, "resolution": "540p"}
    headers = {"Authorization": f"Bearer {key}"}
    sem = asyncio.Semaphore(concurrency)

    async def submit(i: int) -> None:
        async with sem:
            try:
                async with session.post(
                    url + "/llmage/video",
                    json={**body_base, "prompt": f"bench task {i}"},
                    headers=headers,
                ) as r:
                    data = await r.json(content_type=None)
                    if r.status != 200 or "taskid" not in data:
                        res.submit_errors += 1
                        if res.submit_errors <= 3:
                            print(f"submit {i}: HTTP {r.status} {data}", file=sys.stderr)
                        return
            except (TimeoutError, aiohttp.ClientError) as exc:
                res.submit_errors += 1
                if res.submit_errors <= 3:
                    print(f"submit {i}: {exc!r}", file=sys.stderr)
                return
            res.submitted += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(submit(i) for i in range(n)))
    res.submit_seconds = time.perf_counter() - t0


async def watch(db: Path, res: Result, deadline: float, submitting: asyncio.Future[Any]) -> float:
    """Until every submitted task is final (or the deadline): the time it happened."""
    while True:
        await asyncio.sleep(0.25)
        counts = await asyncio.to_thread(task_counts, db)
        final = sum(counts.get(s, 0) for s in TERMINAL)
        open_ = sum(n for s, n in counts.items() if s not in TERMINAL)
        res.peak_open = max(res.peak_open, open_)
        if submitting.done() and final >= res.submitted and open_ == 0:
            return time.perf_counter()
        if time.perf_counter() > deadline:
            res.timed_out = True
            return time.perf_counter()


async def chat_alone(chat: Chat, seconds: float) -> dict[str, Any]:
    chat.current = Latencies()
    stop = asyncio.Event()
    runner = asyncio.create_task(chat.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await runner
    await chat.drain()
    return chat.current.summary()


async def load(args: argparse.Namespace, server: Server, key: str, res: Result) -> None:
    """`stream`: submit N tasks while the poller works (open tasks = what arrives in one
    latency). `backlog`: submit N tasks to a server without workers, then start a server with
    workers: N tasks open and due at once, the poller drains them while chat runs."""
    timeout = aiohttp.ClientTimeout(total=60)
    db = server.data_dir / "llmage.db"
    async with aiohttp.ClientSession(
        timeout=timeout, connector=aiohttp.TCPConnector(limit=0)
    ) as session:
        chat = Chat(session, server.url, key, args.chat_rps)
        for _ in range(10):  # warm-up (connections, key cache), not measured
            await chat._one(Latencies())
        res.chat_baseline = await chat_alone(chat, args.baseline)

        if args.mode == "backlog":
            await submit_all(session, server.url, key, args.tasks, args.concurrency, res)
            counts = await asyncio.to_thread(task_counts, db)
            res.peak_open = counts.get("CREATED", 0)
            await asyncio.to_thread(server.stop)
            await asyncio.to_thread(server.start, True)
            await session.close()
            session = aiohttp.ClientSession(
                timeout=timeout, connector=aiohttp.TCPConnector(limit=0)
            )
            chat.session = session
            for _ in range(3):  # new connections to the new process
                await chat._one(Latencies())

        chat.current = Latencies()
        stop = asyncio.Event()
        runner = asyncio.create_task(chat.run(stop))
        t0 = time.perf_counter()
        if args.mode == "backlog":
            submitting: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            submitting.set_result(None)
        else:
            submitting = asyncio.ensure_future(
                submit_all(session, server.url, key, args.tasks, args.concurrency, res)
            )
        done_at = await watch(db, res, t0 + args.deadline, submitting)
        stop.set()
        await runner
        await chat.drain()
        if not submitting.done():
            submitting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await submitting
        await session.close()
        res.chat_during = chat.current.summary()
        res.complete_seconds = done_at - t0
        counts = await asyncio.to_thread(task_counts, db)
        res.succeeded = counts.get("SUCCEEDED", 0)
        res.failed = counts.get("FAILED", 0) + counts.get("CANCELLED", 0)
        res.open_at_end = sum(n for s, n in counts.items() if s not in TERMINAL)
        res.tasks_per_second = res.succeeded / res.complete_seconds if res.complete_seconds else 0
        lat = [v / 1000 for v in await asyncio.to_thread(task_latencies, db)]
        res.task_latency = {
            "p50_s": pct(lat, 50),
            "p99_s": pct(lat, 99),
            "max_s": max(lat) if lat else None,
        }


def fmt(v: Any, unit: str = "", digits: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}{unit}"
    return f"{v}{unit}"


def table(res: Result) -> str:
    b, d = res.chat_baseline, res.chat_during
    rows = [
        (
            f"tasks submitted (HTTP, concurrency {res.submit_concurrency})",
            f"{res.submitted} in {res.submit_seconds:.1f} s"
            f" ({res.submitted / max(res.submit_seconds, 1e-9):.0f}/s)",
        ),
        ("upstream latency (sim)", f"{res.latency_ms} ms"),
        (
            "mode",
            "backlog: all tasks open and due at once, then the poller starts"
            if res.mode == "backlog"
            else "stream: tasks submitted while the poller runs",
        ),
        (
            "all tasks final after"
            + (" (from poller start)" if res.mode == "backlog" else " (from first submit)"),
            f"{res.complete_seconds:.1f} s",
        ),
        ("**throughput**", f"**{res.tasks_per_second:.0f} tasks/s**"),
        ("succeeded / failed / still open", f"{res.succeeded} / {res.failed} / {res.open_at_end}"),
        ("peak open tasks", f"{res.peak_open}"),
        (
            "task latency (created → final) p50 / p99 / max",
            f"{fmt(res.task_latency.get('p50_s'), ' s')} / "
            f"{fmt(res.task_latency.get('p99_s'), ' s')} / "
            f"{fmt(res.task_latency.get('max_s'), ' s')}",
        ),
        (
            f"chat alone ({res.chat_rps:g} req/s) p50 / p99 / max",
            f"{fmt(b.get('p50_ms'), ' ms')} / {fmt(b.get('p99_ms'), ' ms')} / "
            f"{fmt(b.get('max_ms'), ' ms')} ({b.get('requests')} req, {b.get('errors')} errors)",
        ),
        (
            f"**chat during the run ({res.chat_rps:g} req/s) p50 / p99 / max**",
            f"**{fmt(d.get('p50_ms'), ' ms')} / {fmt(d.get('p99_ms'), ' ms')}** / "
            f"{fmt(d.get('max_ms'), ' ms')} ({d.get('requests')} req, {d.get('errors')} errors)",
        ),
        ("reconcile (`llmage reconcile`)", "clean" if res.reconcile_ok else "BROKEN"),
        ("verdict", "PASS" if res.ok else ("TIMED OUT" if res.timed_out else "FAIL")),
    ]
    out = ["| measure | value |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--tasks", type=int, default=5000)
    ap.add_argument(
        "--mode",
        choices=("backlog", "stream"),
        default="backlog",
        help="backlog: all N open at once (submitted to a worker-less server first); "
        "stream: submitted while the poller runs",
    )
    ap.add_argument("--latency-ms", type=int, default=1000, help="sim upstream latency per task")
    ap.add_argument("--chat-rps", type=float, default=20.0)
    ap.add_argument("--concurrency", type=int, default=64, help="submits in flight")
    ap.add_argument("--baseline", type=float, default=5.0, help="seconds of chat alone first")
    ap.add_argument("--deadline", type=float, default=600.0, help="fail after this many seconds")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    ap.add_argument("--keep", action="store_true", help="keep the data dir (printed)")
    args = ap.parse_args(argv)

    data_dir = Path(tempfile.mkdtemp(prefix="llmage-tasks-bench-"))
    server = Server(data_dir, free_port(), args.latency_ms)
    res = Result(args.mode, args.tasks, args.latency_ms, args.chat_rps, args.concurrency)
    res.machine = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "database": "sqlite (synchronous=FULL)",
        "loadavg_before": os.getloadavg(),
        "commit": git_commit(),
    }
    started = time.monotonic()
    try:
        # Enough money for every task at its worst-case hold.
        key = server.setup(credit=str(max(1000, args.tasks)))
        server.start(workers=args.mode == "stream")
        asyncio.run(asyncio.wait_for(load(args, server, key, res), args.deadline + 60))
    except TimeoutError:
        res.timed_out = True
    finally:
        server.stop()
    res.machine["loadavg_after"] = os.getloadavg()
    res.reconcile_ok, res.reconcile_output = server.reconcile()
    print(table(res))
    print(
        f"\n(wall {time.monotonic() - started:.0f} s; data dir {data_dir}; "
        f"server log {server.log_path})"
        if args.keep
        else ""
    )
    if args.json:
        args.json.write_text(json.dumps({**asdict(res), "ok": res.ok}, indent=2))
    if not res.ok and server.log_path.exists():
        print("--- server log (tail) ---", file=sys.stderr)
        print(server.log_path.read_text(errors="replace")[-4000:], file=sys.stderr)
    if not args.keep:
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0 if res.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
