"""The web app factory: routers, static files, session and security-header middleware, the
request body limit, and the store opened with the web's short busy timeout.

Creating the app and serving the review pages loads no model SDK: routes that need the
comparator import it when called.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.middleware.sessions import SessionMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware

from decomposer.core.clock import Clock, utcnow
from decomposer.core.config import Settings
from decomposer.store import Store, open_store
from decomposer.web.api import router as api_router
from decomposer.web.bulk import api as bulk_api
from decomposer.web.bulk import router as bulk_router
from decomposer.web.pages import install_handlers
from decomposer.web.pages import router as pages_router
from decomposer.web.security import HERE, SESSION_HOURS, SecureCookiesOnHttps, UISettings
from decomposer.web.throttle import LoginThrottle


def create_app(
    settings: Settings,
    ui: UISettings | None = None,
    store: Store | None = None,
    clock: Clock = utcnow,
) -> FastAPI:
    """The app; ``store`` is opened from ``settings`` (and closed at shutdown) unless given,
    its writes waiting at most ``settings.web_busy_timeout`` for another process's lock.
    ``clock`` times the login throttle."""
    ui = ui or UISettings(secret=secrets.token_urlsafe(32))
    own_store = store is None
    the_store = store or open_store(settings.database_url, busy_timeout=settings.web_busy_timeout)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if own_store:
            the_store.dispose()

    app = FastAPIOffline(
        static_url="/static-docs",
        title="decomposer review API",
        description="Tools, capabilities, review actions and comparisons. Scripts send "
        "`Authorization: Bearer TOKEN` (`decomposer token create`); a browser session's "
        "mutations need its CSRF token in X-CSRF-Token (GET /api/session gives it).",
        version="1",
        lifespan=lifespan,
        # Request bodies are counted as they arrive, before any handler or form parser reads
        # them; over the limit (or a declared Content-Length over it) -> 413. FastAPI's own
        # limiter: it also unwraps the error from Starlette's middleware task groups.
        max_body_size=settings.max_request_bytes,
    )
    app.state.store = the_store
    app.state.settings = settings
    app.state.ui = ui
    app.state.throttle = LoginThrottle(clock)

    app.include_router(bulk_api)  # before /api/capabilities/{cap_id}
    app.include_router(api_router)
    app.include_router(pages_router)
    app.include_router(bulk_router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    install_handlers(app)

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        path = request.url.path
        if path.startswith("/compare/"):
            csp = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:"
        elif path in ("/docs", "/redoc") or path.startswith("/docs/"):
            csp = None  # Swagger UI's inline start-up script; its assets are served from here
        else:
            csp = (
                "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                "frame-src 'self'; frame-ancestors 'self'; form-action 'self'; base-uri 'none'"
            )
        if csp:
            response.headers.setdefault("Content-Security-Policy", csp)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
        return response

    app.add_middleware(
        SessionMiddleware,
        secret_key=ui.secret,
        session_cookie="decomposer_session",
        max_age=SESSION_HOURS * 3600,
        same_site="strict",
        https_only=ui.secure_cookie,
    )
    if not ui.secure_cookie:
        app.add_middleware(SecureCookiesOnHttps)
    if ui.allowed_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(ui.allowed_hosts))
    return app
