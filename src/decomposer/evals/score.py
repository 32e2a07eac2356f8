"""Scoring: an extraction (capability records) against a golden set, as pure functions.

**Capabilities.** Per tool, golden capabilities with the same name on several pages are merged
into one (extraction consolidates them into one record too). Golden and extracted capabilities
are embedded as ``name. name. description`` (the golden "description" is its facts), and
paired by the optimal one-to-one assignment of ``matching.align`` (Hungarian method over cosine
similarities, pairs below the threshold dropped). A golden capability extracted twice is
therefore matched once; the duplicate counts against precision. The threshold is the
embedder's ``thresholds.align`` (lexical: **0.22**, see ``matching/embed.py`` and docs/evals.md)
unless one is given. Recall = matched / golden; precision = matched / extracted.

**Evidence.** A must-quote is *recovered* when a grounded quote of the matched extracted
capability lies in the same document and overlaps it by at least ``OVERLAP`` of the shorter of
the two spans; ``recovered_any`` accepts a quote of any extracted capability of the tool.
*Grounded* is the share of extracted quotes that the grounding check placed in a document.

**Fields.** Unique / vs alternatives count as empty when blank or the extraction prompt's
"Not stated in the docs." A number in a description that no quote of the same capability
contains is flagged: the model may have invented it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

from decomposer.evals.golden import GoldenQuote, GoldenSet, numbers_available, numbers_in
from decomposer.evals.inputs import CostInput, ExtractedCapability, ExtractedQuote
from decomposer.evals.report import (
    CapabilityScores,
    CostReport,
    CostShare,
    DocumentScores,
    EvalReport,
    EvidenceScores,
    FieldScores,
    MatchRow,
    MissedRow,
    NumberFlag,
    ToolScores,
    UnmatchedRow,
)
from decomposer.matching.align import assign, similarity
from decomposer.matching.embed import Dense, Embedder, LexicalEmbedder, Tokenizer, capability_text

OVERLAP = 0.5
"""Share of the shorter span two quotes must share to be the same evidence."""

NOT_STATED = "not stated in the docs"
"""What prompts/extract/v1/system.j2 tells the model to write in an empty field."""

_WORD = re.compile(r"[a-z0-9]+")


@dataclass
class _Target:
    """One golden capability of a tool, merged across the pages that label it."""

    tool: str
    name: str
    category: str
    facts: list[str] = field(default_factory=list)
    quotes: list[tuple[str, GoldenQuote]] = field(default_factory=list)
    documents: list[str] = field(default_factory=list)


@dataclass
class _Tally:
    """Must-quote counts: all of them, recovered per (tool, document), recovered by anyone."""

    must: int = 0
    any: int = 0
    recovered: dict[tuple[str, str], int] = field(default_factory=dict)

    def add(
        self,
        target: _Target,
        matched: ExtractedCapability | None,
        tool_caps: Sequence[ExtractedCapability],
    ) -> None:
        for document, quote in target.quotes:
            self.must += 1
            self.any += _recovered(quote, document, tool_caps)
            if matched is not None and _recovered(quote, document, [matched]):
                key = (target.tool, document)
                self.recovered[key] = self.recovered.get(key, 0) + 1


@dataclass(frozen=True)
class _Pairing:
    pairs: dict[int, tuple[int, float]]  # target index -> (extracted index, similarity)
    sim: Dense


@dataclass
class _Rows:
    """What scoring collects across tools before the totals are taken."""

    matches: list[MatchRow] = field(default_factory=list)
    missed: list[MissedRow] = field(default_factory=list)
    unmatched: list[UnmatchedRow] = field(default_factory=list)
    tools: list[ToolScores] = field(default_factory=list)
    found: set[tuple[str, str]] = field(default_factory=set)
    """(tool, casefolded golden name) of every matched golden capability."""
    tally: _Tally = field(default_factory=_Tally)


def score(
    golden: GoldenSet,
    extracted: Sequence[ExtractedCapability],
    *,
    embedder: Embedder | None = None,
    threshold: float | None = None,
    cost: CostInput | None = None,
) -> EvalReport:
    """Score ``extracted`` against ``golden``; the same inputs in any order give the same report.

    ``embedder`` defaults to the offline ``LexicalEmbedder``; ``threshold`` to its
    ``thresholds.align``. Extracted capabilities of tools the set does not list are ignored.
    """
    embed = embedder or LexicalEmbedder()
    limit = embed.thresholds.align if threshold is None else threshold
    rows = _Rows()
    for tool in golden.tools:
        mine = sorted(
            (cap for cap in extracted if cap.tool == tool.slug),
            key=lambda c: (c.name.casefold(), c.name, c.description, c.category),
        )
        _score_tool(rows, tool.slug, _targets(golden, tool.slug), mine, embed, limit)
    known = {tool.slug for tool in golden.tools}
    scored = [cap for cap in extracted if cap.tool in known]
    matches = rows.matches
    return EvalReport(
        golden_set=golden.name,
        embedder=embed.model,
        threshold=round(limit, 4),
        capabilities=_capability_scores(golden, rows.tools, matches, len(scored)),
        evidence=_evidence_scores(rows.tally, scored),
        fields=field_scores(scored),
        cost=cost_report(cost, _document_count(golden), len(matches)) if cost else None,
        tools=tuple(rows.tools),
        documents=_document_scores(golden, rows),
        matches=tuple(sorted(matches, key=lambda m: (m.tool, m.golden.casefold(), m.extracted))),
        missed=tuple(sorted(rows.missed, key=lambda m: (m.tool, m.golden.casefold()))),
        unmatched=tuple(sorted(rows.unmatched, key=lambda u: (u.tool, u.extracted.casefold()))),
    )


def _score_tool(
    rows: _Rows,
    slug: str,
    targets: Sequence[_Target],
    mine: Sequence[ExtractedCapability],
    embedder: Embedder,
    threshold: float,
) -> None:
    """Pair one tool's golden and extracted capabilities and add its rows."""
    tokenize = Tokenizer()
    pairing = _pair(embedder, targets, mine, threshold)
    for t_index, target in enumerate(targets):
        pair = pairing.pairs.get(t_index)
        rows.tally.add(target, mine[pair[0]] if pair else None, mine)
        if pair is not None:
            rows.matches.append(_match_row(target, mine[pair[0]], pair[1], tokenize))
            rows.found.add((target.tool, target.name.casefold()))
            continue
        nearest, near_sim = _nearest(pairing.sim, t_index, [c.name for c in mine], by_row=True)
        rows.missed.append(
            MissedRow(
                tool=target.tool,
                golden=target.name,
                category=target.category,
                documents=tuple(sorted(target.documents)),
                nearest=nearest,
                nearest_similarity=near_sim,
            )
        )
    paired = {e for e, _ in pairing.pairs.values()}
    for e_index, cap in enumerate(mine):
        if e_index in paired:
            continue
        nearest, near_sim = _nearest(pairing.sim, e_index, [t.name for t in targets], by_row=False)
        rows.unmatched.append(
            UnmatchedRow(
                tool=cap.tool,
                extracted=cap.name,
                category=cap.category,
                description=cap.description,
                evidence_documents=tuple(sorted({q.document for q in cap.evidence if q.document})),
                nearest=nearest,
                nearest_similarity=near_sim,
            )
        )
    matched = len(pairing.pairs)
    rows.tools.append(
        ToolScores(
            tool=slug,
            golden=len(targets),
            extracted=len(mine),
            matched=matched,
            recall=_share(matched, len(targets)),
            precision=_share(matched, len(mine)),
        )
    )


def _document_scores(golden: GoldenSet, rows: _Rows) -> tuple[DocumentScores, ...]:
    documents = []
    for tool in golden.tools:
        for document in tool.documents:
            labels = document.capabilities
            hits = [c for c in labels if (tool.slug, c.name.casefold()) in rows.found]
            documents.append(
                DocumentScores(
                    tool=tool.slug,
                    source=document.source,
                    golden=len(labels),
                    found=len(hits),
                    recall=_share(len(hits), len(labels)),
                    must_quotes=sum(len(c.quotes) for c in labels),
                    recovered=rows.tally.recovered.get((tool.slug, document.source), 0),
                )
            )
    return tuple(sorted(documents, key=lambda d: (d.tool, d.source)))


# --- pairing -----------------------------------------------------------------------------------


def _targets(golden: GoldenSet, slug: str) -> list[_Target]:
    """The tool's golden capabilities, one per name (case-insensitive), in file order."""
    merged: dict[str, _Target] = {}
    for tool, document, capability in golden.capabilities():
        if tool.slug != slug:
            continue
        target = merged.setdefault(
            capability.name.casefold(), _Target(slug, capability.name, capability.category)
        )
        target.facts.extend(f for f in capability.facts if f not in target.facts)
        target.quotes.extend((document.source, quote) for quote in capability.quotes)
        target.documents.append(document.source)
    return list(merged.values())


def _pair(
    embedder: Embedder,
    targets: Sequence[_Target],
    extracted: Sequence[ExtractedCapability],
    threshold: float,
) -> _Pairing:
    if not targets or not extracted:
        return _Pairing({}, np.zeros((len(targets), len(extracted)), dtype=np.float32))
    golden_texts = [capability_text(t.name, ". ".join(t.facts), "") for t in targets]
    extracted_texts = [capability_text(c.name, c.description, "") for c in extracted]
    vectors, _ = embedder.encode([*golden_texts, *extracted_texts])
    if sparse.issparse(vectors):
        vectors = sparse.csr_matrix(vectors)
    sim = similarity(vectors[: len(targets)], vectors[len(targets) :])
    result = assign(sim, threshold)
    return _Pairing({p.a: (p.b, p.similarity) for p in result.shared}, sim)


def _nearest(
    sim: Dense, index: int, names: Sequence[str], by_row: bool
) -> tuple[str | None, float]:
    """The most similar candidate on the other side (first on ties), for a person to judge."""
    if not names:
        return None, 0.0
    row = sim[index] if by_row else sim[:, index]
    best = int(np.argmax(row))
    value = round(float(row[best]), 4)
    return (names[best], value) if value > 0 else (None, 0.0)


def _match_row(
    target: _Target, cap: ExtractedCapability, sim: float, tokenize: Tokenizer
) -> MatchRow:
    said = _terms(f"{cap.name} {cap.description}", tokenize)
    covered = sum(_terms(fact, tokenize) <= said for fact in target.facts)
    recovered = sum(_recovered(quote, doc, [cap]) for doc, quote in target.quotes)
    return MatchRow(
        tool=target.tool,
        golden=target.name,
        extracted=cap.name,
        similarity=round(sim, 4),
        same_category=cap.category == target.category,
        facts=len(target.facts),
        facts_covered=covered,
        must_quotes=len(target.quotes),
        quotes_recovered=recovered,
        documents=tuple(sorted(target.documents)),
    )


def _terms(text: str, tokenize: Tokenizer) -> set[str]:
    """Word stems and numbers (kept whole, thousands separators dropped) of ``text``."""
    numbers = set(numbers_in(text))
    words = {tokenize.stem(w) for w in _WORD.findall(text.lower()) if not w.isdigit()}
    return numbers | {w for w in words if w}


# --- evidence ----------------------------------------------------------------------------------


def overlaps(a_start: int, a_end: int, b_start: int, b_end: int) -> bool:
    """Two spans are the same evidence when they share ``OVERLAP`` of the shorter one."""
    shared = min(a_end, b_end) - max(a_start, b_start)
    shorter = min(a_end - a_start, b_end - b_start)
    return shorter > 0 and shared >= OVERLAP * shorter


def _recovered(quote: GoldenQuote, document: str, caps: Sequence[ExtractedCapability]) -> bool:
    return any(_same_place(q, document, quote) for cap in caps for q in cap.evidence if q.grounded)


def _same_place(q: ExtractedQuote, document: str, quote: GoldenQuote) -> bool:
    assert q.start is not None and q.end is not None
    return q.document == document and overlaps(q.start, q.end, quote.start, quote.end)


def _evidence_scores(tally: _Tally, extracted: Sequence[ExtractedCapability]) -> EvidenceScores:
    must, recovered, recovered_any = tally.must, sum(tally.recovered.values()), tally.any
    quotes = [q for cap in extracted for q in cap.evidence]
    grounded = sum(q.grounded for q in quotes)
    return EvidenceScores(
        must_quotes=must,
        recovered=recovered,
        recovered_share=_share(recovered, must),
        recovered_any=recovered_any,
        recovered_any_share=_share(recovered_any, must),
        extracted_quotes=len(quotes),
        grounded=grounded,
        grounded_share=_share(grounded, len(quotes)),
    )


# --- fields, cost ------------------------------------------------------------------------------


def is_stated(value: str) -> bool:
    """False for a blank field or the prompt's "Not stated in the docs." placeholder."""
    flat = " ".join(value.split()).strip(" .").casefold()
    return bool(flat) and flat != NOT_STATED


def unsupported_numbers(cap: ExtractedCapability) -> list[str]:
    """Numbers in the description that none of the capability's quotes contains.

    Numbers in the tool's slug or the capability's name ("Llama 4") are not claims."""
    said = " ".join([*(q.text for q in cap.evidence), cap.tool.replace("-", " "), cap.name])
    quoted = numbers_available(said)
    return [n for n in numbers_in(cap.description) if n not in quoted]


def field_scores(extracted: Sequence[ExtractedCapability]) -> FieldScores:
    unique = sum(is_stated(cap.unique) for cap in extracted)
    versus = sum(is_stated(cap.vs_alternatives) for cap in extracted)
    flags = [
        NumberFlag(tool=cap.tool, capability=cap.name, number=number)
        for cap in extracted
        for number in unsupported_numbers(cap)
    ]
    return FieldScores(
        capabilities=len(extracted),
        with_unique=unique,
        unique_share=_share(unique, len(extracted)),
        with_vs_alternatives=versus,
        vs_alternatives_share=_share(versus, len(extracted)),
        descriptions_with_numbers=sum(bool(numbers_in(c.description)) for c in extracted),
        unsupported_numbers=tuple(
            sorted(flags, key=lambda f: (f.tool, f.capability.casefold(), f.number))
        ),
    )


def cost_report(cost: CostInput, documents: int, correct: int) -> CostReport:
    """Totals, and the same divided per document and per correctly extracted capability."""
    return CostReport(
        calls=cost.calls,
        input_tokens=cost.input_tokens,
        output_tokens=cost.output_tokens,
        cost_usd=None if cost.cost_usd is None else round(cost.cost_usd, 6),
        latency_s=round(cost.latency_s, 4),
        documents=documents,
        correct=correct,
        per_document=_per(cost, documents),
        per_correct_capability=_per(cost, correct),
    )


def _per(cost: CostInput, n: int) -> CostShare | None:
    if n <= 0:
        return None
    return CostShare(
        calls=round(cost.calls / n, 4),
        tokens=round((cost.input_tokens + cost.output_tokens) / n, 4),
        cost_usd=None if cost.cost_usd is None else round(cost.cost_usd / n, 6),
        latency_s=round(cost.latency_s / n, 4),
    )


def _document_count(golden: GoldenSet) -> int:
    """Every page under the tools' roots: labelled or not, the run extracts (and pays for) it."""
    return sum(len(tool.documents) + len(tool.unlisted) for tool in golden.tools)


# --- totals ------------------------------------------------------------------------------------


def _capability_scores(
    golden: GoldenSet, tools: Sequence[ToolScores], matches: Sequence[MatchRow], extracted: int
) -> CapabilityScores:
    n_golden = sum(t.golden for t in tools)
    matched = len(matches)
    recall = _share(matched, n_golden)
    precision = _share(matched, extracted)
    f1 = (
        round(2 * recall * precision / (recall + precision), 4)
        if recall is not None and precision is not None and recall + precision > 0
        else None
    )
    facts = sum(m.facts for m in matches)
    covered = sum(m.facts_covered for m in matches)
    return CapabilityScores(
        golden=n_golden,
        labels=golden.count(),
        extracted=extracted,
        matched=matched,
        recall=recall,
        precision=precision,
        f1=f1,
        same_category=_share(sum(m.same_category for m in matches), matched),
        facts=facts,
        facts_covered=covered,
        facts_share=_share(covered, facts),
    )


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None
