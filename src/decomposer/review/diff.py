"""Re-extraction diffs: matching a new run's records against the stored capabilities.

For each record of the new run:

- a new capability is created ``proposed`` (or ``ungrounded``);
- an unreviewed one (``proposed``/``ungrounded``) is refreshed in place;
- a reviewed one (``approved``/``rejected``) is never overwritten: the fields where the model's
  text changed since its previous extraction (its *baseline*) become a ``changed`` proposal,
  field by field, old (the current, possibly human-edited, text) vs new. Fields a reviewer
  edited but the model did not change are not proposed, so human edits survive;
- a ``vanished`` capability that is found again returns to the status it had.

Capabilities not found by the run (except rejected ones) become ``vanished`` with a proposal
remembering their previous status, for a person to decide. Every change appends an event.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from decomposer.core.vocab import REVIEWED_STATUSES as REVIEWED
from decomposer.review.actions import FIELDS, record_event
from decomposer.review.queries import open_proposal
from decomposer.store.models import Capability, Document, Evidence
from decomposer.store.review_models import CapabilityBaseline, CapabilityProposal

EXTRACTOR = "extractor"
"""The actor name on events written by extraction runs."""


@dataclass(frozen=True)
class Extracted:
    """What the model said about one capability in this run."""

    id: str
    key: str
    fields: dict[str, str]
    grounded: bool


@dataclass
class SyncReport:
    created: int = 0
    refreshed: int = 0
    proposed: int = 0
    vanished: int = 0
    reappeared: int = 0
    ungrounded: int = 0
    unseen: int = 0


def changed_fields(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Field -> (old, new) for every field of ``new`` whose value differs from ``old``."""
    return {k: (old.get(k), v) for k, v in new.items() if old.get(k) != v}


def proposed_changes(
    current: Mapping[str, str], baseline: Mapping[str, str], extracted: Mapping[str, str]
) -> dict[str, dict[str, str]]:
    """The change a re-extraction proposes for a reviewed capability.

    Only fields where the model's new text differs from its previous text (``baseline``) *and*
    from the current text are proposed; old is the current text (which may be a reviewer's
    edit), new is the model's.
    """
    out: dict[str, dict[str, str]] = {}
    for name in FIELDS:
        new = extracted[name]
        if new != baseline.get(name) and new != current[name]:
            out[name] = {"old": current[name], "new": new}
    return out


_TOKEN = re.compile(r"\s+|[^\s]+")


def word_diff(old: str, new: str) -> list[tuple[str, str]]:
    """``(op, text)`` pieces with op in ``=``, ``-``, ``+``, word by word, for display."""
    a, b = _TOKEN.findall(old), _TOKEN.findall(new)
    out: list[tuple[str, str]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            out.append(("=", "".join(a[i1:i2])))
            continue
        if tag in ("delete", "replace"):
            out.append(("-", "".join(a[i1:i2])))
        if tag in ("insert", "replace"):
            out.append(("+", "".join(b[j1:j2])))
    return out


def match_names(session: Session, caps: Sequence[Capability]) -> dict[str, str]:
    """Names to match new findings against: the model's last name for each capability (its
    baseline), so a reviewer renaming a capability does not make it look new."""
    ids = [c.id for c in caps]
    baselines = {
        b.capability_id: b
        for b in session.scalars(
            select(CapabilityBaseline).where(CapabilityBaseline.capability_id.in_(ids))
        )
    }
    return {
        c.id: str(baselines[c.id].fields.get("name") or c.name) if c.id in baselines else c.name
        for c in caps
    }


def sync(
    session: Session,
    tool_id: int,
    run_id: int,
    results: Sequence[Extracted],
    existing: Mapping[str, Capability],
    now: datetime,
) -> tuple[dict[str, Capability], SyncReport]:
    """Apply a run's results to the stored capabilities; return the rows by id and a report."""
    report = SyncReport()
    baselines = {
        b.capability_id: b
        for b in session.scalars(
            select(CapabilityBaseline).where(CapabilityBaseline.capability_id.in_(list(existing)))
        )
    }
    rows: dict[str, Capability] = {}
    for res in results:
        row = existing.get(res.id)
        status = "proposed" if res.grounded else "ungrounded"
        if row is None:
            row = _create(session, tool_id, run_id, res, status, now)
            report.created += 1
        else:
            base = baselines.get(row.id)
            baseline = dict(base.fields) if base is not None else {}
            outcome = _update(session, row, res, status, baseline, run_id, now)
            report.refreshed += outcome == "refreshed"
            report.proposed += outcome == "proposed"
            report.reappeared += outcome.startswith("reappeared")
        _set_baseline(session, baselines, row.id, res.fields, run_id, now)
        row.last_run_id = run_id
        rows[row.id] = row
        report.ungrounded += row.status == "ungrounded"
    for cap_id, row in existing.items():
        if cap_id in rows:
            continue
        report.unseen += 1
        if row.status in ("rejected", "vanished"):
            continue
        _vanish(session, row, run_id, now)
        report.vanished += 1
    return rows, report


def _create(
    session: Session, tool_id: int, run_id: int, res: Extracted, status: str, now: datetime
) -> Capability:
    row = Capability(
        id=res.id,
        tool_id=tool_id,
        key=res.key,
        status=status,
        version=1,
        first_run_id=run_id,
        last_run_id=run_id,
        created_at=now,
        updated_at=now,
        **res.fields,
    )
    session.add(row)
    session.flush()
    record_event(
        session,
        row,
        "created",
        EXTRACTOR,
        now,
        changes={k: (None, v) for k, v in res.fields.items()},
        system=True,
        run_id=run_id,
    )
    return row


def _update(
    session: Session,
    row: Capability,
    res: Extracted,
    status: str,
    baseline: dict[str, Any],
    run_id: int,
    now: datetime,
) -> str:
    outcome = "unchanged"
    pending = open_proposal(session, row.id)
    if row.status == "vanished":
        back = pending.previous_status if pending is not None else None
        back = back if back in REVIEWED else status
        if pending is not None:
            _resolve(pending, "superseded", now)
        _bump(row, now)
        before = row.status
        row.status = back
        record_event(
            session,
            row,
            "reappeared",
            EXTRACTOR,
            now,
            changes={"status": (before, back)},
            from_status=before,
            system=True,
            run_id=run_id,
        )
        pending = None
        outcome = "reappeared"
    if row.status not in REVIEWED:
        changes: dict[str, tuple[Any, Any]] = changed_fields(
            {k: getattr(row, k) for k in FIELDS}, res.fields
        )
        if row.status != status:
            changes["status"] = (row.status, status)
        if not changes:
            return outcome
        before = row.status
        for name, (_old, new) in changes.items():
            setattr(row, name, new)
        _bump(row, now)
        record_event(
            session,
            row,
            "updated",
            EXTRACTOR,
            now,
            changes=changes,
            from_status=before,
            system=True,
            run_id=run_id,
        )
        return "refreshed" if outcome == "unchanged" else outcome
    current = {k: getattr(row, k) for k in FIELDS}
    proposal = proposed_changes(current, baseline or current, res.fields)
    if pending is not None and pending.kind == "changed":
        if not proposal:
            return outcome
        if pending.changes == proposal:
            return outcome
        _resolve(pending, "superseded", now)
    if not proposal:
        return outcome
    opened = CapabilityProposal(
        capability_id=row.id,
        run_id=run_id,
        kind="changed",
        changes=proposal,
        previous_status=row.status,
        state="open",
        created_at=now,
    )
    session.add(opened)
    session.flush()
    _bump(row, now)
    record_event(
        session,
        row,
        "proposed_change",
        EXTRACTOR,
        now,
        changes={k: (v["old"], v["new"]) for k, v in proposal.items()},
        from_status=row.status,
        system=True,
        run_id=run_id,
        proposal_id=opened.id,
    )
    return "proposed" if outcome == "unchanged" else outcome


def vanish(session: Session, row: Capability, now: datetime, note: str) -> None:
    """Flag ``row`` vanished outside a run (its documents were removed), the same way a run
    does: a proposal remembers its status for a person to decide; nothing is deleted."""
    _vanish(session, row, None, now, note)


def vanish_unbacked(
    session: Session, doc_ids: Sequence[int], now: datetime, note: str
) -> list[str]:
    """Flag vanished the capabilities whose evidence lies in ``doc_ids`` and in no other
    present document (removed, or whose file is missing); rejected and vanished ones stay as
    they are. Returns the ids flagged, in order; the caller's transaction."""
    backed = select(Evidence.capability_id).where(Evidence.document_id.in_(doc_ids))
    caps = list(session.scalars(select(Capability).where(Capability.id.in_(backed))))
    elsewhere = set(
        session.scalars(
            select(Evidence.capability_id)
            .join(Document, Evidence.document_id == Document.id)
            .where(
                Evidence.capability_id.in_([c.id for c in caps]),
                Document.id.not_in(doc_ids),
                Document.missing_since.is_(None),
            )
        )
    )
    flagged = []
    for cap in sorted(caps, key=lambda c: c.id):
        if cap.id in elsewhere or cap.status in ("rejected", "vanished"):
            continue
        vanish(session, cap, now, note=note)
        flagged.append(cap.id)
    return flagged


def vanish_missing(session: Session, docs: Sequence[Document], now: datetime) -> list[str]:
    """The ``on_missing`` hook of ``ingest``: flag vanished what only ``docs`` (whose files are
    gone from their folder) backed."""
    keys = ", ".join(d.source_key for d in docs)
    note = f"its document(s) are missing from their folder: {keys}"
    return vanish_unbacked(session, [d.id for d in docs], now, note)


def _vanish(
    session: Session, row: Capability, run_id: int | None, now: datetime, note: str = ""
) -> None:
    pending = open_proposal(session, row.id)
    if pending is not None:
        _resolve(pending, "superseded", now)
    proposal = CapabilityProposal(
        capability_id=row.id,
        run_id=run_id,
        kind="vanished",
        changes={},
        previous_status=row.status,
        state="open",
        created_at=now,
    )
    session.add(proposal)
    session.flush()
    before = row.status
    row.status = "vanished"
    _bump(row, now)
    record_event(
        session,
        row,
        "vanished",
        EXTRACTOR,
        now,
        changes={"status": (before, "vanished")},
        from_status=before,
        system=True,
        run_id=run_id,
        proposal_id=proposal.id,
        note=note or f"not found by extraction run {run_id}",
    )


def _bump(row: Capability, now: datetime) -> None:
    row.version += 1
    row.updated_at = now


def _resolve(p: CapabilityProposal, state: str, now: datetime) -> None:
    p.state = state
    p.resolved_at = now
    p.resolved_by = EXTRACTOR


def _set_baseline(
    session: Session,
    baselines: dict[str, CapabilityBaseline],
    cap_id: str,
    fields: dict[str, str],
    run_id: int,
    now: datetime,
) -> None:
    base = baselines.get(cap_id)
    if base is None:
        base = CapabilityBaseline(capability_id=cap_id, fields=dict(fields), run_id=run_id)
        session.add(base)
        baselines[cap_id] = base
    base.fields = dict(fields)
    base.run_id = run_id
    base.updated_at = now
