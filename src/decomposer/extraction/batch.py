"""Provider Batch APIs: send a run's jobs as one batch at half price (collected later).

``submit`` plans (or resumes) the run like ``extract`` does, writes one JSONL line per queued job
whose answer is not cached yet — the request body built by Instructor exactly as the inline
path builds it (``Provider.request_body``), wrapped the way the provider's batch format wants
— and uploads it through the provider's Batch API client. Those jobs are then ``running``,
held by worker ``batch:<id>`` with a long lease. ``status`` and ``collect`` (in
``batch_results``, re-exported here) poll the provider and store the answers.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update

from decomposer.calls.calllog import BATCH_DISCOUNT, batch_cost, cached_hashes, call_row
from decomposer.calls.prompts import Prompt, load_prompt
from decomposer.calls.runtime import RunSetup
from decomposer.calls.task import Task
from decomposer.core.clock import Clock, Sleep, utcnow
from decomposer.core.config import Settings
from decomposer.core.errors import NotFoundError
from decomposer.extraction import jobs
from decomposer.extraction.batch_results import (
    LEASE,
    Backoff,
    BatchInfo,
    CollectReport,
    _base_url,
    _records,
    _update,
    batch_client,
    batch_spec,
    collect,
    custom_id,
    delete_files,
    holder,
    list_batches,
    record_error,
    settle,
    status,
)
from decomposer.extraction.finalize import RunReport
from decomposer.extraction.inputs import Piece, context_for, load_inputs
from decomposer.extraction.run import plan_run
from decomposer.extraction.schema import Extraction
from decomposer.extraction.task import extraction_task
from decomposer.providers.base import ProviderConfig, api_key, get_provider
from decomposer.providers.registry import REGISTRY
from decomposer.providers.spec import BatchAPIError, FileLimits
from decomposer.store import Store
from decomposer.store.batch_models import BatchRecord
from decomposer.store.models import Job

__all__ = [
    "BATCH_DISCOUNT",
    "LEASE",
    "LIMITS",
    "Backoff",
    "BatchAPIError",
    "BatchInfo",
    "BatchSubmission",
    "CollectReport",
    "FileLimits",
    "batch_cost",
    "cancel",
    "collect",
    "holder",
    "input_line",
    "list_batches",
    "record_error",
    "request_body",
    "status",
    "submit",
]

LIMITS = {name: p.batch.limits for name, p in REGISTRY.items() if p.batch is not None}
"""Per input file and provider; a run larger than this is split over several batches."""


@dataclass
class BatchSubmission:
    run_id: int
    batch_ids: list[str]
    requests: int
    cached: int
    held: int = 0
    """Jobs still held by earlier batches of this run (nothing new was sent for them)."""
    report: RunReport | None = None
    """Set when nothing had to be sent and the run could be written at once."""


def request_body(cfg: ProviderConfig, prompt: Prompt, context: dict[str, Any]) -> dict[str, Any]:
    """The chat-completion request the inline path sends for this context (first attempt)."""
    return get_provider(cfg.provider).request_body(cfg, Extraction, prompt.render(context))


def input_line(cfg: ProviderConfig, job_id: int, body: dict[str, Any]) -> str:
    line = batch_spec(cfg.provider).line(cfg, custom_id(job_id), body)
    return json.dumps(line, ensure_ascii=False) + "\n"


async def submit(
    store: Store,
    settings: Settings,
    setup: RunSetup,
    tool_slug: str,
    *,
    pack_tokens: int,
    http: httpx.AsyncClient,
    clock: Clock = utcnow,
    sleep: Sleep = asyncio.sleep,
) -> BatchSubmission:
    """Plan (or resume) the run and send its queued, uncached jobs as provider batches."""
    cfg = setup.cfg
    client = batch_client(settings, cfg.provider, setup.key, http, cfg.base_url, sleep)
    prompt = load_prompt(version=setup.prompt_version, root=settings.prompts_dir)
    task = extraction_task(prompt)
    run_id = plan_run(store, cfg, prompt, tool_slug, pack_tokens=pack_tokens, now=clock())
    hold = f"batch:submitting:{uuid.uuid4().hex[:12]}"
    with store.transaction() as session:
        inputs = load_inputs(session, run_id)
        queued = session.scalars(
            select(Job).where(Job.run_id == run_id, Job.state == jobs.QUEUED).order_by(Job.position)
        ).all()
        wanted = {job.id: job.request_hash for job in queued}
        cached = cached_hashes(session, set(wanted.values()))
        held = sum(
            1
            for job in session.scalars(
                select(Job).where(Job.run_id == run_id, Job.state == jobs.RUNNING)
            )
            if (job.worker or "").startswith("batch:")
        )
    claimed = _claim(store, list(wanted), hold, clock(), timedelta(hours=1))
    hits = [job_id for job_id in claimed if wanted[job_id] in cached]
    _finish_cache_hits(store, run_id, cfg, task, hits, wanted, inputs.groups, hold, clock)
    lines = [
        (
            job_id,
            input_line(
                cfg,
                job_id,
                request_body(cfg, prompt, context_for(inputs.tool_name, inputs.groups[job_id])),
            ),
        )
        for job_id in claimed
        if wanted[job_id] not in cached
    ]
    sent: list[str] = []
    remaining = [job_id for job_id, _ in lines]
    try:
        for index, part in enumerate(LIMITS[cfg.provider].split(lines), start=1):
            content = "".join(line for _, line in part).encode("utf-8")
            batch_id, file_id, state = await client.create(
                content,
                f"decomposer-run{run_id}-{index}.jsonl",
                cfg.model,
                {"decomposer_run": str(run_id), "decomposer_part": str(index)},
            )
            ids = [job_id for job_id, _ in part]
            _record(store, cfg, run_id, batch_id, file_id, state, ids, hold, clock())
            sent.append(batch_id)
            remaining = remaining[len(ids) :]
    finally:
        jobs.release(store, remaining, hold, clock())
    submission = BatchSubmission(run_id, sent, len(lines), len(hits), held)
    if not lines:
        submission.report = settle(store, run_id, clock)
    return submission


async def cancel(
    store: Store,
    settings: Settings,
    target: str,
    *,
    http: httpx.AsyncClient,
    sleep: Sleep = asyncio.sleep,
    clock: Clock = utcnow,
) -> list[BatchInfo]:
    """Ask the provider to stop ``target``'s running batches (a run id or a batch id) and
    delete their uploaded input files.

    Their jobs stay held until ``collect`` stores whatever finished before the cancellation
    and queues the rest again (then deletes the result files), as for any cancelled batch.
    """
    with store.transaction() as session:
        todo = [
            (r.batch_id, r.provider, r.input_file_id, _base_url(session, r.run_id))
            for r in _records(session, target, only_open=True)
            if r.status not in batch_spec(r.provider).terminal
        ]
    if not todo:
        raise NotFoundError(f"no running batch for {target!r}", hint="see `decomposer batch list`")
    for batch_id, provider, input_file_id, base_url in todo:
        key = api_key(settings, provider)
        client = batch_client(settings, provider, key, http, base_url, sleep)
        _update(store, batch_id, await client.cancel(batch_id), clock())
        await delete_files(client, [input_file_id])
    with store.transaction() as session:
        return list_batches(session, target)


def _claim(
    store: Store, job_ids: Sequence[int], worker: str, now: datetime, lease: timedelta
) -> list[int]:
    """Take the given jobs if they are still queued; returns the ids taken, in order."""
    taken: list[int] = []
    for part in _chunks(job_ids):
        with store.transaction() as session:
            session.execute(
                update(Job)
                .where(Job.id.in_(part), Job.state == jobs.QUEUED)
                .values(
                    state=jobs.RUNNING,
                    worker=worker,
                    lease_until=now + lease,
                    attempts=Job.attempts + 1,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
            mine = set(
                session.scalars(select(Job.id).where(Job.id.in_(part), Job.worker == worker))
            )
        taken.extend(job_id for job_id in part if job_id in mine)
    return taken


def _chunks(ids: Sequence[int], size: int = 500) -> Iterator[list[int]]:
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


def _finish_cache_hits(
    store: Store,
    run_id: int,
    cfg: ProviderConfig,
    task: Task[Extraction],
    hits: Sequence[int],
    hashes: dict[int, str],
    groups: dict[int, list[Piece]],
    hold: str,
    clock: Clock,
) -> None:
    """Jobs answered from the cache are done without sending them; logged as cache hits."""
    for job_id in hits:
        with store.transaction() as session:
            session.add(
                call_row(
                    run_id=run_id,
                    chunk_id=groups[job_id][0][0].id,
                    task=task.name,
                    provider=cfg.provider,
                    model=cfg.model,
                    mode=cfg.mode,
                    prompt_version=task.prompt_version,
                    request_hash=hashes[job_id],
                    outcome="cache_hit",
                    now=clock(),
                    attempts=0,
                    cache_hit=True,
                )
            )
        jobs.finish(store, job_id, hold, clock())


def _record(
    store: Store,
    cfg: ProviderConfig,
    run_id: int,
    batch_id: str,
    file_id: str,
    state: str,
    job_ids: Sequence[int],
    hold: str,
    now: datetime,
) -> None:
    with store.transaction() as session:
        session.add(
            BatchRecord(
                batch_id=batch_id,
                run_id=run_id,
                provider=cfg.provider,
                model=cfg.model,
                input_file_id=file_id,
                status=state,
                requests=len(job_ids),
                succeeded=0,
                requeued=0,
                created_at=now,
                updated_at=now,
            )
        )
        for part in _chunks(job_ids):
            session.execute(
                update(Job)
                .where(Job.id.in_(part), Job.worker == hold, Job.state == jobs.RUNNING)
                .values(
                    worker=holder(batch_id),
                    batch_id=batch_id,
                    lease_until=now + LEASE,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
