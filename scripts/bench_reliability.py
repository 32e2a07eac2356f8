"""Billing safety under faults (issue 10): requests the provider saw vs. requests logged, jobs
sent twice, and tokens spent vs. a clean run of the same plan.

Each scenario extracts the same synthetic pages with the real CLI (``python -m decomposer``,
separate processes, a temp SQLite store unless ``--pg`` is given) against the loopback fake
provider (``tests/support/fakeprovider.py``, run by file path in its own process):

* ``clean``: one process, a server without limits: the plan's baseline tokens;
* ``concurrent``: three ``extract`` processes started together on the same tool;
* ``no-limit-429``: no ``--rps`` against a server limited to ``--server-rps``, high concurrency;
* ``kill-process``: ``kill -9`` of an ``extract`` process mid-run, then ``extract`` again;
* ``kill-worker`` (needs ``--pg`` and ``--redis``): a Celery worker killed with SIGKILL (process
  group) mid-run, a second worker finishes; lease ``DECOMPOSER_JOB_LEASE_S`` (default 10 s).

    .venv/bin/python scripts/bench_reliability.py [--pages 60] [--server-rps 5]
        [--pg postgresql+psycopg://postgres@127.0.0.1:5432/test --redis redis://127.0.0.1:6379/7]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from decomposer.store import open_store
from decomposer.store.models import ExtractionRun, Job, LLMCall
from machine import describe

FAKE_PROVIDER = Path(__file__).resolve().parents[1] / "tests" / "support" / "fakeprovider.py"


@dataclass
class Outcome:
    scenario: str
    plan: int
    runs: str
    sent: int
    throttled: int
    logged: int
    pending: int
    sent_twice: int
    tokens: int
    tokens_vs_clean: float
    exit_codes: str
    seconds: float


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def fake_provider(rps: float | None, latency_ms: float) -> Iterator[str]:
    port = free_port()
    command = [sys.executable, str(FAKE_PROVIDER), "--port", str(port)]
    command += ["--latency-ms", str(latency_ms), "--latency-p99-ms", str(latency_ms * 1.5)]
    if rps is not None:
        command += ["--rps", str(rps)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{base}/stats", timeout=0.5)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def stats(base: str) -> dict[str, Any]:
    payload: dict[str, Any] = httpx.get(f"{base}/stats", timeout=10).json()
    return payload


@contextmanager
def database(pg: str | None, home: Path) -> Iterator[str]:
    if pg is None:
        yield f"sqlite:///{home / 'decomposer.db'}"
        return
    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(pg, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(pg).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def cli(env: dict[str, str], *args: str) -> list[str]:
    return [sys.executable, "-m", "decomposer", *args]


def prepare(env: dict[str, str], home: Path, pages: int) -> None:
    docs = home / "docs"
    docs.mkdir(parents=True)
    for i in range(pages):
        (docs / f"p{i:03}.md").write_text(
            f"# Page {i}\n\nFeature number {i} lets teams do thing {i} quickly and well.\n"
        )
    for args in (("tool", "add", "Acme"), ("ingest", "acme", str(docs))):
        subprocess.run(cli(env, *args), env=env, check=True, capture_output=True)


def extract_args(base: str, concurrency: int, *extra: str) -> list[str]:
    return [
        "extract",
        "acme",
        "--provider",
        "openai-compatible",
        "--base-url",
        f"{base}/v1",
        "--model",
        "m",
        "--pack-tokens",
        "1",
        "--concurrency",
        str(concurrency),
        *extra,
    ]


def measure(
    scenario: str, url: str, base: str, codes: list[int], seconds: float, clean: int
) -> Outcome:
    seen = stats(base)
    store = open_store(url)
    with store.transaction() as s:
        runs = [r.status for r in s.scalars(select(ExtractionRun).order_by(ExtractionRun.id))]
        plan = s.scalar(select(func.count()).select_from(Job).where(Job.run_id == 1)) or 0
        twice = s.scalar(select(func.count()).select_from(Job).where(Job.attempts > 1)) or 0
        logged = s.scalar(select(func.sum(LLMCall.attempts)).where(~LLMCall.cache_hit)) or 0
        pending = s.scalar(
            select(func.count()).select_from(LLMCall).where(LLMCall.outcome == "pending")
        )
        tokens = s.scalar(select(func.sum(LLMCall.input_tokens + LLMCall.output_tokens))) or 0
    store.dispose()
    return Outcome(
        scenario=scenario,
        plan=int(plan),
        runs=",".join(runs),
        sent=int(seen["requests"]),
        throttled=int(seen["throttled"]),
        logged=int(logged),
        pending=int(pending or 0),
        sent_twice=int(twice),
        tokens=int(tokens),
        tokens_vs_clean=round(tokens / clean, 3) if clean else 1.0,
        exit_codes=",".join(str(c) for c in codes),
        seconds=round(seconds, 1),
    )


def scenario(name: str, args: argparse.Namespace, clean: int, rps: float | None = None) -> Outcome:
    with tempfile.TemporaryDirectory() as tmp, database(args.pg, Path(tmp)) as url:
        home = Path(tmp)
        env = {**os.environ, "DECOMPOSER_HOME": str(home), "DECOMPOSER_DATABASE_URL": url}
        prepare(env, home, args.pages)
        latency = 1000.0 if name.startswith("kill") else args.latency_ms
        with fake_provider(rps, latency) as base:
            started = time.monotonic()
            codes = RUNNERS[name](env, base, args)
            return measure(name, url, base, codes, time.monotonic() - started, clean)


def run_clean(env: dict[str, str], base: str, args: argparse.Namespace) -> list[int]:
    done = subprocess.run(cli(env, *extract_args(base, 8)), env=env, capture_output=True)
    return [done.returncode]


def run_concurrent(env: dict[str, str], base: str, args: argparse.Namespace) -> list[int]:
    command = cli(env, *extract_args(base, 4))
    procs = [subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL) for _ in range(3)]
    return [p.wait(timeout=600) for p in procs]


def run_no_limit(env: dict[str, str], base: str, args: argparse.Namespace) -> list[int]:
    done = subprocess.run(cli(env, *extract_args(base, 16)), env=env, capture_output=True)
    return [done.returncode]


def run_kill_process(env: dict[str, str], base: str, args: argparse.Namespace) -> list[int]:
    command = cli(env, *extract_args(base, 4))
    proc = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    while stats(base)["requests"] < args.pages // 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    again = subprocess.run(command, env=env, capture_output=True)
    return [proc.returncode, again.returncode]


def run_kill_worker(env: dict[str, str], base: str, args: argparse.Namespace) -> list[int]:
    env = {**env, "DECOMPOSER_REDIS_URL": args.redis, "DECOMPOSER_JOB_LEASE_S": args.lease}
    import redis

    redis.Redis.from_url(args.redis).flushdb()
    worker = cli(env, "worker", "--concurrency", "4", "--loglevel", "ERROR")
    quiet: dict[str, Any] = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    first = subprocess.Popen(worker, env=env, start_new_session=True, **quiet)
    queued = subprocess.run(cli(env, *extract_args(base, 1, "--queue")), env=env)
    while stats(base)["requests"] < args.pages // 3:
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    second = subprocess.Popen(worker, env=env, **quiet)
    url = env["DECOMPOSER_DATABASE_URL"]
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        store = open_store(url)
        with store.transaction() as s:
            status = s.scalar(select(ExtractionRun.status))
        store.dispose()
        if status in ("succeeded", "failed"):
            break
        time.sleep(0.5)
    second.send_signal(signal.SIGTERM)
    second.wait(timeout=30)
    return [queued.returncode, first.returncode]


RUNNERS = {
    "clean": run_clean,
    "concurrent": run_concurrent,
    "no-limit-429": run_no_limit,
    "kill-process": run_kill_process,
    "kill-worker": run_kill_worker,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=60)
    parser.add_argument("--server-rps", type=float, default=5.0)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--pg", help="PostgreSQL URL (admin) for the stores, else SQLite")
    parser.add_argument("--redis", help="Redis URL for the kill-worker scenario")
    parser.add_argument("--lease", default="10", help="job lease seconds for kill-worker")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    clean = scenario("clean", args, 0)
    results = [clean]
    results.append(scenario("concurrent", args, clean.tokens))
    results.append(scenario("no-limit-429", args, clean.tokens, rps=args.server_rps))
    results.append(scenario("kill-process", args, clean.tokens))
    if args.pg and args.redis:
        results.append(scenario("kill-worker", args, clean.tokens))
    load = os.getloadavg()
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
        return
    print(f"# {describe()}, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"# {args.pages} pages, one request per page\n")
    print("| " + " | ".join(Outcome.__dataclass_fields__) + " |")
    print("|" + "---|" * len(Outcome.__dataclass_fields__))
    for r in results:
        print("| " + " | ".join(str(v) for v in asdict(r).values()) + " |")


if __name__ == "__main__":
    main()
