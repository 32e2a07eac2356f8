"""The review read side: finding capabilities (filters, ``--where``), counts, history, proposals.

Everything here only reads; the state machine and the actions that write are in
``review.actions``. ``EventView`` and ``ProposalView`` are the typed shapes of events and open
proposals shared by ``history --json``, the web pages and the JSON API.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, selectinload

from decomposer.core.errors import InputError, NotFoundError
from decomposer.core.vocab import CATEGORIES, STATUSES, ContrastStatus
from decomposer.core.vocab import PENDING_STATUSES as PENDING
from decomposer.core.vocab import REVIEWED_STATUSES as REVIEWED
from decomposer.store.contrast_models import ContrastLine
from decomposer.store.models import Capability, Evidence, Tool
from decomposer.store.review_models import CapabilityProposal, ReviewEvent
from decomposer.store.tools import get_tool


class EventView(BaseModel):
    """One review event as ``history --json`` and the API show it (times as ISO text)."""

    model_config = ConfigDict(frozen=True)

    id: int
    capability_id: str
    at: str
    actor: str
    system: bool
    action: str
    edited: bool
    from_status: str | None
    to_status: str | None
    version: int
    changes: dict[str, Any]
    note: str | None
    run_id: int | None
    proposal_id: int | None

    @classmethod
    def of(cls, e: ReviewEvent) -> EventView:
        return cls(
            id=e.id,
            capability_id=e.capability_id,
            at=e.created_at.isoformat(),
            actor=e.actor,
            system=e.system,
            action=e.action,
            edited=e.edited,
            from_status=e.from_status,
            to_status=e.to_status,
            version=e.version,
            changes=e.changes,
            note=e.note,
            run_id=e.run_id,
            proposal_id=e.proposal_id,
        )


class ProposalView(BaseModel):
    """An open re-extraction proposal: field-level ``{"old": …, "new": …}`` changes."""

    model_config = ConfigDict(frozen=True)

    id: int
    kind: str
    run_id: int | None
    state: str
    changes: dict[str, Any]
    previous_status: str | None
    created_at: str

    @classmethod
    def of(cls, p: CapabilityProposal) -> ProposalView:
        return cls(
            id=p.id,
            kind=p.kind,
            run_id=p.run_id,
            state=p.state,
            changes=p.changes,
            previous_status=p.previous_status,
            created_at=p.created_at.isoformat(),
        )


def get_capability(session: Session, cap_id: str) -> Capability:
    cap = session.get(Capability, cap_id)
    if cap is None:
        raise NotFoundError(
            f"unknown capability {cap_id!r}",
            hint="list them with `decomposer capabilities TOOL`",
        )
    return cap


def open_proposal(session: Session, cap_id: str) -> CapabilityProposal | None:
    return session.scalar(
        select(CapabilityProposal)
        .where(CapabilityProposal.capability_id == cap_id, CapabilityProposal.state == "open")
        .order_by(CapabilityProposal.id.desc())
        .limit(1)
    )


def history(session: Session, cap_id: str) -> list[EventView]:
    """The capability's events, oldest first."""
    get_capability(session, cap_id)
    events = session.scalars(
        select(ReviewEvent).where(ReviewEvent.capability_id == cap_id).order_by(ReviewEvent.id)
    )
    return [EventView.of(e) for e in events]


def evidence_context(text: str, start: int, end: int, width: int = 240) -> dict[str, str]:
    """The quote at ``text[start:end]`` with up to ``width`` characters either side, cut at
    whitespace, for showing evidence inside its source text."""
    start, end = max(0, min(start, len(text))), max(0, min(end, len(text)))
    lo = max(0, start - width)
    hi = min(len(text), end + width)
    before, after = text[lo:start], text[end:hi]
    if lo > 0 and " " in before:
        before = before[before.index(" ") + 1 :]
    if hi < len(text) and " " in after:
        after = after[: after.rindex(" ")]
    return {"before": before, "match": text[start:end], "after": after}


_WHERE = re.compile(r"^\s*([a-z_]+)\s*(!=|=|~)\s*(.*?)\s*$")
WHERE_FIELDS = ("status", "category", "name", "grounded", "pending", "proposal", "run")


@dataclass
class Filter:
    """Which capabilities a bulk action or a queue shows. ``None`` means any."""

    tool: str | None = None
    statuses: tuple[str, ...] | None = None
    category: str | None = None
    not_category: str | None = None
    name_contains: str | None = None
    grounded: bool | None = None
    pending: bool | None = None
    proposal: bool | None = None
    run_id: int | None = None
    edited: bool | None = None
    """Provenance: True for text a person edited (``editor``), False for text as extracted from
    the docs (``docs``)."""
    contrast: bool | None = None
    """True: a model-written vs-alternatives line (``contrast``) waits for review."""


def parse_where(clauses: Sequence[str], base: Filter | None = None) -> Filter:
    """Parse ``--where`` clauses: ``status=proposed``, ``category!=pricing``, ``name~batch``,
    ``grounded=true``, ``pending=true``, ``proposal=true`` (an open re-extraction change),
    ``run=7`` (last seen in run 7). ``status`` accepts ``a|b``."""
    f = base or Filter()
    for clause in clauses:
        m = _WHERE.match(clause)
        if m is None or m.group(1) not in WHERE_FIELDS:
            raise InputError(
                f"cannot parse --where {clause!r}",
                hint="use FIELD=VALUE, FIELD!=VALUE or name~TEXT; fields: "
                + ", ".join(WHERE_FIELDS),
            )
        key, op, value = m.groups()
        if (op == "~" and key != "name") or (op == "!=" and key != "category"):
            raise InputError(f"operator {op!r} is not supported for {key!r} in {clause!r}")
        if key == "status":
            statuses = tuple(v.strip() for v in value.split("|") if v.strip())
            bad = [s for s in statuses if s not in STATUSES]
            if bad or not statuses:
                raise InputError(
                    f"unknown status in {clause!r}", hint=f"use one of {', '.join(STATUSES)}"
                )
            f.statuses = statuses
        elif key == "category":
            if value not in CATEGORIES:
                raise InputError(
                    f"unknown category {value!r}", hint=f"use one of {', '.join(CATEGORIES)}"
                )
            if op == "=":
                f.category = value
            else:
                f.not_category = value
        elif key == "name":
            f.name_contains = value
        elif key == "run":
            try:
                f.run_id = int(value)
            except ValueError:
                raise InputError(f"run must be a number in {clause!r}") from None
        else:
            setattr(f, key, _bool(value, clause))
    return f


def _bool(value: str, clause: str) -> bool:
    v = value.lower()
    if v in ("true", "yes", "1"):
        return True
    if v in ("false", "no", "0"):
        return False
    raise InputError(f"expected true or false in {clause!r}")


def select_capabilities(session: Session, f: Filter) -> list[Capability]:
    """Capabilities matching ``f``, by tool, category and name."""
    has_open = (
        select(CapabilityProposal.id)
        .where(
            CapabilityProposal.capability_id == Capability.id,
            CapabilityProposal.state == "open",
        )
        .exists()
    )
    q = (
        select(Capability)
        .join(Tool, Tool.id == Capability.tool_id)
        .options(selectinload(Capability.evidence).selectinload(Evidence.document))
        .order_by(Tool.slug, Capability.category, Capability.name, Capability.id)
    )
    if f.tool is not None:
        q = q.where(Capability.tool_id == get_tool(session, f.tool).id)
    if f.statuses is not None:
        q = q.where(Capability.status.in_(f.statuses))
    if f.category is not None:
        q = q.where(Capability.category == f.category)
    if f.not_category is not None:
        q = q.where(Capability.category != f.not_category)
    if f.name_contains:
        q = q.where(func.lower(Capability.name).contains(f.name_contains.lower(), autoescape=True))
    if f.grounded is not None:
        q = q.where(
            Capability.status != "ungrounded" if f.grounded else Capability.status == "ungrounded"
        )
    if f.pending is not None:
        pending = or_(Capability.status.in_(PENDING), has_open)
        q = q.where(pending if f.pending else ~pending)
    if f.proposal is not None:
        q = q.where(has_open if f.proposal else ~has_open)
    if f.run_id is not None:
        q = q.where(Capability.last_run_id == f.run_id)
    if f.edited is not None:
        by_editor = (
            select(ReviewEvent.id)
            .where(
                ReviewEvent.capability_id == Capability.id,
                ReviewEvent.edited.is_(True),
                ReviewEvent.system.is_(False),
            )
            .exists()
        )
        q = q.where(by_editor if f.edited else ~by_editor)
    if f.contrast is not None:
        waiting = (
            select(ContrastLine.id)
            .where(
                ContrastLine.capability_id == Capability.id,
                ContrastLine.status == ContrastStatus.PROPOSED,
            )
            .exists()
        )
        q = q.where(waiting if f.contrast else ~waiting)
    return list(session.scalars(q))


def counts(session: Session) -> dict[str, dict[str, int]]:
    """Per tool slug: capabilities per status, plus ``pending`` and ``changed`` (open proposals)."""
    out: dict[str, dict[str, int]] = {}
    for slug, status, n in session.execute(
        select(Tool.slug, Capability.status, func.count())
        .join(Capability, Capability.tool_id == Tool.id)
        .group_by(Tool.slug, Capability.status)
    ):
        row = out.setdefault(slug, {s: 0 for s in (*STATUSES, "pending", "changed")})
        row[status] = n
        if status in PENDING:
            row["pending"] += n
    for slug, n in session.execute(
        select(Tool.slug, func.count(func.distinct(CapabilityProposal.capability_id)))
        .join(Capability, Capability.tool_id == Tool.id)
        .join(CapabilityProposal, CapabilityProposal.capability_id == Capability.id)
        .where(CapabilityProposal.state == "open", Capability.status.in_(REVIEWED))
        .group_by(Tool.slug)
    ):
        row = out.setdefault(slug, {s: 0 for s in (*STATUSES, "pending", "changed")})
        row["changed"] = n
        row["pending"] += n
    return out
