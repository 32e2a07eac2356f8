"""Web security shared by pages and API: bind rules, UI settings, login, CSRF and redirects.

Security model (see docs/review.md):

- binds to 127.0.0.1 by default; any other address needs ``DECOMPOSER_UI_TOKEN`` or the server
  refuses to start (``ui_settings`` raises ``ConfigError``); a token or session secret that is
  short or easy to guess is refused the same way (``secret_weakness``);
- reviewers log in with a name (plus the token when one is set); wrong tokens are throttled
  per client address (``web.throttle``); the session is a signed cookie (itsdangerous via
  Starlette's ``SessionMiddleware``), ``SameSite=Strict``, HttpOnly, and ``Secure`` when the
  server is bound beyond loopback or the request came over https;
- every state-changing request (forms and JSON) needs the session's CSRF token, in the
  ``csrf_token`` form field or the ``X-CSRF-Token`` header, else 403;
- all content is escaped by Jinja2's autoescape; pages send a strict Content-Security-Policy
  (``web.app``);
- scripts use the JSON API with ``Authorization: Bearer TOKEN`` (``decomposer token create``)
  and need no CSRF token: a browser never attaches that header by itself, so a cross-site page
  cannot forge it. A revoked or unknown token gets 401.
"""

from __future__ import annotations

import hmac
import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request
from fastapi.responses import JSONResponse, RedirectResponse
from sqlalchemy.exc import OperationalError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from decomposer.core.clock import utcnow
from decomposer.core.errors import ConfigError
from decomposer.core.redact import protect
from decomposer.store import Store
from decomposer.store.tokens import verify_token
from decomposer.web.busy import is_busy
from decomposer.web.throttle import LoginThrottle

HERE = Path(__file__).parent
LOOPBACK = ("127.0.0.1", "localhost", "::1")
SESSION_HOURS = 12
MIN_SECRET_LENGTH = 12
MIN_SECRET_BITS = 60
"""Estimated entropy a UI token or session secret needs (``secret_weakness``)."""
MAKE_ONE = "python -c 'import secrets; print(secrets.token_urlsafe(24))'"


@dataclass(frozen=True)
class UISettings:
    token: str | None = None
    secret: str = ""
    allowed_hosts: tuple[str, ...] | None = None
    secure_cookie: bool = False


def ui_settings(env: Mapping[str, str], host: str) -> UISettings:
    """Settings for ``serve --host HOST``; refuses a non-loopback host without a token, and a
    weak token or session secret. Beyond loopback the session cookie is ``Secure``."""
    token = (env.get("DECOMPOSER_UI_TOKEN") or "").strip() or None
    if host not in LOOPBACK and token is None:
        raise ConfigError(
            f"refusing to serve on {host} without DECOMPOSER_UI_TOKEN",
            hint="set DECOMPOSER_UI_TOKEN (reviewers log in with it) or bind to 127.0.0.1",
        )
    for variable, value in (("DECOMPOSER_UI_TOKEN", token), ("DECOMPOSER_UI_SECRET", None)):
        value = value if variable == "DECOMPOSER_UI_TOKEN" else env.get(variable) or None
        if value is not None and (weakness := secret_weakness(value)) is not None:
            raise ConfigError(f"{variable} {weakness}", hint=f"make one with: {MAKE_ONE}")
    protect(token, env.get("DECOMPOSER_UI_SECRET"))  # never in a log line
    secret = env.get("DECOMPOSER_UI_SECRET") or secrets.token_urlsafe(32)
    # On loopback, only loopback Host headers: a DNS-rebinding page cannot reach the API.
    allowed = (*LOOPBACK, "[::1]") if host in LOOPBACK else None
    return UISettings(
        token=token, secret=secret, allowed_hosts=allowed, secure_cookie=host not in LOOPBACK
    )


def secret_weakness(value: str) -> str | None:
    """Why ``value`` is too weak to guard the review UI, or ``None``.

    The estimate is deliberately simple: characters that repeat or continue a run of the one
    before (``aaaa``, ``1234``, ``abab``) or repeat an earlier stretch (``passwordpassword``)
    add nothing; each other character adds log2 of the alphabet its character classes span
    (lower, upper, digits, other). A random 16-character ``token_urlsafe`` scores ~90 bits,
    ``aaaaaaaaaaaa`` 5 and ``tok-0123456789abcdef`` 37.
    """
    if len(value) < MIN_SECRET_LENGTH:
        return f"is too short ({len(value)} characters; use at least {MIN_SECRET_LENGTH})"
    if estimated_bits(value) < MIN_SECRET_BITS:
        return "is too easy to guess (repeated or sequential characters, or too few kinds)"
    return None


def estimated_bits(value: str) -> float:
    n = len(value)
    period = next((p for p in range(1, n // 2 + 1) if value == (value[:p] * n)[:n]), n)
    core = value[:period]
    kept = sum(1 for i, c in enumerate(core) if i == 0 or abs(ord(c) - ord(core[i - 1])) > 1)
    alphabet = (
        26 * any(c.islower() for c in value)
        + 26 * any(c.isupper() for c in value)
        + 10 * any(c.isdigit() for c in value)
        + 33 * any(not c.isalnum() for c in value)
    )
    return kept * math.log2(max(alphabet, 2))


class LoginRequired(Exception):
    """Raised by a route that needs a reviewer; pages redirect to /login, the API answers 401."""


class TokenRejected(Exception):
    """A bearer token that is malformed, unknown or revoked: the API answers 401."""


def api_user(request: Request) -> tuple[str, bool]:
    """The actor of an API request and whether it came with a bearer token (then no CSRF).

    A token's actor is ``token:NAME``, so the audit trail says which script acted.
    """
    header = request.headers.get("authorization")
    if header is None:
        return current_user(request), False
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise TokenRejected("use Authorization: Bearer TOKEN")
    store: Store = request.app.state.store
    try:
        with store.transaction() as session:
            info = verify_token(session, secret.strip(), utcnow())
    except OperationalError as exc:
        if not is_busy(exc):
            raise
        with store.transaction() as session:  # busy: check the token, skip recording its use
            info = verify_token(session, secret.strip(), utcnow(), touch=False)
    if info is None:
        raise TokenRejected("unknown or revoked API token")
    return f"token:{info.name}", True


def current_user(request: Request) -> str:
    name = reviewer(request)
    if name is None:
        raise LoginRequired
    return name


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def csrf_ok(request: Request, submitted: str | None) -> bool:
    expected = request.session.get("csrf")
    return (
        isinstance(expected, str)
        and bool(expected)
        and submitted is not None
        and hmac.compare_digest(expected.encode(), submitted.encode())
    )


def reviewer(request: Request) -> str | None:
    name = request.session.get("reviewer")
    return name if isinstance(name, str) and name else None


def check_login(request: Request, name: str, token: str | None) -> str | None:
    """An error message, or ``None`` after logging the reviewer in; raises
    ``TooManyAttempts`` while the client's address must wait after wrong tokens."""
    ui: UISettings = request.app.state.ui
    throttle: LoginThrottle = request.app.state.throttle
    address = request.client.host if request.client else "unknown"
    throttle.check(address)
    name = " ".join(name.split())
    if not name or len(name) > 100:
        return "Enter your name (up to 100 characters)."
    if ui.token is not None and not hmac.compare_digest((token or "").encode(), ui.token.encode()):
        throttle.failed(address)
        return "Wrong access token."
    throttle.succeeded(address)
    request.session.clear()
    request.session["reviewer"] = name
    csrf_token(request)
    return None


def forbidden_json(message: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=403)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def safe_next(url: str | None) -> str:
    """Only same-site relative paths are followed after login."""
    if not url or not url.startswith("/") or url.startswith("//") or "\\" in url:
        return "/"
    return url


class SecureCookiesOnHttps:
    """Marks every cookie ``Secure`` on a request that came over https (a TLS proxy in front
    of a loopback-bound server: uvicorn takes the scheme from ``X-Forwarded-Proto``), so the
    session never travels in clear text once it has travelled encrypted."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("scheme") != "https":
            await self.app(scope, receive, send)
            return

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    (k, v + b"; secure")
                    if k.lower() == b"set-cookie" and b"; secure" not in v.lower()
                    else (k, v)
                    for k, v in message["headers"]
                ]
            await send(message)

        await self.app(scope, receive, secured)
