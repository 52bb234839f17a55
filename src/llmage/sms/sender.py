"""The SMS sender interface and the log sender.

`LogSmsSender` writes the code to the server log (and nowhere else): the demo and development
read codes there. It is the default so a fresh install works offline; never use it where real
users sign up, because anyone reading the log can log in as them.
"""

from __future__ import annotations

import logging
from typing import Protocol

from llmage.settings import Settings

log = logging.getLogger("llmage.sms")


class SmsFailed(Exception):
    """The provider refused or could not be reached. `code` is the provider's error code
    (e.g. isv.MOBILE_NUMBER_ILLEGAL); the message never contains credentials."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class SmsSender(Protocol):
    name: str

    async def send_code(self, phone: str, code: str) -> None: ...

    async def close(self) -> None: ...


class LogSmsSender:
    name = "log"

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []  # (phone, code), newest last: for tests and demos

    async def send_code(self, phone: str, code: str) -> None:
        self.sent.append((phone, code))
        del self.sent[:-1000]
        log.warning("SMS verification code for %s: %s (LLMAGE_SMS_BACKEND=log)", phone, code)

    async def close(self) -> None:
        return None


def make_sms_sender(settings: Settings) -> SmsSender:
    backend = settings.sms_backend.lower()
    if backend == "log":
        return LogSmsSender()
    if backend == "aliyun":
        from llmage.sms.aliyun import AliyunSmsSender

        return AliyunSmsSender.from_settings(settings)
    raise ValueError(f"LLMAGE_SMS_BACKEND must be 'log' or 'aliyun', not {settings.sms_backend!r}")
