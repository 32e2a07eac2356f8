"""The snapshot read model: the stored records of some tools, loaded in bulk for scores and pages.

Scores (``catalog.score``), the comparator (``pages.compare``), page regeneration, the match
explorer (``matching.match.similar``) and the web UI all read tools through ``load_snapshot``, so
each reads the same records the same way. It sits below matching and pages, so it reads the
match graph's Times Matched straight from the store's tables (``times_matched_counts``) instead of
importing the matcher.

Which capabilities a page may show, and in which order (``comparable``): approved ones; with
``include_unreviewed`` also proposed and ungrounded ones. Rejected ones never appear. Order:

1. reviewed before drafts, and grounded drafts before ungrounded ones;
2. evidence strength: more grounded quotes first, then quotes from more distinct documents;
3. category importance (``CATEGORY_ORDER``: core model/API features before platform details);
4. name, for a stable order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from decomposer.catalog.catalogue import PROFILE_FIELDS, Sourced, effective_profile, load_facts
from decomposer.catalog.score import Context, QualityInputs, ToolInputs
from decomposer.core.errors import NotFoundError
from decomposer.core.vocab import LIVE_STATUSES, CapabilityStatus, ContrastStatus
from decomposer.store.catalogue_models import CatalogueEntry
from decomposer.store.contrast_models import ContrastLine
from decomposer.store.match_models import MatchEdge, MatchRun, SearchQueryCount
from decomposer.store.models import Capability, Document, Evidence, Tool
from decomposer.store.review_models import ReviewEvent

CATEGORY_ORDER = (
    "models",
    "text-generation",
    "multimodal",
    "vision",
    "long-context",
    "function-calling",
    "structured-output",
    "embeddings",
    "code",
    "fine-tuning",
    "batch",
    "deployment",
    "safety",
    "platform",
    "pricing",
    "other",
)


@dataclass(frozen=True)
class EvidenceRecord:
    quote: str
    grounded: bool
    document: str | None
    source: str | None
    document_id: int | None
    fetched_on: date | None = None  # when the document's current content was fetched
    id: int | None = None  # the evidence row


@dataclass(frozen=True)
class ContrastRecord:
    """A capability's current model-written "vs alternatives" line (approved or proposed)."""

    id: int
    text: str
    status: str
    provider: str
    model: str
    prompt_version: str
    written_on: date
    citations: tuple[int, ...]
    edited: bool


@dataclass(frozen=True)
class CapRecord:
    id: str
    name: str
    category: str
    description: str
    unique: str
    vs_alternatives: str
    status: str
    evidence: tuple[EvidenceRecord, ...]
    edited: frozenset[str] = frozenset()
    """Text fields whose current value a person wrote (``editor`` provenance), not the docs."""
    contrast: ContrastRecord | None = None

    @property
    def grounded_quotes(self) -> int:
        return sum(e.grounded for e in self.evidence)

    @property
    def grounded_documents(self) -> int:
        return len({e.document_id for e in self.evidence if e.grounded})


@dataclass(frozen=True)
class ToolRecord:
    slug: str
    name: str
    vendor: str | None
    homepage: str | None
    categories: tuple[str, ...]
    profile: Mapping[str, Sourced | None]
    signals: Mapping[str, Any]
    capabilities: tuple[CapRecord, ...]  # every non-rejected capability
    docs_updated: date | None
    times_matched: int = 0

    def inputs(self) -> ToolInputs:
        caps = self.capabilities
        quality = QualityInputs(
            approved=sum(c.status == "approved" for c in caps),
            live=len(caps),
            with_grounded_evidence=sum(c.grounded_quotes > 0 for c in caps),
            quotes=sum(len(c.evidence) for c in caps),
            grounded_quotes=sum(c.grounded_quotes for c in caps),
            profile_known=sum(v is not None for v in self.profile.values()),
            profile_fields=len(PROFILE_FIELDS),
        )
        release = self.signals.get("last_release")
        return ToolInputs(
            slug=self.slug,
            signals=self.signals,
            quality=quality,
            last_release=date.fromisoformat(release) if isinstance(release, str) else None,
            docs_updated=self.docs_updated,
            times_matched=self.times_matched,
        )


@dataclass
class Snapshot:
    """Records of some tools plus the catalogue-wide context their scores are normalised by."""

    tools: dict[str, ToolRecord]
    context: Context
    known: list[str] = field(default_factory=list)


def load_snapshot(
    session: Session,
    slugs: Sequence[str] | None = None,
    times_matched: Mapping[str, int] | None = None,
) -> Snapshot:
    """Load the named tools (all when ``None``) in a handful of bulk queries.

    The normalisation context always covers the whole catalogue (every tool's signals), so a
    tool's Adoption is the same on every page it appears on. ``times_matched`` defaults to the
    store's match graph (``match.times_matched``: the newest ``decomposer match run``).
    """
    matched = dict(times_matched) if times_matched is not None else times_matched_counts(session)
    all_tools = session.execute(
        select(Tool.id, Tool.slug, Tool.name, Tool.vendor, Tool.homepage, Tool.type).order_by(
            Tool.slug
        )
    ).all()
    known = [t.slug for t in all_tools]
    if slugs is not None:
        for slug in slugs:
            if slug not in known:
                hint = (
                    f"known tools: {', '.join(known[:20])}"
                    if known
                    else ("import a catalogue with `decomposer tool import FILE`")
                )
                raise NotFoundError(f"unknown tool {slug!r}", hint=hint)
    entries = {e.tool_id: e for e in session.scalars(select(CatalogueEntry))}
    signal_inputs = [
        ToolInputs(
            slug=t.slug,
            signals=entries[t.id].signals if t.id in entries else {},
            times_matched=matched.get(t.slug, 0),
        )
        for t in all_tools
    ]
    context = Context.of(signal_inputs)
    wanted = [t for t in all_tools if slugs is None or t.slug in set(slugs)]
    ids = [t.id for t in wanted]
    facts = load_facts(session, ids if slugs is not None else None)
    caps = _load_capabilities(session, ids if slugs is not None else None)
    docs_q = select(Document.tool_id, func.max(Document.updated_at)).group_by(Document.tool_id)
    if slugs is not None:
        docs_q = docs_q.where(Document.tool_id.in_(ids))
    docs_updated = {tid: _as_date(when) for tid, when in session.execute(docs_q)}
    tools: dict[str, ToolRecord] = {}
    for t in wanted:
        entry = entries.get(t.id)
        tools[t.slug] = ToolRecord(
            slug=t.slug,
            name=t.name,
            vendor=t.vendor,
            homepage=t.homepage,
            categories=tuple(entry.categories) if entry else (),
            profile=effective_profile(t.type, entry, facts.get(t.id, [])),
            signals=dict(entry.signals) if entry else {},
            capabilities=tuple(caps.get(t.id, [])),
            docs_updated=docs_updated.get(t.id),
            times_matched=matched.get(t.slug, 0),
        )
    return Snapshot(tools, context, known)


def _as_date(when: datetime | date | None) -> date | None:
    if when is None:
        return None
    return when.date() if isinstance(when, datetime) else when


def _load_capabilities(session: Session, tool_ids: list[int] | None) -> dict[int, list[CapRecord]]:
    cq = select(
        Capability.id,
        Capability.tool_id,
        Capability.name,
        Capability.category,
        Capability.description,
        Capability.unique,
        Capability.vs_alternatives,
        Capability.status,
    ).where(Capability.status != "rejected")
    eq = (
        select(
            Evidence.capability_id,
            Evidence.id,
            Evidence.quote,
            Evidence.grounded,
            Evidence.document_id,
            Document.title,
            Document.source,
            Document.updated_at,
        )
        .join(Capability, Capability.id == Evidence.capability_id)
        .outerjoin(Document, Document.id == Evidence.document_id)
        .where(Capability.status != "rejected")
        .order_by(Evidence.id)
    )
    if tool_ids is not None:
        cq = cq.where(Capability.tool_id.in_(tool_ids))
        eq = eq.where(Capability.tool_id.in_(tool_ids))
    evidence: dict[str, list[EvidenceRecord]] = {}
    for cap_id, ev_id, quote, grounded, doc_id, title, source, fetched in session.execute(eq):
        evidence.setdefault(cap_id, []).append(
            EvidenceRecord(
                quote,
                bool(grounded),
                title,
                _public_source(source),
                doc_id,
                _as_date(fetched),
                ev_id,
            )
        )
    contrasts = _load_contrasts(session, tool_ids)
    edited = _edited_fields(session, tool_ids)
    out: dict[int, list[CapRecord]] = {}
    for row in session.execute(cq.order_by(Capability.id)):
        out.setdefault(row.tool_id, []).append(
            CapRecord(
                id=row.id,
                name=row.name,
                category=row.category,
                description=row.description,
                unique=row.unique,
                vs_alternatives=row.vs_alternatives,
                status=row.status,
                evidence=tuple(evidence.get(row.id, ())),
                edited=frozenset(edited.get(row.id, ())),
                contrast=contrasts.get(row.id),
            )
        )
    return out


TEXT_FIELDS = ("description", "unique", "vs_alternatives")


def _edited_fields(session: Session, tool_ids: list[int] | None) -> dict[str, set[str]]:
    """Per capability, the text fields a person last wrote: a reviewer's edit makes a field
    ``editor``; accepting a re-extraction's proposed text for it makes it ``docs`` again. Only
    events that changed text are read (edits and accepted proposals), a small share of all."""
    q = (
        select(ReviewEvent.capability_id, ReviewEvent.edited, ReviewEvent.changes)
        .where(
            ReviewEvent.system.is_(False),
            or_(ReviewEvent.edited.is_(True), ReviewEvent.proposal_id.is_not(None)),
        )
        .order_by(ReviewEvent.id)
    )
    if tool_ids is not None:
        q = q.join(Capability, Capability.id == ReviewEvent.capability_id).where(
            Capability.tool_id.in_(tool_ids)
        )
    out: dict[str, set[str]] = {}
    for cap_id, by_person, changes in session.execute(q):
        fields = out.setdefault(cap_id, set())
        for name in TEXT_FIELDS:
            if name in (changes or {}):
                (fields.add if by_person else fields.discard)(name)
    return out


def _load_contrasts(session: Session, tool_ids: list[int] | None) -> dict[str, ContrastRecord]:
    """Each capability's newest approved or proposed contrast line."""
    q = (
        select(ContrastLine)
        .join(Capability, Capability.id == ContrastLine.capability_id)
        .where(ContrastLine.status.in_([ContrastStatus.APPROVED, ContrastStatus.PROPOSED]))
        .order_by(ContrastLine.id)
    )
    if tool_ids is not None:
        q = q.where(Capability.tool_id.in_(tool_ids))
    return {
        line.capability_id: ContrastRecord(
            id=line.id,
            text=line.text,
            status=line.status,
            provider=line.provider,
            model=line.model,
            prompt_version=line.prompt_version,
            written_on=line.created_at.date(),
            citations=tuple(line.citations),
            edited=line.edited,
        )
        for line in session.scalars(q)
    }


def _public_source(source: str | None) -> str | None:
    """URLs are kept; local file paths are cut to the file name (no machine paths on pages)."""
    if source is None:
        return None
    if source.startswith(("http://", "https://")):
        return source
    return Path(source).name


# --- the match graph's Times Matched, read from the store ---------------------------------------


def latest_run(session: Session) -> MatchRun | None:
    return session.scalars(
        select(MatchRun).where(MatchRun.status == "succeeded").order_by(MatchRun.id.desc()).limit(1)
    ).first()


def query_counts(session: Session) -> dict[int, int]:
    """Query id -> searches, summed over days."""
    rows = session.execute(
        select(SearchQueryCount.query_id, func.sum(SearchQueryCount.count)).group_by(
            SearchQueryCount.query_id
        )
    )
    return {qid: int(total or 0) for qid, total in rows}


def times_matched_counts(session: Session) -> dict[str, int]:
    """Tool slug -> Times Matched from the newest run (tools never matched are left out)."""
    run = latest_run(session)
    if run is None:
        return {}
    pairs = session.execute(
        select(MatchEdge.query_id, Tool.slug)
        .join(Capability, Capability.id == MatchEdge.capability_id)
        .join(Tool, Tool.id == MatchEdge.tool_id)
        .where(
            MatchEdge.run_id == run.id,
            MatchEdge.score >= run.threshold,
            Capability.status.in_(LIVE_STATUSES),
        )
        .distinct()
    ).all()
    counts = query_counts(session)
    out: dict[str, int] = {}
    for qid, slug in pairs:
        out[slug] = out.get(slug, 0) + counts.get(qid, 0)
    return dict(sorted(out.items()))


# --- what a page may show -------------------------------------------------------------------


def comparable(caps: Iterable[CapRecord], include_unreviewed: bool) -> list[CapRecord]:
    allowed = LIVE_STATUSES if include_unreviewed else (CapabilityStatus.APPROVED,)
    return sorted((c for c in caps if c.status in allowed), key=_order_key)


def _order_key(cap: CapRecord) -> tuple[int, int, int, int, str, str]:
    status_rank = {"approved": 0, "proposed": 1, "ungrounded": 2}.get(cap.status, 3)
    try:
        category = CATEGORY_ORDER.index(cap.category)
    except ValueError:
        category = len(CATEGORY_ORDER)
    return (
        status_rank,
        -cap.grounded_quotes,
        -cap.grounded_documents,
        category,
        cap.name.casefold(),
        cap.id,
    )
