"""Start, pin, watch and stop the benchmark's processes.

Every server is started in its own session (process group) so that stopping it
also stops whatever it spawned (uvicorn reloader/workers, LiteLLM helpers), and
so that its CPU time can be summed over the whole tree by session id.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")

# Gateway under test on core 0; the load generator and the mock share core 1.
GATEWAY_CPUS = "0"
LOAD_CPUS = "1"


def pinned(cmd: Sequence[str], cpus: str) -> list[str]:
    """Prefix `cmd` with taskset; children inherit the affinity."""
    if shutil.which("taskset") is None:
        raise RuntimeError("taskset not found (util-linux); it is needed to pin processes")
    return ["taskset", "-c", cpus, *cmd]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    _log: object = field(repr=False, default=None)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, n: int = 40) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the whole group, then SIGKILL what is left after `grace` s."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=grace)
        # The leader may be gone while children linger in its group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=grace)
        log = self._log
        if log is not None and hasattr(log, "close"):
            log.close()


def start(
    name: str,
    cmd: Sequence[str],
    log_dir: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Proc:
    log_path = log_dir / f"{name}.log"
    # Logs go to a file, never a pipe: a full pipe would stall the server mid-run.
    log = open(log_path, "ab")  # noqa: SIM115 - closed in Proc.stop
    popen = subprocess.Popen(
        list(cmd),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        start_new_session=True,
    )
    return Proc(name=name, popen=popen, log_path=log_path, _log=log)


def wait_http_ok(
    url: str,
    timeout: float,
    proc: Proc | None = None,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Poll `url` until it answers 2xx; fail early if `proc` dies."""
    if not url.startswith("http://127."):
        raise ValueError(f"readiness probes stay on loopback: {url}")
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise RuntimeError(
                f"{proc.name} exited with {proc.popen.returncode} before it was ready:\n"
                f"{proc.log_tail()}"
            )
        req = urllib.request.Request(url, headers=dict(headers or {}))  # noqa: S310 - checked
        try:
            with urllib.request.urlopen(req, timeout=2) as resp:  # noqa: S310 - loopback URL
                if 200 <= resp.status < 300:
                    return
                last = f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except (OSError, urllib.error.URLError) as exc:
            last = str(exc)
        time.sleep(0.25)
    tail = proc.log_tail() if proc is not None else ""
    raise TimeoutError(f"{url} not ready after {timeout:.0f}s ({last})\n{tail}")


def _stat_fields(pid: str) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parens: split after the last ')'.
    return raw[raw.rfind(")") + 2 :].split()


def tree_cpu_seconds(leader: int) -> float:
    """utime+stime of every live process in `leader`'s session, plus the reaped
    children's cutime+cstime, so workers that exited mid-run still count."""
    ticks = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        f = _stat_fields(entry)
        # After the name: state(0) ppid(1) pgrp(2) session(3) ... utime(11) stime(12)
        # cutime(13) cstime(14).
        if f is None or len(f) < 15 or int(f[3]) != leader:
            continue
        ticks += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    return ticks / CLK_TCK


def cpu_ticks_matching(marker: str) -> dict[int, int]:
    """utime+stime (ticks) of every live process whose command line holds
    `marker`, by pid: the PostgreSQL backends serving one database show its name
    in their title."""
    ticks: dict[int, int] = {}
    needle = marker.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if needle not in cmdline:
            continue
        f = _stat_fields(entry)
        if f is not None and len(f) >= 13:
            ticks[int(entry)] = int(f[11]) + int(f[12])
    return ticks


def cpu_seconds_between(before: dict[int, int], after: dict[int, int]) -> float:
    """CPU spent between two `cpu_ticks_matching` samples by the processes alive at the
    second. A pool closes overflow connections, so a backend that ended in between is
    missed: a lower bound."""
    return sum(max(t - before.get(pid, 0), 0) for pid, t in after.items()) / CLK_TCK


def tree_memory_mib(leader: int) -> dict[str, float]:
    """Resident memory of every live process in `leader`'s session, from
    /proc/<pid>/status: `rss` sums VmRSS now, `hwm` sums each process's VmHWM
    (its own peak so far; their sum bounds the tree's peak from above, and is
    exact for one process, llmage's and LiteLLM's case with one worker)."""
    rss = hwm = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        f = _stat_fields(entry)
        if f is None or len(f) < 4 or int(f[3]) != leader:
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                rss += int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm += int(line.split()[1])
    return {"rss": round(rss / 1024, 1), "hwm": round(hwm / 1024, 1)}


def tool_version(cmd: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(cmd), capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def core_ticks() -> dict[int, tuple[int, int]]:
    """Per-core (busy, total) jiffies from /proc/stat, to see load that is not
    ours: the machine is shared, and a test suite on the gateway's core would
    otherwise read as a slow gateway.

    Busy is user+nice+system+steal. irq and softirq are left out: on loopback
    they are mostly the kernel carrying our own benchmark traffic (tens of
    percent of a core at mock speed), which would read as foreign load."""
    out: dict[int, tuple[int, int]] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if not line.startswith("cpu") or line.startswith("cpu "):
            continue
        name, *vals = line.split()
        user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in vals[:8])
        busy = user + nice + system + steal
        out[int(name[3:])] = (busy, busy + idle + iowait + irq + softirq)
    return out


def core_busy(
    before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]]
) -> dict[int, float]:
    busy: dict[int, float] = {}
    for core, (b1, t1) in after.items():
        b0, t0 = before.get(core, (b1, t1))
        busy[core] = round((b1 - b0) / (t1 - t0), 3) if t1 > t0 else 0.0
    return busy
