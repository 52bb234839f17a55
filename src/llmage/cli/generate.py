"""`llmage video|image`: generate through a running server's native HTTP API (`POST
/llmage/video`, then `GET /llmage/tasks` until done), with a progress bar, and download the
results. These commands are clients: they never open the database.

stdout carries the task id, then one saved path per line (for scripts); progress and notes go to
stderr.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from llmage.cli.tasks import Api, Ui, api_options, follow, one_line

KIND_WORDS = {
    "t2v": "text-to-video",
    "i2v": "image-to-video",
    "r2v": "reference-to-video",
    "t2i": "text-to-image",
    "i2i": "image-to-image",
}
FAMILY_KINDS = {"video": ("t2v", "i2v", "r2v"), "image": ("t2i", "i2i")}
Slot = tuple[str, bool, str]  # (parameter, holds a list, FILE or URL)

# -- choosing the model and laying out the inputs ----------------------------------------------


def is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def check_files(values: tuple[str, ...], option: str) -> None:
    for value in values:
        if not is_url(value) and not Path(value).is_file():
            raise click.BadParameter(f"no such file: {value}", param_hint=option)


def pick_model(
    plaza: list[dict[str, Any]], wanted: str, family: str, implied: str
) -> tuple[dict[str, Any], str | None]:
    """The plaza entry to use, and the model name to send (None: the entry's default).

    An llmid names one entry outright. A model name may sit in several entries (text-, image-
    and reference-to-video): the kind the inputs imply picks one."""
    kinds = FAMILY_KINDS[family]
    for entry in plaza:
        if entry.get("llmid") == wanted:
            if entry.get("kind") not in kinds:
                raise click.BadParameter(
                    f"{wanted} is a {entry.get('kind')} model, not a {family} model",
                    param_hint="--model",
                )
            return entry, None
    named = [e for e in plaza if wanted in (e.get("models") or ()) and e.get("kind") in kinds]
    if not named:
        known = sorted({n for e in plaza if e.get("kind") in kinds for n in e.get("models") or ()})
        raise click.BadParameter(
            f"unknown {family} model '{wanted}' (known: {', '.join(known)})", param_hint="--model"
        )
    for entry in named:
        if entry.get("kind") == implied:
            return entry, wanted
    has = ", ".join(sorted({KIND_WORDS.get(str(e.get("kind")), "?") for e in named}))
    raise click.BadParameter(
        f"'{wanted}' has no {KIND_WORDS[implied]} variant (it has: {has})", param_hint="--model"
    )


def implied_video_kind(images: tuple[str, ...], last: str | None) -> str:
    if last and len(images) != 1:
        raise click.UsageError("--last-image goes with exactly one --image (the first frame)")
    return "t2v" if not images else "i2v" if len(images) == 1 else "r2v"


def video_slots(kind: str, images: tuple[str, ...], last: str | None) -> list[Slot]:
    """seed 000: image1_file (+ image2_file) for image-to-video, image_files for references."""
    if kind == "t2v":
        if images or last:
            raise click.UsageError("a text-to-video model takes no --image")
        return []
    if kind == "i2v":
        if len(images) != 1:
            raise click.UsageError("image-to-video takes one --image (and maybe --last-image)")
        last_frame: list[Slot] = [("image2_file", False, last)] if last else []
        return [("image1_file", False, images[0]), *last_frame]
    if last or not images:
        raise click.UsageError("reference-to-video takes one or more --image and no --last-image")
    return [("image_files", True, i) for i in images]


def image_slots(entry: dict[str, Any], images: tuple[str, ...]) -> list[Slot]:
    """Image-to-image: the entry's file parameter, read from its published JSON Schema."""
    if entry.get("kind") == "t2i":
        if images:
            raise click.UsageError("a text-to-image model takes no --image")
        return []
    props = ((entry.get("parameters") or {}).get("properties")) or {}
    name, multi = "image_files", True
    for pname, schema in props.items():
        if schema.get("format") == "binary":
            name, multi = pname, False
            break
        if schema.get("type") == "array" and (schema.get("items") or {}).get("format") == "binary":
            name, multi = pname, True
            break
    if not images or (len(images) > 1 and not multi):
        raise click.UsageError(
            f"this image-to-image model takes {'one or more' if multi else 'one'} --image"
        )
    return [(name, multi, i) for i in images]


def parse_params(pairs: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--param")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


def request_body(fields: dict[str, Any], slots: list[Slot]) -> dict[str, Any]:
    """httpx arguments: JSON when every input is a URL, multipart when a file is uploaded
    (URLs then travel as plain form fields, in order, beside the uploads)."""
    fields = {k: v for k, v in fields.items() if v is not None}
    if all(is_url(v) for _, _, v in slots):
        body = dict(fields)
        for name, multi, value in slots:
            if multi:
                body.setdefault(name, []).append(value)
            else:
                body[name] = value
        return {"json": body}
    data = {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
    files: list[tuple[str, Any]] = []
    for name, multi, value in slots:
        field = f"{name}[]" if multi else name  # `name[]`: a list even with one file
        if is_url(value):
            files.append((field, (None, value)))
        else:
            path = Path(value)
            ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            files.append((field, (path.name, path.read_bytes(), ctype)))
    return {"data": data, "files": files}


# -- submit, follow, download ------------------------------------------------------------------


def extension(ctype: str, fallback: str) -> str:
    guessed = mimetypes.guess_extension(ctype) if ctype else None
    return ".jpg" if guessed in (".jpe", ".jpeg") else guessed or fallback


def generate(
    api: Api,
    family: str,
    fields: dict[str, Any],
    slots: list[Slot],
    save: Callable[[Api, str, dict[str, Any], Ui], list[Path]],
    opts: dict[str, Any],
) -> None:
    """Submit, print the task id; with opts["wait"], follow the task and save its results."""
    ui = Ui()
    key = opts["idempotency_key"]
    headers = {"Idempotency-Key": key} if key else {}
    answer = api.call("POST", "/llmage/video", headers=headers, **request_body(fields, slots))
    taskid = str(answer.get("taskid") or "")
    if not taskid:
        raise click.ClickException("the server answered the submit without a task id")
    click.echo(taskid)
    what = fields.get("model") or fields["llmid"]
    ui.say(f"submitted {family} task {taskid} ({what}); status {answer.get('status', '?')}")
    if not opts["wait"]:
        return
    try:
        view = follow(api, taskid, ui, opts["timeout"])
    except KeyboardInterrupt:
        ui.say(f"\nstopped waiting; task {taskid} keeps running (llmage tasks cancel {taskid})")
        raise SystemExit(130) from None
    status = str(view.get("status")).upper()
    if status != "SUCCEEDED":
        err = view.get("error") or {}
        detail = f"{err.get('message') or 'no reason given'} ({err.get('code') or 'unknown'})"
        raise click.ClickException(f"task {taskid} {status}: {one_line(detail)}")
    for path in save(api, taskid, view, ui):
        click.echo(str(path))
    usage = view.get("usage") or {}
    if usage.get("amount"):
        ui.say(f"done: charged {usage['amount']} {usage.get('currency', '')}".rstrip())


def _common(f: Callable[..., Any]) -> Callable[..., Any]:
    """Options every generation command shares (applied bottom-up, so listed in reverse)."""
    for option in (
        api_options,
        click.option(
            "--timeout",
            type=click.FloatRange(min=1),
            default=3600,
            show_default=True,
            help="Seconds to wait before giving up (the task keeps running).",
        ),
        click.option(
            "--idempotency-key",
            default=None,
            help="Same key and inputs again: the same task, charged once.",
        ),
        click.option(
            "--wait/--no-wait",
            default=True,
            show_default=True,
            help="Follow the task and download the result, or print the task id and return.",
        ),
        click.option(
            "--param",
            "params",
            multiple=True,
            metavar="KEY=VALUE",
            help="Any other model parameter (see GET /llmage/models); repeatable.",
        ),
    ):
        f = option(f)
    return f


def _plaza(api: Api) -> list[dict[str, Any]]:
    data = api.call("GET", "/llmage/models").get("data")
    return [e for e in data if isinstance(e, dict)] if isinstance(data, list) else []


def _fields(prompt: str, entry: dict[str, Any], name: str | None, **more: Any) -> dict[str, Any]:
    return {"llmid": entry["llmid"], "model": name, "prompt": prompt, **more}


@click.command("video", short_help="Generate a video and download it, with a progress bar.")
@click.argument("prompt")
@click.option("--model", "-m", required=True, help="A video model name or llmid.")
@click.option(
    "--image",
    "images",
    multiple=True,
    metavar="FILE|URL",
    help="One: the first frame (image-to-video). Several: references (reference-to-video).",
)
@click.option("--last-image", metavar="FILE|URL", help="The last frame, with one --image.")
@click.option("--duration", type=click.IntRange(min=1), help="Seconds of video.")
@click.option("--resolution", help="e.g. 720p or 1080p.")
@click.option("--ratio", help="Aspect ratio, e.g. 16:9, 9:16, 1:1 or adaptive.")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to save the video (default ./TASKID.mp4); the cover goes next to it as .jpg.",
)
@_common
def video(
    prompt: str,
    model: str,
    images: tuple[str, ...],
    last_image: str | None,
    duration: int | None,
    resolution: str | None,
    ratio: str | None,
    output: Path | None,
    params: tuple[str, ...],
    **opts: Any,
) -> None:
    """Generate a video from PROMPT through a running llmage server.

    The inputs choose the kind of model: no --image is text-to-video, one --image is
    image-to-video from that first frame (add --last-image for first and last frame), several
    --image are references (reference-to-video). --model takes a model name, matched to the
    entry of that kind in GET /llmage/models, or an llmid. Images are local files (uploaded)
    or http(s) URLs.

    With --wait (the default) a progress bar follows the task, then the video and its cover are
    downloaded. stdout gets the task id, then the saved paths. Exit status 1 when the task fails.

    \b
    Example:
      export LLMAGE_API_KEY=sk-...
      llmage video "a red fox running through snow" --model happyhorse-1.0-t2v \\
          --duration 5 --resolution 720p --ratio 16:9 -o fox.mp4
      llmage video "she turns and smiles" -m happyhorse-1.0-i2v --image portrait.jpg
    """
    check_files((*images, *([last_image] if last_image else [])), "--image")
    implied = implied_video_kind(images, last_image)
    with Api(opts["base_url"], opts["api_key"]) as api:
        entry, name = pick_model(_plaza(api), model, "video", implied)
        slots = video_slots(str(entry["kind"]), images, last_image)
        more = {"duration": duration, "resolution": resolution, "ratio": ratio}
        fields = _fields(prompt, entry, name, **more, **parse_params(params))

        def save(api: Api, taskid: str, view: dict[str, Any], ui: Ui) -> list[Path]:
            if not view.get("video"):
                raise click.ClickException(f"task {taskid} succeeded without a video link")
            dest = output or Path(f"{taskid}.mp4")
            paths = [api.download(str(view["video"]), "video", lambda ct: dest, ui)]
            if view.get("image"):
                cover = (
                    dest.with_suffix(".jpg")
                    if dest.suffix != ".jpg"
                    else dest.with_suffix(".cover.jpg")
                )
                paths.append(api.download(str(view["image"]), "cover", lambda ct: cover, ui))
            return paths

        generate(api, "video", fields, slots, save, opts)


@click.command("image", short_help="Generate images and download them, with a progress bar.")
@click.argument("prompt")
@click.option("--model", "-m", required=True, help="An image model name or llmid.")
@click.option(
    "--image",
    "images",
    multiple=True,
    metavar="FILE|URL",
    help="Input image(s) for image-to-image; none for text-to-image.",
)
@click.option("--size", help="e.g. 1024*1024 or 2048x2048 (see the model's parameters).")
@click.option("--n", "n", type=click.IntRange(min=1), help="How many images.")
@click.option(
    "--output",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Directory for the images, saved as TASKID-1.png, TASKID-2.png, ...",
)
@_common
def image(
    prompt: str,
    model: str,
    images: tuple[str, ...],
    size: str | None,
    n: int | None,
    output: Path,
    params: tuple[str, ...],
    **opts: Any,
) -> None:
    """Generate images from PROMPT through a running llmage server.

    Without --image the model's text-to-image entry is used; with --image (files are uploaded,
    URLs passed on) its image-to-image entry. With --wait (the default) a progress bar follows
    the task, then every image is downloaded into --output. stdout gets the task id, then the
    saved paths. Exit status 1 when the task fails.

    \b
    Example:
      export LLMAGE_API_KEY=sk-...
      llmage image "a lighthouse at dusk, oil painting" --model qwen-image --n 2 -o out/
      llmage image "make it winter" -m doubao-seedream-4-0-250828 --image house.png
    """
    check_files(images, "--image")
    with Api(opts["base_url"], opts["api_key"]) as api:
        entry, name = pick_model(_plaza(api), model, "image", "i2i" if images else "t2i")
        slots = image_slots(entry, images)
        fields = _fields(prompt, entry, name, size=size, n=n, **parse_params(params))

        def save(api: Api, taskid: str, view: dict[str, Any], ui: Ui) -> list[Path]:
            urls = view.get("images") or ([view["image"]] if view.get("image") else [])
            if not urls:
                raise click.ClickException(f"task {taskid} succeeded without an image link")

            def named(i: int) -> Callable[[str], Path]:
                return lambda ctype: output / f"{taskid}-{i}{extension(ctype, '.png')}"

            return [
                api.download(str(url), f"image {i}", named(i), ui) for i, url in enumerate(urls, 1)
            ]

        generate(api, "image", fields, slots, save, opts)
