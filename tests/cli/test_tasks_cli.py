"""`llmage tasks list|show|cancel` (database reads, API cancel), and the one-line errors and
--help texts of every generation command."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from genhelp import I2V, LLMAGE, R2V, SLOW, T2V, Gen, gen, llmid, one_line_error, run_all

from llmage.domain.catalog import ModelKind
from support.servers import free_socket

__all__ = ["gen"]  # the module-scoped fixture, shared by name

# -- tasks --------------------------------------------------------------------------------------


def test_tasks_list_show_cancel(gen: Gen) -> None:
    [taskid] = gen.ok("video", "forever", "--model", SLOW, "--duration", "1", "--no-wait")
    listing, shown = gen.parallel(
        [["tasks", "list", "--user", gen.username], ["tasks", "show", taskid]]
    )
    assert listing.returncode == 0, listing.stderr
    [row] = [line for line in listing.stdout.splitlines() if line.startswith(taskid)]
    assert gen.username in row and SLOW in row
    assert row.split()[4] in ("CREATED", "PENDING", "RUNNING")
    assert shown.returncode == 0, shown.stderr
    task = gen.task(taskid)
    quoted = f"{task.quoted // 1_000_000}.{task.quoted % 1_000_000:06d}"
    assert f"quoted:      {quoted}" in shown.stdout
    assert f"hold:        {task.hold_id} open: amount {quoted}" in shown.stdout
    assert f"user:        {gen.username} (id {task.user_id})" in shown.stdout

    # Only the owner's key reaches the task.
    _, other_key = gen.new_account()
    one_line_error(gen.run("tasks", "cancel", taskid, env={"LLMAGE_API_KEY": other_key}), "No task")
    assert gen.ok("tasks", "cancel", taskid) == [f"task {taskid} CANCELLED; its hold is released"]

    shown, cancelled, succeeded, limited, again = gen.parallel(
        [
            ["tasks", "show", taskid],
            ["tasks", "list", "--status", "cancelled", "--user", gen.username],
            ["tasks", "list", "--status", "SUCCEEDED", "--user", gen.username],
            ["tasks", "list", "--limit", "1"],
            ["tasks", "cancel", taskid],
        ]
    )
    assert "status:      CANCELLED" in shown.stdout
    assert f"hold:        {task.hold_id} released" in shown.stdout
    assert "charged:     0.000000" in shown.stdout
    assert taskid in cancelled.stdout
    assert succeeded.returncode == 0 and taskid not in succeeded.stdout
    assert len(limited.stdout.splitlines()) == 2  # header + one task
    assert again.returncode == 0 and "CANCELLED" in again.stdout  # cancelling twice is harmless
    # Task ids may start with "-": they are still ids, not options.
    missing, dashed = gen.parallel([["tasks", "show", "nope"], ["tasks", "show", "-Xnope"]])
    one_line_error(missing, "no task 'nope'")
    one_line_error(dashed, "no task '-Xnope'")


# -- errors and help ----------------------------------------------------------------------------


def test_errors_are_one_line(gen: Gen) -> None:
    sock = free_socket()
    dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()
    no_key = {k: v for k, v in gen.env.items() if k != "LLMAGE_API_KEY"}
    first = str(gen.files["first.png"])
    cases: dict[str, tuple[list[str], dict[str, str] | None, tuple[str, ...]]] = {
        "bad key": (["video", "x", "-m", T2V], {"LLMAGE_API_KEY": "sk-wrong"},
                    ("Invalid API Key", "HTTP 401")),
        "unreachable": (["video", "x", "-m", T2V], {"LLMAGE_BASE_URL": dead},
                        ("cannot reach", dead)),
        "unknown model": (["video", "x", "-m", "nope"], None, ("unknown video model 'nope'",)),
        "no such file": (["video", "x", "-m", I2V, "--image", "/no/such.png"], None,
                         ("no such file: /no/such.png",)),
        "t2v has no image": (["video", "x", "-m", llmid(T2V, ModelKind.T2V), "--image", first],
                             None, ("takes no --image",)),
        "no t2v variant": (["video", "x", "-m", R2V], None, ("no text-to-video variant",)),
        "server refuses": (["video", "x", "-m", T2V, "--resolution", "9999p"], None,
                           ("resolution", "HTTP 400")),
        "bad param": (["video", "x", "-m", T2V, "--param", "novalue"], None, ("KEY=VALUE",)),
        "cancel unknown": (["tasks", "cancel", "nope"], None, ("No task 'nope'",)),
        "wait runs out": (["video", "x", "-m", SLOW, "--duration", "1", "--timeout", "1"], None,
                          ("is still", "after 1 s; it keeps running")),
    }  # fmt: skip
    results = gen.parallel(
        [args for args, _, _ in cases.values()], envs=[env for _, env, _ in cases.values()]
    )
    for (case, (_, _, phrases)), p in zip(cases.items(), results, strict=True):
        assert gen.key not in p.stdout + p.stderr, case
        one_line_error(p, *phrases)
    p = subprocess.run([LLMAGE, "video", "x", "-m", T2V], env=no_key, capture_output=True,
                       text=True, timeout=60, check=False)  # fmt: skip
    one_line_error(p, "Missing option '--api-key'")


def test_every_new_command_explains_itself_with_an_example(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMAGE_")}
    env["LLMAGE_DATA_DIR"] = str(tmp_path / "var")
    commands = [["video"], ["image"], ["tasks"], ["tasks", "list"], ["tasks", "show"],
                ["tasks", "cancel"]]  # fmt: skip
    procs = run_all([[*c, "--help"] for c in commands], [env] * len(commands), tmp_path)
    for cmd, p in zip(commands, procs, strict=True):
        assert p.returncode == 0, p.stderr
        assert p.stdout.startswith("Usage: llmage " + " ".join(cmd)), p.stdout
        assert "Example:" in p.stdout and "llmage " + cmd[0] in p.stdout.split("Example:")[1]
    video_help, tasks_help, cancel_help = procs[0].stdout, procs[2].stdout, procs[5].stdout
    for phrase in ("--image", "--last-image", "--wait / --no-wait", "LLMAGE_API_KEY",
                   "LLMAGE_BASE_URL", "reference-to-video"):  # fmt: skip
        assert phrase in video_help, phrase
    assert "database" in tasks_help and "API key" in cancel_help
    assert not (tmp_path / "var").exists(), "--help must not create anything"
