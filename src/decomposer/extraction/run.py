"""Extraction runs: plan jobs, execute them (here or on workers), then write results at once.

``plan_run`` turns a tool's chunks into durable jobs (one per request); ``execute_jobs`` claims
and runs them with bounded concurrency, each answer cached and logged as it arrives;
``finalize_run`` writes capabilities, evidence and profile facts in one transaction when every
job is done. A failed, interrupted or killed run leaves no half-written capability, and
running ``extract`` again resumes it without re-sending finished requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from decomposer.calls.caller import CallResult, ModelCaller, request_hash
from decomposer.calls.prompts import Prompt
from decomposer.core.clock import Clock
from decomposer.core.errors import DecomposerError, InputError, NotFoundError, ProviderError
from decomposer.core.vocab import UNFINISHED_RUN_STATUSES as UNFINISHED
from decomposer.extraction import jobs
from decomposer.extraction.consolidate import (
    Finding,
    Quote,
    SourceChunk,
    consolidate,
    resolve_quotes,
)
from decomposer.extraction.schema import Extraction
from decomposer.ingest.chunks import DEFAULT_CHUNK_TOKENS
from decomposer.providers.base import ProviderConfig
from decomposer.review.diff import Extracted, SyncReport, match_names, sync
from decomposer.store import Store
from decomposer.store.models import (
    CachedResponse,
    Capability,
    Chunk,
    Document,
    Evidence,
    ExtractionRun,
    Job,
    ProfileFact,
    Tool,
)
from decomposer.store.tools import get_tool

Piece = tuple[Chunk, str]
"""A stored chunk and the source (path or URL) of its document."""


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
    progress: RunProgress
    capabilities: int
    changes: SyncReport
    """What the run did to the stored records: created, refreshed, proposed, vanished, …"""


OnProgress = Callable[[RunProgress], None]


async def run_extraction(
    caller: ModelCaller,
    tool_slug: str,
    *,
    concurrency: int = 4,
    pack_tokens: int = DEFAULT_CHUNK_TOKENS,
    on_progress: OnProgress | None = None,
) -> RunReport:
    """Plan (or resume) a run, execute its jobs here, and write the results in one go."""
    if concurrency < 1:
        raise InputError("--concurrency must be at least 1")
    run_id = plan_run(
        caller.store,
        caller.cfg,
        caller.prompt,
        tool_slug,
        pack_tokens=pack_tokens,
        now=caller.clock(),
    )
    progress = await execute_jobs(caller, run_id, concurrency=concurrency, on_progress=on_progress)
    return finalize_run(caller.store, run_id, caller.clock, progress)


def plan_run(
    store: Store,
    cfg: ProviderConfig,
    prompt: Prompt,
    tool_slug: str,
    *,
    pack_tokens: int,
    now: datetime,
) -> int:
    """Create a run with one job per request, or resume the unfinished run with the same plan.

    A run is resumed when its settings and every request hash match: its done jobs are kept
    (not re-sent, not re-billed) and its failed or abandoned jobs are queued again.
    """
    with store.transaction() as session:
        tool = get_tool(session, tool_slug)
        chunks = _chunks_of(session, tool.id)
        if not chunks:
            raise InputError(
                f"tool {tool_slug!r} has no ingested documents",
                hint=f"run `decomposer ingest {tool_slug} PATH...` first",
            )
        groups = pack_calls(chunks, pack_tokens)
        plan = [
            (
                [chunk.id for chunk, _ in group],
                request_hash(cfg, prompt, context_for(tool.name, group)),
                sum(chunk.tokens for chunk, _ in group),
            )
            for group in groups
        ]
        run = _resumable(session, tool.id, cfg, prompt, plan)
        if run is None:
            run = _start_run(session, cfg, prompt, tool.id, len(chunks), pack_tokens, now)
            jobs.create_jobs(session, run.id, plan, now)
            return run.id
        run.status, run.error, run.finished_at = "running", None, None
        run_id = run.id
    jobs.requeue(store, run_id, now)
    return run_id


def _resumable(
    session: Session,
    tool_id: int,
    cfg: ProviderConfig,
    prompt: Prompt,
    plan: Sequence[tuple[list[str], str, int]],
) -> ExtractionRun | None:
    run = session.scalars(
        select(ExtractionRun)
        .where(ExtractionRun.tool_id == tool_id)
        .order_by(ExtractionRun.id.desc())
        .limit(1)
    ).first()
    if run is None or run.status not in UNFINISHED:
        return None
    same = (
        run.provider,
        run.model,
        run.mode,
        run.base_url,
        run.temperature,
        run.max_tokens,
        run.prompt_hash,
    ) == (
        cfg.provider,
        cfg.model,
        cfg.mode,
        cfg.base_url,
        cfg.temperature,
        cfg.max_tokens,
        prompt.sha256,
    )
    hashes = session.scalars(
        select(Job.request_hash).where(Job.run_id == run.id).order_by(Job.position)
    ).all()
    return run if same and list(hashes) == [h for _, h, _ in plan] else None


def _chunks_of(session: Session, tool_id: int) -> list[Piece]:
    rows = session.execute(
        select(Chunk, Document.source)
        .join(Document, Chunk.document_id == Document.id)
        .where(Document.tool_id == tool_id)
        .order_by(Document.source, Chunk.ordinal)
    ).all()
    return [(chunk, source) for chunk, source in rows]


def _start_run(
    session: Session,
    cfg: ProviderConfig,
    prompt: Prompt,
    tool_id: int,
    total: int,
    pack_tokens: int,
    now: datetime,
) -> ExtractionRun:
    run = ExtractionRun(
        tool_id=tool_id,
        provider=cfg.provider,
        model=cfg.model,
        mode=cfg.mode,
        base_url=cfg.base_url,
        temperature=cfg.temperature,
        max_tokens=cfg.max_tokens,
        pack_tokens=pack_tokens,
        prompt_name=prompt.name,
        prompt_version=prompt.version,
        prompt_hash=prompt.sha256,
        status="running",
        chunks_total=total,
        chunks_done=0,
        capabilities=0,
        ungrounded=0,
        started_at=now,
    )
    session.add(run)
    session.flush()
    return run


@dataclass(frozen=True)
class RunInputs:
    """What executing a run's jobs needs from the store, loaded once."""

    tool_name: str
    groups: dict[int, list[Piece]]
    total: int
    done: int


def load_inputs(session: Session, run_id: int) -> RunInputs:
    run = session.get(ExtractionRun, run_id)
    if run is None:
        raise NotFoundError(f"unknown run {run_id}")
    tool = session.get(Tool, run.tool_id)
    assert tool is not None
    run_jobs = session.scalars(select(Job).where(Job.run_id == run_id)).all()
    pieces = {chunk.id: (chunk, source) for chunk, source in _chunks_of(session, tool.id)}
    missing = {cid for job in run_jobs for cid in job.chunk_ids} - set(pieces)
    if missing:
        raise InputError(
            f"run {run_id}: {len(missing)} of its chunks were replaced by a later ingest",
            hint=f"run `decomposer extract {tool.slug}` again to plan a new run",
        )
    return RunInputs(
        tool_name=tool.name,
        groups={job.id: [pieces[cid] for cid in job.chunk_ids] for job in run_jobs},
        total=len(run_jobs),
        done=sum(job.state == jobs.DONE for job in run_jobs),
    )


async def run_job(
    caller: ModelCaller,
    run_id: int,
    job_id: int,
    group: Sequence[Piece],
    tool_name: str,
    worker: str,
) -> CallResult:
    """Execute one claimed job and record its outcome; re-raises the provider's failure."""
    try:
        result = await caller.extract(
            context_for(tool_name, group), run_id=run_id, chunk_id=group[0][0].id
        )
    except ProviderError as exc:
        await asyncio.to_thread(
            jobs.finish, caller.store, job_id, worker, caller.clock(), exc.message
        )
        raise
    await asyncio.to_thread(jobs.finish, caller.store, job_id, worker, caller.clock())
    return result


async def execute_jobs(
    caller: ModelCaller,
    run_id: int,
    *,
    concurrency: int = 4,
    on_progress: OnProgress | None = None,
    worker: str | None = None,
) -> RunProgress:
    """Claim and run a run's queued jobs with ``concurrency`` workers in this process.

    After the first provider failure no new job is started; the ones in flight finish. On
    cancellation (Ctrl-C) the jobs in flight go back to the queue and the run is marked
    ``interrupted``; a later ``extract`` resumes it.
    """
    me = worker or jobs.worker_id()
    with caller.store.transaction() as session:
        inputs = load_inputs(session, run_id)
    progress = RunProgress(total=inputs.total, done=inputs.done)
    failures: list[ProviderError] = []
    held: set[int] = set()

    async def work() -> None:
        while not failures:
            job = await asyncio.to_thread(jobs.claim, caller.store, run_id, me, caller.clock())
            if job is None:
                return
            held.add(job.id)
            group = inputs.groups[job.id]
            try:
                result = await run_job(caller, run_id, job.id, group, inputs.tool_name, me)
            except ProviderError as exc:
                failures.append(exc)
                progress.failed += 1
                if on_progress is not None:
                    on_progress(progress)
                return
            finally:
                held.discard(job.id)
            progress.add(result, len(group))
            if on_progress is not None:
                on_progress(progress)

    if on_progress is not None:
        on_progress(progress)
    try:
        await asyncio.gather(*(work() for _ in range(concurrency)))
    except BaseException as exc:
        jobs.release(caller.store, sorted(held), me, caller.clock())
        _finish_failed(caller.store, run_id, exc, caller.clock())
        raise
    if failures:
        _finish_failed(caller.store, run_id, failures[0], caller.clock())
        raise failures[0]
    return progress


def finalize_run(
    store: Store, run_id: int, clock: Clock, progress: RunProgress | None = None
) -> RunReport:
    """Write a finished run's capabilities, evidence and profile in one transaction.

    Safe to call from several workers: the run row is locked, and a run that already
    succeeded, or still has unfinished jobs, is left alone.
    """
    with store.transaction() as session:
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
        payloads = {
            row.request_hash: row.payload
            for row in session.scalars(
                select(CachedResponse).where(
                    CachedResponse.request_hash.in_([j.request_hash for j in ordered])
                )
            )
        }
        results = [
            CallResult(Extraction.model_validate_json(payloads[j.request_hash]), True, True)
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


def _finish_failed(store: Store, run_id: int, exc: BaseException, now: datetime) -> None:
    status = "failed" if isinstance(exc, Exception) else "interrupted"
    message = exc.message if isinstance(exc, DecomposerError) else type(exc).__name__
    with store.transaction() as session:
        run = session.get(ExtractionRun, run_id)
        if run is not None and run.status != "succeeded":
            run.status = status
            run.error = message
            run.chunks_done = sum(
                len(j.chunk_ids)
                for j in session.scalars(
                    select(Job).where(Job.run_id == run_id, Job.state == jobs.DONE)
                )
            )
            run.finished_at = now


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
