"""Finishing a run: once every job is done, write its capabilities, evidence and profile facts
from the cached answers in one transaction, and report what changed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from decomposer.calls.caller import CallResult
from decomposer.calls.calllog import cached_payloads
from decomposer.core.clock import Clock
from decomposer.core.errors import DecomposerError, NotFoundError
from decomposer.extraction import jobs
from decomposer.extraction.consolidate import (
    Finding,
    Quote,
    SourceChunk,
    consolidate,
    resolve_quotes,
)
from decomposer.extraction.inputs import Piece, load_inputs
from decomposer.extraction.schema import Extraction
from decomposer.review.diff import Extracted, SyncReport, match_names, sync
from decomposer.store import Store
from decomposer.store.models import Capability, Evidence, ExtractionRun, Job, ProfileFact, Tool
from decomposer.store.tools import get_tool

Answer = CallResult[Extraction]


@dataclass
class RunProgress:
    """Running totals handed to the progress callback after each call."""

    total: int
    done: int = 0
    chunks: int = 0
    calls: int = 0
    cache_hits: int = 0
    failed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = 0.0
    """``None`` once any call had no known price: a partial sum would read as the cost."""
    in_flight: int = 0
    """Jobs running now, of ``allowed`` (the concurrency controller's current limit)."""
    allowed: int = 0
    rate: float = 0.0
    """Requests answered per second lately, against ``rate_limit`` (``None``: no limit)."""
    rate_limit: float | None = None

    def add(self, result: CallResult[Any], chunks: int) -> None:
        self.done += 1
        self.chunks += chunks
        self.cache_hits += result.cache_hit
        self.calls += not result.cache_hit
        self.input_tokens += result.input_tokens
        self.output_tokens += result.output_tokens
        if result.cost_usd is None or self.cost_usd is None:
            self.cost_usd = None
        else:
            self.cost_usd += result.cost_usd


@dataclass
class RunReport:
    run_id: int
    tool: str
    progress: RunProgress
    capabilities: int
    changes: SyncReport
    """What the run did to the stored records: created, refreshed, proposed, vanished, …"""


def finalize_run(
    store: Store, run_id: int, clock: Clock, progress: RunProgress | None = None
) -> RunReport:
    """Write a finished run's capabilities, evidence and profile in one transaction.

    Safe to call from several workers: the run row is locked, and a run that already
    succeeded, or still has unfinished jobs, is left alone.
    """
    with store.transaction() as session:
        jobs.lock_row(session, ExtractionRun, run_id)
        run = session.get(ExtractionRun, run_id, with_for_update=True)
        if run is None:
            raise NotFoundError(f"unknown run {run_id}")
        tool = session.get(Tool, run.tool_id)
        assert tool is not None
        state = jobs.counts(session, run_id)
        if run.status == "succeeded" or state[jobs.DONE] != sum(state.values()):
            raise RunNotFinished(run_id, state)
        inputs = load_inputs(session, run_id)
        ordered = session.scalars(
            select(Job).where(Job.run_id == run_id).order_by(Job.position)
        ).all()
        payloads = cached_payloads(session, [j.request_hash for j in ordered])
        results = [
            Answer(Extraction.model_validate_json(payloads[j.request_hash]), True, True)
            for j in ordered
        ]
        groups = [inputs.groups[j.id] for j in ordered]
        progress = progress or RunProgress(total=len(ordered), done=len(ordered))
        progress.chunks = sum(len(g) for g in groups)
        return _write_results(session, tool.slug, run_id, groups, results, progress, clock)


class RunNotFinished(DecomposerError):
    def __init__(self, run_id: int, state: dict[str, int]) -> None:
        left = ", ".join(f"{n} {s}" for s, n in state.items() if n and s != jobs.DONE)
        super().__init__(f"run {run_id} is not finished ({left or 'already written'})")
        self.state = state


def _findings(
    groups: Sequence[Sequence[Piece]], results: Sequence[Answer]
) -> tuple[list[Finding], list[tuple[Extraction, list[SourceChunk]]]]:
    findings: list[Finding] = []
    answers: list[tuple[Extraction, list[SourceChunk]]] = []
    for group, result in zip(groups, results, strict=True):
        sources = [SourceChunk(c.id, c.document_id, c.start, c.text) for c, _source in group]
        answers.append((result.value, sources))
        for claim in result.value.capabilities:
            findings.append(Finding(claim, resolve_quotes(claim.evidence, sources)))
    return findings, answers


def _write_results(
    session: Session,
    tool_slug: str,
    run_id: int,
    groups: Sequence[Sequence[Piece]],
    results: Sequence[Answer],
    progress: RunProgress,
    clock: Clock,
) -> RunReport:
    tool = get_tool(session, tool_slug)
    findings, answers = _findings(groups, results)
    existing = {
        c.id: c for c in session.scalars(select(Capability).where(Capability.tool_id == tool.id))
    }
    records = consolidate(tool_slug, findings, match_names(session, list(existing.values())))
    now = clock()
    extracted = [
        Extracted(
            id=r.id,
            key=r.key,
            fields={
                "name": r.best.name,
                "category": r.best.category,
                "description": r.best.description,
                "unique": r.best.unique,
                "vs_alternatives": r.best.vs_alternatives,
            },
            grounded=r.grounded,
        )
        for r in records
    ]
    rows, synced = sync(session, tool.id, run_id, extracted, existing, now)
    for record in records:
        rows[record.id].evidence = [_evidence(q, run_id) for q in record.quotes()]
    ungrounded = synced.ungrounded
    _write_profile(session, tool.id, run_id, answers)
    run = session.get(ExtractionRun, run_id)
    assert run is not None
    run.status = "succeeded"
    run.chunks_done = progress.chunks
    run.capabilities = len(records)
    run.ungrounded = ungrounded
    run.finished_at = now
    return RunReport(
        run_id=run_id,
        tool=tool_slug,
        progress=progress,
        capabilities=len(records),
        changes=synced,
    )


def _evidence(quote: Quote, run_id: int) -> Evidence:
    return Evidence(
        document_id=quote.document_id,
        chunk_id=quote.chunk_id,
        quote=quote.text,
        start=quote.start,
        end=quote.end,
        score=quote.score,
        grounded=quote.grounded,
        run_id=run_id,
    )


def _write_profile(
    session: Session,
    tool_id: int,
    run_id: int,
    answers: Sequence[tuple[Extraction, list[SourceChunk]]],
) -> None:
    """Per field, the first value backed by a grounded quote (else the first value, flagged)."""
    chosen: dict[str, tuple[object, list[Quote], bool]] = {}
    for extraction, sources in answers:
        p = extraction.profile
        candidates: list[tuple[str, object, str | None]] = [
            ("type", p.type.value if p.type else None, p.type.evidence if p.type else None),
            ("pricing_model", p.pricing_model, _pricing_quote(extraction)),
            (
                "starting_price",
                p.starting_price.model_dump(exclude={"evidence"}) if p.starting_price else None,
                p.starting_price.evidence if p.starting_price else None,
            ),
            (
                "free_tier",
                p.free_tier.available if p.free_tier else None,
                p.free_tier.evidence if p.free_tier else None,
            ),
        ]
        for name, value, quote_text in candidates:
            if value is None:
                continue
            quotes = resolve_quotes([quote_text], sources) if quote_text else []
            grounded = all(q.grounded for q in quotes)
            if name not in chosen or (grounded and not chosen[name][2]):
                chosen[name] = (value, quotes, grounded)
    for name, (value, quotes, grounded) in chosen.items():
        row = session.scalar(
            select(ProfileFact).where(ProfileFact.tool_id == tool_id, ProfileFact.field == name)
        )
        if row is None:
            row = ProfileFact(tool_id=tool_id, field=name)
            session.add(row)
        quote = quotes[0] if quotes else None
        row.value = value
        row.quote = quote.text if quote else None
        row.document_id = quote.document_id if quote else None
        row.start = quote.start if quote else None
        row.end = quote.end if quote else None
        row.grounded = grounded
        row.run_id = run_id


def _pricing_quote(extraction: Extraction) -> str | None:
    """The pricing model has no quote of its own; the price or free-tier quote backs it."""
    p = extraction.profile
    if p.starting_price is not None:
        return p.starting_price.evidence
    return p.free_tier.evidence if p.free_tier is not None else None
