"""Console throttles, code lifetimes and session expiry with a hand-moved clock, against a real
database (SQLite and PostgreSQL): the service layer, no HTTP in between."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from conftest import make_settings
from llmage.auth.passwords import hash_password
from llmage.auth.throttle import Rule, Throttle
from llmage.db.migrate import upgrade
from llmage.db.repos.sessions import SessionRepo
from llmage.db.repos.sms_codes import SmsCodeRepo
from llmage.domain.errors import LlmageError, TooManyAttempts
from llmage.services.console_auth import Client, ConsoleAuth, ThrottleRules
from llmage.services.platform import Platform
from llmage.services.sessions import SessionService
from llmage.sms import LogSmsSender
from support.backends import BACKENDS, database_url

_SERIAL = itertools.count(1)  # unique names and phones in the module's shared database
PASSWORD = "password-123"
HASH = hash_password(PASSWORD)


class Clock:
    def __init__(self) -> None:
        self.t = time.time()

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class Env:
    def __init__(self, platform: Platform, rules: ThrottleRules | None = None) -> None:
        self.p = platform
        self.clock = Clock()
        self.sms = LogSmsSender()
        self.sessions = SessionService(
            SessionRepo(platform.db.engine),
            platform.accounts,
            csrf_secret=b"csrf",
            ttl_seconds=3600,
            clock=self.clock,
        )
        self.auth = ConsoleAuth(
            accounts=platform.accounts,
            sessions=self.sessions,
            codes=SmsCodeRepo(platform.db.engine),
            sms=self.sms,
            code_secret=b"codes",
            throttle=Throttle(clock=self.clock),
            rules=rules or ThrottleRules(),
            clock=self.clock,
        )

    async def user(self, phone: str | None = None) -> str:
        name = f"t{next(_SERIAL)}"
        await self.p.accounts.create_user(name, HASH, phone=phone)
        return name

    def phone(self) -> str:
        return f"137{next(_SERIAL):08d}"

    def code(self, phone: str) -> str:
        return [c for p, c in self.sms.sent if p == phone][-1]


@pytest.fixture(scope="module", params=BACKENDS)
def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, str]]:
    tmp = tmp_path_factory.mktemp(f"throttle-{request.param}")
    with database_url(request.param, tmp) as url:  # sync: it runs its own event loop
        upgrade(url)
        yield tmp, url


@pytest.fixture(scope="module")
async def platform(database: tuple[Path, str]) -> AsyncIterator[Platform]:
    p = Platform(make_settings(*database))
    await p.start(migrate=False)
    try:
        yield p
    finally:
        await p.close()


@pytest.fixture
def env(platform: Platform) -> Env:
    return Env(platform)


async def refused(coro: object) -> TooManyAttempts:
    with pytest.raises(TooManyAttempts) as info:
        await coro  # type: ignore[misc]
    return info.value


async def test_login_locks_a_username_after_failures(platform: Platform) -> None:
    # Shipped: 10 failures a 15 minutes. Three here: the same rule, a third of the Argon2 work.
    env = Env(platform, ThrottleRules(login_user=(Rule(3, 900),)))
    name = await env.user()
    home = Client(ip="10.0.0.1")
    for _ in range(3):
        with pytest.raises(LlmageError) as info:
            await env.auth.login(name, "wrong-password", home)
        assert info.value.status == 401
        env.clock.advance(1)
    err = await refused(env.auth.login(name, PASSWORD, Client(ip="10.0.0.2")))
    assert err.param == "username" and err.retry_after == 900 - 3
    env.clock.advance(896)
    await refused(env.auth.login(name, PASSWORD, home))  # one second short
    env.clock.advance(1)  # the first failure leaves the window 900 s after it was made
    opened = await env.auth.login(name, PASSWORD, home)
    assert opened.user.username == name
    # Success forgets the failures.
    for _ in range(2):
        with pytest.raises(LlmageError):
            await env.auth.login(name, "wrong-password", home)
    await env.auth.login(name, PASSWORD, home)


def test_shipped_rules() -> None:
    rules = ThrottleRules()
    assert rules.login_user == (Rule(10, 900),) and rules.login_ip == (Rule(30, 300),)
    assert rules.sms_phone == (Rule(1, 60), Rule(10, 86400))
    assert rules.code_phone == (Rule(10, 3600),)


async def test_login_attempts_per_ip(platform: Platform) -> None:
    # The shipped rule is 30 a 5 minutes; a smaller one keeps Argon2 work (and time) down.
    env = Env(platform, ThrottleRules(login_ip=(Rule(4, 300),)))
    names = [await env.user() for _ in range(2)]
    crowd = Client(ip="10.9.9.9")
    for i in range(4):
        with pytest.raises(LlmageError) as info:
            await env.auth.login(names[i % 2], "wrong-password", crowd)
        assert info.value.status == 401
    err = await refused(env.auth.login(names[0], PASSWORD, crowd))
    assert err.param is None and err.retry_after == 300
    # Another address is not affected, and the first recovers after the window.
    await env.auth.login(names[1], PASSWORD, Client(ip="10.9.9.10"))
    env.clock.advance(301)
    await env.auth.login(names[0], PASSWORD, crowd)


async def test_sms_one_a_minute_and_ten_a_day_per_phone(env: Env) -> None:
    phone = env.phone()
    await env.user(phone)
    for i in range(10):
        client = Client(ip=f"10.1.0.{i}")  # spread over addresses: the phone rule is the one hit
        assert await env.auth.send_code(phone, "login", client) == 300
        err = await refused(env.auth.send_code(phone, "login", client))
        assert err.param == "phone"
        if i < 9:  # after the tenth, the day rule is the longer wait
            assert 0 < err.retry_after <= 60
        env.clock.advance(61)
    assert len([p for p, _ in env.sms.sent if p == phone]) == 10
    err = await refused(env.auth.send_code(phone, "login", Client(ip="10.1.1.1")))
    # The first of the ten leaves the day window 86400 s after it was sent (10 x 61 s ago).
    assert err.retry_after == 86400 - 10 * 61
    env.clock.advance(86400 - 10 * 61)
    await env.auth.send_code(phone, "login", Client(ip="10.1.1.1"))


async def test_sms_per_ip(env: Env) -> None:
    ip = Client(ip="10.2.0.1")
    phones = [env.phone() for _ in range(11)]
    for phone in phones[:10]:
        await env.auth.send_code(phone, "register", ip)
    err = await refused(env.auth.send_code(phones[10], "register", ip))
    assert err.param is None and 3590 <= err.retry_after <= 3600
    await env.auth.send_code(phones[10], "register", Client(ip="10.2.0.2"))


async def test_codes_expire_after_five_minutes(env: Env) -> None:
    phone = env.phone()
    await env.user(phone)
    await env.auth.send_code(phone, "login", Client())
    env.clock.advance(301)
    with pytest.raises(LlmageError) as info:
        await env.auth.sms_login(phone, env.code(phone), Client())
    assert info.value.status == 401
    env.clock.advance(60)
    await env.auth.send_code(phone, "login", Client())
    env.clock.advance(299)
    assert (await env.auth.sms_login(phone, env.code(phone), Client())).user.user_id > 0


async def test_a_new_code_replaces_the_old_and_guessing_is_capped_per_phone(env: Env) -> None:
    phone = env.phone()
    await env.user(phone)
    await env.auth.send_code(phone, "login", Client())
    old = env.code(phone)
    env.clock.advance(61)
    await env.auth.send_code(phone, "login", Client())
    new = env.code(phone)
    wrong = "000000" if new != "000000" else "111111"
    with pytest.raises(LlmageError):  # the superseded code (or a wrong one): failure 1
        await env.auth.sms_login(phone, old if old != new else wrong, Client())
    # Ten wrong guesses an hour per phone, whatever the code: a fresh code is no fresh start.
    for _ in range(4):  # failures 2-5, on the live code (which survives four)
        with pytest.raises(LlmageError):
            await env.auth.sms_login(phone, wrong, Client())
    for _ in range(5):  # failures 6-10, one per fresh code
        env.clock.advance(61)
        await env.auth.send_code(phone, "login", Client())
        with pytest.raises(LlmageError) as info:
            await env.auth.sms_login(phone, wrong, Client())
        assert not isinstance(info.value, TooManyAttempts)
    err = await refused(env.auth.sms_login(phone, env.code(phone), Client()))
    assert err.param == "code"
    env.clock.advance(3600)
    await env.auth.send_code(phone, "login", Client())
    await env.auth.sms_login(phone, env.code(phone), Client())


async def test_one_code_logs_in_once_even_when_raced(env: Env) -> None:
    phone = env.phone()
    await env.user(phone)
    await env.auth.send_code(phone, "login", Client())
    code = env.code(phone)
    results = await asyncio.gather(
        *(env.auth.sms_login(phone, code, Client(ip=f"10.3.0.{i}")) for i in range(8)),
        return_exceptions=True,
    )
    wins = [r for r in results if not isinstance(r, BaseException)]
    assert len(wins) == 1, results
    assert all(isinstance(r, LlmageError) and r.status == 401 for r in results if r not in wins)


async def test_sessions_expire_and_can_be_revoked(env: Env) -> None:
    name = await env.user()
    opened = await env.auth.login(name, PASSWORD, Client())
    second = await env.auth.login(name, PASSWORD, Client())
    assert await env.sessions.resolve(opened.token) is not None
    env.clock.advance(3599)
    assert await env.sessions.resolve(opened.token) is not None
    env.clock.advance(1)
    assert await env.sessions.resolve(opened.token) is None  # absolute expiry
    assert await env.sessions.resolve(second.token) is None
    third = await env.auth.login(name, PASSWORD, Client())
    user = await env.sessions.resolve(third.token)
    assert user is not None
    # The login an hour later also cleared the expired rows away.
    async with env.p.db.engine.connect() as conn:
        rows = await conn.exec_driver_sql(
            f"SELECT COUNT(*) FROM console_sessions WHERE user_id = {user.user_id}"
        )
        assert rows.scalar_one() == 1
    assert await env.sessions.active_count(user.user_id) == 1
    await env.sessions.close(user)
    assert await env.sessions.resolve(third.token) is None
