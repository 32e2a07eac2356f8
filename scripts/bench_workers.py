"""Celery workers at scale (issue 12): N worker processes sharing one Redis limit and one
PostgreSQL store extract one tool's queued jobs from a loopback fake provider.

Each scenario gets a fresh PostgreSQL database (created and dropped here, like the tests'
``pg_url``), an emptied Redis database and a fresh fake provider (``tests/support/
fakeprovider.py``, its own process, answering in ``--latency`` s ± ``--jitter`` s with a strict
requests/second limit of its own: over it, 429). ``clean`` lets the workers run; ``kill``
SIGKILLs one whole worker (main process and pool) once a third of the jobs are done — its jobs
come back when their lease (``--lease`` s) runs out and a live worker takes them over.

Reported per scenario: jobs, server-side requests, 200s and 429s, the rate the server admitted
requests from the first to the last (and its fraction of the limit), the wall time from enqueue
to the run's end, jobs done twice (request hashes with more than one successful logged call),
duplicate capabilities, jobs retried (``attempts`` > 1), and billing: answers the server sent
(200s) against jobs, and requests the server saw against requests the call log counts.

    .venv/bin/python scripts/bench_workers.py [--jobs 500] [--rps 10] [--latency 1] \\
        [--workers 4] [--worker-concurrency 4] [--redis redis://127.0.0.1:6379/7]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench_extract import FAKE_PROVIDER, free_port, server_rate, write_docs
from machine import describe

TOOL, SLUG = "Bench", "bench"


@dataclass
class Outcome:
    scenario: str
    jobs: int
    status: str = "missing"
    requests: int = 0
    answered: int = 0
    throttled: int = 0
    server_rps: float | None = None
    wall_s: float = 0.0
    done: int = 0
    done_twice: int = 0
    duplicate_capabilities: int = 0
    capabilities: int = 0
    retried: int = 0
    logged_requests: int = 0
    killed_at_done: int | None = None
    notes: list[str] = field(default_factory=list)


@contextmanager
def fresh_database(base: str) -> Iterator[str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def fake_provider(args: argparse.Namespace, log: Path) -> Iterator[str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, str(FAKE_PROVIDER), "--port", str(port), "--rps", str(args.rps)]
    command += ["--latency-ms", str(args.latency * 1000), "--jitter-ms", str(args.jitter * 1000)]
    with log.open("w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    httpx.get(f"{base}/stats", timeout=0.5).raise_for_status()
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise SystemExit(f"the fake provider did not start: {log}") from None
                    time.sleep(0.1)
            yield base
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def prepare(db: str, home: Path, docs: Path) -> None:
    from decomposer.ingest.documents import ingest
    from decomposer.store import open_store
    from decomposer.store.tools import add_tool

    store = open_store(db)
    with store.transaction() as session:
        add_tool(session, TOOL, now=datetime.now(UTC))
    ingest(store, SLUG, [str(docs)], now=datetime.now(UTC))
    store.dispose()


def progress(db: str) -> tuple[str, int]:
    from sqlalchemy import func, select

    from decomposer.store import open_store
    from decomposer.store.models import ExtractionRun, Job

    store = open_store(db)
    try:
        with store.transaction() as s:
            run = s.scalars(select(ExtractionRun)).first()
            done = s.scalar(select(func.count()).select_from(Job).where(Job.state == "done"))
        return (run.status if run else "missing"), int(done or 0)
    finally:
        store.dispose()


def measure(db: str, out: Outcome) -> None:
    from sqlalchemy import func, select

    from decomposer.store import open_store
    from decomposer.store.models import Capability, Job, LLMCall

    store = open_store(db)
    with store.transaction() as s:
        jobs = s.scalars(select(Job)).all()
        out.done = sum(j.state == "done" for j in jobs)
        out.retried = sum(j.attempts > 1 for j in jobs)
        successes = (
            select(LLMCall.request_hash)
            .where(~LLMCall.cache_hit, LLMCall.outcome == "ok")
            .group_by(LLMCall.request_hash)
            .having(func.count() > 1)
        )
        out.done_twice = len(s.scalars(successes).all())
        out.logged_requests = int(
            s.scalar(select(func.coalesce(func.sum(LLMCall.attempts), 0)).where(~LLMCall.cache_hit))
            or 0
        )
        names = s.scalars(select(Capability.name)).all()
    store.dispose()
    out.capabilities = len(names)
    out.duplicate_capabilities = len(names) - len(set(names))


def run_scenario(args: argparse.Namespace, scenario: str, root: Path) -> Outcome:
    import redis

    out = Outcome(scenario=scenario, jobs=args.jobs)
    client = redis.Redis.from_url(args.redis)
    client.flushdb()
    client.close()
    docs = root / "docs"
    if not docs.exists():
        write_docs(docs, args.jobs)
    home = root / f"home-{scenario}"
    with (
        fresh_database(args.database) as db,
        fake_provider(args, root / f"fake-{scenario}.log") as base,
    ):
        prepare(db, home, docs)
        env = {
            **os.environ,
            "DECOMPOSER_DATABASE_URL": db,
            "DECOMPOSER_REDIS_URL": args.redis,
            "DECOMPOSER_HOME": str(home),
            "DECOMPOSER_JOB_LEASE_S": str(args.lease),
        }
        command = [sys.executable, "-m", "decomposer", "worker"]
        command += ["--concurrency", str(args.worker_concurrency), "--loglevel", "WARNING"]
        logs = [(root / f"{scenario}-worker{i}.log").open("w") for i in range(args.workers)]
        workers = [
            subprocess.Popen(command, env=env, stdout=log, stderr=log, start_new_session=True)
            for log in logs
        ]
        try:
            started = time.monotonic()
            enqueue = [sys.executable, "-m", "decomposer", "extract", SLUG, "--queue"]
            enqueue += ["--provider", "openai-compatible", "--base-url", f"{base}/v1"]
            enqueue += ["--model", "m", "--pack-tokens", "1", "--rps", str(args.rps)]
            subprocess.run(enqueue, env=env, check=True, capture_output=True)
            deadline = started + args.timeout
            while time.monotonic() < deadline:
                status, done = progress(db)
                if scenario == "kill" and out.killed_at_done is None and done >= args.jobs // 3:
                    os.killpg(workers[0].pid, signal.SIGKILL)
                    workers[0].wait(timeout=10)
                    out.killed_at_done = done
                if status in ("succeeded", "failed"):
                    break
                time.sleep(0.5)
            out.status = status
            out.wall_s = time.monotonic() - started
            stats = httpx.get(f"{base}/stats", timeout=10).json()
        finally:
            for proc in workers:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGTERM)
            for proc in workers:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
            for log in logs:
                log.close()
        out.requests, out.answered = int(stats["requests"]), int(stats["ok"])
        out.throttled = int(stats["throttled"])
        out.server_rps = server_rate(stats["accepted_at"])
        measure(db, out)
    return out


def table(results: list[Outcome], rps: float) -> None:
    header = (
        "scenario",
        "status",
        "jobs done",
        "server requests",
        "200s",
        "429s",
        "first→last rps",
        "fraction of limit",
        "wall s",
        "jobs retried",
        "jobs done twice",
        "duplicate capabilities",
        "200s − jobs",
        "logged − server requests",
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in results:
        rate = r.server_rps or 0.0
        cells = [
            r.scenario + (f" (SIGKILL at {r.killed_at_done} done)" if r.killed_at_done else ""),
            r.status,
            f"{r.done}/{r.jobs}",
            str(r.requests),
            str(r.answered),
            str(r.throttled),
            f"{rate:.2f}",
            f"{rate / rps:.3f}",
            f"{r.wall_s:.1f}",
            str(r.retried),
            str(r.done_twice),
            str(r.duplicate_capabilities),
            str(r.answered - r.jobs),
            str(r.logged_requests - r.requests),
        ]
        print("| " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--rps", type=float, default=10.0)
    parser.add_argument("--latency", type=float, default=1.0, help="seconds")
    parser.add_argument("--jitter", type=float, default=0.0, help="± seconds, uniform")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--worker-concurrency", type=int, default=4)
    parser.add_argument("--lease", type=float, default=10.0, help="job lease, seconds")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per scenario")
    parser.add_argument("--scenario", choices=("all", "clean", "kill"), default="all")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/7")
    parser.add_argument(
        "--database",
        default=os.environ.get(
            "DECOMPOSER_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
        help="a PostgreSQL URL whose server may create and drop a database for the run",
    )
    args = parser.parse_args()
    names = ("clean", "kill") if args.scenario == "all" else (args.scenario,)
    print(f"machine: {describe()}; load average before: {os.getloadavg()}")
    slots = args.workers * args.worker_concurrency
    print(
        f"{args.workers} workers × {args.worker_concurrency} = {slots} jobs at once; limit "
        f"{args.rps:g} req/s; latency {args.latency:g} s ± {args.jitter:g} s; {args.jobs} jobs; "
        f"Little's law needs ≥ {args.rps * args.latency:.1f} in flight\n",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
        results = [run_scenario(args, name, Path(tmp)) for name in names]
    print(f"load average after: {os.getloadavg()}\n")
    table(results, args.rps)


if __name__ == "__main__":
    main()
