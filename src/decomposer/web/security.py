"""Web security shared by pages and API: bind rules, UI settings, login, CSRF and redirects.

Security model (see docs/review.md):

- binds to 127.0.0.1 by default; any other address needs ``DECOMPOSER_UI_TOKEN`` or the server
  refuses to start (``ui_settings`` raises ``ConfigError``);
- reviewers log in with a name (plus the token when one is set); the session is a signed
  cookie (itsdangerous via Starlette's ``SessionMiddleware``), ``SameSite=Strict``, HttpOnly;
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
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request
from fastapi.responses import JSONResponse, RedirectResponse

from decomposer.core.clock import utcnow
from decomposer.core.errors import ConfigError
from decomposer.store import Store
from decomposer.store.tokens import verify_token

HERE = Path(__file__).parent
LOOPBACK = ("127.0.0.1", "localhost", "::1")
SESSION_HOURS = 12


@dataclass(frozen=True)
class UISettings:
    token: str | None = None
    secret: str = ""
    allowed_hosts: tuple[str, ...] | None = None
    secure_cookie: bool = False


def ui_settings(env: Mapping[str, str], host: str) -> UISettings:
    """Settings for ``serve --host HOST``; refuses a non-loopback host without a token."""
    token = (env.get("DECOMPOSER_UI_TOKEN") or "").strip() or None
    if host not in LOOPBACK and token is None:
        raise ConfigError(
            f"refusing to serve on {host} without DECOMPOSER_UI_TOKEN",
            hint="set DECOMPOSER_UI_TOKEN (reviewers log in with it) or bind to 127.0.0.1",
        )
    if token is not None and len(token) < 12:
        raise ConfigError(
            "DECOMPOSER_UI_TOKEN is too short", hint="use at least 12 random characters"
        )
    secret = env.get("DECOMPOSER_UI_SECRET") or secrets.token_urlsafe(32)
    # On loopback, only loopback Host headers: a DNS-rebinding page cannot reach the API.
    allowed = (*LOOPBACK, "[::1]") if host in LOOPBACK else None
    return UISettings(token=token, secret=secret, allowed_hosts=allowed)


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
    with store.transaction() as session:
        info = verify_token(session, secret.strip(), utcnow())
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
    """An error message, or ``None`` after logging the reviewer in."""
    ui: UISettings = request.app.state.ui
    name = " ".join(name.split())
    if not name or len(name) > 100:
        return "Enter your name (up to 100 characters)."
    if ui.token is not None and not hmac.compare_digest((token or "").encode(), ui.token.encode()):
        return "Wrong access token."
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
