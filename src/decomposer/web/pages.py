"""Server-rendered pages: login, queue, capability (review forms, diff, history), document,
tool page with scores and a comparison preview."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException

from decomposer.core.clock import utcnow
from decomposer.core.errors import ConflictError, DecomposerError, InputError, NotFoundError
from decomposer.core.vocab import CATEGORIES, STATUSES
from decomposer.core.vocab import PENDING_STATUSES as PENDING
from decomposer.review.actions import FIELDS, submit
from decomposer.review.queries import get_capability
from decomposer.store import Store
from decomposer.views import review as views
from decomposer.views.review import PAGE_SIZES, format_fact, queue_filter
from decomposer.views.tools import tool_detail
from decomposer.web.busy import BUSY_MESSAGE, is_busy, retry_after
from decomposer.web.markdown import render_context
from decomposer.web.security import (
    HERE,
    LoginRequired,
    TokenRejected,
    check_login,
    csrf_ok,
    csrf_token,
    current_user,
    redirect,
    reviewer,
    safe_next,
)
from decomposer.web.throttle import TooManyAttempts

router = APIRouter(include_in_schema=False)
env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
QUEUE_KEYS = (
    ("j / n", "select the next capability"),
    ("k / p", "select the previous capability"),
    ("Enter", "open the selected capability"),
    ("x", "tick the selected capability for a bulk action"),
    ("a", "approve the ticked capabilities (asks to confirm)"),
    ("r", "reject the ticked capabilities (asks to confirm)"),
    ("e", "edit the selected capability"),
    ("/", "search"),
    ("?", "this help"),
)
CAPABILITY_KEYS = (
    ("a", "approve"),
    ("r", "reject (type a reason first, then Enter)"),
    ("e", "edit"),
    ("j / n", "next pending capability of this tool"),
    ("k / p", "previous pending capability of this tool"),
    ("/", "search"),
    ("?", "this help"),
)
LIST_KEYS = (
    ("j / n", "select the next item"),
    ("k / p", "select the previous item"),
    ("Enter", "open the selected item"),
    ("/", "search"),
    ("?", "this help"),
)
PLAIN_KEYS = (("/", "search"), ("?", "this help"))
"""The keys each page handles (static/review.js); the footer and the help overlay list them."""
ACTION_LABELS = {"approve": "approved", "reject": "rejected", "edit": "edited", "keep": "kept"}


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = env.get_template(name).render(
        request=request,
        request_path=request.url.path,
        user=reviewer(request),
        csrf=csrf_token(request),
        fields=FIELDS,
        **{"keys": PLAIN_KEYS, **context},
    )
    return HTMLResponse(html, status_code=status_code)


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def _login(request: Request, _exc: LoginRequired) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": "log in first (POST /api/login)"}, status_code=401)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return redirect("/login?" + urlencode({"next": target}))

    @app.exception_handler(TokenRejected)
    async def _token(_request: Request, exc: TokenRejected) -> Response:
        return JSONResponse(
            {"detail": str(exc)}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
        )

    @app.exception_handler(DecomposerError)
    async def _error(request: Request, exc: DecomposerError) -> Response:
        status = (
            404
            if isinstance(exc, NotFoundError)
            else 409
            if isinstance(exc, ConflictError)
            else 400
        )
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": str(exc)}, status_code=status)
        return render(request, "error.html", status_code=status, message=str(exc))

    @app.exception_handler(TooManyAttempts)
    async def _throttled(request: Request, exc: TooManyAttempts) -> Response:
        headers = {"Retry-After": str(exc.retry_after_s)}
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": str(exc)}, status_code=429, headers=headers)
        page = render(
            request,
            "login.html",
            status_code=429,
            next="/",
            token_required=request.app.state.ui.token is not None,
            error=str(exc),
        )
        page.headers.update(headers)
        return page

    @app.exception_handler(OperationalError)
    async def _busy(request: Request, exc: OperationalError) -> Response:
        if not is_busy(exc):
            raise exc
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": BUSY_MESSAGE}, status_code=503, headers=retry_after())
        page = render(request, "error.html", status_code=503, message=BUSY_MESSAGE)
        page.headers.update(retry_after())
        return page

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path.startswith("/api/") or request.url.path.startswith("/static/"):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
        return render(request, "error.html", status_code=exc.status_code, message=str(exc.detail))


@router.get("/login")
def login_form(request: Request, next: str = "/") -> HTMLResponse:
    return render(
        request,
        "login.html",
        next=safe_next(next),
        token_required=request.app.state.ui.token is not None,
        error=None,
    )


@router.post("/login")
async def login(request: Request) -> Response:
    form = await request.form()
    if not csrf_ok(request, _str(form.get("csrf_token"))):
        return render(request, "error.html", status_code=403, message="Invalid CSRF token.")
    target = safe_next(_str(form.get("next")))
    error = check_login(request, _str(form.get("name")) or "", _str(form.get("token")))
    if error is not None:
        return render(
            request,
            "login.html",
            status_code=401,
            next=target,
            token_required=request.app.state.ui.token is not None,
            error=error,
        )
    return redirect(target)


@router.post("/logout")
async def logout(request: Request) -> Response:
    form = await request.form()
    if not csrf_ok(request, _str(form.get("csrf_token"))):
        return render(request, "error.html", status_code=403, message="Invalid CSRF token.")
    request.session.clear()
    return redirect("/login")


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@router.get("/")
def queue_page(
    request: Request,
    tool: str | None = None,
    status: str = "pending",
    category: str | None = None,
    ungrounded: bool = False,
    evidence: str | None = None,
    provenance: str | None = None,
    q: str = "",
    page: int = 1,
    per_page: int = 50,
) -> HTMLResponse:
    current_user(request)
    f = queue_filter(
        tool or None, status, category or None, ungrounded, evidence or None, provenance or None
    )
    with _store(request).transaction() as session:
        result = views.queue_page(session, f, q, page, per_page)
        tools = views.tools_overview(session)
    selected = {
        "tool": tool or "",
        "status": status,
        "category": category or "",
        "evidence": evidence or ("missing" if ungrounded else ""),
        "provenance": provenance or "",
        "q": q,
        "per_page": per_page,
    }
    return render(
        request,
        "queue.html",
        result=result,
        items=result.items,
        tools=tools,
        statuses=("pending", "changed", *STATUSES, "all"),
        categories=CATEGORIES,
        page_sizes=PAGE_SIZES,
        selected=selected,
        page_url=lambda n: (
            "/?" + urlencode({**{k: v for k, v in selected.items() if v}, "page": n})
        ),
        here=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        keys=QUEUE_KEYS,
    )


@router.get("/capabilities/{cap_id}")
def capability_page(request: Request, cap_id: str) -> HTMLResponse:
    current_user(request)
    from decomposer.contrast.lines import line_for

    with _store(request).transaction() as session:
        cap = views.capability_detail(session, cap_id)
        contrast = line_for(session, cap_id)
    return render(
        request,
        "capability.html",
        cap=cap,
        contrast=contrast,
        categories=CATEGORIES,
        problem=None,
        keys=CAPABILITY_KEYS,
    )


@router.post("/contrast/{line_id}/review")
async def contrast_review_form(request: Request, line_id: int) -> Response:
    """Approve, reject or edit a model-written vs-alternatives line (``contrast.lines``)."""
    from decomposer.contrast.lines import get_line, review_line

    form = await request.form()
    if not csrf_ok(request, _str(form.get("csrf_token"))):
        return render(request, "error.html", status_code=403, message="Invalid CSRF token.")
    who = current_user(request)
    action = _str(form.get("action")) or ""
    store = _store(request)
    with store.transaction() as session:
        cap_id = get_line(session, line_id).capability_id
    try:
        with store.transaction() as session:
            review_line(
                session,
                line_id,
                action,
                reviewer=who,
                now=utcnow(),
                text=_str(form.get("text")),
                note=_str(form.get("note")),
            )
        request.session["flash"] = f"contrast line {line_id}: {action} done"
    except InputError as exc:
        if isinstance(exc, NotFoundError):
            raise
        request.session["flash"] = f"contrast line {line_id}: not done — {exc}"
    return redirect(f"/capabilities/{quote(cap_id)}#contrast")


@router.post("/capabilities/{cap_id}/review")
async def review_form(request: Request, cap_id: str) -> Response:
    """The form is read here; the review (store reads and writes) runs in the thread pool."""
    form = await request.form()
    return await run_in_threadpool(_review_form, request, cap_id, form)


def _review_form(request: Request, cap_id: str, form: FormData) -> Response:
    if not csrf_ok(request, _str(form.get("csrf_token"))):
        return render(request, "error.html", status_code=403, message="Invalid CSRF token.")
    who = current_user(request)
    action = _str(form.get("action")) or ""
    try:
        version = int(_str(form.get("version")) or "")
    except ValueError:
        return render(request, "error.html", status_code=400, message="Missing version.")
    changes = {}
    if action in ("edit", "approve_edits"):
        changes = {name: value for name in FIELDS if (value := _str(form.get(name))) is not None}
    note = _str(form.get("note"))
    store = _store(request)
    try:
        outcome = submit(
            store,
            cap_id,
            "approve" if action == "approve_edits" else action,
            reviewer=who,
            now=utcnow,
            expected_version=version,
            changes=changes,
            note=note,
        )
    except (ConflictError, InputError) as exc:
        if isinstance(exc, NotFoundError):
            raise
        with store.transaction() as session:
            cap = views.capability_detail(session, cap_id)
        status = 409 if isinstance(exc, ConflictError) else 400
        return render(
            request,
            "capability.html",
            status_code=status,
            cap=cap,
            categories=CATEGORIES,
            keys=CAPABILITY_KEYS,
            problem={
                "conflict": isinstance(exc, ConflictError),
                "message": str(exc),
                "action": action,
                "changes": changes,
                "note": note or "",
            },
        )
    with store.transaction() as session:
        nxt = views.next_pending(session, get_capability(session, cap_id))
    flash = f"{ACTION_LABELS.get(outcome.action, outcome.action)} {cap_id}"
    request.session["flash"] = flash
    if nxt is not None and nxt != cap_id:
        return redirect(f"/capabilities/{quote(nxt)}")
    return redirect(f"/capabilities/{quote(cap_id)}")


@router.get("/documents/{doc_id}")
def document_page(request: Request, doc_id: int, cap: str | None = None) -> HTMLResponse:
    current_user(request)
    with _store(request).transaction() as session:
        doc = views.document_view(session, doc_id, cap)
    if doc is None:
        raise NotFoundError(f"unknown document {doc_id}")
    return render(request, "document.html", doc=doc, cap_id=cap)


@router.get("/tools/{slug}")
def tool_page(request: Request, slug: str, vs: str | None = None) -> HTMLResponse:
    current_user(request)
    with _store(request).transaction() as session:
        tool = tool_detail(session, slug, utcnow().date()).page(vs)
    return render(request, "tool.html", tool=tool, pending=PENDING, keys=LIST_KEYS)


@router.get("/search")
def search_page(request: Request, q: str = "", like: str | None = None) -> HTMLResponse:
    """Capabilities across tools closest to a query, or the alternatives to a tool."""
    current_user(request)
    from decomposer.views.search import search  # loads the matcher (numpy, scipy)

    with _store(request).transaction() as session:
        result = search(session, q, like or None)
        tools = views.tools_overview(session)
    return render(request, "search.html", result=result, tools=tools, keys=LIST_KEYS)


@router.get("/compare/{a}/{b}")
def compare_page(request: Request, a: str, b: str, drafts: bool = True) -> HTMLResponse:
    """The comparison page as the renderer writes it (its own escaping), for the preview."""
    current_user(request)
    from decomposer.pages.render import Renderer
    from decomposer.views.comparisons import default_comparison

    with _store(request).transaction() as session:
        comparison = default_comparison(session, a, b, utcnow().date(), drafts)
    return HTMLResponse(link_search(Renderer().render(comparison, "html"), a))


SEARCH_LINE = re.compile(r'<p class="search">(.*?)</p>', re.S)


def link_search(html: str, a: str) -> str:
    """Served from the app, the page's "Search the match graph for alternatives" line links
    to the search page (a published page has no server to search, so it stays text there)."""
    href = "/search?" + urlencode([("like", a)])
    return SEARCH_LINE.sub(
        lambda m: f'<p class="search"><a href="{href}" target="_top">{m.group(1)}</a></p>',
        html,
        count=1,
    )


def pop_flash(request: Request) -> str | None:
    value = request.session.pop("flash", None)
    return value if isinstance(value, str) else None


env.globals["pop_flash"] = pop_flash
env.filters["fact"] = format_fact
env.globals["evidence_html"] = render_context
