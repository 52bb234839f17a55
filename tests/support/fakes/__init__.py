"""The shared fake-upstream framework for provider adapters (see README.md beside this file)."""

from support.fakes.media import tiny_jpeg, tiny_mp4, tiny_png
from support.fakes.server import Failure, FakeTask, FakeUpstream, Lifecycle

__all__ = [
    "Failure",
    "FakeTask",
    "FakeUpstream",
    "Lifecycle",
    "tiny_jpeg",
    "tiny_mp4",
    "tiny_png",
]
