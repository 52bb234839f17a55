"""Run wrk against one URL with a fixed POST body and parse what it reports.

wrk's own text output rounds latencies to two digits ("1.23ms"), too coarse for
a 1 ms added-latency target, so the Lua script's `done` hook prints one
machine-readable line with the raw microsecond percentiles and error counters.
For streams wrk reads the whole chunked response, so one request = one stream
and its latency is time-to-last-byte.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from bench import procs

MARKER = "BENCH_RESULT "

_DONE_HOOK = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT {\"requests\":%d,\"duration_us\":%d,\"bytes\":%d," ..
    "\"connect\":%d,\"read\":%d,\"write\":%d,\"status\":%d,\"timeout\":%d," ..
    "\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"mean_us\":%.1f,\"max_us\":%.1f}\n",
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max))
end
"""


@dataclass
class WrkResult:
    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    # wrk's "status" errors are non-2xx/3xx responses; the rest are socket errors.
    errors_status: int
    errors_socket: int
    errors_timeout: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def ensure_wrk() -> str:
    """Return wrk's path, installing the Debian package if it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    install = ["apt-get", "install", "-y", "-q", "wrk"]
    if subprocess.run(install, check=False, timeout=600).returncode != 0:
        # A fresh machine has no package lists yet.
        subprocess.run(["apt-get", "update", "-q"], check=True, timeout=600)
        subprocess.run(install, check=True, timeout=600)
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is not installed and could not be installed with apt-get")
    return found


def _lua_long_string(text: str) -> str:
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    eq = "=" * level
    return f"[{eq}[{text}]{eq}]"


def write_script(body: bytes, headers: Mapping[str, str], directory: Path) -> Path:
    lines = ['wrk.method = "POST"', f"wrk.body = {_lua_long_string(body.decode())}"]
    for name, value in headers.items():
        lines.append(f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}")
    fd, path = tempfile.mkstemp(prefix="wrk-", suffix=".lua", dir=directory)
    with open(fd, "w") as fh:
        fh.write("\n".join(lines) + "\n" + _DONE_HOOK)
    return Path(path)


def parse(stdout: str) -> WrkResult:
    for line in stdout.splitlines():
        if line.startswith(MARKER):
            raw = json.loads(line[len(MARKER) :])
            break
    else:
        raise ValueError(f"no {MARKER.strip()} line in wrk output:\n{stdout}")
    duration_s = raw["duration_us"] / 1e6
    # Cross-check against wrk's own summary line when it is there.
    m = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", stdout)
    status = int(m.group(1)) if m else raw["status"]
    return WrkResult(
        requests=raw["requests"],
        duration_s=duration_s,
        rps=raw["requests"] / duration_s if duration_s > 0 else 0.0,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        mean_ms=raw["mean_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        errors_status=max(status, raw["status"]),
        errors_socket=raw["connect"] + raw["read"] + raw["write"],
        errors_timeout=raw["timeout"],
    )


def run(
    url: str,
    script: Path,
    connections: int,
    duration_s: float,
    timeout_s: float = 10.0,
    cpus: str = procs.LOAD_CPUS,
) -> tuple[WrkResult, str]:
    """One wrk run; returns the parsed result and wrk's raw output."""
    if not url.startswith(("http://127.", "http://localhost")):
        raise ValueError(f"refusing to load a non-loopback URL: {url}")
    # One thread: wrk shares its core with the mock, and one event loop drives
    # 16 connections easily.
    cmd = procs.pinned(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(duration_s))}s",
            f"--timeout={timeout_s:g}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        cpus,
    )
    out = subprocess.run(
        cmd, capture_output=True, text=True, timeout=duration_s + timeout_s + 30, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr.strip()}\n{out.stdout}")
    return parse(out.stdout), out.stdout
