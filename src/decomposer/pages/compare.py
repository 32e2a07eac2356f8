"""The comparator: stored records -> per-tool sides -> one ``Comparison`` per pair (pure).

Loading (``load_snapshot``) reads each tool's records once in bulk; ``build_side`` turns one tool
into the part of a page that does not depend on the other tool; ``build_comparison`` joins two
sides with their rows, the "Shared capabilities" alignment (``align_sides``: optimal one-to-one
pairs by the offline lexical embedder, see docs/match.md), summary and verdict. Summary and
verdict copy come from the Jinja2 text templates in ``templates/copy/`` and are fed only numbers
that are in the table, so they cannot contradict it.

Which capabilities appear: approved ones; with ``include_unreviewed`` also proposed and ungrounded
ones, marked as drafts. Rejected ones never appear. Order (top K first):

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

import jinja2
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from decomposer.catalog.catalogue import (
    PROFILE_FIELDS,
    Price,
    Sourced,
    effective_profile,
    load_facts,
)
from decomposer.catalog.score import (
    LABELS,
    SUBSCORES,
    Context,
    QualityInputs,
    ScoreCard,
    ToolInputs,
    Weights,
    score_tool,
)
from decomposer.core.errors import InputError, NotFoundError
from decomposer.core.vocab import CAPABILITIES_PER_SIDE, LIVE_STATUSES, CapabilityStatus
from decomposer.matching.align import align
from decomposer.matching.embed import Embedder, LexicalEmbedder, capability_text
from decomposer.matching.match import times_matched as stored_times_matched
from decomposer.store.catalogue_models import CatalogueEntry
from decomposer.store.models import Capability, Document, Evidence, Tool

SCHEMA_VERSION = 1
TEMPLATES = Path(__file__).with_name("templates")
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
ROWS = (
    "Type",
    "Rank",
    "Adoption",
    "Quality",
    "Ecosystem",
    "Match Graph",
    "Pricing",
    "Starting Price",
    "Capabilities",
    "Times Matched",
)
PRICING_LABELS = {
    "free": "Free",
    "freemium": "Freemium",
    "paid": "Paid",
    "open-weights": "Open weights",
    "unknown": "—",
}
CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}
MISSING = "—"


# --- records as loaded from the store -------------------------------------------------------


@dataclass(frozen=True)
class EvidenceRecord:
    quote: str
    grounded: bool
    document: str | None
    source: str | None
    document_id: int | None


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
    matched = dict(times_matched) if times_matched is not None else stored_times_matched(session)
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
            Evidence.quote,
            Evidence.grounded,
            Evidence.document_id,
            Document.title,
            Document.source,
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
    for cap_id, quote, grounded, doc_id, title, source in session.execute(eq):
        evidence.setdefault(cap_id, []).append(
            EvidenceRecord(quote, bool(grounded), title, _public_source(source), doc_id)
        )
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
            )
        )
    return out


def _public_source(source: str | None) -> str | None:
    """URLs are kept; local file paths are cut to the file name (no machine paths on pages)."""
    if source is None:
        return None
    if source.startswith(("http://", "https://")):
        return source
    return Path(source).name


# --- the page model -----------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class EvidenceView(_Model):
    quote: str
    document: str | None
    source: str | None
    grounded: bool


class CapabilityView(_Model):
    id: str
    name: str
    category: str
    status: str
    draft: bool
    grounded: bool
    description: str
    unique: str
    vs_alternatives: str
    evidence: list[EvidenceView]


class ToolSide(_Model):
    slug: str
    name: str
    vendor: str | None
    homepage: str | None
    categories: list[str]
    profile: dict[str, Any]
    type_text: str
    pricing_text: str
    price_text: str
    free_tier: bool | None
    rank: int
    subscores: dict[str, int]
    scores: dict[str, Any]
    capabilities_count: int
    approved_count: int
    draft_count: int
    grounded_count: int
    times_matched: int
    capabilities: list[CapabilityView]
    shown: int
    more: int


class Row(_Model):
    name: str
    a: str
    b: str


class CapRef(_Model):
    id: str
    name: str
    draft: bool


class SharedView(_Model):
    """One row of "Shared capabilities": the same capability in both tools."""

    a: CapRef
    b: CapRef
    similarity: float


class AlignmentInfo(_Model):
    method: str = "optimal one-to-one assignment (Hungarian) on cosine similarity"
    model: str
    threshold: float


class Verdict(_Model):
    leader: str | None
    leads: dict[str, list[str]]
    ties: list[str]
    text: str


class Options(_Model):
    """Page-wide settings. ``as_of`` is kept as the first day of its month (see score.py)."""

    top_k: int = Field(default=CAPABILITIES_PER_SIDE, ge=1)
    include_unreviewed: bool = False
    weights: dict[str, float] = Field(default_factory=lambda: Weights().as_dict())
    as_of: date

    @field_validator("as_of")
    @classmethod
    def _month(cls, value: date) -> date:
        return value.replace(day=1)

    @property
    def as_of_text(self) -> str:
        return self.as_of.strftime("%B %Y")


class Comparison(_Model):
    kind: str = "decomposer.comparison"
    schema_version: int = SCHEMA_VERSION
    title: str
    options: Options
    a: ToolSide
    b: ToolSide
    rows: list[Row]
    shared: list[SharedView]
    only_in_a: list[CapRef]
    only_in_b: list[CapRef]
    alignment: AlignmentInfo
    summary: str
    basis: str
    verdict: Verdict
    score_note: str
    search_text: str


# --- formatting ------------------------------------------------------------------------------


def format_amount(amount: Any) -> str:
    """Plain decimal notation: 2 decimals for fractions, more only when needed; never 1e-07."""
    from decimal import Decimal

    dec = amount if isinstance(amount, Decimal) else Decimal(str(amount))
    if dec == dec.to_integral_value():
        return f"{int(dec):,}"
    exponent = dec.normalize().as_tuple().exponent
    places = max(2, -exponent if isinstance(exponent, int) else 2)
    return format(dec, f",.{places}f")


def format_price(price: Price | None) -> str:
    """``$0.10 / 1M input tokens``; ``12.50 CHF / month``; ``—`` when unknown."""
    if price is None:
        return MISSING
    number = format_amount(price.amount)
    symbol = CURRENCY_SYMBOLS.get(price.currency)
    text = f"{symbol}{number}" if symbol else f"{number} {price.currency}"
    return f"{text} / {price.unit}" if price.unit else text


def _value(profile: Mapping[str, Sourced | None], name: str) -> Any:
    item = profile.get(name)
    return item.value if item is not None else None


# --- building ---------------------------------------------------------------------------------


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


def check_comparable(tool: ToolRecord, include_unreviewed: bool) -> list[CapRecord]:
    caps = comparable(tool.capabilities, include_unreviewed)
    if caps:
        return caps
    if include_unreviewed:
        raise InputError(
            f"{tool.slug} has no capabilities to compare",
            hint=f"run `decomposer extract {tool.slug}` first",
        )
    drafts = sum(c.status in ("proposed", "ungrounded") for c in tool.capabilities)
    hint = (
        (
            f"review its {drafts} proposed capabilities, or pass --include-unreviewed to preview"
            " drafts"
        )
        if drafts
        else f"run `decomposer extract {tool.slug}` and review the results"
    )
    raise InputError(f"{tool.slug} has no approved capabilities", hint=hint)


def build_side(tool: ToolRecord, card: ScoreCard, options: Options) -> ToolSide:
    caps = check_comparable(tool, options.include_unreviewed)
    views = [
        CapabilityView(
            id=c.id,
            name=c.name,
            category=c.category,
            status=c.status,
            draft=c.status != "approved",
            grounded=c.grounded_quotes > 0,
            description=c.description,
            unique=c.unique,
            vs_alternatives=c.vs_alternatives,
            evidence=[
                EvidenceView(
                    quote=e.quote, document=e.document, source=e.source, grounded=e.grounded
                )
                for e in c.evidence
            ],
        )
        for c in caps
    ]
    shown = min(options.top_k, len(views))
    pricing = _value(tool.profile, "pricing_model")
    price = _value(tool.profile, "starting_price")
    tool_type = _value(tool.profile, "type")
    free_tier = _value(tool.profile, "free_tier")
    return ToolSide(
        slug=tool.slug,
        name=tool.name,
        vendor=tool.vendor,
        homepage=tool.homepage,
        categories=list(tool.categories),
        profile={k: (v.as_json() if v is not None else None) for k, v in tool.profile.items()},
        type_text=str(tool_type) if tool_type else MISSING,
        pricing_text=PRICING_LABELS.get(str(pricing), str(pricing)) if pricing else MISSING,
        price_text=format_price(price if isinstance(price, Price) else None),
        free_tier=free_tier if isinstance(free_tier, bool) else None,
        rank=card.rank,
        subscores={n: card.subscores[n].value for n in SUBSCORES},
        scores=card.as_json(),
        capabilities_count=len(views),
        approved_count=sum(not v.draft for v in views),
        draft_count=sum(v.draft for v in views),
        grounded_count=sum(v.grounded for v in views),
        times_matched=tool.times_matched,
        capabilities=views,
        shown=shown,
        more=len(views) - shown,
    )


def _capabilities_cell(side: ToolSide) -> str:
    text = f"{side.capabilities_count} decomposed"
    if side.draft_count:
        text += f" ({side.draft_count} unreviewed)"
    return text


def rows_for(a: ToolSide, b: ToolSide) -> list[Row]:
    def both(fn: Any) -> tuple[str, str]:
        return fn(a), fn(b)

    values: dict[str, tuple[str, str]] = {
        "Type": both(lambda s: s.type_text),
        "Rank": both(lambda s: f"{s.rank}/100"),
        **{LABELS[n]: both(lambda s, n=n: f"{s.subscores[n]}/100") for n in SUBSCORES},
        "Pricing": both(lambda s: s.pricing_text),
        "Starting Price": both(lambda s: s.price_text),
        "Capabilities": both(_capabilities_cell),
        "Times Matched": both(lambda s: f"{s.times_matched:,}"),
    }
    return [Row(name=name, a=values[name][0], b=values[name][1]) for name in ROWS]


@dataclass(frozen=True)
class Lead:
    name: str
    mine: int
    theirs: int


def verdict_facts(a: ToolSide, b: ToolSide) -> dict[str, Any]:
    """The structured facts the copy templates may state; all derived from the table's numbers."""
    if a.rank == b.rank:
        first, second, leader = a, b, None
    elif a.rank > b.rank:
        first, second, leader = a, b, a.slug
    else:
        first, second, leader = b, a, b.slug
    first_leads = [
        Lead(LABELS[n], first.subscores[n], second.subscores[n])
        for n in SUBSCORES
        if first.subscores[n] > second.subscores[n]
    ]
    second_leads = [
        Lead(LABELS[n], second.subscores[n], first.subscores[n])
        for n in SUBSCORES
        if second.subscores[n] > first.subscores[n]
    ]
    ties = [
        Lead(LABELS[n], a.subscores[n], b.subscores[n])
        for n in SUBSCORES
        if a.subscores[n] == b.subscores[n]
    ]
    return {
        "a": a,
        "b": b,
        "first": first,
        "second": second,
        "leader": leader,
        "tie": leader is None,
        "first_leads": first_leads,
        "second_leads": second_leads,
        "ties": ties,
        "free_tier": [s for s in (first, second) if s.free_tier is True],
        "no_free_tier": [s for s in (first, second) if s.free_tier is False],
        "priced": [s for s in (first, second) if s.price_text != MISSING],
    }


class Copywriter:
    """Renders summary, basis and verdict from ``templates/copy/*.txt.j2`` (plain text)."""

    def __init__(self, templates: Path = TEMPLATES) -> None:
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(templates / "copy"),
            autoescape=False,
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=False,
        )
        self.env.filters["scorelist"] = _scorelist
        self.env.filters["andlist"] = _andlist
        self.summary = self.env.get_template("summary.txt.j2")
        self.basis = self.env.get_template("basis.txt.j2")
        self.verdict = self.env.get_template("verdict.txt.j2")
        self.search = self.env.get_template("search.txt.j2")

    @staticmethod
    def _clean(text: str) -> str:
        return " ".join(text.split())


def _andlist(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _scorelist(leads: Sequence[Lead]) -> str:
    return _andlist([f"{lead.name} ({lead.mine} vs {lead.theirs})" for lead in leads])


def _ref(cap: CapabilityView) -> CapRef:
    return CapRef(id=cap.id, name=cap.name, draft=cap.draft)


def _text(cap: CapabilityView) -> str:
    return capability_text(cap.name, cap.description, cap.unique)


def align_sides(
    a: ToolSide, b: ToolSide, embedder: Embedder
) -> tuple[list[SharedView], list[CapRef], list[CapRef], AlignmentInfo]:
    """Pair the two sides' capabilities (``align.align``): shared, only in A, only in B.

    Only-in lists keep the page's top-K order; shared rows are by similarity, best first.
    """
    result = align(embedder, [_text(c) for c in a.capabilities], [_text(c) for c in b.capabilities])
    shared = [
        SharedView(
            a=_ref(a.capabilities[p.a]), b=_ref(b.capabilities[p.b]), similarity=p.similarity
        )
        for p in result.shared
    ]
    return (
        shared,
        [_ref(a.capabilities[i]) for i in result.only_a],
        [_ref(b.capabilities[j]) for j in result.only_b],
        AlignmentInfo(model=result.model, threshold=result.threshold),
    )


def build_comparison(
    a: ToolSide,
    b: ToolSide,
    options: Options,
    copy: Copywriter,
    embedder: Embedder | None = None,
) -> Comparison:
    if a.slug == b.slug:
        raise InputError(f"cannot compare {a.slug} with itself", hint="name two different tools")
    shared, only_a, only_b, alignment = align_sides(a, b, embedder or LexicalEmbedder())
    facts = verdict_facts(a, b)
    ctx = {**facts, "options": options}
    w = options.weights
    total = sum(w.values())
    score_note = (
        "Scores are 0–100. Rank = "
        + " + ".join(f"{_pct(w[n], total)} {LABELS[n]}" for n in SUBSCORES)
        + f", from the sub-scores above and Freshness ({a.name} "
        f"{a.subscores['freshness']}/100, {b.name} {b.subscores['freshness']}/100). Adoption and "
        "Ecosystem are log-scaled against the largest value in our catalogue; Quality measures "
        "our review and evidence records; Freshness decays over a year since the last release "
        "and docs update."
    )
    leads = {a.slug: [], b.slug: []} | {
        facts["first"].slug: [x.name for x in facts["first_leads"]],
        facts["second"].slug: [x.name for x in facts["second_leads"]],
    }
    return Comparison(
        title=f"{a.name} vs {b.name}",
        options=options,
        a=a,
        b=b,
        rows=rows_for(a, b),
        shared=shared,
        only_in_a=only_a,
        only_in_b=only_b,
        alignment=alignment,
        summary=copy._clean(copy.summary.render(ctx)),
        basis=copy._clean(copy.basis.render(ctx)),
        verdict=Verdict(
            leader=facts["leader"],
            leads=leads,
            ties=[x.name for x in facts["ties"]],
            text=copy._clean(copy.verdict.render(ctx)),
        ),
        score_note=score_note,
        search_text=copy._clean(copy.search.render(ctx)),
    )


def _pct(weight: float, total: float) -> str:
    value = 100.0 * weight / total
    return f"{value:.0f}%" if abs(value - round(value)) < 0.05 else f"{value:.1f}%"


def compare(
    session: Session,
    a: str,
    b: str,
    *,
    options: Options,
    copy: Copywriter | None = None,
    times_matched: Mapping[str, int] | None = None,
    embedder: Embedder | None = None,
) -> Comparison:
    """Load, score and compare two tools: the library entry point behind `decomposer compare`."""
    if a == b:
        raise InputError(f"cannot compare {a} with itself", hint="name two different tools")
    snap = load_snapshot(session, [a, b], times_matched)
    weights = Weights(**options.weights)
    sides = [
        build_side(
            snap.tools[s],
            score_tool(snap.tools[s].inputs(), snap.context, weights, options.as_of),
            options,
        )
        for s in (a, b)
    ]
    return build_comparison(sides[0], sides[1], options, copy or Copywriter(), embedder)
