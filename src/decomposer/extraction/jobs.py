"""Durable extraction jobs: one row per model request, claimed safely by any number of workers.

A job moves ``queued -> running -> done`` (or ``failed``). Claiming uses ``SELECT … FOR UPDATE
SKIP LOCKED`` on PostgreSQL (ignored by SQLite) plus a conditional update, so two workers never
run the same job. A running job carries a short lease its holder renews while the call runs
(a heartbeat); a job whose lease expired — its holder was killed — can be claimed again by
anyone, and is given back to the queue by ``requeue`` / ``requeue_stale``, as is a job claimed
on this host by a process that no longer exists (``kill -9``).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from decomposer.core.vocab import JOB_STATES, JobState
from decomposer.store import Store
from decomposer.store.models import ExtractionRun, Job, Tool

QUEUED, RUNNING, DONE, FAILED = JobState.QUEUED, JobState.RUNNING, JobState.DONE, JobState.FAILED
STATES = JOB_STATES
DEFAULT_LEASE = timedelta(minutes=2)
"""How long a job stays its holder's without a heartbeat; renewed every third of it."""


def lock_row(session: Session, table: Any, row_id: int) -> None:
    """Take the write lock on one row before reading it: a no-op ``UPDATE`` locks the row on
    PostgreSQL and, as the transaction's first write, the database on SQLite (whose deferred
    transactions would otherwise let two processes read the same state and both write)."""
    session.execute(
        update(table)
        .where(table.id == row_id)
        .values(id=table.id)
        .execution_options(synchronize_session=False)
    )


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def create_jobs(
    session: Session, run_id: int, plan: Sequence[tuple[list[str], str, int]], now: datetime
) -> None:
    """``plan`` holds (chunk ids, request hash, estimated tokens) per request, in order."""
    session.add_all(
        Job(
            run_id=run_id,
            position=i,
            chunk_ids=ids,
            request_hash=request_hash,
            tokens=tokens,
            state=QUEUED,
            attempts=0,
            created_at=now,
            updated_at=now,
        )
        for i, (ids, request_hash, tokens) in enumerate(plan)
    )


def claim(
    store: Store, run_id: int, worker: str, now: datetime, lease: timedelta = DEFAULT_LEASE
) -> Job | None:
    """Take the next queued job of a run, or ``None`` when none is left."""
    while True:
        with store.transaction() as session:
            job = session.scalars(
                select(Job)
                .where(Job.run_id == run_id, _claimable(now))
                .order_by(Job.position)
                .limit(1)
                .with_for_update(skip_locked=True)
            ).first()
            if job is None:
                return None
            taken = session.execute(
                update(Job)
                .where(Job.id == job.id, _claimable(now))
                .values(
                    state=RUNNING,
                    worker=worker,
                    lease_until=now + lease,
                    attempts=Job.attempts + 1,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
            if getattr(taken, "rowcount", 0) == 1:
                session.refresh(job)
                return job


def claim_job(
    store: Store, job_id: int, worker: str, now: datetime, lease: timedelta = DEFAULT_LEASE
) -> Job | None:
    """Take one specific job (a Celery task names its job); ``None`` if another worker has it."""
    with store.transaction() as session:
        taken = session.execute(
            update(Job)
            .where(Job.id == job_id, _claimable(now))
            .values(
                state=RUNNING,
                worker=worker,
                lease_until=now + lease,
                attempts=Job.attempts + 1,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if getattr(taken, "rowcount", 0) != 1:
            return None
        return session.get(Job, job_id)


def _claimable(now: datetime) -> Any:
    """Queued, or running under a lease nobody renewed in time (its holder is gone)."""
    return or_(Job.state == QUEUED, and_(Job.state == RUNNING, Job.lease_until < now))


def renew(
    store: Store, job_id: int, worker: str, now: datetime, lease: timedelta = DEFAULT_LEASE
) -> bool:
    """Extend this worker's lease on a running job; ``False`` if it is no longer its own."""
    with store.transaction() as session:
        renewed = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.worker == worker, Job.state == RUNNING)
            .values(lease_until=now + lease)
            .execution_options(synchronize_session=False)
        )
        return getattr(renewed, "rowcount", 0) == 1


def lease_left(store: Store, job_id: int, now: datetime) -> float | None:
    """Seconds until a running job's lease runs out, or ``None`` when it is not running."""
    with store.transaction() as session:
        job = session.get(Job, job_id)
        if job is None or job.state != RUNNING or job.lease_until is None:
            return None
        return max(0.0, (_aware(job.lease_until) - now).total_seconds())


def stale(store: Store, run_id: int, now: datetime) -> list[int]:
    """Running jobs of a run whose lease ran out without a heartbeat: their holder is gone."""
    with store.transaction() as session:
        return list(
            session.scalars(
                select(Job.id).where(
                    Job.run_id == run_id, Job.state == RUNNING, Job.lease_until < now
                )
            )
        )


def running_inline(store: Store, run_id: int) -> int:
    """How many of a run's jobs some process is calling right now (not held by a batch)."""
    with store.transaction() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(Job)
                .where(Job.run_id == run_id, Job.state == RUNNING, Job.batch_id.is_(None))
            )
            or 0
        )


def requeue_stale(store: Store, now: datetime, run_id: int | None = None) -> int:
    """Give back every running job whose lease expired (or whose local process is gone)."""
    with store.transaction() as session:
        query = select(Job).where(Job.state == RUNNING)
        if run_id is not None:
            query = query.where(Job.run_id == run_id)
        stale = [j for j in session.scalars(query) if _abandoned(j, now)]
        for job in stale:
            job.state, job.worker, job.lease_until, job.updated_at = QUEUED, None, None, now
        return len(stale)


def finish(store: Store, job_id: int, worker: str, now: datetime, error: str | None = None) -> None:
    """Mark a job done (no error) or failed; only its current holder may do so."""
    with store.transaction() as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id, Job.worker == worker, Job.state == RUNNING)
            .values(
                state=FAILED if error else DONE, last_error=error, lease_until=None, updated_at=now
            )
            .execution_options(synchronize_session=False)
        )


def release(store: Store, job_ids: Sequence[int], worker: str, now: datetime) -> None:
    """Give jobs back to the queue (this worker is stopping before finishing them)."""
    if not job_ids:
        return
    with store.transaction() as session:
        session.execute(
            update(Job)
            .where(Job.id.in_(job_ids), Job.worker == worker, Job.state == RUNNING)
            .values(state=QUEUED, worker=None, lease_until=None, updated_at=now)
            .execution_options(synchronize_session=False)
        )


def requeue(store: Store, run_id: int, now: datetime, *, failed: bool = True) -> int:
    """Queue again the failed jobs and the abandoned running ones; returns how many."""
    with store.transaction() as session:
        jobs = session.scalars(
            select(Job).where(Job.run_id == run_id, Job.state.in_((RUNNING, FAILED)))
        ).all()
        again = [j for j in jobs if (failed and j.state == FAILED) or _abandoned(j, now)]
        for job in again:
            job.state, job.worker, job.lease_until, job.updated_at = QUEUED, None, None, now
        return len(again)


def _abandoned(job: Job, now: datetime) -> bool:
    if job.state != RUNNING:
        return False
    if job.lease_until is not None and _aware(job.lease_until) < now:
        return True
    host, _, pid = (job.worker or "").rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and not _alive(int(pid))


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def counts(session: Session, run_id: int) -> dict[str, int]:
    rows = session.execute(
        select(Job.state, func.count()).where(Job.run_id == run_id).group_by(Job.state)
    ).all()
    found = {state: int(n) for state, n in rows}
    return {state: found.get(state, 0) for state in STATES}


class JobSummary(BaseModel):
    """One row of ``decomposer jobs``: a job's state, attempts, last error and holder."""

    model_config = ConfigDict(frozen=True)

    id: int
    run: int
    tool: str
    position: int
    chunks: int
    tokens: int
    state: JobState
    attempts: int
    last_error: str | None
    worker: str | None
    batch: str | None
    updated_at: str


def list_jobs(
    session: Session,
    *,
    tool_slug: str | None = None,
    run_id: int | None = None,
    state: str | None = None,
    limit: int = 500,
) -> list[JobSummary]:
    query = (
        select(Job, Tool.slug)
        .join(ExtractionRun, ExtractionRun.id == Job.run_id)
        .join(Tool, Tool.id == ExtractionRun.tool_id)
        .order_by(Job.run_id.desc(), Job.position)
        .limit(limit)
    )
    if tool_slug is not None:
        query = query.where(Tool.slug == tool_slug)
    if run_id is not None:
        query = query.where(Job.run_id == run_id)
    if state is not None:
        query = query.where(Job.state == state)
    return [
        JobSummary(
            id=job.id,
            run=job.run_id,
            tool=slug,
            position=job.position,
            chunks=len(job.chunk_ids),
            tokens=job.tokens,
            state=job.state,
            attempts=job.attempts,
            last_error=job.last_error,
            worker=job.worker,
            batch=job.batch_id,
            updated_at=job.updated_at.isoformat(),
        )
        for job, slug in session.execute(query)
    ]
