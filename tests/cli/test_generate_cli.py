"""`llmage video|image` as a user runs them: the real executable against a real server, with
progress on stderr, the task id and saved paths on stdout, and real media files on disk."""

from __future__ import annotations

import os
import pty
import subprocess
import threading

from genhelp import (
    FAILING,
    FIRST_LAST,
    I2I,
    I2V,
    LLMAGE,
    R2V,
    T2I,
    T2V,
    Gen,
    gen,
    llmid,
    one_line_error,
    workdir,
)

from llmage.domain.catalog import ModelKind

__all__ = ["gen"]  # the module-scoped fixture, shared by name

# -- video --------------------------------------------------------------------------------------


def test_video_wait_downloads_the_mp4_and_its_cover(gen: Gen) -> None:
    cwd = workdir(gen)
    p = gen.run("video", "a red fox in the snow", "--model", T2V, "--duration", "3",
                "--resolution", "480p", "--ratio", "16:9", cwd=cwd)  # fmt: skip
    assert p.returncode == 0, p.stderr
    taskid, video, cover = p.stdout.splitlines()
    assert (video, cover) == (f"{taskid}.mp4", f"{taskid}.jpg")  # defaults: ./TASKID.*
    assert (cwd / video).read_bytes()[4:8] == b"ftyp"
    assert (cwd / cover).read_bytes()[:3] == b"\xff\xd8\xff"
    assert sorted(f.name for f in cwd.iterdir()) == sorted([video, cover])  # no .part left
    # Without a terminal: plain progress lines on stderr, no escape codes, no bar art.
    assert "\x1b" not in p.stderr and "━" not in p.stderr
    assert f"task {taskid}: SUCCEEDED" in p.stderr and "done: charged" in p.stderr
    row = gen.task(taskid)
    assert row.llmid == llmid(T2V, ModelKind.T2V) and row.model == T2V
    assert row.params["duration"] == 3 and row.params["ratio"] == "16:9"
    assert row.charged is not None and 0 < row.charged <= row.quoted


def test_images_choose_the_kind_and_upload_files(gen: Gen) -> None:
    first, last = str(gen.files["first.png"]), str(gen.files["last.png"])
    cwd = workdir(gen)
    i2v, first_last, r2v, by_llmid = gen.parallel(
        [
            [
                "video",
                "she smiles",
                "-m",
                I2V,
                "--image",
                first,
                "--duration",
                "3",
                "-o",
                "out/i2v.mp4",
            ],
            [
                "video",
                "day to night",
                "-m",
                FIRST_LAST,
                "--image",
                first,
                "--last-image",
                last,
                "--duration",
                "4",
                "--resolution",
                "480p",
                "--no-wait",
            ],
            [
                "video",
                "both of them",
                "-m",
                R2V,
                "--image",
                first,
                "--image",
                last,
                "--duration",
                "3",
                "--resolution",
                "480p",
                "--ratio",
                "16:9",
                "--no-wait",
            ],
            [
                "video",
                "by llmid",
                "-m",
                llmid(T2V, ModelKind.T2V),
                "--duration",
                "3",
                "--resolution",
                "480p",
                "--no-wait",
            ],
        ],
        cwd=cwd,
    )
    for p in (i2v, first_last, r2v, by_llmid):
        assert p.returncode == 0, p.stderr
    taskid = i2v.stdout.splitlines()[0]
    assert i2v.stdout.splitlines()[1:] == ["out/i2v.mp4", "out/i2v.jpg"]
    assert (cwd / "out" / "i2v.mp4").read_bytes()[4:8] == b"ftyp"
    row = gen.task(taskid)
    assert row.llmid == llmid(I2V, ModelKind.I2V) and "image1_file" in row.inputs
    row = gen.task(first_last.stdout.strip())
    assert row.llmid == llmid(FIRST_LAST, ModelKind.I2V) and row.model == FIRST_LAST
    assert {"image1_file", "image2_file"} <= row.inputs.keys()
    row = gen.task(r2v.stdout.strip())
    assert row.llmid == llmid(R2V, ModelKind.R2V) and len(row.inputs["image_files"]) == 2
    row = gen.task(by_llmid.stdout.strip())
    assert row.llmid == llmid(T2V, ModelKind.T2V)


def test_failed_task_exits_1_with_its_error(gen: Gen) -> None:
    cwd = workdir(gen)
    p = gen.run("video", "doomed", "--model", FAILING, "--duration", "5", cwd=cwd)
    line = one_line_error(p, "FAILED", "sim: injected generation failure", "sim_failure")
    [taskid] = p.stdout.splitlines()
    assert taskid in line
    assert not any(cwd.iterdir())
    row = gen.task(taskid)
    assert row.charged == 0
    # A finished task cannot be cancelled: said in one line, nothing changes.
    one_line_error(gen.run("tasks", "cancel", taskid), "already finished (FAILED)")


def test_progress_bar_on_a_terminal(gen: Gen) -> None:
    """With a TTY on stderr rich draws live bars; stdout stays plain for scripts."""
    cwd = workdir(gen)
    master, slave = pty.openpty()
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        p = subprocess.run(
            [LLMAGE, "video", "tty", "--model", T2V, "--duration", "3", "--resolution", "480p",
             "-o", "t.mp4"],
            env=gen.env, cwd=cwd, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL,
            timeout=90, check=False,
        )  # fmt: skip
    finally:
        os.close(slave)
        reader.join(5)
        os.close(master)
    drawn = b"".join(chunks).decode("utf-8", "replace")
    assert p.returncode == 0, drawn
    assert p.stdout.decode().splitlines()[1:] == ["t.mp4", "t.jpg"]
    assert "\x1b[" in drawn and "SUCCEEDED" in drawn and "Traceback" not in drawn
    assert (cwd / "t.mp4").read_bytes()[4:8] == b"ftyp"


# -- image --------------------------------------------------------------------------------------


def test_image_wait_downloads_pngs(gen: Gen) -> None:
    cwd = workdir(gen)
    t2i, i2i = gen.parallel(
        [
            ["image", "a lighthouse", "-m", T2I, "--n", "2", "--size", "1328*1328", "-o", "out"],
            [
                "image",
                "make it winter",
                "-m",
                I2I,
                "--image",
                str(gen.files["first.png"]),
                "--size",
                "1K",
                "-o",
                "edit",
            ],
        ],
        cwd=cwd,
    )
    assert t2i.returncode == 0, t2i.stderr
    taskid, *paths = t2i.stdout.splitlines()
    assert paths == [f"out/{taskid}-1.png", f"out/{taskid}-2.png"]
    for path in paths:
        assert (cwd / path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert gen.task(taskid).llmid == llmid(T2I, ModelKind.T2I)
    assert i2i.returncode == 0, i2i.stderr
    taskid, path = i2i.stdout.splitlines()
    assert (cwd / path).read_bytes()[:4] == b"\x89PNG"
    row = gen.task(taskid)
    assert row.llmid == llmid(I2I, ModelKind.I2I) and len(row.inputs["image_files"]) == 1
