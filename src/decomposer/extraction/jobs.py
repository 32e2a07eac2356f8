"""Durable extraction jobs: one row per model request, claimed safely by any number of workers.

A job moves ``queued -> running -> done`` (or ``failed``). Claiming uses ``SELECT … FOR UPDATE
SKIP LOCKED`` on PostgreSQL (ignored by SQLite) plus a conditional update, so two workers never
run the same job. A ``running`` job is given back to the queue when its lease has expired or
when it was claimed on this host by a process that no longer exists (``kill -9``).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from decomposer.core.vocab import JOB_STATES, JobState
from decomposer.store import Store
from decomposer.store.models import ExtractionRun, Job, Tool

QUEUED, RUNNING, DONE, FAILED = JobState.QUEUED, JobState.RUNNING, JobState.DONE, JobState.FAILED
STATES = JOB_STATES
DEFAULT_LEASE = timedelta(minutes=10)
"""Longer than one call can take with all its retries (the retry deadline is 5 minutes)."""


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
                .where(Job.run_id == run_id, Job.state == QUEUED)
                .order_by(Job.position)
                .limit(1)
                .with_for_update(skip_locked=True)
            ).first()
            if job is None:
                return None
            taken = session.execute(
                update(Job)
                .where(Job.id == job.id, Job.state == QUEUED)
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
            .where(Job.id == job_id, Job.state == QUEUED)
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


def list_jobs(
    session: Session,
    *,
    tool_slug: str | None = None,
    run_id: int | None = None,
    state: str | None = None,
    limit: int = 500,
) -> list[dict[str, Any]]:
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
        {
            "id": job.id,
            "run": job.run_id,
            "tool": slug,
            "position": job.position,
            "chunks": len(job.chunk_ids),
            "tokens": job.tokens,
            "state": job.state,
            "attempts": job.attempts,
            "last_error": job.last_error,
            "worker": job.worker,
            "batch": job.batch_id,
            "updated_at": job.updated_at.isoformat(),
        }
        for job, slug in session.execute(query)
    ]
