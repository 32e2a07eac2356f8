"""Plain data for the web pages and the JSON API, read from the store in one session."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from decomposer.core.errors import DecomposerError
from decomposer.core.vocab import PENDING_STATUSES
from decomposer.review.actions import (
    Filter,
    counts,
    evidence_context,
    get_capability,
    history,
    open_proposal,
    proposal_dict,
    select_capabilities,
)
from decomposer.review.diff import word_diff
from decomposer.store.models import Capability, Document, Evidence, Tool
from decomposer.store.review_models import CapabilityProposal
from decomposer.store.tools import get_tool, list_tools
from decomposer.views.capabilities import capability_dict


def tools_overview(session: Session) -> list[dict[str, Any]]:
    per_tool = counts(session)
    rows = list_tools(session)
    for row in rows:
        row["counts"] = per_tool.get(str(row["slug"]), {})
    return rows


def capability_summary(cap: Capability, slug: str, proposal: str | None) -> dict[str, Any]:
    data = capability_dict(cap, slug)
    data["proposal"] = proposal
    data["pending"] = cap.status in PENDING_STATUSES or proposal is not None
    return data


def queue(session: Session, f: Filter) -> list[dict[str, Any]]:
    caps = select_capabilities(session, f)
    slugs = {tid: slug for tid, slug in session.execute(select(Tool.id, Tool.slug))}
    ids = [c.id for c in caps]
    kinds = {
        cid: kind
        for cid, kind in session.execute(
            select(CapabilityProposal.capability_id, CapabilityProposal.kind).where(
                CapabilityProposal.capability_id.in_(ids), CapabilityProposal.state == "open"
            )
        )
    }
    return [capability_summary(c, slugs[c.tool_id], kinds.get(c.id)) for c in caps]


def capability_detail(session: Session, cap_id: str) -> dict[str, Any]:
    cap = get_capability(session, cap_id)
    session.refresh(cap)
    tool = session.get(Tool, cap.tool_id)
    assert tool is not None
    proposal = open_proposal(session, cap_id)
    data = capability_summary(cap, tool.slug, proposal.kind if proposal else None)
    data["tool_name"] = tool.name
    data["evidence"] = [_evidence(ev) for ev in cap.evidence]
    data["open_proposal"] = None
    if proposal is not None:
        p = proposal_dict(proposal)
        p["diff"] = {
            name: word_diff(str(pair["old"]), str(pair["new"]))
            for name, pair in proposal.changes.items()
        }
        data["open_proposal"] = p
    data["history"] = history(session, cap_id)
    data["next_id"] = next_pending(session, cap)
    return data


def _evidence(ev: Evidence) -> dict[str, Any]:
    doc = ev.document
    item: dict[str, Any] = {
        "id": ev.id,
        "quote": ev.quote,
        "grounded": ev.grounded,
        "score": ev.score,
        "start": ev.start,
        "end": ev.end,
        "document_id": doc.id if doc else None,
        "document": doc.source if doc else None,
        "document_title": doc.title if doc else None,
        "context": None,
    }
    if doc is not None and ev.start is not None and ev.end is not None:
        item["context"] = evidence_context(doc.text, ev.start, ev.end)
    return item


def next_pending(session: Session, cap: Capability) -> str | None:
    """The next pending capability of the same tool after ``cap`` in queue order (wrapping)."""
    tool = session.get(Tool, cap.tool_id)
    assert tool is not None
    ids = [c.id for c in select_capabilities(session, Filter(tool=tool.slug, pending=True))]
    if not ids:
        return None
    if cap.id in ids:
        i = ids.index(cap.id)
        rest = ids[i + 1 :] + ids[:i]
        return rest[0] if rest else None
    key = (cap.category, cap.name, cap.id)
    for cid in ids:
        other = session.get(Capability, cid)
        if other is not None and (other.category, other.name, other.id) > key:
            return cid
    return ids[0]


def document_view(session: Session, doc_id: int, cap_id: str | None) -> dict[str, Any] | None:
    """A document's text split into plain and highlighted pieces (evidence spans)."""
    doc = session.get(Document, doc_id)
    if doc is None:
        return None
    q = (
        select(Evidence)
        .where(Evidence.document_id == doc_id, Evidence.start.is_not(None))
        .options(selectinload(Evidence.capability))
        .order_by(Evidence.start)
    )
    if cap_id:
        q = q.where(Evidence.capability_id == cap_id)
    pieces: list[dict[str, Any]] = []
    pos = 0
    for ev in session.scalars(q):
        start, end = ev.start or 0, ev.end or 0
        if start < pos or end <= start:
            continue
        pieces.append({"text": doc.text[pos:start], "mark": None})
        pieces.append(
            {
                "text": doc.text[start:end],
                "mark": {"id": ev.id, "capability_id": ev.capability_id},
            }
        )
        pos = end
    pieces.append({"text": doc.text[pos:], "mark": None})
    tool = session.get(Tool, doc.tool_id)
    return {
        "id": doc.id,
        "source": doc.source,
        "title": doc.title,
        "tool": tool.slug if tool else None,
        "pieces": pieces,
        "link": doc.source if doc.source.startswith(("http://", "https://")) else None,
    }


def tool_detail(session: Session, slug: str, vs: str | None, as_of: date) -> dict[str, Any]:
    """Profile facts, capability counts, scores and the slug of a tool to compare against."""
    tool = get_tool(session, slug)
    data: dict[str, Any] = {
        "slug": tool.slug,
        "name": tool.name,
        "type": tool.type,
        "vendor": tool.vendor,
        "homepage": tool.homepage,
        "counts": counts(session).get(tool.slug, {}),
        "profile": {},
        "scores": None,
        "score_error": None,
        "others": [s for s in session.scalars(select(Tool.slug).order_by(Tool.slug)) if s != slug],
    }
    try:
        from decomposer.catalog.catalogue import effective_profile, load_facts
        from decomposer.store.catalogue_models import CatalogueEntry

        entry = session.get(CatalogueEntry, tool.id)
        profile = effective_profile(
            tool.type, entry, load_facts(session, [tool.id]).get(tool.id, [])
        )
        data["profile"] = {k: (v.as_json() if v else None) for k, v in profile.items()}
    except DecomposerError as exc:
        data["profile_error"] = str(exc)
    try:
        from decomposer.catalog.score import Weights, score_tool
        from decomposer.pages.compare import load_snapshot

        snap = load_snapshot(session, [slug])
        card = score_tool(snap.tools[slug].inputs(), snap.context, Weights(), as_of)
        data["scores"] = card.as_json()
    except DecomposerError as exc:
        data["score_error"] = str(exc)
    data["vs"] = vs if vs in data["others"] else (data["others"][0] if data["others"] else None)
    return data


def comparison(session: Session, a: str, b: str, as_of: date, include_unreviewed: bool) -> Any:
    from decomposer.pages.compare import Copywriter, Options, compare

    options = Options(include_unreviewed=include_unreviewed, as_of=as_of)
    return compare(session, a, b, options=options, copy=Copywriter())
