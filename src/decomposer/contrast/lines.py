"""Contrast lines read back and reviewed: the line with the cited quotes of both tools side by
side, and approve / reject / edit with an audit trail on the capability.

Review works as for any proposed field: ``approve`` makes the line publishable (pages show only
approved lines, drafts only with ``--include-unreviewed``), ``reject`` keeps it out, ``edit``
changes its text (its provenance becomes ``editor``) and keeps its status. Each action appends
a ``review_events`` row on the line's capability (``contrast-approve``, ``contrast-reject``,
``contrast-edit``) with the text before and after.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from decomposer.core.errors import InputError, NotFoundError
from decomposer.core.vocab import ContrastStatus, Provenance
from decomposer.review.actions import record_event
from decomposer.review.queries import get_capability
from decomposer.store.contrast_models import ContrastLine
from decomposer.store.models import Capability, Document, Evidence, Tool

ACTIONS = ("approve", "reject", "edit")
MAX_TEXT = 600


class CitedQuote(BaseModel):
    evidence_id: int
    quote: str
    document: str | None


class Side(BaseModel):
    """One tool's part of a line: the capabilities and the quotes the line cites."""

    tool: str
    tool_name: str
    capabilities: list[str]
    quotes: list[CitedQuote]


class LineView(BaseModel):
    id: int
    capability_id: str
    capability: str
    tool: str
    status: str
    text: str
    model_text: str
    provenance: str
    provider: str
    model: str
    prompt_version: str
    created_at: datetime
    rejections: list[str]
    reviewed_by: str | None
    note: str | None
    sides: list[Side]
    """This tool first, then each counterpart tool (the cited quotes of both, side by side)."""


def get_line(session: Session, line_id: int) -> ContrastLine:
    line = session.get(ContrastLine, line_id)
    if line is None:
        raise NotFoundError(
            f"unknown contrast line {line_id}", hint="list them with `decomposer lines list`"
        )
    return line


def list_lines(
    session: Session, tool: str | None = None, statuses: Sequence[str] | None = None
) -> list[LineView]:
    """Lines, newest first; ``statuses`` defaults to those awaiting or past review."""
    wanted = list(statuses or (ContrastStatus.PROPOSED, ContrastStatus.APPROVED))
    q = (
        select(ContrastLine)
        .join(Capability, Capability.id == ContrastLine.capability_id)
        .join(Tool, Tool.id == Capability.tool_id)
        .where(ContrastLine.status.in_(wanted))
        .order_by(Tool.slug, Capability.name, ContrastLine.id)
    )
    if tool is not None:
        q = q.where(Tool.slug == tool)
    return [view(session, line) for line in session.scalars(q)]


def line_for(session: Session, cap_id: str) -> LineView | None:
    """The capability's newest line awaiting or past review, if any."""
    line = session.scalars(
        select(ContrastLine)
        .where(
            ContrastLine.capability_id == cap_id,
            ContrastLine.status.in_(
                [ContrastStatus.PROPOSED, ContrastStatus.APPROVED, ContrastStatus.REJECTED]
            ),
        )
        .order_by(ContrastLine.id.desc())
        .limit(1)
    ).first()
    return view(session, line) if line is not None else None


def view(session: Session, line: ContrastLine) -> LineView:
    cap = get_capability(session, line.capability_id)
    own = session.get(Tool, cap.tool_id)
    if own is None:
        raise NotFoundError(f"capability {cap.id} has no tool")
    rows = session.execute(
        select(Evidence.id, Evidence.quote, Document.title, Tool.slug, Tool.name, Capability.name)
        .join(Capability, Capability.id == Evidence.capability_id)
        .join(Tool, Tool.id == Capability.tool_id)
        .outerjoin(Document, Document.id == Evidence.document_id)
        .where(Evidence.id.in_(list(line.citations) or [-1]))
        .order_by(Evidence.id)
    ).all()
    sides: dict[str, Side] = {
        own.slug: Side(tool=own.slug, tool_name=own.name, capabilities=[cap.name], quotes=[])
    }
    for ev_id, quote, title, slug, name, cap_name in rows:
        side = sides.setdefault(slug, Side(tool=slug, tool_name=name, capabilities=[], quotes=[]))
        if cap_name not in side.capabilities:
            side.capabilities.append(cap_name)
        side.quotes.append(CitedQuote(evidence_id=ev_id, quote=quote, document=title))
    return LineView(
        id=line.id,
        capability_id=cap.id,
        capability=cap.name,
        tool=own.slug,
        status=line.status,
        text=line.text,
        model_text=line.model_text,
        provenance=Provenance.EDITOR if line.edited else Provenance.CONTRAST,
        provider=line.provider,
        model=line.model,
        prompt_version=line.prompt_version,
        created_at=line.created_at,
        rejections=list(line.rejections),
        reviewed_by=line.reviewed_by,
        note=line.note,
        sides=list(sides.values()),
    )


def review_line(
    session: Session,
    line_id: int,
    action: str,
    *,
    reviewer: str,
    now: datetime,
    text: str | None = None,
    note: str | None = None,
) -> ContrastLine:
    """Apply one review action to a line inside the caller's transaction."""
    reviewer = reviewer.strip()
    if not reviewer:
        raise InputError("a review needs a reviewer name")
    if action not in ACTIONS:
        raise InputError(f"unknown action {action!r}", hint=f"use one of {', '.join(ACTIONS)}")
    line = get_line(session, line_id)
    if line.status in (ContrastStatus.DROPPED, ContrastStatus.SUPERSEDED):
        raise InputError(
            f"contrast line {line_id} is {line.status}: only proposed, approved or rejected "
            "lines can be reviewed",
            hint="run `decomposer contrast` for a current line",
        )
    before_text, before_status = line.text, line.status
    if action == "edit":
        value = (text or "").strip()
        if not value:
            raise InputError("edit needs a new text (--value)")
        if len(value) > MAX_TEXT:
            raise InputError(f"the line is longer than {MAX_TEXT} characters")
        if value == line.text:
            raise InputError("nothing to edit: the text is unchanged")
        line.text = value
        line.edited = True
    elif action == "approve":
        if line.status == ContrastStatus.APPROVED:
            raise InputError("already approved", hint="edit it with `decomposer lines edit`")
        line.status = ContrastStatus.APPROVED
    else:
        if line.status == ContrastStatus.REJECTED:
            raise InputError("already rejected")
        line.status = ContrastStatus.REJECTED
    line.reviewed_by = reviewer
    line.reviewed_at = now
    line.note = note.strip() if note and note.strip() else line.note
    cap = get_capability(session, line.capability_id)
    changes: dict[str, list[str]] = {}
    if line.text != before_text:
        changes["vs_alternatives"] = [before_text, line.text]
    if line.status != before_status:
        changes["contrast_status"] = [before_status, line.status]
    record_event(
        session,
        cap,
        f"contrast-{action}",
        reviewer,
        now,
        changes=changes,
        from_status=cap.status,
        edited=action == "edit",
        note=f"contrast line {line.id}" + (f": {note.strip()}" if note and note.strip() else ""),
    )
    session.flush()
    return line
