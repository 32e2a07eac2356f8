"""Distributed execution: a Celery app (Redis broker) whose workers run queued extraction jobs.

``decomposer extract TOOL --queue`` plans the run in the shared store and sends one task per
job; ``decomposer worker`` processes, on any number of hosts, claim and run them. A task carries
only ids and limits: each worker reads its own API keys from its environment. Claiming is a
conditional update (with ``SKIP LOCKED`` on PostgreSQL), so a job redelivered by the broker is
never run twice. A job whose worker was killed is recovered in minutes: its lease (renewed by a
heartbeat while the call runs) expires, and the broker's redelivery — on worker loss at once,
after ``visibility_timeout`` when the whole worker died — retries until it can take the job
over. The worker that finishes the last job writes the run's results, under a row lock on the
run. Rate limits are global when ``DECOMPOSER_REDIS_URL`` points all workers at one
Redis: the limiter counts there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from celery import Celery
from sqlalchemy import select

from decomposer.calls.prompts import load_prompt
from decomposer.calls.runtime import RunSetup, setup_for_run
from decomposer.core.clock import utcnow
from decomposer.core.config import Settings
from decomposer.core.errors import ConfigError, ProviderError
from decomposer.extraction import jobs
from decomposer.extraction.inputs import load_job
from decomposer.extraction.run import RunNotFinished, finalize_run, plan_run, run_job
from decomposer.extraction.task import model_caller
from decomposer.providers.ratelimit import Limits
from decomposer.store import Store, open_store
from decomposer.store.models import ExtractionRun, Job

log = logging.getLogger("decomposer.extraction.worker")
TASK = "decomposer.run_job"
HELD = "held"


def visibility_timeout(settings: Settings) -> float:
    """When Redis redelivers a task nobody acknowledged: 2.5 leases (5 minutes by default), so
    a job whose whole worker died is back within minutes, not Redis's default hour."""
    return settings.job_lease_s * 2.5


@dataclass
class WorkerContext:
    """Per-process resources, opened lazily after Celery forks its pool processes."""

    settings: Settings
    _store: Store | None = field(default=None, repr=False)
    send: Callable[[int, int, Limits], None] | None = field(default=None, repr=False)
    """Sends a job's task again (set by ``celery_app``), to recover a dead worker's jobs."""

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.settings.database_url)
        return self._store


def broker_url(settings: Settings) -> str:
    if not settings.redis_url:
        raise ConfigError(
            "queued extraction needs a Redis broker",
            hint="set DECOMPOSER_REDIS_URL=redis://host:6379/0 on every host",
        )
    return settings.redis_url


def celery_app(settings: Settings) -> Celery:
    app = Celery("decomposer", broker=broker_url(settings))
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        task_default_queue="decomposer",
        # A message whose worker was SIGKILLed comes back after this many seconds (Redis's
        # default is an hour); a duplicate of a live job finds it held and retries later.
        broker_transport_options={"visibility_timeout": visibility_timeout(settings)},
    )
    context = WorkerContext(settings)

    def send(run_id: int, job_id: int, limits: Limits) -> None:
        app.send_task(TASK, args=[run_id, job_id, limits.rps, limits.tpm])

    context.send = send

    @app.task(name=TASK, bind=True, max_retries=None)  # type: ignore[untyped-decorator]
    def run_job_task(
        self: Any, run_id: int, job_id: int, rps: float | None, tpm: int | None
    ) -> str:
        outcome = asyncio.run(execute_one(context, run_id, job_id, Limits(rps, tpm)))
        if outcome == HELD:
            # Another worker holds the job. If it dies, its lease runs out; come back then
            # and take the job over (a redelivery must not be dropped while a job is held).
            left = jobs.lease_left(context.store, job_id, utcnow())
            if left is not None:
                raise self.retry(countdown=left + 1)
            return "skipped"
        return outcome

    return app


async def execute_one(context: WorkerContext, run_id: int, job_id: int, limits: Limits) -> str:
    """Run one job if nobody else has it, then write the run's results if it was the last."""
    store, me = context.store, jobs.worker_id()
    lease = timedelta(seconds=context.settings.job_lease_s)
    if jobs.claim_job(store, job_id, me, utcnow(), lease) is None:
        held = jobs.lease_left(store, job_id, utcnow()) is not None
        return HELD if held else "skipped"
    with store.transaction() as session:
        setup = setup_for_run(session, context.settings, run_id)
        tool_name, group = load_job(session, run_id, job_id)
    if limits.active:
        setup = replace(setup, limits=limits)
    async with model_caller(context.settings, store, setup) as caller:
        try:
            await run_job(caller, run_id, job_id, group, tool_name, me, lease)
        except ProviderError as exc:
            log.warning("job %s of run %s failed: %s", job_id, run_id, exc.message)
            settle(store, run_id)
            recover_stale(context, run_id, limits)
            return "failed"
    settle(store, run_id)
    recover_stale(context, run_id, limits)
    return "done"


def recover_stale(context: WorkerContext, run_id: int, limits: Limits) -> None:
    """Send again the tasks of this run's jobs whose holder's lease ran out (a killed worker),
    so a live worker takes them over now rather than when the broker redelivers them. A
    duplicate task is harmless: claiming is atomic, and a finished job is skipped."""
    if context.send is None:
        return
    for job_id in jobs.stale(context.store, run_id, utcnow()):
        log.warning("job %s of run %s lost its worker; sending it again", job_id, run_id)
        context.send(run_id, job_id, limits)


def settle(store: Store, run_id: int) -> None:
    """Finish the run when its jobs are all done; mark it failed when only failures remain."""
    try:
        finalize_run(store, run_id, utcnow)
        return
    except RunNotFinished as pending:
        state = pending.state
    if state[jobs.FAILED] and not state[jobs.QUEUED] and not state[jobs.RUNNING]:
        with store.transaction() as session:
            run = session.get(ExtractionRun, run_id, with_for_update=True)
            if run is not None and run.status == "running":
                run.status = "failed"
                run.error = (
                    f"{state[jobs.FAILED]} job(s) failed; see `decomposer jobs --run {run_id}`"
                )
                run.finished_at = utcnow()


def enqueue(
    settings: Settings, store: Store, setup: RunSetup, tool_slug: str, *, pack_tokens: int
) -> tuple[int, int]:
    """Plan (or resume) the run and send a task per queued job; returns (run id, tasks sent)."""
    app = celery_app(settings)
    prompt = load_prompt(version=setup.prompt_version, root=settings.prompts_dir)
    run_id = plan_run(store, setup.cfg, prompt, tool_slug, pack_tokens=pack_tokens, now=utcnow())
    with store.transaction() as session:
        queued = session.scalars(
            select(Job.id).where(Job.run_id == run_id, Job.state == jobs.QUEUED)
        ).all()
    for job_id in queued:
        app.send_task(TASK, args=[run_id, job_id, setup.limits.rps, setup.limits.tpm])
    return run_id, len(queued)


def start_worker(settings: Settings, concurrency: int, loglevel: str = "INFO") -> None:
    app = celery_app(settings)
    app.worker_main(
        argv=[
            "worker",
            f"--concurrency={concurrency}",
            f"--loglevel={loglevel}",
            "--queues=decomposer",
            "--without-gossip",
            "--without-mingle",
        ]
    )
