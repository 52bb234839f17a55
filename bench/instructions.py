"""Instructions per request: a load-independent cost measure for a shared machine.

    python bench/instructions.py [--target llmage|llmage-redis|passthrough]
                                 [--requests 2000] [--concurrency 16] [--stream]

Runs the gateway under `valgrind --tool=callgrind` with instrumentation off,
warms it up, switches counting on for exactly N requests from a small driver
(keep-alive connections, outside valgrind), switches it off and divides. The
count depends on the code and its inputs, not on what else the machine does,
so it is the figure to compare before and after a change on a busy machine;
wall-clock req/s is for `run.py` on a quiet one. The mock upstream and driver
run natively; only the gateway's own process is counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import llmage_env, procs
from bench.targets import PASSTHROUGH_KEY, llmage_variant, start_mock

BENCH_DIR = Path(__file__).resolve().parent
_TOTALS = re.compile(r"^(?:summary|totals):\s*(\d+)", re.MULTILINE)


async def _one_connection(port: int, request: bytes, count: int) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    ok = 0
    try:
        for _ in range(count):
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            lower = head.lower()
            if b"transfer-encoding: chunked" in lower:
                while True:
                    size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                    await reader.readexactly(size + 2)
                    if size == 0:
                        break
            else:
                m = re.search(rb"content-length:\s*(\d+)", lower)
                await reader.readexactly(int(m.group(1)) if m else 0)
            ok += status == 200
    finally:
        writer.close()
    return ok


def drive(port: int, path: str, key: str, stream: bool, total: int, conc: int) -> int:
    """`total` requests over `conc` keep-alive connections; returns the 200s."""
    body: dict[str, object] = {
        "model": llmage_env.MODEL,
        "messages": [{"role": "user", "content": "Say hello"}],
        "max_tokens": 64,
    }
    if stream:
        body["stream"] = True
    raw = json.dumps(body, separators=(",", ":")).encode()
    request = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {key}\r\nContent-Length: {len(raw)}\r\n\r\n"
    ).encode() + raw
    per, extra = divmod(total, conc)

    async def run() -> int:
        counts = [per + (1 if i < extra else 0) for i in range(conc)]
        done = await asyncio.gather(*(_one_connection(port, request, n) for n in counts if n))
        return sum(done)

    return asyncio.run(run())


def callgrind_control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True)


def total_instructions(out_file: Path) -> int:
    text = out_file.read_text(errors="replace")
    found = _TOTALS.findall(text)
    if not found:
        raise RuntimeError(f"no totals in {out_file}")
    return int(found[-1])


def server_command(target: str, port: int, mock_port: int) -> list[str]:
    if target == "passthrough":
        return [
            sys.executable,
            str(BENCH_DIR / "passthrough.py"),
            "--port",
            str(port),
            "--upstream",
            f"http://127.0.0.1:{mock_port}/v1",
            "--key",
            PASSTHROUGH_KEY,
        ]
    return llmage_env.serve_command(port)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", default="llmage", choices=["llmage", "llmage-redis", "passthrough"])
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--warmup", type=int, default=300)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--stream", action="store_true")
    p.add_argument("--keep", type=Path, default=None, help="copy the callgrind file here")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="llmage-instr-") as tmp:
        work = Path(tmp)
        mock, mock_port = start_mock(work)
        server: procs.Proc | None = None
        try:
            env = None
            key = PASSTHROUGH_KEY
            if args.target != "passthrough":
                data = work / "data"
                data.mkdir()
                prep = llmage_env.prepare(
                    data, mock_port, work / "setup.log", llmage_variant(args.target)
                )
                env, key = prep.env, prep.api_key
            port = procs.free_port()
            out_file = work / "callgrind.out"
            cmd = [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                f"--callgrind-out-file={out_file}",
                *server_command(args.target, port, mock_port),
            ]
            server = procs.start("server", cmd, work, env=env, cwd=work)
            procs.wait_http_ok(f"http://127.0.0.1:{port}/healthz", 600, server)
            path = "/v1/chat/completions"
            if drive(port, path, key, args.stream, args.warmup, args.concurrency) != args.warmup:
                raise RuntimeError(f"warm-up requests failed:\n{server.log_tail()}")
            callgrind_control(server.pid, "-i", "on")
            t0 = time.monotonic()
            ok = drive(port, path, key, args.stream, args.requests, args.concurrency)
            callgrind_control(server.pid, "-i", "off")
            elapsed = time.monotonic() - t0
            callgrind_control(server.pid, "-d")
            time.sleep(1.0)
            dumps = sorted(work.glob("callgrind.out*"), key=lambda f: f.stat().st_mtime)
            if ok != args.requests or not dumps:
                raise RuntimeError(f"{ok}/{args.requests} ok; dumps {dumps}\n{server.log_tail()}")
            total = total_instructions(dumps[-1])
            if args.keep is not None:
                args.keep.write_bytes(dumps[-1].read_bytes())
        finally:
            if server is not None:
                server.stop()
            mock.stop()
    per = total / args.requests
    mode = "stream" if args.stream else "non-stream"
    print(
        json.dumps(
            {
                "target": args.target,
                "mode": mode,
                "concurrency": args.concurrency,
                "requests": args.requests,
                "instructions": total,
                "instructions_per_request": round(per),
                "wall_s_under_valgrind": round(elapsed, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
