"""Provider Batch APIs: send a run's jobs as one batch at half price, then collect the answers.

``submit`` plans (or resumes) the run like ``extract`` does, writes one JSONL line per queued job
whose answer is not cached yet — the same chat-completion request the inline path sends — and
uploads it through the provider's SDK (Mistral batch jobs, OpenAI Batch API). Those jobs are then
``running``, held by worker ``batch:<id>`` with a long lease. ``status`` polls the provider (with
a bounded exponential backoff when asked to wait); ``collect`` downloads the output and error
files and checks every answer with the same pydantic schema and grounding validator as inline
extraction. Good answers go into ``llm_cache`` under the job's request hash and the job is done;
errored, expired, cancelled, truncated or invalid items go back to ``queued`` with
``last_error`` saying why, so ``decomposer extract TOOL`` (same provider and model) finishes them
inline. Every returned item is logged in ``llm_calls`` at the batch price
(``BATCH_DISCOUNT`` × the price table). When every job of the run is done, the run's results are
written at once (``extract.finalize_run``).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

import httpx
import openai
from mistralai.client import Mistral
from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from decomposer.calls.caller import call_row
from decomposer.calls.prompts import Prompt, load_prompt
from decomposer.calls.runtime import RunSetup
from decomposer.core.clock import Clock, Sleep, utcnow
from decomposer.core.config import Settings
from decomposer.core.errors import ConfigError, NotFoundError, ProviderError
from decomposer.extraction import jobs
from decomposer.extraction.run import (
    RunNotFinished,
    RunReport,
    context_for,
    finalize_run,
    load_inputs,
    plan_run,
)
from decomposer.extraction.schema import Extraction
from decomposer.providers.base import ProviderConfig, api_key, classify
from decomposer.providers.pricing import PriceTable, load_prices
from decomposer.store import Store
from decomposer.store.batch_models import BatchRecord
from decomposer.store.models import CachedResponse, ExtractionRun, Job

BATCH_DISCOUNT = 0.5
"""Batch requests cost half the list price on both Mistral and OpenAI (applied to prices.json)."""
ENDPOINT: Final = "/v1/chat/completions"
LEASE = timedelta(hours=48)
"""How long a batch holds its jobs: the 24 h completion window plus time to collect. After it,
a normal ``extract`` takes them back (and re-sends them)."""
SCHEMA_NAME = "Extraction"


@dataclass(frozen=True)
class FileLimits:
    lines: int
    bytes: int


LIMITS = {
    "mistral": FileLimits(lines=1_000_000, bytes=512 * 1024 * 1024),
    "openai": FileLimits(lines=50_000, bytes=200 * 1024 * 1024),
}
"""Per input file; a run larger than this is split over several batches."""
TERMINAL = {
    "mistral": frozenset({"SUCCESS", "FAILED", "TIMEOUT_EXCEEDED", "CANCELLED"}),
    "openai": frozenset({"completed", "failed", "expired", "cancelled"}),
}
EXPIRED = frozenset({"TIMEOUT_EXCEEDED", "expired"})
CANCELLED = frozenset({"CANCELLED", "cancelled"})
FAILED = frozenset({"FAILED", "failed"})


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
class BatchSubmission:
    run_id: int
    batch_ids: list[str]
    requests: int
    cached: int
    held: int = 0
    """Jobs still held by earlier batches of this run (nothing new was sent for them)."""
    report: RunReport | None = None
    """Set when nothing had to be sent and the run could be written at once."""


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


# --- request building ---------------------------------------------------------------------


def request_body(cfg: ProviderConfig, prompt: Prompt, context: dict[str, Any]) -> dict[str, Any]:
    """The chat-completion request the inline path sends for this context (first attempt).

    Mistral takes the model on the batch job, so its lines leave it out; OpenAI lines carry it.
    """
    body: dict[str, Any] = {}
    if cfg.provider != "mistral":
        body["model"] = cfg.model
    body.update(
        temperature=cfg.temperature,
        max_tokens=cfg.max_tokens,
        messages=prompt.render(context),
    )
    schema = Extraction.model_json_schema()
    if cfg.mode == "tools":
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": SCHEMA_NAME,
                    "description": Extraction.__doc__ or "",
                    "parameters": schema,
                },
            }
        ]
        body["tool_choice"] = (
            "any"
            if cfg.provider == "mistral"
            else {"type": "function", "function": {"name": SCHEMA_NAME}}
        )
        return body
    spec: dict[str, Any] = {"name": SCHEMA_NAME, "schema": schema}
    if cfg.provider == "mistral":
        spec["strict"] = True
    body["response_format"] = {"type": "json_schema", "json_schema": spec}
    return body


def custom_id(job_id: int) -> str:
    return f"job-{job_id}"


def job_of(custom: object) -> int | None:
    text = str(custom or "")
    number = text.removeprefix("job-")
    return int(number) if number.isdigit() else None


def input_line(cfg: ProviderConfig, job_id: int, body: dict[str, Any]) -> str:
    line: dict[str, Any] = {"custom_id": custom_id(job_id)}
    if cfg.provider == "openai":
        line.update(method="POST", url=ENDPOINT)
    line["body"] = body
    return json.dumps(line, ensure_ascii=False) + "\n"


def split_lines(
    lines: Sequence[tuple[int, str]], limits: FileLimits
) -> list[list[tuple[int, str]]]:
    """Cut the lines into files that respect the provider's line and size limits."""
    files: list[list[tuple[int, str]]] = []
    current: list[tuple[int, str]] = []
    size = 0
    for item in lines:
        length = len(item[1].encode())
        if current and (len(current) >= limits.lines or size + length > limits.bytes):
            files.append(current)
            current, size = [], 0
        current.append(item)
        size += length
    if current:
        files.append(current)
    return files


def batch_cost(
    prices: PriceTable, provider: str, model: str, tokens_in: int, tokens_out: int
) -> float | None:
    """USD for one batch request: the list price times ``BATCH_DISCOUNT``."""
    full = prices.cost(provider, model, tokens_in, tokens_out)
    return None if full is None else round(full * BATCH_DISCOUNT, 8)


# --- provider clients ---------------------------------------------------------------------


@dataclass(frozen=True)
class Remote:
    """A provider's view of a batch, reduced to what we store."""

    status: str
    output_file_id: str | None = None
    error_file_id: str | None = None
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    errors: str | None = None


class BatchAPIError(ProviderError):
    def __init__(self, message: str, hint: str | None = None, *, transient: bool = False) -> None:
        super().__init__(message, hint)
        self.transient = transient


async def _call(provider: str, what: str, awaitable: Any) -> Any:
    try:
        return await awaitable
    except Exception as exc:
        failure = classify(exc)
        if failure is None:
            raise
        hint = (
            "check the API key for this provider"
            if failure.status in (401, 403)
            else "try again later; nothing was lost"
        )
        raise BatchAPIError(
            f"{provider} batch API: {what} failed: {failure.describe()}",
            hint=hint,
            transient=failure.transient,
        ) from None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


class _MistralBatches:
    provider = "mistral"

    def __init__(self, key: str, http: httpx.AsyncClient, base_url: str | None) -> None:
        self.sdk = Mistral(api_key=key, async_client=http, server_url=base_url)

    async def create(
        self, content: bytes, name: str, model: str, metadata: dict[str, str]
    ) -> tuple[str, str, str]:
        uploaded = await _call(
            self.provider,
            "uploading the input file",
            self.sdk.files.upload_async(
                file={"file_name": name, "content": content}, purpose="batch"
            ),
        )
        job = await _call(
            self.provider,
            "creating the batch job",
            self.sdk.batch.jobs.create_async(
                endpoint=ENDPOINT, input_files=[uploaded.id], model=model, metadata=metadata
            ),
        )
        return str(job.id), str(uploaded.id), str(job.status)

    async def retrieve(self, batch_id: str) -> Remote:
        job = await _call(
            self.provider, "reading the batch job", self.sdk.batch.jobs.get_async(job_id=batch_id)
        )
        errors = "; ".join(e.message for e in job.errors) or None
        return Remote(
            status=str(job.status),
            output_file_id=_text(job.output_file),
            error_file_id=_text(job.error_file),
            total=job.total_requests,
            succeeded=job.succeeded_requests,
            failed=job.failed_requests,
            errors=errors,
        )

    async def download(self, file_id: str) -> str:
        response = await _call(
            self.provider, "downloading results", self.sdk.files.download_async(file_id=file_id)
        )
        try:
            data: bytes = await response.aread()
            return data.decode("utf-8")
        finally:
            await response.aclose()


class _OpenAIBatches:
    provider = "openai"

    def __init__(self, key: str, http: httpx.AsyncClient, base_url: str | None) -> None:
        self.sdk = openai.AsyncOpenAI(
            api_key=key, base_url=base_url, http_client=http, max_retries=0
        )

    async def create(
        self, content: bytes, name: str, model: str, metadata: dict[str, str]
    ) -> tuple[str, str, str]:
        uploaded = await _call(
            self.provider,
            "uploading the input file",
            self.sdk.files.create(file=(name, content, "application/jsonl"), purpose="batch"),
        )
        created = await _call(
            self.provider,
            "creating the batch",
            self.sdk.batches.create(
                completion_window="24h",
                endpoint=ENDPOINT,
                input_file_id=uploaded.id,
                metadata=metadata,
            ),
        )
        return str(created.id), str(uploaded.id), str(created.status)

    async def retrieve(self, batch_id: str) -> Remote:
        found = await _call(self.provider, "reading the batch", self.sdk.batches.retrieve(batch_id))
        counts = found.request_counts
        errors = None
        if found.errors is not None and found.errors.data:
            errors = "; ".join(e.message or e.code or "error" for e in found.errors.data)
        return Remote(
            status=str(found.status),
            output_file_id=found.output_file_id,
            error_file_id=found.error_file_id,
            total=counts.total if counts else 0,
            succeeded=counts.completed if counts else 0,
            failed=counts.failed if counts else 0,
            errors=errors,
        )

    async def download(self, file_id: str) -> str:
        content = await _call(self.provider, "downloading results", self.sdk.files.content(file_id))
        return str(content.text)


_Client = _MistralBatches | _OpenAIBatches


def _client(provider: str, key: str, http: httpx.AsyncClient, base_url: str | None) -> _Client:
    if provider == "mistral":
        return _MistralBatches(key, http, base_url)
    if provider == "openai":
        return _OpenAIBatches(key, http, base_url)
    raise ConfigError(
        f"the {provider} provider has no Batch API",
        hint="use --provider mistral or --provider openai, or run without --batch",
    )


# --- submit -------------------------------------------------------------------------------


async def submit(
    store: Store,
    settings: Settings,
    setup: RunSetup,
    tool_slug: str,
    *,
    pack_tokens: int,
    http: httpx.AsyncClient,
    clock: Clock = utcnow,
) -> BatchSubmission:
    """Plan (or resume) the run and send its queued, uncached jobs as provider batches."""
    cfg = setup.cfg
    client = _client(cfg.provider, setup.key, http, cfg.base_url)
    prompt = load_prompt(version=setup.prompt_version, root=settings.prompts_dir)
    run_id = plan_run(store, cfg, prompt, tool_slug, pack_tokens=pack_tokens, now=clock())
    hold = f"batch:submitting:{uuid.uuid4().hex[:12]}"
    with store.transaction() as session:
        inputs = load_inputs(session, run_id)
        queued = session.scalars(
            select(Job).where(Job.run_id == run_id, Job.state == jobs.QUEUED).order_by(Job.position)
        ).all()
        wanted = {job.id: job.request_hash for job in queued}
        cached = set(
            session.scalars(
                select(CachedResponse.request_hash).where(
                    CachedResponse.request_hash.in_(set(wanted.values()))
                )
            )
        )
        held = sum(
            1
            for job in session.scalars(
                select(Job).where(Job.run_id == run_id, Job.state == jobs.RUNNING)
            )
            if (job.worker or "").startswith("batch:")
        )
    claimed = _claim(store, list(wanted), hold, clock(), timedelta(hours=1))
    hits = [job_id for job_id in claimed if wanted[job_id] in cached]
    _finish_cache_hits(store, run_id, cfg, prompt, hits, wanted, inputs.groups, hold, clock)
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
        for index, part in enumerate(split_lines(lines, LIMITS[cfg.provider]), start=1):
            content = "".join(line for _, line in part).encode("utf-8")
            batch_id, file_id, status = await client.create(
                content,
                f"decomposer-run{run_id}-{index}.jsonl",
                cfg.model,
                {"decomposer_run": str(run_id), "decomposer_part": str(index)},
            )
            ids = [job_id for job_id, _ in part]
            _record(store, cfg, run_id, batch_id, file_id, status, ids, hold, clock())
            sent.append(batch_id)
            remaining = remaining[len(ids) :]
    finally:
        jobs.release(store, remaining, hold, clock())
    submission = BatchSubmission(run_id, sent, len(lines), len(hits), held)
    if not lines:
        submission.report = _settle(store, run_id, clock)
    return submission


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
    prompt: Prompt,
    hits: Sequence[int],
    hashes: dict[int, str],
    groups: dict[int, Any],
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
                    provider=cfg.provider,
                    model=cfg.model,
                    mode=cfg.mode,
                    prompt_version=f"{prompt.name}/{prompt.version}",
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
    status: str,
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
                status=status,
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


def holder(batch_id: str) -> str:
    """The ``jobs.worker`` value of jobs a batch holds."""
    return f"batch:{batch_id}"


def _settle(store: Store, run_id: int, clock: Clock) -> RunReport | None:
    try:
        return finalize_run(store, run_id, clock)
    except RunNotFinished:
        return None


# --- status -------------------------------------------------------------------------------


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
                if r.collected_at is None and r.status not in TERMINAL[r.provider]
            ]
        for batch_id, provider, base_url in polling:
            client = _client(provider, api_key(settings, provider), http, base_url)
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
        terminal=record.status in TERMINAL.get(record.provider, frozenset()),
        collected=record.collected_at is not None,
        requests=record.requests,
        succeeded=record.succeeded,
        requeued=record.requeued,
        error=record.error,
        created_at=record.created_at.isoformat(),
        collected_at=record.collected_at.isoformat() if record.collected_at else None,
    )


# --- collect ------------------------------------------------------------------------------


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
        reports.append(await _collect_one(store, settings, info, http, prices, clock))
    return reports


async def _collect_one(
    store: Store,
    settings: Settings,
    info: BatchInfo,
    http: httpx.AsyncClient,
    prices: PriceTable,
    clock: Clock,
) -> CollectReport:
    with store.transaction() as session:
        record = session.scalars(
            select(BatchRecord).where(BatchRecord.batch_id == info.batch_id)
        ).one()
        files = [f for f in (record.output_file_id, record.error_file_id) if f]
        base_url = _base_url(session, record.run_id)
    client = _client(info.provider, api_key(settings, info.provider), http, base_url)
    results: dict[int, dict[str, Any]] = {}
    for file_id in files:
        for line in (await client.download(file_id)).splitlines():
            item = _parse_line(line)
            job_id = job_of(item.get("custom_id")) if item else None
            if item is not None and job_id is not None:
                results.setdefault(job_id, item)
    report = CollectReport(info.batch_id, info.run_id, info.status)
    _store_results(store, info, record_error(info), results, prices, report, clock())
    report.report = _settle(store, info.run_id, clock)
    return report


def record_error(info: BatchInfo) -> str:
    """Why a job got no answer from this batch, given how the batch ended."""
    if info.status in EXPIRED:
        return f"batch {info.batch_id} expired before this request ran"
    if info.status in CANCELLED:
        return f"batch {info.batch_id} was cancelled before this request ran"
    if info.status in FAILED:
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


@dataclass
class _Verdict:
    extraction: Extraction | None
    outcome: str
    reason: str | None
    input_tokens: int = 0
    output_tokens: int = 0


def judge(item: dict[str, Any] | None, context: dict[str, Any]) -> _Verdict | None:
    """Check one result line like the inline path checks an answer; ``None`` if absent."""
    if item is None:
        return None
    error = item.get("error")
    response = item.get("response") if isinstance(item.get("response"), dict) else {}
    assert isinstance(response, dict)
    body = response.get("body")
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            body = {}
    body = body if isinstance(body, dict) else {}
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    assert isinstance(usage, dict)
    tokens = (int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
    if error:
        return _Verdict(None, "error", f"batch item error: {_describe(error)}", *tokens)
    code = response.get("status_code")
    if code != 200:
        detail = _describe(body.get("error") or body.get("message") or body or "no body")
        return _Verdict(None, "error", f"batch item HTTP {code}: {detail}", *tokens)
    choice = (body.get("choices") or [{}])[0]
    if not isinstance(choice, dict):
        return _Verdict(None, "invalid", "batch answer has no choices", *tokens)
    if choice.get("finish_reason") == "length":
        return _Verdict(None, "invalid", "batch answer was cut off at max_tokens", *tokens)
    text = payload(choice.get("message"))
    try:
        extraction = Extraction.model_validate_json(text, context=context)
    except ValidationError as err:
        first = err.errors()[0]
        reason = f"invalid batch answer: {str(first.get('msg', err))[:300]}"
        return _Verdict(None, "invalid", reason, *tokens)
    return _Verdict(extraction, "ok", None, *tokens)


def payload(message: object) -> str:
    """The structured payload of a chat message dict: tool-call arguments or content."""
    if not isinstance(message, dict):
        return ""
    calls = message.get("tool_calls") or []
    if calls and isinstance(calls[0], dict):
        args = (calls[0].get("function") or {}).get("arguments")
        return args if isinstance(args, str) else json.dumps(args)
    content = message.get("content")
    return content if isinstance(content, str) else ""


def _describe(error: object) -> str:
    if isinstance(error, dict):
        code = error.get("code") or error.get("type")
        message = error.get("message") or json.dumps(error)[:200]
        return f"{code}: {message}" if code else str(message)
    return str(error)[:300]


def _store_results(
    store: Store,
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
        prompt_version = f"{run.prompt_name}/{run.prompt_version}"
        for job_id, job in run_jobs.items():
            mine = job.state == jobs.RUNNING and job.worker == holder(info.batch_id)
            item = results.get(job_id)
            if item is None and not mine:
                continue
            group = inputs.groups[job_id]
            verdict = judge(item, context_for(inputs.tool_name, group))
            if verdict is not None:
                cost = batch_cost(
                    prices, run.provider, run.model, verdict.input_tokens, verdict.output_tokens
                )
                session.add(
                    call_row(
                        run_id=info.run_id,
                        chunk_id=group[0][0].id,
                        provider=run.provider,
                        model=run.model,
                        mode=run.mode,
                        prompt_version=prompt_version,
                        request_hash=job.request_hash,
                        outcome=verdict.outcome,
                        now=now,
                        input_tokens=verdict.input_tokens,
                        output_tokens=verdict.output_tokens,
                        cost_usd=cost,
                        error=verdict.reason,
                    )
                )
                report.input_tokens += verdict.input_tokens
                report.output_tokens += verdict.output_tokens
                report.cost_usd += cost or 0.0
                if verdict.extraction is not None:
                    session.merge(
                        CachedResponse(
                            request_hash=job.request_hash,
                            provider=run.provider,
                            model=run.model,
                            payload=verdict.extraction.model_dump_json(),
                            created_at=now,
                        )
                    )
            if not mine:
                continue
            job.lease_until, job.updated_at = None, now
            if verdict is not None and verdict.extraction is not None:
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
