"""Reviewing capabilities: the state machine, append-only events, versions and conflicts.

States::

    proposed ──approve──▶ approved ◀──approve── rejected
        │  ▲                 │  ▲                  ▲
        │  └──(re-extract)   │  └─keep/approve─┐   │
        └──────reject────────┴─────reject──────┼───┘
    ungrounded  (approve needs a note: its evidence was not found in the docs)
    vanished    (a re-extraction no longer found it; approve/keep restores, reject drops it)

Every change to a capability — a person's action or an extraction run's — increments
``Capability.version`` and appends one ``ReviewEvent`` (who, when, action, field-level
before/after, note). A review action names the version it was based on; if the capability has
moved on since, it raises ``ConflictError`` and changes nothing (the attempted change is itself
recorded as a ``conflict`` event, so it is not lost either).

Re-extractions never overwrite a reviewed capability: they open a ``CapabilityProposal``
(field-level old/new) that ``approve`` applies and ``keep`` dismisses (see ``review.diff``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, selectinload

from decomposer.core.errors import ConflictError, InputError, NotFoundError
from decomposer.core.vocab import CATEGORIES, STATUSES
from decomposer.core.vocab import PENDING_STATUSES as PENDING
from decomposer.core.vocab import REVIEW_ACTIONS as ACTIONS
from decomposer.core.vocab import REVIEWED_STATUSES as REVIEWED
from decomposer.store import Store
from decomposer.store.models import Capability, Evidence, Tool
from decomposer.store.review_models import CapabilityProposal, ReviewEvent

FIELDS = ("name", "category", "description", "unique", "vs_alternatives")
"""Capability fields a reviewer may edit (``unique`` is stored in column ``unique_line``)."""
MAX_FIELD = {"name": 300, "category": 50}
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Outcome:
    """What a review action did: the capability's new status and version, and the event id."""

    capability_id: str
    action: str
    status: str
    version: int
    event_id: int
    changes: dict[str, list[Any]] = field(default_factory=dict)


# --- the state machine (pure) -----------------------------------------------------------------


def next_status(
    status: str,
    action: str,
    *,
    proposal: str | None = None,
    previous: str | None = None,
    edits: bool = False,
    note: str | None = None,
) -> str:
    """The status after ``action`` on a capability in ``status``, or ``InputError`` if illegal.

    ``proposal`` is the kind of the capability's open proposal (``changed``/``vanished``), and
    ``previous`` the status it had before it vanished.
    """
    if status not in STATUSES:
        raise InputError(f"unknown status {status!r}")
    if action == "approve":
        if status == "approved" and proposal is None and not edits:
            raise InputError("already approved", hint="edit it with `decomposer edit`")
        if status == "ungrounded" and not (note and note.strip()):
            raise InputError(
                "this capability is ungrounded: its evidence was not found in the docs",
                hint="approve it with a note saying why (--note), or edit and reject it",
            )
        return "approved"
    if action == "reject":
        if status == "rejected" and proposal is None:
            raise InputError("already rejected")
        return "rejected"
    if action == "edit":
        if not edits:
            raise InputError("nothing to edit", hint="give at least one field with a new value")
        return status
    if action == "keep":
        if proposal is None:
            raise InputError(
                "no pending re-extraction change to dismiss",
                hint="`keep` applies to a changed or vanished capability",
            )
        if status == "vanished":
            return previous or "proposed"
        return status
    raise InputError(f"unknown action {action!r}", hint=f"use one of {', '.join(ACTIONS)}")


# --- reading ----------------------------------------------------------------------------------


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


def history(session: Session, cap_id: str) -> list[dict[str, Any]]:
    """The capability's events, oldest first, as plain data."""
    get_capability(session, cap_id)
    events = session.scalars(
        select(ReviewEvent).where(ReviewEvent.capability_id == cap_id).order_by(ReviewEvent.id)
    )
    return [event_dict(e) for e in events]


def event_dict(e: ReviewEvent) -> dict[str, Any]:
    return {
        "id": e.id,
        "capability_id": e.capability_id,
        "at": e.created_at.isoformat(),
        "actor": e.actor,
        "system": e.system,
        "action": e.action,
        "edited": e.edited,
        "from_status": e.from_status,
        "to_status": e.to_status,
        "version": e.version,
        "changes": e.changes,
        "note": e.note,
        "run_id": e.run_id,
        "proposal_id": e.proposal_id,
    }


def proposal_dict(p: CapabilityProposal) -> dict[str, Any]:
    return {
        "id": p.id,
        "kind": p.kind,
        "run_id": p.run_id,
        "state": p.state,
        "changes": p.changes,
        "previous_status": p.previous_status,
        "created_at": p.created_at.isoformat(),
    }


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


# --- filters ----------------------------------------------------------------------------------

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
        from decomposer.store.tools import get_tool

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


# --- writing ----------------------------------------------------------------------------------


def record_event(
    session: Session,
    cap: Capability,
    action: str,
    actor: str,
    now: datetime,
    *,
    changes: Mapping[str, Sequence[Any]] | None = None,
    from_status: str | None = None,
    system: bool = False,
    edited: bool = False,
    note: str | None = None,
    run_id: int | None = None,
    proposal_id: int | None = None,
) -> ReviewEvent:
    event = ReviewEvent(
        capability_id=cap.id,
        action=action,
        actor=actor,
        system=system,
        edited=edited,
        from_status=from_status,
        to_status=cap.status,
        version=cap.version,
        changes={k: list(v) for k, v in (changes or {}).items()},
        note=note,
        run_id=run_id,
        proposal_id=proposal_id,
        created_at=now,
    )
    session.add(event)
    return event


def clean_changes(cap: Capability, changes: Mapping[str, str]) -> dict[str, str]:
    """Validate edited fields; return only those that differ from the capability's values."""
    out: dict[str, str] = {}
    for name, raw in changes.items():
        if name not in FIELDS:
            raise InputError(f"unknown field {name!r}", hint=f"use one of {', '.join(FIELDS)}")
        value = raw.strip()
        if not value:
            raise InputError(f"{name} cannot be empty")
        if name == "category" and value not in CATEGORIES:
            raise InputError(
                f"unknown category {value!r}", hint=f"use one of {', '.join(CATEGORIES)}"
            )
        limit = MAX_FIELD.get(name)
        if limit is not None and len(value) > limit:
            raise InputError(f"{name} is longer than {limit} characters")
        if value != getattr(cap, name):
            out[name] = value
    return out


def _claim_version(session: Session, cap_id: str, expected: int) -> None:
    """Move the capability from version ``expected`` to the next, or raise ``ConflictError``.

    A guarded UPDATE, so two writers cannot both succeed from the same version on SQLite or
    PostgreSQL; issuing it first also takes SQLite's write lock before anything is read.
    """
    result = session.execute(
        update(Capability)
        .where(Capability.id == cap_id, Capability.version == expected)
        .values(version=expected + 1)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) == 1:
        return
    cap = get_capability(session, cap_id)
    session.refresh(cap)
    last = session.scalar(
        select(ReviewEvent)
        .where(ReviewEvent.capability_id == cap_id, ReviewEvent.action != "conflict")
        .order_by(ReviewEvent.id.desc())
        .limit(1)
    )
    by = f" by {last.actor} ({last.action}, {last.created_at:%Y-%m-%d %H:%M} UTC)" if last else ""
    raise ConflictError(
        f"capability {cap_id} changed since you loaded it: you had version {expected}, "
        f"it is now version {cap.version}{by}",
        hint="nothing was changed; reload it, check the new version and review again",
        current=cap.version,
    )


def review(
    session: Session,
    cap_id: str,
    action: str,
    *,
    reviewer: str,
    now: datetime,
    expected_version: int | None = None,
    changes: Mapping[str, str] | None = None,
    note: str | None = None,
) -> Outcome:
    """Apply one review action inside the caller's transaction.

    ``expected_version`` is the version the reviewer saw; ``None`` means "whatever it is now"
    (scripted use). ``changes`` are field edits: with ``approve`` they make it "approved with
    edits"; with ``edit`` they change the text and keep the status.
    """
    reviewer = reviewer.strip()
    if not reviewer:
        raise InputError("a review needs a reviewer name")
    if action not in ACTIONS:
        raise InputError(f"unknown action {action!r}", hint=f"use one of {', '.join(ACTIONS)}")
    note = note.strip() if note and note.strip() else None
    if expected_version is not None:
        _claim_version(session, cap_id, expected_version)
        cap = get_capability(session, cap_id)
        session.refresh(cap)
    else:
        cap = get_capability(session, cap_id)
        expected_version = cap.version
        _claim_version(session, cap_id, expected_version)
        session.refresh(cap)
    proposal = open_proposal(session, cap_id)
    edits = clean_changes(cap, changes or {})
    before_status = cap.status
    status = next_status(
        cap.status,
        action,
        proposal=proposal.kind if proposal else None,
        previous=proposal.previous_status if proposal else None,
        edits=bool(edits),
        note=note,
    )
    applied: dict[str, list[Any]] = {}
    if proposal is not None and action in ("approve", "reject", "keep"):
        if action == "approve" and proposal.kind == "changed":
            for name, pair in proposal.changes.items():
                if name in FIELDS and getattr(cap, name) != pair["new"]:
                    applied[name] = [getattr(cap, name), pair["new"]]
                    setattr(cap, name, pair["new"])
        proposal.state = "accepted" if action == "approve" else "dismissed"
        proposal.resolved_at = now
        proposal.resolved_by = reviewer
    for name, value in edits.items():
        old = applied[name][0] if name in applied else getattr(cap, name)
        applied[name] = [old, value]
        setattr(cap, name, value)
    if status != before_status:
        applied["status"] = [before_status, status]
    cap.status = status
    cap.updated_at = now
    event = record_event(
        session,
        cap,
        action,
        reviewer,
        now,
        changes=applied,
        from_status=before_status,
        edited=bool(edits),
        note=note,
        proposal_id=proposal.id if proposal is not None else None,
    )
    session.flush()
    return Outcome(cap.id, action, cap.status, cap.version, event.id, applied)


def submit(
    store: Store,
    cap_id: str,
    action: str,
    *,
    reviewer: str,
    now: Clock,
    expected_version: int | None = None,
    changes: Mapping[str, str] | None = None,
    note: str | None = None,
) -> Outcome:
    """``review`` in its own transaction. On a conflict the attempt is recorded as a
    ``conflict`` event (with the fields the reviewer wanted), then ``ConflictError`` is raised."""
    try:
        with store.transaction() as session:
            return review(
                session,
                cap_id,
                action,
                reviewer=reviewer,
                now=now(),
                expected_version=expected_version,
                changes=changes,
                note=note,
            )
    except ConflictError:
        with store.transaction() as session:
            cap = get_capability(session, cap_id)
            attempted: dict[str, list[Any]] = {
                k: [getattr(cap, k) if k in FIELDS else None, v] for k, v in (changes or {}).items()
            }
            record_event(
                session,
                cap,
                "conflict",
                reviewer,
                now(),
                changes=attempted,
                from_status=cap.status,
                note=f"{action} on stale version {expected_version} not applied"
                + (f"; note: {note}" if note else ""),
            )
        raise


def bulk(
    store: Store,
    f: Filter,
    action: str,
    *,
    reviewer: str,
    now: Clock,
    note: str | None = None,
) -> list[Outcome]:
    """Apply ``action`` to every capability matching ``f`` in one transaction (all or none)."""
    with store.transaction() as session:
        caps = select_capabilities(session, f)
        return [
            review(session, c.id, action, reviewer=reviewer, now=now(), note=note) for c in caps
        ]


def review_many(
    store: Store,
    ids: Iterable[str],
    action: str,
    *,
    reviewer: str,
    now: Clock,
    note: str | None = None,
    expected_version: int | None = None,
) -> list[Outcome]:
    """Apply ``action`` to each id in one transaction: an unknown id or illegal action on any
    of them changes nothing."""
    with store.transaction() as session:
        return [
            review(
                session,
                cid,
                action,
                reviewer=reviewer,
                now=now(),
                note=note,
                expected_version=expected_version,
            )
            for cid in ids
        ]
