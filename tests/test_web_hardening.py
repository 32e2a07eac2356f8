"""The review server under a bad request (issue 10): bodies over the limit are refused before
they are read, a locked database answers 503 quickly without holding up other requests, wrong
login tokens are throttled (fake clock), weak tokens are refused and the session cookie is
Secure beyond loopback. Outcomes are counted (chunks read, statuses), never timed."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import threading
import warnings
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, event, select, text
from starlette.exceptions import StarletteDeprecationWarning

from decomposer.core.config import Settings
from decomposer.core.errors import ConfigError
from decomposer.core.redact import redact
from decomposer.store.models import Capability
from decomposer.store.tokens import create_token, list_tokens, verify_token
from decomposer.web import UISettings, create_app, ui_settings
from decomposer.web.security import secret_weakness
from decomposer.web.throttle import MAX_TRACKED, LoginThrottle, TooManyAttempts
from test_review import extract_tool
from test_web import CSRF, ids, login  # noqa: F401  (fixture)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

LIMIT = 64 * 1024
CHUNK = 16 * 1024
UI = UISettings(secret="hardening-secret-" + "z" * 20)
STRONG = "Kq8vR2mXz7LpT4wN"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def _db_path(settings: Settings) -> Path:
    return Path(settings.database_url.removeprefix("sqlite:///"))


@pytest.fixture
def limited(settings: Settings) -> Settings:
    return dataclasses.replace(settings, max_request_bytes=LIMIT)


class Body:
    """A request body streamed in chunks, counting how many the server pulled."""

    def __init__(self, chunks: int) -> None:
        self.total = chunks
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.total):
            self.pulled += 1
            yield b"x" * CHUNK


async def _post(app, path: str, body: Body, headers: dict[str, str]) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        return await client.post(path, content=body, headers=headers)


# --- request body limit ------------------------------------------------------------------


async def test_declared_oversized_body_is_refused_before_a_byte_is_read(limited, store):
    app = create_app(limited, UI, store=store)
    body = Body(1000)  # 16 MB
    r = await _post(app, "/api/login", body, {"Content-Length": str(1000 * CHUNK)})
    assert r.status_code == 413 and "too large" in r.text.lower()
    assert body.pulled == 0


@pytest.mark.parametrize("declared", [None, "10"], ids=["chunked", "lying-length"])
async def test_streamed_body_is_cut_off_at_the_limit(limited, store, declared):
    app = create_app(limited, UI, store=store)
    body = Body(1000)
    headers = {"Content-Type": "application/json"}
    if declared:
        headers["Content-Length"] = declared
    r = await _post(app, "/api/login", body, headers)
    assert r.status_code == 413 and "too large" in r.text.lower()
    assert body.pulled <= LIMIT // CHUNK + 1  # not the other 995 chunks


async def test_form_pages_are_limited_too(limited, store):
    app = create_app(limited, UI, store=store)
    body = Body(1000)
    r = await _post(app, "/login", body, {"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413 and "too large" in r.text.lower()
    assert body.pulled <= LIMIT // CHUNK + 1


def test_bodies_under_the_limit_work_and_the_limit_is_configurable(limited, store, monkeypatch):
    client = TestClient(create_app(limited, UI, store=store))
    csrf = client.get("/api/session").json()["csrf_token"]
    r = client.post("/api/login", json={"name": "alice"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200 and r.json()["reviewer"] == "alice"
    assert client.post("/api/login", content=b"{", headers={"Content-Length": "x"}).status_code in (
        400,
        422,
    )
    assert Settings.from_env().max_request_bytes == 1024 * 1024
    monkeypatch.setenv("DECOMPOSER_MAX_REQUEST_MB", "0.5")
    assert Settings.from_env().max_request_bytes == 512 * 1024
    monkeypatch.setenv("DECOMPOSER_MAX_REQUEST_MB", "lots")
    with pytest.raises(ConfigError, match="DECOMPOSER_MAX_REQUEST_MB"):
        Settings.from_env()
    assert Settings.from_env({}).web_busy_timeout == 2.0
    assert Settings.from_env({"DECOMPOSER_WEB_BUSY_TIMEOUT": "0.5"}).web_busy_timeout == 0.5
    with pytest.raises(ConfigError, match="DECOMPOSER_WEB_BUSY_TIMEOUT"):
        Settings.from_env({"DECOMPOSER_WEB_BUSY_TIMEOUT": "-1"})


# --- a locked database ----------------------------------------------------------------------


class WriteLock:
    """Another process's write transaction, as `extract` finishing a run holds it."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)

    def hold(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        if self.conn.in_transaction:
            self.conn.rollback()


@pytest.fixture
def write_lock(settings: Settings) -> Iterator[WriteLock]:
    lock = WriteLock(_db_path(settings))
    yield lock
    lock.release()
    lock.conn.close()


def test_a_locked_database_answers_503_quickly_and_reads_still_work(
    cli,
    settings,
    ids,  # noqa: F811
    write_lock,
):
    fast = dataclasses.replace(settings, web_busy_timeout=0.01)
    app = create_app(fast, UI)  # opens its own store with the web's busy timeout
    client = TestClient(app, follow_redirects=False)
    _, out, _ = cli("token", "create", "--name", "bot")
    bearer = {"Authorization": f"Bearer {next(w for w in out.split() if w.startswith('dcp_'))}"}
    csrf = login(client)
    write_lock.hold()
    assert client.get("/login").status_code == 200
    cid = ids["Point-in-time recovery"]
    assert client.get("/").status_code == 200  # reads are not blocked by a writer (WAL)
    assert client.get(f"/capabilities/{cid}").status_code == 200
    page = client.get(f"/capabilities/{cid}")
    form = {"csrf_token": CSRF.search(page.text).group(1), "action": "approve", "version": "1"}
    r = client.post(f"/capabilities/{cid}/review", data=form)
    assert r.status_code == 503 and r.headers["retry-after"] == "2"
    assert "busy" in r.text and "Traceback" not in r.text
    body = {"action": "approve", "version": 1}
    r = client.post(f"/api/capabilities/{cid}/review", json=body, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 503 and "try again" in r.json()["detail"]
    bulk = {"action": "approve", "items": [{"id": cid, "version": 1}]}
    assert client.post("/api/capabilities/bulk", json=bulk, headers=bearer).status_code == 503
    assert client.get("/api/tools", headers=bearer).status_code == 200  # token checked, not touched
    write_lock.release()
    r = client.post(f"/capabilities/{cid}/review", data=form)
    assert r.status_code == 303
    with app.state.store.transaction() as s:
        assert s.scalar(select(Capability.status).where(Capability.id == cid)) == "approved"
    app.state.store.dispose()


async def test_a_write_waiting_for_the_lock_holds_up_no_other_request(
    settings,
    ids,  # noqa: F811
    write_lock,
):
    """The review waits for the lock in a worker thread; meanwhile GET /login is served. (When
    the review ran on the event loop, every request waited for it: GET /login took 29 s.)"""
    patient = dataclasses.replace(settings, web_busy_timeout=30.0)
    app = create_app(patient, UI)
    writing = threading.Event()

    @event.listens_for(app.state.store.engine, "before_cursor_execute")
    def _seen(_conn, _cursor, statement: str, *_args) -> None:
        if statement.lstrip().upper().startswith(("UPDATE", "INSERT")):
            writing.set()

    cid = ids["Point-in-time recovery"]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        page = await client.get("/login")
        token = CSRF.search(page.text).group(1)
        data = {"csrf_token": token, "name": "alice", "next": "/"}
        assert (await client.post("/login", data=data)).status_code == 303
        page = await client.get(f"/capabilities/{cid}")
        form = {"csrf_token": CSRF.search(page.text).group(1), "action": "approve", "version": "1"}
        write_lock.hold()
        review = asyncio.create_task(client.post(f"/capabilities/{cid}/review", data=form))
        while not writing.is_set() and not review.done():
            await asyncio.sleep(0.01)
        assert not review.done()  # it is waiting for the lock…
        assert (await client.get("/login")).status_code == 200  # …and this is served meanwhile
        assert (await client.get("/")).status_code == 200
        assert not review.done()
        write_lock.release()  # the other process finishes
        assert (await review).status_code == 303
    app.state.store.dispose()


# --- login throttling -------------------------------------------------------------------------


def _client(app, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1")


async def _try(client: httpx.AsyncClient, token: str) -> httpx.Response:
    csrf = (await client.get("/api/session")).json()["csrf_token"]
    return await client.post(
        "/api/login", json={"name": "eve", "token": token}, headers={"X-CSRF-Token": csrf}
    )


async def test_wrong_tokens_are_throttled_per_address_with_doubling_delays(settings, store):
    clock = Clock()
    ui = UISettings(token=STRONG, secret=UI.secret)
    app = create_app(settings, ui, store=store, clock=clock)
    async with _client(app, "203.0.113.7") as eve, _client(app, "198.51.100.2") as bob:
        for _ in range(5):
            assert (await _try(eve, "guess-guess-guess")).status_code == 401
        r = await _try(eve, "guess-guess-guess")
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        assert (await _try(eve, STRONG)).status_code == 429  # even the right one must wait
        assert (await _try(bob, STRONG)).status_code == 200  # another address is not held up
        clock.now += timedelta(seconds=1)
        assert (await _try(eve, "guess-guess-guess")).status_code == 401
        assert (await _try(eve, "guess")).headers["retry-after"] == "2"
        clock.now += timedelta(seconds=2)
        assert (await _try(eve, "guess")).status_code == 401
        assert (await _try(eve, "guess")).headers["retry-after"] == "4"
        csrf = (await eve.get("/api/session")).json()["csrf_token"]
        form = {"csrf_token": csrf, "name": "eve", "token": STRONG}
        page = await eve.post("/login", data=form)
        assert page.status_code == 429 and "Too many failed logins" in page.text
        clock.now += timedelta(seconds=4)
        assert (await _try(eve, STRONG)).status_code == 200  # a success clears the record
        for _ in range(5):
            assert (await _try(eve, "guess")).status_code == 401


def test_three_hundred_guesses_meet_the_throttle_almost_at_once():
    clock = Clock()
    throttle = LoginThrottle(clock)
    refused = 0
    for _ in range(300):
        try:
            throttle.check("203.0.113.7")
        except TooManyAttempts:
            refused += 1
            continue
        throttle.failed("203.0.113.7")
    assert refused == 295  # 5 tries, then the first delay: nothing more without waiting
    waited = 0
    for _ in range(20):  # an attacker who waits out every delay
        try:
            throttle.check("203.0.113.7")
        except TooManyAttempts as exc:
            waited += exc.retry_after_s
            clock.now += timedelta(seconds=exc.retry_after_s)
        throttle.failed("203.0.113.7")
    assert waited > 3600  # 20 more guesses cost over an hour


def test_the_throttle_forgets_quiet_addresses_and_stays_bounded():
    clock = Clock()
    throttle = LoginThrottle(clock)
    for i in range(MAX_TRACKED + 50):
        throttle.failed(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}")
    assert len(throttle._records) <= MAX_TRACKED
    for _ in range(5):
        throttle.failed("203.0.113.9")
    with pytest.raises(TooManyAttempts):
        throttle.check("203.0.113.9")
    clock.now += timedelta(hours=1)
    throttle.check("203.0.113.9")  # forgotten after a quiet window


# --- weak tokens and the cookie -------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    ["aaaaaaaaaaaa", "abcabcabcabc", "tok-0123456789abcdef", "passwordpassword", "1234567890ab"],
)
def test_weak_ui_tokens_and_secrets_are_refused(token):
    with pytest.raises(ConfigError, match="DECOMPOSER_UI_TOKEN is too easy to guess"):
        ui_settings({"DECOMPOSER_UI_TOKEN": token}, "0.0.0.0")
    with pytest.raises(ConfigError, match="DECOMPOSER_UI_SECRET is too easy to guess"):
        ui_settings({"DECOMPOSER_UI_SECRET": token}, "127.0.0.1")


def test_random_tokens_and_passphrases_are_accepted():
    import secrets

    for _ in range(20):
        assert secret_weakness(secrets.token_urlsafe(12)) is None
        assert secret_weakness(secrets.token_hex(12)) is None
    assert secret_weakness("correct horse battery staple") is None
    assert "too short" in (secret_weakness("Kq8vR2mX") or "")
    assert ui_settings({"DECOMPOSER_UI_TOKEN": STRONG}, "0.0.0.0").token == STRONG
    assert redact(f"login token={STRONG}") == "login token=***"  # and it never reaches a log


def _session_cookie(response: httpx.Response) -> str:
    return next(
        v for k, v in response.headers.multi_items() if k == "set-cookie" and "session" in v
    )


def test_session_cookie_is_secure_beyond_loopback_or_over_https(settings, store):
    beyond = ui_settings({"DECOMPOSER_UI_TOKEN": STRONG}, "0.0.0.0")
    assert beyond.secure_cookie and not ui_settings({}, "127.0.0.1").secure_cookie
    remote = TestClient(create_app(settings, beyond, store=store), base_url="https://review.lan")
    assert "secure" in _session_cookie(remote.get("/login")).lower()
    local = ui_settings({}, "127.0.0.1")
    plain = TestClient(create_app(settings, local, store=store), base_url="http://127.0.0.1")
    assert "secure" not in _session_cookie(plain.get("/login")).lower()
    proxied = TestClient(create_app(settings, local, store=store), base_url="https://127.0.0.1")
    cookie = _session_cookie(proxied.get("/login")).lower()
    assert cookie.endswith("; secure") and "httponly" in cookie


def test_a_row_locked_on_postgresql_answers_503_too(cli, tmp_path, monkeypatch, pg_url):
    """PostgreSQL waits for a row lock for ever by default; the web's ``lock_timeout`` makes
    the review answer 503 instead."""
    monkeypatch.setenv("DECOMPOSER_DATABASE_URL", pg_url)
    cid = extract_tool(cli, tmp_path, monkeypatch)["Point-in-time recovery"]
    settings = dataclasses.replace(Settings.from_env(), web_busy_timeout=0.05)
    app = create_app(settings, UI)
    client = TestClient(app, follow_redirects=False)
    csrf = login(client)
    holder = create_engine(pg_url)
    with holder.connect() as conn:
        conn.execute(text("SELECT id FROM capabilities WHERE id = :id FOR UPDATE"), {"id": cid})
        body = {"action": "approve", "version": 1}
        headers = {"X-CSRF-Token": csrf}
        r = client.post(f"/api/capabilities/{cid}/review", json=body, headers=headers)
        assert r.status_code == 503 and r.headers["retry-after"] == "2"
        assert client.get(f"/api/capabilities/{cid}").json()["status"] == "proposed"
        conn.rollback()
    r = client.post(f"/api/capabilities/{cid}/review", json=body, headers=headers)
    assert r.status_code == 200 and r.json()["status"] == "approved"
    holder.dispose()
    app.state.store.dispose()


def test_a_token_records_its_use_at_most_once_a_minute(store):
    """Every bearer request used to be a write (and so wait for any other writer)."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    with store.transaction() as s:
        _, secret = create_token(s, "bot", t0)
    for seconds, expected in ((0, 0), (30, 0), (61, 61), (90, 61)):
        with store.transaction() as s:
            assert verify_token(s, secret, t0 + timedelta(seconds=seconds)) is not None
        with store.transaction() as s:
            [info] = list_tokens(s)
        used = info.last_used_at
        assert used is not None
        assert used.replace(tzinfo=UTC) == t0 + timedelta(seconds=expected)
