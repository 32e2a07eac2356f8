"""Provider batches after submission: polling their status and collecting their results.

``status`` polls the provider (with a bounded exponential backoff when asked to wait);
``collect`` downloads the output and error files and checks every answer with the extraction
task, as inline extraction does (``calls.results.judge``). Good answers go into the answer cache
under the job's request hash and the job is done; errored, expired, cancelled, truncated or
invalid items go back to ``queued`` with ``last_error`` saying why, so ``decomposer extract
TOOL`` (same provider and model) finishes them inline. Every returned item is logged in the call
log at the batch price (``BATCH_DISCOUNT`` × the price table). When every job of the run is
done, the run's results are written at once (``finalize.finalize_run``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from decomposer.calls.calllog import batch_cost, call_row, remember
from decomposer.calls.prompts import load_prompt
from decomposer.calls.results import Verdict, judge
from decomposer.calls.task import Task
from decomposer.core.clock import Clock, Sleep, utcnow
from decomposer.core.config import Settings
from decomposer.core.errors import ConfigError, NotFoundError
from decomposer.extraction import jobs
from decomposer.extraction.batch_calls import guard, log
from decomposer.extraction.finalize import RunNotFinished, RunReport, finalize_run
from decomposer.extraction.inputs import context_for, load_inputs
from decomposer.extraction.schema import Extraction
from decomposer.extraction.task import extraction_task
from decomposer.providers.base import api_key, get_provider
from decomposer.providers.pricing import PriceTable, load_prices
from decomposer.providers.spec import BatchAPIError, BatchClient, BatchSpec, Remote
from decomposer.store import Store
from decomposer.store.batch_models import BatchRecord
from decomposer.store.models import ExtractionRun, Job

LEASE = timedelta(hours=48)
"""How long a batch holds its jobs: the 24 h completion window plus time to collect. After it,
a normal ``extract`` takes them back (and re-sends them)."""


def batch_spec(provider: str) -> BatchSpec:
    spec = get_provider(provider).batch
    if spec is None:
        raise ConfigError(
            f"the {provider} provider has no Batch API",
            hint="use --provider mistral or --provider openai, or run without --batch",
        )
    return spec


def batch_client(
    settings: Settings,
    provider: str,
    key: str,
    http: httpx.AsyncClient,
    base_url: str | None,
    sleep: Sleep = asyncio.sleep,
) -> BatchClient:
    """The provider's Batch API client, rate-limited, retried and logged (``batch_calls``)."""
    inner = batch_spec(provider).client(key, http, base_url)
    return guard(settings, provider, key, base_url, inner, sleep=sleep)


def custom_id(job_id: int) -> str:
    return f"job-{job_id}"


def job_of(custom: object) -> int | None:
    number = str(custom or "").removeprefix("job-")
    return int(number) if number.isdigit() else None


def holder(batch_id: str) -> str:
    """The ``jobs.worker`` value of jobs a batch holds."""
    return f"batch:{batch_id}"


def settle(store: Store, run_id: int, clock: Clock) -> RunReport | None:
    """Write the run's results if this was its last open job, else leave it."""
    try:
        return finalize_run(store, run_id, clock)
    except RunNotFinished:
        return None


@dataclass(frozen=True)
class Backoff:
    """Polling delays: ``initial_s`` growing by ``factor`` up to ``max_s``; give up after
    ``deadline_s`` of waiting in total (the batch keeps running; poll again later)."""

    initial_s: float = 10.0
    factor: float = 2.0
    max_s: float = 600.0
    deadline_s: float = 26 * 3600.0

    def delays(self) -> Iterator[float]:
        delay, waited = self.initial_s, 0.0
        while waited < self.deadline_s:
            step = min(delay, self.max_s, self.deadline_s - waited)
            yield step
            waited += step
            delay *= self.factor


@dataclass
class BatchInfo:
    batch_id: str
    run_id: int
    provider: str
    model: str
    status: str
    terminal: bool
    collected: bool
    requests: int
    succeeded: int
    requeued: int
    error: str | None
    created_at: str
    collected_at: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CollectReport:
    batch_id: str
    run_id: int
    status: str
    pending: bool = False
    succeeded: int = 0
    requeued: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    report: RunReport | None = None


def list_batches(session: Session, target: str | None = None) -> list[BatchInfo]:
    """Stored batches, newest first: all, one run's (``target`` all digits) or one batch."""
    return [_info(record) for record in _records(session, target, only_open=False)]


async def status(
    store: Store,
    settings: Settings,
    target: str | None = None,
    *,
    http: httpx.AsyncClient,
    wait: bool = False,
    sleep: Sleep = asyncio.sleep,
    backoff: Backoff | None = None,
    clock: Clock = utcnow,
) -> list[BatchInfo]:
    """Ask the provider how the batches are doing and store the answer.

    ``target`` is a run id, a batch id, or ``None`` for every batch not collected yet. With
    ``wait``, poll until all of them reached a final state or the backoff's deadline passed.
    Transient API errors while waiting are retried on the next poll.
    """
    delays = (backoff or Backoff()).delays()
    while True:
        with store.transaction() as session:
            records = _records(session, target, only_open=target is None)
            if target is not None and not records:
                raise NotFoundError(f"no batch for {target!r}", hint="see `decomposer batch list`")
            polling = [
                (r.batch_id, r.provider, _base_url(session, r.run_id))
                for r in records
                if r.collected_at is None and r.status not in batch_spec(r.provider).terminal
            ]
        for batch_id, provider, base_url in polling:
            client = batch_client(
                settings, provider, api_key(settings, provider), http, base_url, sleep
            )
            try:
                remote = await client.retrieve(batch_id)
            except BatchAPIError as exc:
                if not (wait and exc.transient):
                    raise
                continue
            _update(store, batch_id, remote, clock())
        with store.transaction() as session:
            infos = [_info(r) for r in _records(session, target, only_open=target is None)]
        if not wait or all(i.terminal or i.collected for i in infos):
            return infos
        delay = next(delays, None)
        if delay is None:
            return infos
        await sleep(delay)


def _records(session: Session, target: str | None, *, only_open: bool) -> list[BatchRecord]:
    query = select(BatchRecord).order_by(BatchRecord.id.desc())
    if target is not None and target.isdigit():
        query = query.where(BatchRecord.run_id == int(target))
    elif target is not None:
        query = query.where(BatchRecord.batch_id == target)
    if only_open:
        query = query.where(BatchRecord.collected_at.is_(None))
    return list(session.scalars(query))


def _base_url(session: Session, run_id: int) -> str | None:
    run = session.get(ExtractionRun, run_id)
    return run.base_url if run is not None else None


def _update(store: Store, batch_id: str, remote: Remote, now: datetime) -> None:
    with store.transaction() as session:
        record = session.scalars(select(BatchRecord).where(BatchRecord.batch_id == batch_id)).one()
        record.status = remote.status
        record.output_file_id = remote.output_file_id or record.output_file_id
        record.error_file_id = remote.error_file_id or record.error_file_id
        record.error = remote.errors or record.error
        record.updated_at = now


def _info(record: BatchRecord) -> BatchInfo:
    return BatchInfo(
        batch_id=record.batch_id,
        run_id=record.run_id,
        provider=record.provider,
        model=record.model,
        status=record.status,
        terminal=record.status in batch_spec(record.provider).terminal,
        collected=record.collected_at is not None,
        requests=record.requests,
        succeeded=record.succeeded,
        requeued=record.requeued,
        error=record.error,
        created_at=record.created_at.isoformat(),
        collected_at=record.collected_at.isoformat() if record.collected_at else None,
    )


async def collect(
    store: Store,
    settings: Settings,
    target: str | None = None,
    *,
    http: httpx.AsyncClient,
    wait: bool = False,
    sleep: Sleep = asyncio.sleep,
    backoff: Backoff | None = None,
    clock: Clock = utcnow,
) -> list[CollectReport]:
    """Store the results of every finished, uncollected batch of ``target`` (see ``status``).

    Batches still running are reported as ``pending`` and left alone.
    """
    infos = await status(
        store, settings, target, http=http, wait=wait, sleep=sleep, backoff=backoff, clock=clock
    )
    prices = load_prices(settings.prices_file)
    reports: list[CollectReport] = []
    for info in infos:
        if info.collected:
            continue
        if not info.terminal:
            reports.append(CollectReport(info.batch_id, info.run_id, info.status, pending=True))
            continue
        reports.append(await _collect_one(store, settings, info, http, prices, clock, sleep))
    return reports


async def _collect_one(
    store: Store,
    settings: Settings,
    info: BatchInfo,
    http: httpx.AsyncClient,
    prices: PriceTable,
    clock: Clock,
    sleep: Sleep,
) -> CollectReport:
    with store.transaction() as session:
        record = session.scalars(
            select(BatchRecord).where(BatchRecord.batch_id == info.batch_id)
        ).one()
        files = [f for f in (record.output_file_id, record.error_file_id) if f]
        uploaded = record.input_file_id
        run = session.get(ExtractionRun, record.run_id)
        if run is None:
            raise NotFoundError(f"unknown run {record.run_id}")
        base_url, prompt_name, prompt_version = run.base_url, run.prompt_name, run.prompt_version
    key = api_key(settings, info.provider)
    client = batch_client(settings, info.provider, key, http, base_url, sleep)
    results: dict[int, dict[str, Any]] = {}
    for file_id in files:
        for line in (await client.download(file_id)).splitlines():
            item = _parse_line(line)
            job_id = job_of(item.get("custom_id")) if item else None
            if item is not None and job_id is not None:
                results.setdefault(job_id, item)
    report = CollectReport(info.batch_id, info.run_id, info.status)
    task = extraction_task(load_prompt(prompt_name, prompt_version, root=settings.prompts_dir))
    _store_results(store, task, info, record_error(info), results, prices, report, clock())
    await delete_files(client, [uploaded, *files])
    report.report = settle(store, info.run_id, clock)
    return report


async def delete_files(client: BatchClient, file_ids: list[str | None]) -> None:
    """Delete a batch's files once nothing more will be read from them (their contents are
    prompts and answers: no reason to keep them at the provider). A failure to delete is
    logged, not raised: the results are stored already, and the provider expires files."""
    for file_id in filter(None, file_ids):
        try:
            await client.delete_file(file_id)
        except BatchAPIError as exc:
            log.warning("could not delete batch file %s: %s", file_id, exc.message)


def record_error(info: BatchInfo) -> str:
    """Why a job got no answer from this batch, given how the batch ended."""
    ending = batch_spec(info.provider).endings.get(info.status)
    if ending == "expired":
        return f"batch {info.batch_id} expired before this request ran"
    if ending == "cancelled":
        return f"batch {info.batch_id} was cancelled before this request ran"
    if ending == "failed":
        return f"batch {info.batch_id} failed: {info.error or 'no reason given'}"
    return f"batch {info.batch_id} returned no result for this request"


def _parse_line(line: str) -> dict[str, Any] | None:
    if not line.strip():
        return None
    try:
        item = json.loads(line)
    except ValueError:
        return None
    return item if isinstance(item, dict) else None


def _store_results(
    store: Store,
    task: Task[Extraction],
    info: BatchInfo,
    missing: str,
    results: dict[int, dict[str, Any]],
    prices: PriceTable,
    report: CollectReport,
    now: datetime,
) -> None:
    """One transaction: cache good answers, log every returned item, settle the held jobs."""
    with store.transaction() as session:
        run = session.get(ExtractionRun, info.run_id)
        if run is None:
            raise NotFoundError(f"unknown run {info.run_id}")
        inputs = load_inputs(session, info.run_id)
        run_jobs = {
            job.id: job for job in session.scalars(select(Job).where(Job.run_id == info.run_id))
        }
        for job_id, job in run_jobs.items():
            mine = job.state == jobs.RUNNING and job.worker == holder(info.batch_id)
            item = results.get(job_id)
            if item is None and not mine:
                continue
            group = inputs.groups[job_id]
            verdict = judge(task, item, context_for(inputs.tool_name, group))
            if verdict is not None:
                cost = _log_verdict(session, task, run, job, group[0][0].id, verdict, prices, now)
                report.input_tokens += verdict.input_tokens
                report.output_tokens += verdict.output_tokens
                report.cost_usd += cost or 0.0
            if not mine:
                continue
            job.lease_until, job.updated_at = None, now
            if verdict is not None and verdict.value is not None:
                job.state, job.last_error = jobs.DONE, None
                report.succeeded += 1
                continue
            reason = verdict.reason if verdict is not None else missing
            job.state, job.worker, job.last_error = jobs.QUEUED, None, reason
            report.requeued += 1
            kind = verdict.outcome if verdict is not None else "no result"
            report.reasons[kind] = report.reasons.get(kind, 0) + 1
        record = session.scalars(
            select(BatchRecord).where(BatchRecord.batch_id == info.batch_id)
        ).one()
        record.succeeded, record.requeued = report.succeeded, report.requeued
        record.collected_at = record.updated_at = now
    report.cost_usd = round(report.cost_usd, 8)


def _log_verdict(
    session: Session,
    task: Task[Extraction],
    run: ExtractionRun,
    job: Job,
    chunk_id: str,
    verdict: Verdict[Extraction],
    prices: PriceTable,
    now: datetime,
) -> float | None:
    """Log one returned item at the batch price and cache its answer if it was good."""
    cost = batch_cost(prices, run.provider, run.model, verdict.input_tokens, verdict.output_tokens)
    session.add(
        call_row(
            run_id=run.id,
            chunk_id=chunk_id,
            task=task.name,
            provider=run.provider,
            model=run.model,
            mode=run.mode,
            prompt_version=task.prompt_version,
            request_hash=job.request_hash,
            outcome=verdict.outcome,
            now=now,
            input_tokens=verdict.input_tokens,
            output_tokens=verdict.output_tokens,
            cost_usd=cost,
            error=verdict.reason,
        )
    )
    if verdict.value is not None:
        payload = verdict.value.model_dump_json()
        remember(session, job.request_hash, run.provider, run.model, payload, now)
    return cost
