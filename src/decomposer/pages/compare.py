"""The comparator (pure): a snapshot of two tools -> per-tool sides -> one ``Comparison``.

``build_side`` turns one tool's records (``catalog.snapshot.ToolRecord``) and score card into
the part of a page that does not depend on the other tool; ``build_comparison`` joins two sides
with their rows, the "Shared capabilities" alignment (``align_sides``: optimal one-to-one pairs
by the offline lexical embedder, see docs/match.md), summary and verdict (``pages.copy``).
``compare`` does both for two tools of a loaded snapshot; nothing here reads the store (loading
is ``catalog.snapshot.load_snapshot``; ``views.comparisons`` joins the two for the CLI and web).
Which capabilities appear, and in which order, is ``catalog.snapshot.comparable``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from decomposer.catalog.catalogue import Price, Sourced, is_stale
from decomposer.catalog.score import (
    LABELS,
    NOT_ENOUGH_DATA,
    SUBSCORES,
    ScoreCard,
    Weights,
    out_of,
    score_tool,
)
from decomposer.catalog.snapshot import (
    CapRecord,
    ContrastRecord,
    Snapshot,
    ToolRecord,
    comparable,
)
from decomposer.core.errors import InputError
from decomposer.core.vocab import Provenance
from decomposer.matching.align import align
from decomposer.matching.embed import Embedder, LexicalEmbedder, capability_text
from decomposer.pages.copy import Copywriter, verdict_facts
from decomposer.pages.model import (
    CAPABILITY_TEXT,
    DOCS,
    EDITOR,
    MISSING,
    AlignmentInfo,
    CapabilityView,
    CapRef,
    Comparison,
    EvidenceView,
    Options,
    Row,
    SharedView,
    SourcedView,
    SourceNote,
    TextProvenance,
    ToolSide,
    Verdict,
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
            vs_alternatives=_vs_text(c, options),
            provenance=provenance(c, options),
            evidence=[
                EvidenceView(
                    quote=e.quote,
                    document=e.document,
                    source=e.source,
                    grounded=e.grounded,
                    fetched_on=e.fetched_on,
                    stale=is_stale(e.fetched_on, options.as_of, options.stale_after_days),
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
        profile={k: SourcedView.of(v) for k, v in tool.profile.items()},
        type_text=str(tool_type) if tool_type else MISSING,
        pricing_text=PRICING_LABELS.get(str(pricing), str(pricing)) if pricing else MISSING,
        price_text=format_price(price if isinstance(price, Price) else None),
        free_tier=free_tier if isinstance(free_tier, bool) else None,
        rank=card.rank,
        rank_coverage=card.coverage,
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
        sources=source_notes(tool, options),
    )


def _contrast(cap: CapRecord, options: Options) -> ContrastRecord | None:
    """The model-written line a page may show: approved, or proposed on a draft preview."""
    line = cap.contrast
    if line is None:
        return None
    if line.status == "approved" or options.include_unreviewed:
        return line
    return None


def _vs_text(cap: CapRecord, options: Options) -> str:
    line = _contrast(cap, options)
    return line.text if line is not None else cap.vs_alternatives


def provenance(cap: CapRecord, options: Options) -> dict[str, TextProvenance]:
    """Where each text field of a capability on this page comes from."""
    out = {name: EDITOR if name in cap.edited else DOCS for name in CAPABILITY_TEXT}
    line = _contrast(cap, options)
    if line is not None:
        out["vs_alternatives"] = TextProvenance(
            source=Provenance.EDITOR if line.edited else Provenance.CONTRAST,
            model=line.model,
            prompt_version=line.prompt_version,
            date=line.written_on,
            citations=list(line.citations),
            checked=not line.edited,
            draft=line.status != "approved",
        )
    return out


PRICE_FIELDS = (
    ("pricing_model", "Pricing"),
    ("starting_price", "Starting Price"),
    ("free_tier", "free tier"),
)


def _public(source: str) -> str:
    """URLs are kept; local paths are cut to the file name, as for documents."""
    return source if source.startswith(("http://", "https://")) else source.rsplit("/", 1)[-1]


def source_notes(tool: ToolRecord, options: Options) -> list[SourceNote]:
    """Group the price values by where they come from and when that source was checked.

    Catalogue values carry the entry's declared ``source``/``checked_on``; values extracted from
    the docs are as fresh as the newest document fetch; nothing is dated by guesswork.
    """
    groups: dict[tuple[str, date | None], list[str]] = {}
    for key, label in PRICE_FIELDS:
        item = tool.profile.get(key)
        if item is None:
            continue
        if item.source == "catalogue":
            where = "catalogue entry" + (f" ({_public(item.origin)})" if item.origin else "")
            when = item.checked_on
        elif item.source == "docs":
            where, when = "the tool's docs", tool.docs_updated
        else:
            where, when = "tool registry", None
        groups.setdefault((where, when), []).append(label)
    return [
        SourceNote(
            fields=labels,
            source=where,
            checked_on=when,
            stale=is_stale(when, options.as_of, options.stale_after_days),
        )
        for (where, when), labels in groups.items()
    ]


def _capabilities_cell(side: ToolSide) -> str:
    text = f"{side.capabilities_count} decomposed"
    if side.draft_count:
        text += f" ({side.draft_count} unreviewed)"
    return text


def score_cell(value: int | None) -> str:
    """``73/100``; an unknown score is ``— (not enough data)``, never 0."""
    return f"{MISSING} ({NOT_ENOUGH_DATA})" if value is None else f"{value}/100"


def _rank_cell(side: ToolSide) -> str:
    text = score_cell(side.rank)
    if side.rank is not None and side.rank_coverage < 100:
        text += f" ({side.rank_coverage}% of the weight known)"
    return text


def _coverage_note(a: ToolSide, b: ToolSide) -> str:
    parts = [
        f"{s.name}'s Rank covers {s.rank_coverage}% of the weight ("
        + ", ".join(LABELS[n] for n in SUBSCORES if s.subscores[n] is None)
        + " unknown: not enough data)"
        for s in (a, b)
        if s.rank_coverage < 100 or s.rank is None
    ]
    if not parts:
        return ""
    return (
        " Rank is computed from the known sub-scores only, their weights rescaled to 100%: "
        + "; ".join(parts)
        + "."
    )


def _cells(side: ToolSide) -> tuple[str, ...]:
    """The side's column of the features table, in ``ROWS`` order."""
    values = {
        "Type": side.type_text,
        "Rank": _rank_cell(side),
        **{LABELS[n]: score_cell(side.subscores[n]) for n in SUBSCORES},
        "Pricing": side.pricing_text,
        "Starting Price": side.price_text,
        "Capabilities": _capabilities_cell(side),
        "Times Matched": f"{side.times_matched:,}",
    }
    return tuple(values[name] for name in ROWS)


def rows_for(a: ToolSide, b: ToolSide) -> list[Row]:
    return [
        Row(name=name, a=cell_a, b=cell_b)
        for name, cell_a, cell_b in zip(ROWS, _prepare(a).cells, _prepare(b).cells, strict=True)
    ]


def _ref(cap: CapabilityView) -> CapRef:
    return CapRef(id=cap.id, name=cap.name, draft=cap.draft)


def _text(cap: CapabilityView) -> str:
    return capability_text(cap.name, cap.description, cap.unique)


@dataclass(frozen=True)
class _Prepared:
    """What every page of a side reuses: its capability texts and references, its table cells.
    Kept with the side so its ``id`` cannot be reused while cached."""

    side: ToolSide
    texts: list[str]
    refs: list[CapRef]
    cells: tuple[str, ...]


SIDE_CACHE = 256  # small: the module outlives a run (web server), and a miss costs ~50 µs
# Built once per side object (a tool is on ~20 pages of a run), keyed by identity.
_prepared: dict[int, _Prepared] = {}


def _prepare(side: ToolSide) -> _Prepared:
    hit = _prepared.get(id(side))
    if hit is not None and hit.side is side:
        return hit
    if len(_prepared) >= SIDE_CACHE:
        _prepared.clear()
    caps = side.capabilities
    hit = _prepared[id(side)] = _Prepared(
        side, [_text(c) for c in caps], [_ref(c) for c in caps], _cells(side)
    )
    return hit


def align_sides(
    a: ToolSide, b: ToolSide, embedder: Embedder
) -> tuple[list[SharedView], list[CapRef], list[CapRef], AlignmentInfo]:
    """Pair the two sides' capabilities (``align.align``): shared, only in A, only in B.

    Only-in lists keep the page's top-K order; shared rows are by similarity, best first.
    """
    pa, pb = _prepare(a), _prepare(b)
    a_refs, b_refs = pa.refs, pb.refs
    result = align(embedder, pa.texts, pb.texts)
    shared = [
        SharedView(a=a_refs[p.a], b=b_refs[p.b], similarity=p.similarity) for p in result.shared
    ]
    return (
        shared,
        [a_refs[i] for i in result.only_a],
        [b_refs[j] for j in result.only_b],
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
        f"{out_of(a.subscores['freshness'])}, {b.name} {out_of(b.subscores['freshness'])}). "
        "Adoption and Ecosystem are log-scaled against the largest value in our catalogue; "
        "Quality measures our review and evidence records; Freshness decays over a year since "
        "the last release and docs update." + _coverage_note(a, b)
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
        summary=copy.clean(copy.summary.render(ctx)),
        basis=copy.clean(copy.basis.render(ctx)),
        verdict=Verdict(
            leader=facts["leader"],
            leads=leads,
            ties=[x.name for x in facts["ties"]],
            not_enough_data=list(facts["unknown"]),
            text=copy.clean(copy.verdict.render(ctx)),
        ),
        score_note=score_note,
        search_text=copy.clean(copy.search.render(ctx)),
    )


def _pct(weight: float, total: float) -> str:
    value = 100.0 * weight / total
    return f"{value:.0f}%" if abs(value - round(value)) < 0.05 else f"{value:.1f}%"


def compare(
    snapshot: Snapshot,
    a: str,
    b: str,
    *,
    options: Options,
    copy: Copywriter | None = None,
    embedder: Embedder | None = None,
) -> Comparison:
    """Score and compare two tools of ``snapshot`` (which must hold both)."""
    if a == b:
        raise InputError(f"cannot compare {a} with itself", hint="name two different tools")
    weights = Weights(**options.weights)
    sides = [
        build_side(
            snapshot.tools[s],
            score_tool(snapshot.tools[s].inputs(), snapshot.context, weights, options.as_of),
            options,
        )
        for s in (a, b)
    ]
    return build_comparison(sides[0], sides[1], options, copy or Copywriter(), embedder)
