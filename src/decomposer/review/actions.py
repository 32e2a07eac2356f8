"""Reviewing capabilities: the state machine and the actions that write events and versions.

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

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from decomposer.core.errors import ConflictError, InputError
from decomposer.core.vocab import CATEGORIES, STATUSES
from decomposer.core.vocab import REVIEW_ACTIONS as ACTIONS
from decomposer.review.queries import (
    Filter,
    get_capability,
    open_proposal,
    select_capabilities,
)
from decomposer.store import Store
from decomposer.store.models import Capability
from decomposer.store.review_models import ReviewEvent

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
