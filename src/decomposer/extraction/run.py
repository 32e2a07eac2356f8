"""Extraction runs: plan jobs, then execute them here with bounded concurrency.

``plan_run`` turns a tool's chunks into durable jobs (one per request); ``execute_jobs`` claims
and runs them, each answer cached and logged by the model caller as it arrives; when every job
is done ``finalize.finalize_run`` writes the results at once. A failed, interrupted or killed
run leaves no half-written capability, and running ``extract`` again resumes it without
re-sending finished requests.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from decomposer.calls.calllog import request_hash
from decomposer.calls.prompts import Prompt
from decomposer.core.errors import DecomposerError, InputError, ProviderError, StoreError
from decomposer.core.vocab import UNFINISHED_RUN_STATUSES as UNFINISHED
from decomposer.extraction import jobs
from decomposer.extraction.concurrency import DEFAULT_CONCURRENCY, Controller, Gate, JobSlot
from decomposer.extraction.finalize import RunNotFinished, RunProgress, RunReport, finalize_run
from decomposer.extraction.inputs import Piece, RunInputs, chunks_of, context_for, load_inputs
from decomposer.extraction.task import ExtractionCaller, ExtractionResult, extraction_task
from decomposer.ingest.chunks import DEFAULT_CHUNK_TOKENS
from decomposer.providers import inflight
from decomposer.providers.base import ProviderConfig
from decomposer.review.diff import SyncReport
from decomposer.store import Store
from decomposer.store.models import ExtractionRun, Job, Tool
from decomposer.store.tools import get_tool

__all__ = [
    "OnProgress",
    "Piece",
    "RunInputs",
    "RunNotFinished",
    "RunProgress",
    "RunReport",
    "context_for",
    "execute_jobs",
    "finalize_run",
    "load_inputs",
    "pack_calls",
    "plan_run",
    "run_extraction",
    "run_job",
]
OnProgress = Callable[[RunProgress], None]


async def run_extraction(
    caller: ExtractionCaller,
    tool_slug: str,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    pack_tokens: int = DEFAULT_CHUNK_TOKENS,
    on_progress: OnProgress | None = None,
    controller: Controller | None = None,
) -> RunReport:
    """Plan (or resume) a run, execute its jobs here, and write the results in one go.

    ``controller`` sizes the jobs in flight (``extraction.concurrency``); without one,
    ``concurrency`` of them run at once.

    A database failure becomes one line naming its kind: the driver's message can carry the
    statement's parameters (document text), which must never reach the terminal.
    """
    if concurrency < 1:
        raise InputError("--concurrency must be at least 1")
    if controller is None:
        controller = Controller(time.monotonic, pinned=concurrency)
    try:
        return await _plan_execute_finish(caller, tool_slug, controller, pack_tokens, on_progress)
    except SQLAlchemyError as exc:
        kind = type(getattr(exc, "orig", None) or exc).__name__
        raise StoreError(
            f"the store failed during the run ({kind})",
            hint="run `decomposer extract` again to resume; finished calls are not re-billed",
        ) from None


async def _plan_execute_finish(
    caller: ExtractionCaller,
    tool_slug: str,
    controller: Controller,
    pack_tokens: int,
    on_progress: OnProgress | None,
) -> RunReport:
    run_id = plan_run(
        caller.store,
        caller.cfg,
        caller.prompt,
        tool_slug,
        pack_tokens=pack_tokens,
        now=caller.clock(),
    )
    progress = await execute_jobs(caller, run_id, controller=controller, on_progress=on_progress)
    return await finish_shared_run(caller, run_id, progress, controller)


SHARED_POLL_S = 0.5
"""How often a process whose queue is empty checks on jobs another process still runs."""


async def finish_shared_run(
    caller: ExtractionCaller,
    run_id: int,
    progress: RunProgress,
    controller: Controller | None = None,
) -> RunReport:
    """Write the run's results; when another process shares the run, wait for the jobs it
    still runs (taking over any it gives back or stops renewing), and if it wrote the
    results, report that. Jobs held by a Batch API batch are not waited for."""
    while True:
        try:
            return finalize_run(caller.store, run_id, caller.clock, progress)
        except RunNotFinished as pending:
            state = pending.state
        if not any(state[s] for s in (jobs.QUEUED, jobs.RUNNING, jobs.FAILED)):
            return _written_elsewhere(caller.store, run_id, progress)
        if not state[jobs.QUEUED]:
            if not await asyncio.to_thread(jobs.running_inline, caller.store, run_id):
                if _settled_meanwhile(caller.store, run_id):
                    continue  # the job another process ran finished since: finalize again
                raise RunNotFinished(run_id, state)
            await caller.sleep(SHARED_POLL_S)
        more = await execute_jobs(caller, run_id, controller=controller)
        progress = _merged(progress, more)


def _settled_meanwhile(store: Store, run_id: int) -> bool:
    """No process calls any of the run's jobs now: were they all done or queued again since the
    last read? Not when a job failed or a Batch API batch still holds one."""
    with store.transaction() as session:
        state = jobs.counts(session, run_id)
    return not state[jobs.FAILED] and not state[jobs.RUNNING]


def _merged(before: RunProgress, after: RunProgress) -> RunProgress:
    """This process's totals over several passes (``done`` is re-read from the store)."""
    after.chunks += before.chunks
    after.calls += before.calls
    after.cache_hits += before.cache_hits
    after.input_tokens += before.input_tokens
    after.output_tokens += before.output_tokens
    both = (after.cost_usd, before.cost_usd)
    after.cost_usd = None if None in both else (after.cost_usd or 0.0) + (before.cost_usd or 0.0)
    return after


def _written_elsewhere(store: Store, run_id: int, progress: RunProgress) -> RunReport:
    """Another process sharing the run finished it; this one reports the stored totals."""
    with store.transaction() as session:
        run = session.get(ExtractionRun, run_id)
        assert run is not None
        tool = session.get(Tool, run.tool_id)
        assert tool is not None
        return RunReport(run_id, tool.slug, progress, run.capabilities, SyncReport())


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
        # Planners of one tool queue here, so two processes share one run instead of
        # both finding none unfinished and each starting (and paying for) its own.
        jobs.lock_row(session, Tool, tool.id)
        chunks = chunks_of(session, tool.id)
        if not chunks:
            raise InputError(
                f"tool {tool_slug!r} has no ingested documents",
                hint=f"run `decomposer ingest {tool_slug} PATH...` first",
            )
        groups = pack_calls(chunks, pack_tokens)
        task = extraction_task(prompt)
        plan = [
            (
                [chunk.id for chunk, _ in group],
                request_hash(cfg, task, context_for(tool.name, group)),
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


async def run_job(
    caller: ExtractionCaller,
    run_id: int,
    job_id: int,
    group: Sequence[Piece],
    tool_name: str,
    worker: str,
    lease: timedelta = jobs.DEFAULT_LEASE,
) -> ExtractionResult:
    """Execute one claimed job and record its outcome; re-raises the provider's failure.

    While the call runs its lease is renewed, so only a holder that died loses the job.
    """
    try:
        async with _heartbeat(caller, job_id, worker, lease):
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


@asynccontextmanager
async def _heartbeat(
    caller: ExtractionCaller, job_id: int, worker: str, lease: timedelta
) -> AsyncIterator[None]:
    """Renew the job's lease every third of it while the body runs (real time: a lease is
    wall-clock time other processes compare against)."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(lease.total_seconds() / 3)
            await asyncio.to_thread(jobs.renew, caller.store, job_id, worker, caller.clock(), lease)

    beating = asyncio.create_task(beat())
    try:
        yield
    finally:
        beating.cancel()


async def execute_jobs(
    caller: ExtractionCaller,
    run_id: int,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    on_progress: OnProgress | None = None,
    worker: str | None = None,
    controller: Controller | None = None,
) -> RunProgress:
    """Claim and run a run's queued jobs in this process, as many at once as ``controller``
    allows (adaptive, see ``extraction.concurrency``), or ``concurrency`` without one.

    After the first provider failure no new job is started; the ones in flight finish. On
    cancellation (Ctrl-C, or SIGTERM, handled the same way) the jobs in flight go back to the
    queue and the run is marked ``interrupted``; a later ``extract`` resumes it.
    """
    me = worker or jobs.worker_id()
    if controller is None:
        controller = Controller(time.monotonic, pinned=concurrency)
    gate = Gate(controller)
    with caller.store.transaction() as session:
        inputs = load_inputs(session, run_id)
    progress = RunProgress(total=inputs.total, done=inputs.done)
    failures: list[ProviderError] = []
    held: set[int] = set()
    running: set[asyncio.Task[None]] = set()

    def report() -> None:
        if on_progress is not None:
            progress.in_flight, progress.allowed = gate.held, controller.limit
            progress.rate, progress.rate_limit = controller.rate(), controller.rate_limit
            on_progress(progress)

    async def one(job_id: int, slot: JobSlot) -> None:
        group = inputs.groups[job_id]
        # A job leaves ``held`` only once it is recorded done or failed: one interrupted
        # mid-call stays there, so the handler below gives it back to the queue.
        try:
            with inflight.bound(slot):
                result = await run_job(caller, run_id, job_id, group, inputs.tool_name, me)
        except ProviderError as exc:
            held.discard(job_id)
            failures.append(exc)
            progress.failed += 1
            report()
            return
        finally:
            slot.done()
        held.discard(job_id)
        progress.add(result, len(group))
        report()

    async def dispatch() -> None:
        try:
            while not failures:
                await gate.acquire()
                job = None
                try:
                    if not failures:
                        job = await asyncio.to_thread(
                            jobs.claim, caller.store, run_id, me, caller.clock()
                        )
                finally:
                    if job is None:
                        gate.release()
                if job is None:
                    break
                held.add(job.id)
                task = asyncio.create_task(one(job.id, JobSlot(gate)))
                running.add(task)
                task.add_done_callback(running.discard)
            while running:
                await asyncio.gather(*running)
        except BaseException:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            raise

    report()
    with _sigterm_cancels() as terminated:
        try:
            await dispatch()
        except BaseException as exc:
            jobs.release(caller.store, sorted(held), me, caller.clock())
            _finish_failed(caller.store, run_id, exc, caller.clock())
            if terminated:
                raise KeyboardInterrupt from None
            raise
    if failures:
        _finish_failed(caller.store, run_id, failures[0], caller.clock())
        raise failures[0]
    return progress


@contextmanager
def _sigterm_cancels() -> Iterator[list[bool]]:
    """While extracting, SIGTERM cancels the running task like Ctrl-C does (instead of killing
    the process with its jobs left running); the yielded list is non-empty once it fired.
    Outside the main thread (a worker's pool) signals are left to their owner."""
    task, loop, fired = asyncio.current_task(), asyncio.get_running_loop(), []

    def terminate() -> None:
        fired.append(True)
        if task is not None:
            task.cancel()

    try:
        loop.add_signal_handler(signal.SIGTERM, terminate)
    except (RuntimeError, ValueError, NotImplementedError):
        yield fired
        return
    try:
        yield fired
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


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
