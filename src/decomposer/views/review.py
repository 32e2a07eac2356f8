"""Review read models for the web UI and JSON API: the queue, one capability, one document.

Built from ``review.queries`` in one session; the same typed objects feed the Jinja2 pages and
the API's response models, so ``/docs`` shows the shapes the pages use.
"""

from __future__ import annotations

import math
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from decomposer.core.errors import InputError
from decomposer.core.vocab import CATEGORIES, ROW_ID_MAX, STATUSES, CapabilityStatus, Provenance
from decomposer.core.vocab import PENDING_STATUSES as PENDING
from decomposer.extraction.grounding import find_quote
from decomposer.review.diff import word_diff
from decomposer.review.queries import (
    EventView,
    Filter,
    ProposalView,
    counts,
    evidence_context,
    get_capability,
    history,
    open_proposal,
    select_capabilities,
)
from decomposer.store.models import Capability, Document, Evidence, Tool
from decomposer.store.review_models import CapabilityProposal
from decomposer.store.summaries import ToolSummary, list_tools
from decomposer.views.capabilities import CapabilityRecord, capability_fields, capability_record


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class ToolOverview(ToolSummary):
    """A tool with its document count and capability counts per status, pending and changed."""

    counts: dict[str, int]


class QueueItem(CapabilityRecord):
    """A capability in the review queue; ``proposal`` is the kind of its open proposal."""

    proposal: str | None
    pending: bool


class QuoteContext(_Frozen):
    before: str
    match: str
    after: str


class EvidenceDetail(_Frozen):
    """A quote with the text around it in its document, when it was found there."""

    id: int
    quote: str
    grounded: bool
    score: float | None
    start: int | None
    end: int | None
    document_id: int | None
    document: str | None
    document_title: str | None
    context: QuoteContext | None


class OpenProposal(ProposalView):
    """An open proposal with a word diff (``(op, text)`` pieces) per changed field."""

    diff: dict[str, list[tuple[str, str]]]


class CapabilityDetail(_Frozen):
    """One capability for review: evidence in context, open proposal, history, next pending."""

    id: str
    tool: str
    name: str
    category: str
    description: str
    unique: str
    vs_alternatives: str
    status: CapabilityStatus
    version: int
    evidence: list[EvidenceDetail]
    proposal: str | None
    pending: bool
    tool_name: str
    open_proposal: OpenProposal | None
    history: list[EventView]
    next_id: str | None
    prev_id: str | None = None


class Mark(_Frozen):
    id: int
    capability_id: str


class Piece(_Frozen):
    text: str
    mark: Mark | None


class DocumentView(_Frozen):
    """A document's text as plain and highlighted pieces (evidence spans)."""

    id: int
    source: str
    title: str | None
    tool: str | None
    pieces: list[Piece]
    link: str | None
    missing_since: datetime | None = None
    """When a re-ingest of its folder last found its file gone (None: it is there)."""


def tools_overview(session: Session) -> list[ToolOverview]:
    per_tool = counts(session)
    return [
        ToolOverview(**row.model_dump(), counts=per_tool.get(row.slug, {}))
        for row in list_tools(session)
    ]


def queue_filter(
    tool: str | None,
    status: str,
    category: str | None,
    ungrounded: bool,
    evidence: str | None = None,
    provenance: str | None = None,
) -> Filter:
    """The queue's URL parameters as a filter; ``status`` may also be pending, changed or all.

    ``evidence`` (``found``/``missing``): whether the capability's quotes were found in its
    documents. ``provenance`` (``docs``/``editor``/``contrast``): whether its text is as extracted
    from the docs, a person edited it, or a model-written line waits for its review.
    """
    f = Filter(tool=tool)
    if status == "pending":
        f.pending = True
    elif status == "changed":
        f.proposal = True
    elif status in STATUSES:
        f.statuses = (status,)
    elif status != "all":
        raise InputError(f"unknown status {status!r}")
    if category:
        if category not in CATEGORIES:
            raise InputError(f"unknown category {category!r}")
        f.category = category
    if ungrounded or evidence == "missing":
        f.grounded = False
    elif evidence == "found":
        f.grounded = True
    elif evidence:
        raise InputError(f"unknown evidence filter {evidence!r}", hint="use found or missing")
    if provenance:
        if provenance not in PROVENANCES:
            raise InputError(
                f"unknown provenance {provenance!r}", hint=f"use {' or '.join(PROVENANCES)}"
            )
        if provenance == "contrast":
            f.contrast = True
        else:
            f.edited = provenance == "editor"
    return f


PROVENANCES = (Provenance.DOCS, Provenance.EDITOR, Provenance.CONTRAST)
"""Where a capability's text comes from: as extracted from the docs, edited by a person, or a
model-written vs-alternatives line (``decomposer contrast``) that waits for review."""
CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}
PAGE_SIZES = (25, 50, 100, 200)
"""The page sizes the queue page offers."""
MAX_PAGE = 1000


class QueuePage(_Frozen):
    """One page of the queue: its items, the total matching and where this page is."""

    items: list[QueueItem]
    total: int
    page: int
    pages: int
    per_page: int


def _matches(item: QueueItem, words: list[str]) -> bool:
    text = " ".join((item.id, item.name, item.description, item.unique, item.tool)).lower()
    return all(w in text for w in words)


def queue_page(
    session: Session, f: Filter, search: str = "", page: int = 1, per_page: int | None = 50
) -> QueuePage:
    """The queue filtered by ``f`` and by every word of ``search`` (id, name, description,
    unique line, tool), cut into pages (``None``: one page); past the end shows the last."""
    if per_page is not None and not 1 <= per_page <= MAX_PAGE:
        raise InputError(f"per_page must be between 1 and {MAX_PAGE}")
    words = search.lower().split()
    items = [i for i in queue(session, f) if _matches(i, words)]
    per_page = per_page or max(1, len(items))
    pages = max(1, math.ceil(len(items) / per_page))
    page = min(max(1, page), pages)
    start = (page - 1) * per_page
    return QueuePage(
        items=items[start : start + per_page],
        total=len(items),
        page=page,
        pages=pages,
        per_page=per_page,
    )


def format_fact(value: Any) -> str:
    """A profile or catalogue value for people: prices as ``$0.10 / 1M tokens``, booleans as
    yes/no, nothing as an em dash (the page showed raw Python values before)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict) and "amount" in value and "currency" in value:
        return _price(value)
    if isinstance(value, list):
        return ", ".join(format_fact(v) for v in value) or "—"
    return str(value).replace("_", " ") if isinstance(value, str) else str(value)


def _price(value: dict[str, Any]) -> str:
    """``$0.10 / 1M input tokens``, as the comparison pages write it (``pages.compare`` is not
    imported: it loads the matcher and the provider registry, which the UI must not)."""
    try:
        amount = Decimal(str(value["amount"]))
    except InvalidOperation:
        return str(value["amount"])
    if amount == amount.to_integral_value():
        number = f"{int(amount):,}"
    else:
        exponent = amount.normalize().as_tuple().exponent
        number = format(amount, f",.{max(2, -exponent if isinstance(exponent, int) else 2)}f")
    currency = str(value["currency"])
    symbol = CURRENCY_SYMBOLS.get(currency)
    text = f"{symbol}{number}" if symbol else f"{number} {currency}"
    unit = value.get("unit")
    return f"{text} / {unit}" if unit else text


def _is_pending(cap: Capability, proposal: str | None) -> bool:
    return cap.status in PENDING or proposal is not None


def queue(session: Session, f: Filter) -> list[QueueItem]:
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
    return [
        QueueItem(
            **capability_record(c, slugs[c.tool_id]).model_dump(),
            proposal=kinds.get(c.id),
            pending=_is_pending(c, kinds.get(c.id)),
        )
        for c in caps
    ]


def capability_detail(session: Session, cap_id: str) -> CapabilityDetail:
    cap = get_capability(session, cap_id)
    session.refresh(cap)
    tool = session.get(Tool, cap.tool_id)
    assert tool is not None
    proposal = open_proposal(session, cap_id)
    kind = proposal.kind if proposal else None
    opened = None
    if proposal is not None:
        opened = OpenProposal(
            **ProposalView.of(proposal).model_dump(),
            diff={
                name: word_diff(str(pair["old"]), str(pair["new"]))
                for name, pair in proposal.changes.items()
            },
        )
    return CapabilityDetail.model_validate(
        {
            **capability_fields(cap, tool.slug),
            "evidence": [_evidence(ev) for ev in cap.evidence],
            "proposal": kind,
            "pending": _is_pending(cap, kind),
            "tool_name": tool.name,
            "open_proposal": opened,
            "history": history(session, cap_id),
            "next_id": next_pending(session, cap),
            "prev_id": previous_pending(session, cap),
        }
    )


def spans_quote(text: str, ev: Evidence) -> bool:
    """Whether ``ev``'s offsets cover its quote in ``text`` (the document as stored now): the
    quote is found, as grounding finds it, in a window around them and overlaps them.

    Re-ingest moves or clears offsets (``ingest.reground``); this guards the highlight against
    offsets written before that existed, or by any other path: a span that does not hold the
    quote is shown as not in the current version, never highlighted."""
    start, end = ev.start, ev.end
    if start is None or end is None or not 0 <= start < end <= len(text):
        return False
    low = max(0, start - len(ev.quote))
    found = find_quote(ev.quote, text[low : end + len(ev.quote)])
    return found is not None and found.start + low < end and found.end + low > start


def _evidence(ev: Evidence) -> EvidenceDetail:
    doc = ev.document
    context = None
    placed = doc is not None and spans_quote(doc.text, ev)
    if doc is not None and placed and ev.start is not None and ev.end is not None:
        context = QuoteContext(**evidence_context(doc.text, ev.start, ev.end))
    return EvidenceDetail(
        id=ev.id,
        quote=ev.quote,
        grounded=ev.grounded,
        score=ev.score,
        start=ev.start if placed else None,
        end=ev.end if placed else None,
        document_id=doc.id if doc else None,
        document=doc.source if doc else None,
        document_title=doc.title if doc else None,
        context=context,
    )


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


def previous_pending(session: Session, cap: Capability) -> str | None:
    """The pending capability of the same tool before ``cap`` in queue order (wrapping)."""
    tool = session.get(Tool, cap.tool_id)
    assert tool is not None
    ids = [c.id for c in select_capabilities(session, Filter(tool=tool.slug, pending=True))]
    others = [i for i in ids if i != cap.id]
    if not others:
        return None
    if cap.id in ids:
        return ids[ids.index(cap.id) - 1]
    key = (cap.category, cap.name, cap.id)
    before = [
        cid
        for cid in others
        if (c := session.get(Capability, cid)) is not None and (c.category, c.name, c.id) < key
    ]
    return before[-1] if before else others[-1]


def document_view(session: Session, doc_id: int, cap_id: str | None) -> DocumentView | None:
    """A document's text split into plain and highlighted pieces (evidence spans)."""
    if not 1 <= doc_id <= ROW_ID_MAX:
        return None
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
    pieces: list[Piece] = []
    pos = 0
    for ev in session.scalars(q):
        start, end = ev.start or 0, ev.end or 0
        if start < pos or end <= start or not spans_quote(doc.text, ev):
            continue
        pieces.append(Piece(text=doc.text[pos:start], mark=None))
        pieces.append(
            Piece(text=doc.text[start:end], mark=Mark(id=ev.id, capability_id=ev.capability_id))
        )
        pos = end
    pieces.append(Piece(text=doc.text[pos:], mark=None))
    tool = session.get(Tool, doc.tool_id)
    return DocumentView(
        id=doc.id,
        source=doc.source,
        title=doc.title,
        tool=tool.slug if tool else None,
        pieces=pieces,
        link=doc.source if doc.source.startswith(("http://", "https://")) else None,
        missing_since=doc.missing_since,
    )
