"""Console sign-up and log-in: passwords, SMS codes, password change and reset, with throttles.

Every way in ends in `SessionService.open`. The throttles (auth/throttle.py, in-process) are:

- password login: 10 failures per username per 15 min, 30 attempts per IP per 5 min;
- SMS sending: 1 a minute and 10 a day per phone, 10 an hour and 50 a day per IP;
- code guessing: each code dies after `sms_code_attempts` wrong guesses (counted in the database),
  and 10 wrong guesses per phone per hour across codes (a fresh code is no fresh start);
- sign-up: 10 per IP per hour.

Replies do not tell whether an account exists where that would help an attacker: an unknown
username and a wrong password are the same 401; an SMS code for login or reset to a phone with no
account is "sent" (nothing goes out). Sign-up must say a name or phone is taken.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from llmage.auth.passwords import hash_password, verify_password
from llmage.auth.throttle import Rule, Throttle
from llmage.auth.tokens import new_sms_code, sms_code_hash
from llmage.db.repos.accounts import AccountRepo
from llmage.db.repos.sms_codes import SmsCodeRepo
from llmage.domain.errors import (
    Conflict,
    Forbidden,
    InvalidParameter,
    LlmageError,
    ServiceUnavailable,
    TooManyAttempts,
)
from llmage.domain.phone import normalize_phone
from llmage.domain.principal import ConsoleUser
from llmage.services.sessions import OpenedSession, SessionService
from llmage.sms import SmsFailed, SmsSender

log = logging.getLogger(__name__)

PURPOSES = ("login", "register", "reset")
USERNAME = re.compile(r"[\w.@-]{3,32}")
MIN_PASSWORD, MAX_PASSWORD = 8, 128
# Verified against a real hash when the username is unknown, so both cases take as long.
_DUMMY_HASH = hash_password("llmage-timing-equaliser")


class BadCredentials(LlmageError):
    status = 401
    type = "authentication_error"
    code = "invalid_credentials"


@dataclass(frozen=True, slots=True)
class ThrottleRules:
    login_user: tuple[Rule, ...] = (Rule(10, 900),)
    login_ip: tuple[Rule, ...] = (Rule(30, 300),)
    sms_phone: tuple[Rule, ...] = (Rule(1, 60), Rule(10, 86400))
    sms_ip: tuple[Rule, ...] = (Rule(10, 3600), Rule(50, 86400))
    code_phone: tuple[Rule, ...] = (Rule(10, 3600),)
    register_ip: tuple[Rule, ...] = (Rule(10, 3600),)


@dataclass(slots=True)
class Client:
    """Where a request came from (for throttles and the session row)."""

    ip: str = "unknown"
    user_agent: str | None = None


def check_password(password: str, param: str = "password") -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidParameter(
            f"{param} must have {MIN_PASSWORD} to {MAX_PASSWORD} characters", param=param
        )


def check_username(username: str) -> None:
    if not USERNAME.fullmatch(username):
        raise InvalidParameter(
            "username must have 3 to 32 letters, digits or . _ @ - characters", param="username"
        )


async def _hash(password: str) -> str:
    # Argon2 costs tens of milliseconds of CPU by design (more on a busy machine); off the event
    # loop, so a login never stalls the requests this process is relaying. cffi releases the GIL.
    return await asyncio.to_thread(hash_password, password)


async def _verify(password_hash: str, password: str) -> bool:
    return await asyncio.to_thread(verify_password, password_hash, password)


def _throttled(wait: float | None, what: str, param: str | None = None) -> None:
    if wait is not None:
        raise TooManyAttempts(
            f"Too many {what}; try again in {max(1, int(wait + 0.999))} s",
            retry_after=wait,
            param=param,
        )


@dataclass
class ConsoleAuth:
    accounts: AccountRepo
    sessions: SessionService
    codes: SmsCodeRepo
    sms: SmsSender
    code_secret: bytes
    code_ttl_seconds: int = 300
    code_attempts: int = 5
    throttle: Throttle = field(default_factory=Throttle)
    rules: ThrottleRules = field(default_factory=ThrottleRules)
    clock: Callable[[], float] = time.time

    def _now(self) -> int:
        return int(self.clock() * 1000)

    # -- password --------------------------------------------------------------------------

    async def register(
        self,
        username: str,
        password: str,
        client: Client,
        *,
        phone: str | None = None,
        sms_code: str | None = None,
    ) -> OpenedSession:
        check_username(username)
        check_password(password)
        number = normalize_phone(phone) if phone else None
        if number is not None and not sms_code:
            raise InvalidParameter(
                "sms_code is required with a phone: request one with purpose 'register'",
                param="sms_code",
            )
        _throttled(
            self.throttle.hit(f"register:ip:{client.ip}", self.rules.register_ip), "sign-ups"
        )
        if await self.accounts.user_by_name(username):
            raise Conflict(f"username '{username}' is taken", param="username")
        if number is not None:
            if await self.accounts.user_by_phone(number):
                raise Conflict("this phone number is already registered", param="phone")
            await self._take_code(number, "register", sms_code or "")
        user_id = await self.accounts.create_user(username, await _hash(password), phone=number)
        log.info("console sign-up: user %s (id %d)", username, user_id)
        return await self.sessions.open(user_id, ip=client.ip, user_agent=client.user_agent)

    async def login(self, username: str, password: str, client: Client) -> OpenedSession:
        user_key = f"login:user:{username.lower()}"
        _throttled(self.throttle.hit(f"login:ip:{client.ip}", self.rules.login_ip), "logins")
        _throttled(
            self.throttle.retry_after(user_key, self.rules.login_user),
            "failed logins for this username",
            "username",
        )
        user = await self.accounts.user_by_name(username)
        ok = await _verify(user.password_hash if user else _DUMMY_HASH, password)
        if user is None or not ok:
            self.throttle.record(user_key, self.rules.login_user)
            raise BadCredentials("Wrong username or password", param="password")
        if user.disabled:
            raise Forbidden("This account is disabled", param="username")
        self.throttle.reset(user_key)
        return await self.sessions.open(user.id, ip=client.ip, user_agent=client.user_agent)

    async def change_password(self, who: ConsoleUser, old: str, new: str) -> int:
        """Returns how many other sessions were ended."""
        check_password(new, "new_password")
        user = await self.accounts.user_by_id(who.user_id)
        if user is None:
            raise BadCredentials("Session user no longer exists")
        key = f"password:user:{who.user_id}"
        _throttled(
            self.throttle.retry_after(key, self.rules.login_user), "wrong passwords", "password"
        )
        if not await _verify(user.password_hash, old):
            self.throttle.record(key, self.rules.login_user)
            raise BadCredentials("The current password is wrong", param="password")
        await self.accounts.update_user(who.user_id, password_hash=await _hash(new))
        return await self.sessions.revoke_others(who.user_id, keep=who.session_id)

    # -- SMS -------------------------------------------------------------------------------

    async def send_code(self, phone: str, purpose: str, client: Client) -> int:
        """Send a code; returns its lifetime in seconds."""
        if purpose not in PURPOSES:
            raise InvalidParameter("unknown purpose", param="purpose", allowed=PURPOSES)
        number = normalize_phone(phone)
        _throttled(
            self.throttle.retry_after(f"sms:phone:{number}", self.rules.sms_phone),
            "codes sent to this phone",
            "phone",
        )
        _throttled(self.throttle.retry_after(f"sms:ip:{client.ip}", self.rules.sms_ip), "codes")
        owner = await self.accounts.user_by_phone(number)
        if purpose == "register" and owner is not None:
            raise Conflict("this phone number is already registered", param="phone")
        self.throttle.record(f"sms:phone:{number}", self.rules.sms_phone)
        self.throttle.record(f"sms:ip:{client.ip}", self.rules.sms_ip)
        if purpose != "register" and (owner is None or owner.disabled):
            # Same answer as a real send: the reply must not reveal who has an account.
            log.info("SMS %s code for %s not sent: no active account", purpose, number)
            return self.code_ttl_seconds
        code = new_sms_code()
        now = self._now()
        code_id = await self.codes.add(
            number,
            purpose,
            sms_code_hash(self.code_secret, number, purpose, code),
            now=now,
            expires_at=now + self.code_ttl_seconds * 1000,
        )
        try:
            await self.sms.send_code(number, code)
        except SmsFailed as exc:
            await self.codes.burn(code_id, self._now())
            log.warning("SMS to %s failed: %s", number, exc.code)
            if exc.code == "isv.MOBILE_NUMBER_ILLEGAL":
                raise InvalidParameter(
                    "the SMS provider refused this number", param="phone"
                ) from exc
            if exc.code == "isv.BUSINESS_LIMIT_CONTROL":
                raise TooManyAttempts(
                    "The SMS provider limits codes to this phone; try again later",
                    retry_after=3600,
                    param="phone",
                ) from exc
            raise ServiceUnavailable(
                "Sending the SMS failed; try again later", code="sms_unavailable"
            ) from exc
        return self.code_ttl_seconds

    async def _take_code(self, phone: str, purpose: str, code: str) -> None:
        key = f"code:phone:{phone}"
        _throttled(self.throttle.retry_after(key, self.rules.code_phone), "wrong codes", "code")
        ok = await self.codes.check(
            phone,
            purpose,
            sms_code_hash(self.code_secret, phone, purpose, code.strip()),
            now=self._now(),
            max_attempts=self.code_attempts,
        )
        if not ok:
            self.throttle.record(key, self.rules.code_phone)
            raise BadCredentials(
                "Wrong or expired SMS code: request a new one if it keeps failing",
                param="sms_code" if purpose == "register" else "code",
            )

    async def sms_login(self, phone: str, code: str, client: Client) -> OpenedSession:
        number = normalize_phone(phone)
        await self._take_code(number, "login", code)
        user = await self.accounts.user_by_phone(number)
        if user is None:  # the account went away between the code and now
            raise BadCredentials("No account with this phone number", param="phone")
        if user.disabled:
            raise Forbidden("This account is disabled", param="phone")
        return await self.sessions.open(user.id, ip=client.ip, user_agent=client.user_agent)

    async def reset_password(self, phone: str, code: str, new_password: str) -> int:
        """Set a new password from an SMS code; ends every session. Returns how many."""
        check_password(new_password, "new_password")
        number = normalize_phone(phone)
        await self._take_code(number, "reset", code)
        user = await self.accounts.user_by_phone(number)
        if user is None:
            raise BadCredentials("No account with this phone number", param="phone")
        await self.accounts.update_user(user.id, password_hash=await _hash(new_password))
        self.throttle.reset(f"login:user:{user.username.lower()}")
        return await self.sessions.revoke_others(user.id, keep=None)
