"""Extraction throughput against a rate-limited loopback fake provider (issue 5).

A fake chat-completions server (``tests/support/fakeprovider.py``, run by file path) runs as a
separate process on a free 127.0.0.1 port with a requests/second limit, a tokens/minute limit and a
log-normal latency; over the limits it answers 429 with ``Retry-After``. Against a fresh server
each, three scenarios extract the same synthetic chunks (one small Markdown page per chunk, one
request per chunk):

* ``decomposer``: ``run_extraction`` with the rate limiter (``Limits(rps=...)``), durable jobs,
  cache and call log in a temp SQLite store;
* ``sequential``: a plain Instructor loop, one request at a time (on a subset of the chunks,
  since it runs at 1 / latency requests per second);
* ``gather``: every request fired at once with ``asyncio.gather`` through the same Instructor
  client, no limiter, the OpenAI SDK's default retries (2, honouring ``Retry-After``).

Each scenario runs in its own child process so its peak RSS is its own. Reported: requests the
server received, successful and failed jobs, 429s the server sent, wall time of the request
phase, achieved requests/s (successful requests / wall time) and its fraction of the limit,
p50/p99 job latency (for ``decomposer``: the call as logged in ``llm_calls``, which includes
waiting for the limiter) and peak RSS.

The ``decomposer`` scenario runs once per ``--concurrency`` value: ``auto`` (adaptive, sized
from the limit and the observed latency, bounded by ``--max-concurrency``) or a pinned number,
so fixed-concurrency baselines share the table. ``--latency 4 --jitter 1`` makes the fake answer
in 4 s ± 1 s (uniform) instead of the log-normal ``--latency-ms``/``--latency-p99-ms``. The
target line checks the first run's server-side rate from first to last admitted request.

    .venv/bin/python scripts/bench_extract.py [--chunks 2000] [--rps 50] [--concurrency auto]
    .venv/bin/python scripts/bench_extract.py --scenario decomposer --chunks 200 --rps 5 \
        --latency 4 --jitter 1 --concurrency auto,4,32 --target 0.9
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import httpx

from machine import describe

SCENARIOS = ("decomposer", "sequential", "gather")
FAKE_PROVIDER = Path(__file__).resolve().parents[1] / "tests" / "support" / "fakeprovider.py"
TOOL = "Bench"
SLUG = "bench"
WORDS = (
    "streaming",
    "batching",
    "caching",
    "routing",
    "tracing",
    "tuning",
    "pricing",
    "logging",
    "scaling",
    "sharding",
    "embedding",
    "ranking",
    "retrieval",
    "moderation",
    "transcription",
    "translation",
)


@dataclass
class Outcome:
    """What one scenario measured; the child prints it as JSON, the parent tabulates it."""

    scenario: str
    jobs: int
    requests: int = 0
    ok: int = 0
    failed: int = 0
    throttled: int = 0
    wall_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    peak_rss_mib: float = 0.0
    server_rps: float | None = None
    peak_in_flight: int = 0
    cpu_s: float = 0.0
    notes: list[str] = field(default_factory=list)


# --- synthetic input -------------------------------------------------------------------------


def write_docs(folder: Path, count: int) -> None:
    """``count`` small Markdown pages of about 150 estimated tokens each, all different."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        word = WORDS[i % len(WORDS)]
        other = WORDS[(i * 7 + 3) % len(WORDS)]
        body = " ".join(
            [
                f"Feature {i} adds {word} to every request sent through the platform API.",
                f"Teams enable it per project and combine it with {other} when they need both.",
                f"The {word} option is available on all paid plans and in the free tier.",
                "Limits are documented per model, and usage is reported in the dashboard.",
                f"Requests that use {word} are billed at the standard rate for the model.",
                f"See the {other} guide for examples in Python, TypeScript and with curl.",
                "Errors are returned as JSON objects with a code, a message and a request id.",
                f"Version {i % 9 + 1} of the endpoint keeps the previous behaviour by default.",
            ]
        )
        (folder / f"page-{i:05}.md").write_text(f"# Feature {i}: {word}\n\n{body}\n", "utf-8")


def contexts_for(folder: Path, limit: int) -> list[dict[str, Any]]:
    """The template/validation contexts decomposer would send, one chunk per request."""
    from decomposer.extraction.run import context_for
    from decomposer.ingest.chunks import chunk_document
    from decomposer.ingest.sources import load_sources
    from decomposer.store.models import Chunk as ChunkRow

    docs, _ = load_sources([str(folder)])
    out: list[dict[str, Any]] = []
    for doc in docs[:limit]:
        for c in chunk_document(f"{SLUG}:{doc.source}", doc.text):
            row = ChunkRow(id=c.id, heading=c.heading, text=c.text, tokens=c.tokens)
            out.append(context_for(TOOL, [(row, doc.source)]))
    return out[:limit]


# --- the fake provider, in its own process ---------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FakeServer:
    """The test kit's fake provider on a free loopback port, stopped on exit."""

    def __init__(self, args: argparse.Namespace, log_path: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        command = [
            sys.executable,
            str(FAKE_PROVIDER),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--rps",
            str(args.rps),
            "--tpm",
            str(args.tpm),
            "--latency-ms",
            str(args.latency_ms),
            "--latency-p99-ms",
            str(args.latency_p99_ms),
        ]
        if args.jitter is not None:
            command += ["--latency-ms", str(args.latency * 1000), "--jitter-ms"]
            command.append(str(args.jitter * 1000))
        self.log_path = log_path
        self._log = log_path.open("w")
        self.proc = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)

    def __enter__(self) -> FakeServer:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                httpx.get(f"{self.base}/stats", timeout=0.5).raise_for_status()
                return self
            except httpx.HTTPError:
                time.sleep(0.05)
        self.stop()
        log = self.log_path.read_text(errors="replace")[-2000:]
        raise SystemExit(f"the fake provider did not start on {self.base}:\n{log}")

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def stats(self) -> dict[str, Any]:
        response = httpx.get(f"{self.base}/stats", timeout=10)
        response.raise_for_status()
        payload: dict[str, Any] = response.json()
        return payload

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()


def server_rate(accepted_at: Sequence[float]) -> float | None:
    """Requests/s the server admitted, from its first to its last accepted request."""
    stamps = sorted(accepted_at)
    if len(stamps) < 2 or stamps[-1] <= stamps[0]:
        return None
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


# --- scenarios (each runs in a child process) ------------------------------------------------


async def run_decomposer(
    args: argparse.Namespace, base: str, home: Path, docs: Path, out: Outcome
) -> None:
    from sqlalchemy import func, select

    from decomposer.calls.caller import RetryPolicy
    from decomposer.calls.runtime import RunSetup
    from decomposer.core.config import Settings
    from decomposer.core.errors import ProviderError
    from decomposer.extraction import jobs
    from decomposer.extraction.concurrency import controller_for
    from decomposer.extraction.run import RunProgress, run_extraction
    from decomposer.extraction.task import model_caller
    from decomposer.ingest.documents import ingest
    from decomposer.providers.base import ProviderConfig
    from decomposer.providers.ratelimit import Limits
    from decomposer.store import open_store
    from decomposer.store.models import Job, LLMCall
    from decomposer.store.tools import add_tool

    # An explicit environment: a DECOMPOSER_REDIS_URL or database URL in the caller's
    # environment must not change what is measured.
    settings = Settings.from_env({"DECOMPOSER_HOME": str(home)})
    store = open_store(settings.database_url)
    with store.transaction() as session:
        add_tool(session, TOOL, now=datetime.now(UTC))
    ingest(store, SLUG, [str(docs)], now=datetime.now(UTC))
    setup = RunSetup(
        cfg=ProviderConfig("openai-compatible", "fake", "json_schema", base_url=f"{base}/v1"),
        key="x",
        limits=Limits(rps=args.rps),
        policy=RetryPolicy(),
    )
    stamps: list[float] = []

    def on_progress(_progress: RunProgress) -> None:
        stamps.append(time.perf_counter())

    controller = controller_for(
        time.monotonic,
        rps=args.rps,
        tpm=None,
        concurrency=None if args.child_concurrency == "auto" else int(args.child_concurrency),
        max_concurrency=args.max_concurrency,
    )
    try:
        async with model_caller(settings, store, setup) as caller:
            await run_extraction(
                caller,
                SLUG,
                pack_tokens=1,
                on_progress=on_progress,
                controller=controller,
            )
    except ProviderError as exc:
        out.notes.append(f"run stopped: {exc.message}")
    # The first progress call comes just before the workers start, the last after the last
    # job: the request phase, without planning and without writing the results.
    out.wall_s = stamps[-1] - stamps[0] if len(stamps) > 1 else 0.0
    with store.transaction() as session:
        state = dict(session.execute(select(Job.state, func.count()).group_by(Job.state)).all())
        calls = session.execute(
            select(LLMCall.latency_ms, LLMCall.attempts, LLMCall.outcome).where(~LLMCall.cache_hit)
        ).all()
    store.dispose()
    out.ok = state.get(jobs.DONE, 0)
    out.failed = sum(n for s, n in state.items() if s != jobs.DONE)
    out.latencies_ms = [float(c.latency_ms) for c in calls if c.outcome != "error"]
    retried = sum(c.attempts > 1 for c in calls)
    out.notes.append(
        f"{len(calls)} llm_calls rows, {retried} with more than one attempt; job states "
        f"{state}; concurrency limit at the end {controller.limit}, cuts {controller.cuts}"
    )


def instructor_client(base: str, max_retries: int) -> Any:
    import instructor
    import openai

    sdk = openai.AsyncOpenAI(
        base_url=f"{base}/v1", api_key="x", max_retries=max_retries, timeout=120.0
    )
    return instructor.from_openai(sdk, mode=instructor.Mode.JSON_SCHEMA)


async def one_call(client: Any, context: dict[str, Any], latencies: list[float]) -> bool:
    """One Instructor request as a user would write it; ``True`` when it validated."""
    from openai.types.chat import ChatCompletionMessageParam

    from decomposer.calls.caller import RetryPolicy
    from decomposer.calls.prompts import load_prompt
    from decomposer.extraction.schema import Extraction

    messages = cast("list[ChatCompletionMessageParam]", load_prompt().render(context))
    started = time.perf_counter()
    try:
        await client.create(
            response_model=Extraction,
            messages=messages,
            context=context,
            model="fake",
            temperature=0.0,
            max_tokens=4096,
            max_retries=RetryPolicy().reasks,
        )
    except Exception:
        return False
    latencies.append((time.perf_counter() - started) * 1000)
    return True


async def run_sequential(
    args: argparse.Namespace, base: str, contexts: list[dict[str, Any]], out: Outcome
) -> None:
    client = instructor_client(base, max_retries=0)
    started = time.perf_counter()
    for context in contexts:
        if await one_call(client, context, out.latencies_ms):
            out.ok += 1
        else:
            out.failed += 1
    out.wall_s = time.perf_counter() - started


async def run_gather(
    args: argparse.Namespace, base: str, contexts: list[dict[str, Any]], out: Outcome
) -> None:
    client = instructor_client(base, max_retries=2)
    started = time.perf_counter()
    results = await asyncio.gather(*(one_call(client, c, out.latencies_ms) for c in contexts))
    out.wall_s = time.perf_counter() - started
    out.ok = sum(results)
    out.failed = len(results) - out.ok
    out.notes.append("OpenAI SDK retries: 2 per request, honouring Retry-After / retry-after-ms")


def child(args: argparse.Namespace) -> None:
    """Run one scenario against its own fresh fake provider; print an ``Outcome`` as JSON."""
    # Instructor logs every failed API call at ERROR; thousands of 429s would flood stderr.
    logging.getLogger("instructor").setLevel(logging.CRITICAL)
    name = args.child
    jobs = args.chunks if name != "sequential" else min(args.baseline_subset, args.chunks)
    if name == "gather" and args.gather_subset:
        jobs = min(args.gather_subset, args.chunks)
    out = Outcome(scenario=name, jobs=jobs)
    deadline = args.timeout
    with tempfile.TemporaryDirectory(prefix="bench-extract-") as tmp:
        root = Path(tmp)
        docs = root / "docs"
        write_docs(docs, jobs)
        contexts = [] if name == "decomposer" else contexts_for(docs, jobs)
        with FakeServer(args, root / "fake.log") as server:
            work: Callable[[], Any]
            if name == "decomposer":

                def work() -> Any:
                    return run_decomposer(args, server.base, root / "home", docs, out)

            elif name == "sequential":

                def work() -> Any:
                    return run_sequential(args, server.base, contexts, out)

            else:

                def work() -> Any:
                    return run_gather(args, server.base, contexts, out)

            async def bounded() -> None:
                await asyncio.wait_for(work(), timeout=deadline)

            try:
                asyncio.run(bounded())
            except TimeoutError:
                out.notes.append(f"stopped after the {deadline:.0f} s timeout")
            stats = server.stats()
    out.requests = int(stats["requests"])
    out.throttled = int(stats["throttled"])
    out.server_rps = server_rate(stats["accepted_at"])
    out.peak_in_flight = int(stats.get("peak_in_flight", 0))
    if int(stats["ok"]) != out.ok:
        out.notes.append(f"server answered {stats['ok']} requests with 200")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out.peak_rss_mib = usage.ru_maxrss / 1024
    out.cpu_s = usage.ru_utime + usage.ru_stime
    print(json.dumps(asdict(out)))


# --- the parent: run the children, print the table -------------------------------------------


def latency(args: argparse.Namespace) -> str:
    if args.jitter is not None:
        return f"{args.latency:g} s ± {args.jitter:g} s (uniform)"
    return f"median {args.latency_ms:g} ms, p99 {args.latency_p99_ms:g} ms (log-normal)"


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile; ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def run_child(name: str, argv: list[str], timeout: float, concurrency: str = "auto") -> Outcome:
    command = [sys.executable, str(Path(__file__).resolve()), *argv, "--child", name]
    command += ["--child-concurrency", concurrency]
    try:
        done = subprocess.run(
            command, stdout=subprocess.PIPE, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return Outcome(scenario=name, jobs=0, notes=[f"child killed after {timeout:.0f} s"])
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return Outcome(scenario=name, jobs=0, notes=[f"child exited with {done.returncode}"])
    return Outcome(**json.loads(lines[-1]))


def row(out: Outcome, rps: float) -> str:
    achieved = out.ok / out.wall_s if out.wall_s else 0.0
    p50, p99 = percentile(out.latencies_ms, 50), percentile(out.latencies_ms, 99)
    label = out.scenario
    if not out.scenario.startswith("decomposer"):
        label += f" ({out.jobs} chunks)"
    server = out.server_rps or 0.0
    cells = [
        label,
        f"{out.requests:,}",
        f"{out.ok:,}",
        f"{out.failed:,}",
        f"{out.throttled:,}",
        f"{out.wall_s:.1f}",
        f"{achieved:.2f}",
        f"{achieved / rps:.3f}",
        f"{server / rps:.3f}",
        f"{out.peak_in_flight}",
        f"{p50:.0f}" if p50 is not None else "–",
        f"{p99:.0f}" if p99 is not None else "–",
        f"{out.peak_rss_mib:.0f}",
        f"{out.cpu_s * 1000 / out.requests:.0f}" if out.requests else "–",
    ]
    return "| " + " | ".join(cells) + " |"


def parent(args: argparse.Namespace, argv: list[str]) -> None:
    names = SCENARIOS if args.scenario == "all" else (args.scenario,)
    print(f"machine: {describe()}")
    print(
        f"fake provider: {args.rps:g} requests/s, {args.tpm:,} tokens/min, latency {latency(args)}"
        f"; {args.chunks:,} chunks, one request each; decomposer concurrency {args.concurrency}"
        f" (auto: --max-concurrency {args.max_concurrency})\n",
        flush=True,
    )
    print(f"load average before: {os.getloadavg()}", flush=True)
    results = []
    for name in names:
        if name == "decomposer":
            for value in args.concurrency.split(","):
                out = run_child(name, argv, args.timeout + 120, value)
                out.scenario = f"decomposer ({value})"
                results.append(out)
        else:
            results.append(run_child(name, argv, args.timeout + 120))
    print(f"load average after: {os.getloadavg()}\n", flush=True)
    header = (
        "scenario",
        "requests",
        "ok",
        "failed",
        "429s",
        "wall s",
        "achieved rps",
        "fraction of limit",
        "first→last request / limit",
        "peak in flight",
        "p50 ms",
        "p99 ms",
        "peak RSS MiB",
        "child CPU ms/request (with set-up)",
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for out in results:
        print(row(out, args.rps))
    print()
    for out in results:
        rate = f"{out.server_rps:.2f}/s" if out.server_rps else "–"
        notes = "; ".join(out.notes) or "–"
        print(f"- {out.scenario}: server-side admitted rate {rate}; {notes}")
    if args.scenario in ("all", "decomposer"):
        mine = results[0]
        fraction = (mine.server_rps or 0.0) / args.rps
        met = fraction >= args.target and mine.failed == 0 and mine.ok == mine.jobs
        print(
            f"\ntarget for {mine.scenario} (≥ {args.target:g} of the limit from first to last "
            f"request, zero failed jobs): {fraction:.3f}, {'met' if met else 'NOT met'}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chunks", type=int, default=2000)
    parser.add_argument("--rps", type=float, default=50.0)
    parser.add_argument("--tpm", type=int, default=10_000_000)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--latency-p99-ms", type=float, default=800.0)
    parser.add_argument(
        "--concurrency",
        default="auto",
        help="comma-separated decomposer runs: auto (adaptive) or a pinned number, e.g. auto,4,32",
    )
    parser.add_argument("--max-concurrency", type=int, default=64)
    parser.add_argument("--latency", type=float, help="latency in seconds (with --jitter)")
    parser.add_argument("--jitter", type=float, help="uniform latency ± this many seconds")
    parser.add_argument("--target", type=float, default=0.95, help="fraction of the limit")
    parser.add_argument("--child-concurrency", default="auto", help=argparse.SUPPRESS)
    parser.add_argument(
        "--baseline-subset",
        type=int,
        default=200,
        help="chunks for the sequential baseline (it runs at about 1/latency requests/s)",
    )
    parser.add_argument(
        "--gather-subset",
        type=int,
        default=500,
        help="chunks for the gather baseline (0: all; 2,000 at once did not finish in 10 min)",
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per scenario")
    parser.add_argument("--scenario", choices=("all", *SCENARIOS), default="all")
    parser.add_argument("--child", choices=SCENARIOS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    values = args.concurrency.split(",")
    if any(v != "auto" and (not v.isdigit() or int(v) < 1) for v in values):
        parser.error("--concurrency takes auto or whole numbers of at least 1, comma-separated")
    if args.chunks < 1 or args.rps <= 0:
        parser.error("--chunks must be at least 1, --rps above 0")
    if (args.latency is None) != (args.jitter is None):
        parser.error("--latency and --jitter go together")
    if args.child:
        child(args)
        return
    parent(args, sys.argv[1:])


if __name__ == "__main__":
    main()
