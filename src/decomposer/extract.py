"""Extraction runs: every chunk of a tool through the model, then one transaction of results.

Calls run concurrently (bounded); each is cached and logged as it finishes, so a failed or
interrupted run costs nothing to repeat. Capabilities, evidence and profile facts are written
only at the end, in one transaction: a run that fails leaves no half-written capability.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from decomposer.chunks import DEFAULT_CHUNK_TOKENS
from decomposer.consolidate import (
    Finding,
    Quote,
    Record,
    SourceChunk,
    consolidate,
    resolve_quotes,
)
from decomposer.errors import InputError, ProviderError
from decomposer.llm import CallResult, Clock, ModelCaller
from decomposer.schema import Extraction
from decomposer.store.models import (
    Capability,
    Chunk,
    Document,
    Evidence,
    ExtractionRun,
    ProfileFact,
)
from decomposer.tools import get_tool

REVIEWED = ("approved", "rejected")
Piece = tuple[Chunk, str]
"""A stored chunk and the source (path or URL) of its document."""


@dataclass
class Progress:
    """Running totals handed to the progress callback after each call."""

    total: int
    done: int = 0
    chunks: int = 0
    calls: int = 0
    cache_hits: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0

    def add(self, result: CallResult, chunks: int) -> None:
        self.done += 1
        self.chunks += chunks
        self.cache_hits += result.cache_hit
        self.calls += not result.cache_hit
        self.input_tokens += result.input_tokens
        self.output_tokens += result.output_tokens
        self.cost_usd += result.cost_usd or 0.0


@dataclass
class RunReport:
    run_id: int
    tool: str
    progress: Progress
    created: int
    updated: int
    ungrounded: int
    unseen: int
    capabilities: int


OnProgress = Callable[[Progress], None]


async def run_extraction(
    caller: ModelCaller,
    tool_slug: str,
    *,
    concurrency: int = 4,
    pack_tokens: int = DEFAULT_CHUNK_TOKENS,
    on_progress: OnProgress | None = None,
) -> RunReport:
    if concurrency < 1:
        raise InputError("--concurrency must be at least 1")
    store, clock = caller.store, caller.clock
    with store.transaction() as session:
        tool = get_tool(session, tool_slug)
        tool_name = tool.name
        chunks = _chunks_of(session, tool.id)
        if not chunks:
            raise InputError(
                f"tool {tool_slug!r} has no ingested documents",
                hint=f"run `decomposer ingest {tool_slug} PATH...` first",
            )
        run = _start_run(session, caller, tool.id, len(chunks), clock)
        run_id = run.id
    groups = pack_calls(chunks, pack_tokens)
    progress = Progress(total=len(groups))
    try:
        results = await _call_all(
            caller, tool_name, groups, run_id, concurrency, progress, on_progress
        )
    except BaseException as exc:
        _finish_failed(caller, run_id, progress, exc)
        raise
    with store.transaction() as session:
        report = _write_results(session, tool_slug, run_id, groups, results, progress, clock)
    return report


def _chunks_of(session: Session, tool_id: int) -> list[Piece]:
    rows = session.execute(
        select(Chunk, Document.source)
        .join(Document, Chunk.document_id == Document.id)
        .where(Document.tool_id == tool_id)
        .order_by(Document.source, Chunk.ordinal)
    ).all()
    return [(chunk, source) for chunk, source in rows]


def _start_run(
    session: Session, caller: ModelCaller, tool_id: int, total: int, clock: Clock
) -> ExtractionRun:
    cfg, prompt = caller.cfg, caller.prompt
    run = ExtractionRun(
        tool_id=tool_id,
        provider=cfg.provider,
        model=cfg.model,
        mode=cfg.mode,
        base_url=cfg.base_url,
        temperature=cfg.temperature,
        prompt_name=prompt.name,
        prompt_version=prompt.version,
        prompt_hash=prompt.sha256,
        status="running",
        chunks_total=total,
        chunks_done=0,
        capabilities=0,
        ungrounded=0,
        started_at=clock(),
    )
    session.add(run)
    session.flush()
    return run


def pack_calls(chunks: Sequence[Piece], budget: int) -> list[list[Piece]]:
    """Group neighbouring small chunks into one call while their tokens fit ``budget``.

    Every call pays the system prompt and schema again, so packing small pages (a pricing
    stub, a short overview) saves most of the per-call overhead. A chunk of at least half the
    budget always gets its own call, which keeps a changed page from reshuffling the groups
    (and so the cache keys) of large neighbours.
    """
    groups: list[list[Piece]] = []
    current: list[Piece] = []
    used = 0
    for piece in chunks:
        tokens = piece[0].tokens
        solo = tokens * 2 >= budget
        if current and (solo or used + tokens > budget):
            groups.append(current)
            current, used = [], 0
        current.append(piece)
        used += tokens
        if solo:
            groups.append(current)
            current, used = [], 0
    if current:
        groups.append(current)
    return groups


def context_for(tool_name: str, group: Sequence[Piece]) -> dict[str, Any]:
    """The template variables and the grounding validator's source text, in one mapping."""
    return {
        "tool": tool_name,
        "chunks": [
            {
                "id": chunk.id,
                "source": _short_source(source),
                "heading": chunk.heading,
                "text": chunk.text,
            }
            for chunk, source in group
        ],
    }


def _short_source(source: str) -> str:
    """URLs as they are; local files by name only, so no local paths reach the provider."""
    return source if "://" in source else source.rsplit("/", 1)[-1]


async def _call_all(
    caller: ModelCaller,
    tool_name: str,
    groups: Sequence[Sequence[Piece]],
    run_id: int,
    concurrency: int,
    progress: Progress,
    on_progress: OnProgress | None,
) -> list[CallResult]:
    gate = asyncio.Semaphore(concurrency)
    results: list[CallResult | None] = [None] * len(groups)

    async def one(index: int, group: Sequence[Piece]) -> None:
        async with gate:
            result = await caller.extract(
                context_for(tool_name, group), run_id=run_id, chunk_id=group[0][0].id
            )
        results[index] = result
        progress.add(result, len(group))
        if on_progress is not None:
            on_progress(progress)

    try:
        async with asyncio.TaskGroup() as group:
            for index, pieces in enumerate(groups):
                group.create_task(one(index, pieces))
    except BaseExceptionGroup as group_error:
        first = group_error.exceptions[0]
        raise first from None
    return [r for r in results if r is not None]


def _finish_failed(
    caller: ModelCaller, run_id: int, progress: Progress, exc: BaseException
) -> None:
    status = "failed" if isinstance(exc, Exception) else "interrupted"
    message = exc.message if isinstance(exc, ProviderError) else type(exc).__name__
    with caller.store.transaction() as session:
        run = session.get(ExtractionRun, run_id)
        if run is not None:
            run.status = status
            run.error = message
            run.chunks_done = progress.chunks
            run.finished_at = caller.clock()


def _findings(
    groups: Sequence[Sequence[Piece]], results: Sequence[CallResult]
) -> tuple[list[Finding], list[tuple[Extraction, list[SourceChunk]]]]:
    findings: list[Finding] = []
    answers: list[tuple[Extraction, list[SourceChunk]]] = []
    for group, result in zip(groups, results, strict=True):
        sources = [SourceChunk(c.id, c.document_id, c.start, c.text) for c, _source in group]
        answers.append((result.extraction, sources))
        for claim in result.extraction.capabilities:
            findings.append(Finding(claim, resolve_quotes(claim.evidence, sources)))
    return findings, answers


def _write_results(
    session: Session,
    tool_slug: str,
    run_id: int,
    groups: Sequence[Sequence[Piece]],
    results: Sequence[CallResult],
    progress: Progress,
    clock: Clock,
) -> RunReport:
    tool = get_tool(session, tool_slug)
    findings, answers = _findings(groups, results)
    existing = {
        c.id: c for c in session.scalars(select(Capability).where(Capability.tool_id == tool.id))
    }
    records = consolidate(tool_slug, findings, {cid: c.name for cid, c in existing.items()})
    created = updated = ungrounded = 0
    now = clock()
    for record in records:
        row = existing.get(record.id)
        if row is None:
            row = _new_capability(record, tool.id, run_id, now)
            session.add(row)
            created += 1
        elif _refresh(row, record, now):
            updated += 1
        row.last_run_id = run_id
        row.evidence = [_evidence(q, run_id) for q in record.quotes()]
        ungrounded += row.status == "ungrounded"
    _write_profile(session, tool.id, run_id, answers)
    run = session.get(ExtractionRun, run_id)
    assert run is not None
    run.status = "succeeded"
    run.chunks_done = progress.chunks
    run.capabilities = len(records)
    run.ungrounded = ungrounded
    run.finished_at = now
    seen = {r.id for r in records}
    return RunReport(
        run_id=run_id,
        tool=tool_slug,
        progress=progress,
        created=created,
        updated=updated,
        ungrounded=ungrounded,
        unseen=len(set(existing) - seen),
        capabilities=len(records),
    )


def _new_capability(record: Record, tool_id: int, run_id: int, now: datetime) -> Capability:
    best = record.best
    return Capability(
        id=record.id,
        tool_id=tool_id,
        key=record.key,
        name=best.name,
        category=best.category,
        description=best.description,
        unique=best.unique,
        vs_alternatives=best.vs_alternatives,
        status="proposed" if record.grounded else "ungrounded",
        version=1,
        first_run_id=run_id,
        last_run_id=run_id,
        created_at=now,
        updated_at=now,
    )


def _refresh(row: Capability, record: Record, now: datetime) -> bool:
    """Update unreviewed records from the new run; reviewed ones keep their human-checked text."""
    if row.status in REVIEWED:
        return False
    best = record.best
    fields = {
        "name": best.name,
        "category": best.category,
        "description": best.description,
        "unique": best.unique,
        "vs_alternatives": best.vs_alternatives,
        "status": "proposed" if record.grounded else "ungrounded",
    }
    changed = {k: v for k, v in fields.items() if getattr(row, k) != v}
    for key, value in changed.items():
        setattr(row, key, value)
    if changed:
        row.version += 1
        row.updated_at = now
    return bool(changed)


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
