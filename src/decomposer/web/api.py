"""The JSON API under /api: tools, capabilities, review actions and comparisons.

Scripts send ``Authorization: Bearer TOKEN`` (``decomposer token create``) and need nothing else.
A browser session logs in with ``GET /api/session`` (gives a CSRF token) then ``POST
/api/login``; its every POST needs the token in the ``X-CSRF-Token`` header (403 without).
Conflicts answer 409.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from decomposer.core.clock import utcnow
from decomposer.core.errors import ConflictError
from decomposer.core.vocab import ReviewAction
from decomposer.pages.model import Comparison
from decomposer.review.actions import submit
from decomposer.review.queries import EventView, history
from decomposer.store import Store
from decomposer.views import review as views
from decomposer.views.review import CapabilityDetail, QueueItem, ToolOverview, queue_filter
from decomposer.views.search import SearchResult
from decomposer.views.tools import ToolPage, tool_detail
from decomposer.web.security import (
    api_user,
    check_login,
    csrf_ok,
    csrf_token,
    forbidden_json,
    reviewer,
)

router = APIRouter(prefix="/api", tags=["api"])
CsrfHeader = Header(default=None, alias="X-CSRF-Token")


class SessionInfo(BaseModel):
    reviewer: str | None
    csrf_token: str
    token_required: bool


class Login(BaseModel):
    name: str = Field(description="Your name, recorded on every review action.")
    token: str | None = Field(default=None, description="DECOMPOSER_UI_TOKEN, when set.")


class ReviewRequest(BaseModel):
    action: ReviewAction
    version: int = Field(description="The capability version you reviewed (conflict if stale).")
    changes: dict[str, str] = Field(
        default_factory=dict,
        description="Field edits (name, category, description, unique, vs_alternatives).",
    )
    note: str | None = None


class ReviewResult(BaseModel):
    capability_id: str
    action: str
    status: str
    version: int
    event_id: int
    changes: dict[str, list[Any]]


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


@router.get("/session", response_model=SessionInfo)
def session_info(request: Request) -> SessionInfo:
    """Who is logged in, and the CSRF token to send with every POST."""
    return SessionInfo(
        reviewer=reviewer(request),
        csrf_token=csrf_token(request),
        token_required=request.app.state.ui.token is not None,
    )


@router.post("/login", response_model=SessionInfo)
def login(request: Request, body: Login, x_csrf_token: str | None = CsrfHeader) -> Any:
    if not csrf_ok(request, x_csrf_token):
        return forbidden_json("missing or invalid X-CSRF-Token")
    error = check_login(request, body.name, body.token)
    if error is not None:
        return JSONResponse({"detail": error}, status_code=401)
    return session_info(request)


@router.post("/logout")
def logout(request: Request, x_csrf_token: str | None = CsrfHeader) -> Response:
    if not csrf_ok(request, x_csrf_token):
        return forbidden_json("missing or invalid X-CSRF-Token")
    request.session.clear()
    return Response(status_code=204)


@router.get("/tools")
def tools(request: Request) -> list[ToolOverview]:
    """Every tool with document and capability counts (per status, pending, changed)."""
    api_user(request)
    with _store(request).transaction() as session:
        return views.tools_overview(session)


@router.get("/tools/{slug}")
def tool(request: Request, slug: str) -> ToolPage:
    """A tool's profile, capability counts and scores."""
    api_user(request)
    with _store(request).transaction() as session:
        return tool_detail(session, slug, utcnow().date()).page()


@router.get("/capabilities")
def capabilities(
    request: Request,
    response: Response,
    tool: str | None = None,
    status: str = "pending",
    category: str | None = None,
    ungrounded: bool = False,
    evidence: str | None = None,
    provenance: str | None = None,
    q: str = "",
    page: int = 1,
    per_page: int | None = None,
) -> list[QueueItem]:
    """Capabilities by filter; ``status`` is a status, ``pending``, ``changed`` or ``all``;
    ``evidence`` is ``found`` or ``missing``; ``provenance`` is ``docs``, ``editor`` (a person
    edited its text) or ``contrast`` (a model-written line waits for review); ``q`` searches id,
    name, description and tool.
    With ``per_page`` one page (``X-Total-Count`` and ``X-Pages`` headers say how many)."""
    api_user(request)
    f = queue_filter(tool, status, category, ungrounded, evidence, provenance)
    with _store(request).transaction() as session:
        result = views.queue_page(session, f, q, page, per_page)
    response.headers["X-Total-Count"] = str(result.total)
    response.headers["X-Pages"] = str(result.pages)
    return result.items


@router.get("/capabilities/{cap_id}")
def capability(request: Request, cap_id: str) -> CapabilityDetail:
    """One capability with evidence in context, its open proposal (diff) and history."""
    api_user(request)
    with _store(request).transaction() as session:
        return views.capability_detail(session, cap_id)


@router.get("/capabilities/{cap_id}/history")
def capability_history(request: Request, cap_id: str) -> list[EventView]:
    """Every change to the capability, oldest first."""
    api_user(request)
    with _store(request).transaction() as session:
        return history(session, cap_id)


@router.post(
    "/capabilities/{cap_id}/review",
    response_model=ReviewResult,
    responses={403: {"description": "CSRF"}, 409: {"description": "stale version"}},
)
def review(
    request: Request, cap_id: str, body: ReviewRequest, x_csrf_token: str | None = CsrfHeader
) -> Any:
    """Approve, reject, edit or keep (dismiss a re-extraction change) one capability."""
    who, by_token = api_user(request)
    if not by_token and not csrf_ok(request, x_csrf_token):
        return forbidden_json("missing or invalid X-CSRF-Token")
    store = _store(request)
    try:
        outcome = submit(
            store,
            cap_id,
            body.action,
            reviewer=who,
            now=utcnow,
            expected_version=body.version,
            changes=body.changes,
            note=body.note,
        )
    except ConflictError as exc:
        with store.transaction() as session:
            current = views.capability_detail(session, cap_id)
        return JSONResponse(
            {
                "detail": str(exc),
                "current": current.model_dump(mode="json"),
                "yours": body.model_dump(),
            },
            status_code=409,
        )
    return ReviewResult(**outcome.__dict__)


@router.get("/comparisons/{a}/{b}")
def comparison(request: Request, a: str, b: str, include_unreviewed: bool = False) -> Comparison:
    """The "A vs B" comparison as JSON, as `decomposer compare A B --format json` writes it."""
    api_user(request)
    from decomposer.views.comparisons import default_comparison  # loads the comparator

    with _store(request).transaction() as session:
        return default_comparison(session, a, b, utcnow().date(), include_unreviewed)


@router.get("/search")
def search(request: Request, q: str = "", like: str | None = None, k: int = 20) -> SearchResult:
    """Capabilities across tools ranked against ``q`` (lexically), or the alternatives to the
    tool ``like``; each hit says how many stored queries the match graph sends to it."""
    api_user(request)
    from decomposer.views.search import search as run_search  # loads the matcher

    with _store(request).transaction() as session:
        return run_search(session, q, like or None, k)
