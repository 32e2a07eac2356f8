"""Bulk approve/reject from the queue (a confirm page, then one transaction) and its JSON twin.

Every ticked capability carries the version the reviewer saw; all are reviewed in one
transaction with ``review.actions.review`` guarded by that version, so a stale one or an illegal
move (an ungrounded capability approved without a note) changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from decomposer.core.clock import utcnow
from decomposer.core.errors import ConflictError, InputError
from decomposer.review.actions import Outcome, review
from decomposer.store import Store
from decomposer.views import review as views
from decomposer.web.pages import CAPABILITY_KEYS, render
from decomposer.web.security import (
    api_user,
    csrf_ok,
    current_user,
    forbidden_json,
    redirect,
    safe_next,
)

router = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api", tags=["api"])
BULK_ACTIONS = ("approve", "reject")
MAX_ITEMS = 500


class BulkItem(BaseModel):
    id: str
    version: int = Field(description="The version you reviewed (the whole request fails if stale).")


class BulkRequest(BaseModel):
    action: str = Field(description="approve or reject")
    items: list[BulkItem] = Field(min_length=1, max_length=MAX_ITEMS)
    note: str | None = None


class BulkOutcome(BaseModel):
    capability_id: str
    status: str
    version: int
    event_id: int


def apply_bulk(
    store: Store, action: str, items: Sequence[tuple[str, int]], who: str, note: str | None
) -> list[Outcome]:
    """Review every ``(id, seen version)`` in one transaction: all or nothing."""
    if action not in BULK_ACTIONS:
        raise InputError(f"bulk action must be approve or reject, not {action!r}")
    if not items:
        raise InputError("tick at least one capability")
    with store.transaction() as session:
        return [
            review(
                session,
                cid,
                action,
                reviewer=who,
                now=utcnow(),
                expected_version=version,
                note=note or None,
            )
            for cid, version in items
        ]


def parse_items(values: Sequence[str]) -> list[tuple[str, int]]:
    """``id:version`` checkbox values, in order, without duplicates."""
    out: dict[str, int] = {}
    for value in values:
        cid, _, version = value.rpartition(":")
        if not cid or not version.isdigit():
            raise InputError(f"bad bulk item {value!r}")
        out.setdefault(cid, int(version))
    if len(out) > MAX_ITEMS:
        raise InputError(f"at most {MAX_ITEMS} capabilities at once")
    return list(out.items())


@router.post("/bulk")
async def bulk_form(request: Request) -> Response:
    """First post: the confirm page; with ``confirm=yes``: apply, then back to the queue.
    The form is read here; store work runs in the thread pool."""
    form = await request.form()
    return await run_in_threadpool(_bulk_form, request, form)


def _bulk_form(request: Request, form: FormData) -> Response:
    if not csrf_ok(request, _str(form.get("csrf_token"))):
        return render(request, "error.html", status_code=403, message="Invalid CSRF token.")
    who = current_user(request)
    action = _str(form.get("action")) or ""
    back = safe_next(_str(form.get("back")))
    note = _str(form.get("note"))
    items = parse_items([v for v in form.getlist("item") if isinstance(v, str)])
    if action not in BULK_ACTIONS:
        raise InputError(f"bulk action must be approve or reject, not {action!r}")
    if not items:
        raise InputError("tick at least one capability")
    if _str(form.get("confirm")) != "yes":
        return _confirm(request, action, items, back, note, problem=None)
    store: Store = request.app.state.store
    try:
        done = apply_bulk(store, action, items, who, note)
    except (ConflictError, InputError) as exc:
        return _confirm(request, action, items, back, note, problem=str(exc), status=409)
    request.session["flash"] = f"{action}d {len(done)} capabilities"
    return redirect(back)


def _confirm(
    request: Request,
    action: str,
    items: list[tuple[str, int]],
    back: str,
    note: str | None,
    problem: str | None,
    status: int = 200,
) -> Response:
    store: Store = request.app.state.store
    with store.transaction() as session:
        caps = [views.capability_detail(session, cid) for cid, _ in items]
    seen = dict(items)
    return render(
        request,
        "bulk.html",
        status_code=status,
        action=action,
        caps=caps,
        seen=seen,
        back=back,
        note=note or "",
        problem=problem,
        needs_note=action == "approve" and any(c.status == "ungrounded" for c in caps),
        keys=CAPABILITY_KEYS[-2:],
    )


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@api.post(
    "/capabilities/bulk",
    response_model=list[BulkOutcome],
    responses={403: {"description": "CSRF"}, 409: {"description": "a stale version"}},
)
def bulk_api(
    request: Request,
    body: BulkRequest,
    x_csrf_token: str | None = Header(default=None, alias="X-CSRF-Token"),
) -> Any:
    """Approve or reject many capabilities in one transaction (all or none)."""
    who, by_token = api_user(request)
    if not by_token and not csrf_ok(request, x_csrf_token):
        return forbidden_json("missing or invalid X-CSRF-Token")
    store: Store = request.app.state.store
    try:
        done = apply_bulk(
            store, body.action, [(i.id, i.version) for i in body.items], who, body.note
        )
    except ConflictError as exc:
        return JSONResponse({"detail": str(exc)}, status_code=409)
    return [
        BulkOutcome(
            capability_id=o.capability_id, status=o.status, version=o.version, event_id=o.event_id
        )
        for o in done
    ]
