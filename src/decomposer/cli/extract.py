"""CLI commands for extraction: ``extract`` (inline, ``--queue`` or ``--batch``), ``runs``,
``worker`` and ``jobs``.

The model caller, the SDKs and Celery are imported inside the commands that use them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from decomposer.cli import common
from decomposer.cli.choices import JOB_STATES, MAX_CONCURRENCY, RETRY_ATTEMPTS
from decomposer.core.errors import InputError, ProviderError
from decomposer.core.vocab import ROW_ID_MAX
from decomposer.ingest.chunks import DEFAULT_CHUNK_TOKENS

if TYPE_CHECKING:
    import httpx
    from rich.progress import Progress

    from decomposer.calls.runtime import RunSetup
    from decomposer.core.config import Settings
    from decomposer.extraction.run import RunProgress, RunReport
    from decomposer.store import Store

JsonOpt = common.JsonOpt


def extract_cmd(
    ctx: typer.Context,
    tool: Annotated[str, typer.Argument(help="Tool slug.")],
    provider: common.ProviderOpt = "mistral",
    model: common.ModelOpt = None,
    base_url: common.BaseUrlOpt = None,
    mode: common.ModeOpt = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            help="Pin the model calls in flight at once. Default: sized from --rps/--tpm "
            "(limit × observed latency, cut back on 429s), or 4 when no limit is known.",
        ),
    ] = None,
    max_concurrency: Annotated[
        int, typer.Option(help="Most model calls in flight when the number adapts.")
    ] = MAX_CONCURRENCY,
    pack_tokens: Annotated[
        int, typer.Option(help="Pack neighbouring small chunks into one call up to this size.")
    ] = DEFAULT_CHUNK_TOKENS,
    max_tokens: Annotated[int, typer.Option(help="Output token limit per call.")] = 4096,
    rps: common.RpsOpt = None,
    tpm: common.TpmOpt = None,
    prompt_version: Annotated[
        str | None, typer.Option(help="Prompt version under prompts/extract/ (default: newest).")
    ] = None,
    max_attempts: Annotated[
        int, typer.Option(help="Tries per call on 429/5xx/timeouts before the run fails.")
    ] = RETRY_ATTEMPTS,
    queue: Annotated[
        bool, typer.Option("--queue", help="Enqueue the jobs for `decomposer worker`s.")
    ] = False,
    batch: Annotated[
        bool,
        typer.Option(
            "--batch",
            help="Send the jobs through the provider's Batch API (half price, results within "
            "24 h); then `decomposer batch collect`.",
        ),
    ] = False,
    replay: common.ReplayOpt = None,
    refresh: Annotated[
        bool,
        typer.Option(
            "--refresh",
            "--no-cache",
            help="Ask the model again instead of answering from the cache (entries replaced).",
        ),
    ] = False,
    grow_max_tokens: Annotated[
        bool,
        typer.Option(help="Ask a cut-off answer again with double --max-tokens (up to 16384)."),
    ] = False,
    record: Annotated[
        Path | None,
        typer.Option(
            help="Also save the provider's answers to DIR/TOOL.json, for --replay DIR later "
            "(no keys or headers are written).",
        ),
    ] = None,
    as_json: common.DoneJsonOpt = False,
) -> None:
    """Extract capabilities from a tool's ingested documents through the model.

    Work is kept as durable jobs: running the same command again after a failure, Ctrl-C or a
    crash resumes the run without re-sending the requests that already finished.
    """
    import asyncio

    from decomposer.calls.caller import RetryPolicy
    from decomposer.calls.runtime import RunSetup, limits_for
    from decomposer.cli import batch as cli_batch
    from decomposer.providers.base import api_key, resolve
    from decomposer.providers.replay import RecordingTransport, ReplayTransport

    env = common.env(ctx)
    settings = env.settings
    if max_attempts < 1:
        raise InputError("--max-attempts must be at least 1")
    if concurrency is not None and concurrency < 1:
        raise InputError("--concurrency must be at least 1")
    if max_concurrency < 1:
        raise InputError("--max-concurrency must be at least 1")
    if batch and (queue or replay is not None):
        raise InputError("--batch cannot be combined with --queue or --replay")
    if record is not None and (batch or queue or replay is not None):
        raise InputError(
            "--record works only for inline runs, without --replay, --queue or --batch"
        )
    if batch and as_json:
        raise InputError("--json is not available with --batch", hint="see `batch list --json`")
    if queue:
        common.require("queue", "decomposer extract --queue")
    with env.store() as store:
        _check_tool(store, tool)
        cfg = resolve(settings, provider, model, mode, base_url, max_tokens)
        transport: httpx.AsyncBaseTransport | None = None
        if replay is not None:
            transport = ReplayTransport.from_path(replay)
        elif record is not None:
            import httpx

            if record.exists() and not record.is_dir():
                raise InputError(f"--record {record} is not a folder")
            transport = RecordingTransport(httpx.AsyncHTTPTransport(), record / f"{tool}.json")
        if replay is not None:
            key = "replay"
        elif queue:
            key = ""  # each worker reads its own key from its environment
        else:
            key = api_key(settings, cfg.provider)
        setup = RunSetup(
            cfg=cfg,
            key=key,
            prompt_version=prompt_version,
            limits=limits_for(settings, cfg.provider, rps, tpm),
            policy=RetryPolicy(attempts=max_attempts, grow_max_tokens=grow_max_tokens),
            refresh=refresh,
        )
        if batch:
            cli_batch.submit_batch(settings, store, setup, tool, pack_tokens)
            return
        if queue:
            _enqueue(settings, store, setup, tool, pack_tokens, as_json)
            return
        try:
            report = asyncio.run(
                _extract(
                    settings,
                    store,
                    setup,
                    tool,
                    (concurrency, max_concurrency),
                    pack_tokens,
                    transport,
                )
            )
        except ProviderError:
            if isinstance(transport, ReplayTransport) and transport.misses:
                raise InputError(
                    f"no recording in {replay} answers document {transport.misses[0]!r}",
                    hint=f"record it once with a key: `decomposer extract {tool} --record DIR`",
                ) from None
            raise
    common.print_run(report, as_json)


def _check_tool(store: Store, tool: str) -> None:
    """An unknown tool is the first thing to say, before keys or providers come up."""
    from decomposer.store.tools import get_tool

    with store.transaction() as session:
        get_tool(session, tool)


def _enqueue(
    settings: Settings, store: Store, setup: RunSetup, tool: str, pack: int, as_json: bool
) -> None:
    from decomposer.extraction import worker

    run_id, queued = worker.enqueue(settings, store, setup, tool, pack_tokens=pack)
    if as_json:
        common.print_json({"action": "extract", "tool": tool, "run_id": run_id, "queued": queued})
        return
    common.out().print(
        f"{tool}: run {run_id} queued {queued} jobs — start workers with `decomposer worker`; "
        f"watch with `decomposer jobs --run {run_id}`"
    )


async def _extract(
    settings: Settings,
    store: Store,
    setup: RunSetup,
    tool: str,
    concurrency: tuple[int | None, int],
    pack_tokens: int,
    transport: httpx.AsyncBaseTransport | None,
) -> RunReport:
    """``concurrency`` is (``--concurrency``, ``--max-concurrency``)."""
    import time

    from decomposer.extraction.concurrency import controller_for
    from decomposer.extraction.run import run_extraction
    from decomposer.extraction.task import model_caller

    pinned, most = concurrency
    controller = controller_for(
        time.monotonic,
        rps=setup.limits.rps,
        tpm=setup.limits.tpm,
        concurrency=pinned,
        max_concurrency=most,
    )
    async with model_caller(settings, store, setup, transport=transport) as caller:
        with _progress_bar() as (bar, task_for):

            def on_progress(p: RunProgress) -> None:
                bar.update(
                    task_for(p.total),
                    completed=p.done,
                    tokens=p.input_tokens + p.output_tokens,
                    cost=common.usd(p.cost_usd),
                    failed=p.failed,
                    flow=flow_text(p),
                )

            return await run_extraction(
                caller,
                tool,
                pack_tokens=pack_tokens,
                on_progress=on_progress,
                controller=controller,
            )


def flow_text(p: RunProgress) -> str:
    """Jobs in flight of those allowed, and requests/s achieved against the limit."""
    limit = f"/{p.rate_limit:.3g}" if p.rate_limit is not None else ""
    return f"{p.in_flight}/{p.allowed} in flight · {p.rate:.2f}{limit} req/s"


@contextmanager
def _progress_bar() -> Iterator[tuple[Progress, Callable[[int], Any]]]:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = common.progress(
        TextColumn("[bold]extracting"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(
            "jobs · {task.fields[failed]} failed · {task.fields[flow]} · "
            "{task.fields[tokens]:,} tokens · {task.fields[cost]}"
        ),
        TimeElapsedColumn(),
        TextColumn("· ETA"),
        TimeRemainingColumn(),
    )
    tasks: dict[str, Any] = {}

    def task_for(total: int) -> Any:
        if "t" not in tasks:
            tasks["t"] = bar.add_task(
                "extract", total=total, tokens=0, cost="$0.0000", failed=0, flow=""
            )
        return tasks["t"]

    with bar:
        yield bar, task_for


def runs_cmd(
    ctx: typer.Context,
    tool: Annotated[str | None, typer.Option(help="Only this tool's runs.")] = None,
    as_json: JsonOpt = False,
    nl: common.NlOpt = False,
) -> None:
    """List extraction runs with calls, tokens, cost and cache hits."""
    from rich.table import Table

    from decomposer.views.runs import list_runs

    with common.env(ctx).store() as store, store.transaction() as session:
        rows = list_runs(session, tool)
    if common.print_rows(rows, as_json, nl):
        return
    table = Table(
        "run",
        "tool",
        "status",
        "model",
        "calls",
        "hits",
        "tokens",
        "cost",
        "caps",
        box=None,
        pad_edge=False,
    )
    for r in rows:
        table.add_row(
            str(r.id),
            r.tool,
            r.status,
            r.model,
            str(r.calls),
            str(r.cache_hits),
            f"{r.input_tokens + r.output_tokens:,}",
            common.usd(r.cost_usd),
            str(r.capabilities),
        )
    common.out().print(table)


def worker_cmd(
    ctx: typer.Context,
    concurrency: Annotated[int, typer.Option(help="Jobs this worker runs at once.")] = 2,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
) -> None:
    """Run a Celery worker for jobs queued with `extract --queue` (needs DECOMPOSER_REDIS_URL).

    Start one or more on any host that shares the store (DECOMPOSER_DATABASE_URL, normally
    PostgreSQL) and the Redis broker; rate limits are then counted in Redis for all of them.
    """
    if concurrency < 1:
        raise InputError("--concurrency must be at least 1")
    common.require("queue", "decomposer worker")
    from decomposer.extraction.worker import broker_url, start_worker

    settings = common.env(ctx).settings
    broker_url(settings)
    start_worker(settings, concurrency, loglevel)


def jobs_cmd(
    ctx: typer.Context,
    tool: Annotated[str | None, typer.Option(help="Only this tool's jobs.")] = None,
    run: Annotated[
        int | None, typer.Option(help="Only this run's jobs.", min=1, max=ROW_ID_MAX)
    ] = None,
    state: Annotated[str | None, typer.Option(help=f"One of: {', '.join(JOB_STATES)}.")] = None,
    as_json: JsonOpt = False,
    stale: Annotated[
        bool,
        typer.Option("--requeue-stale", help="Queue again running jobs whose worker is gone."),
    ] = False,
    nl: common.NlOpt = False,
) -> None:
    """List extraction jobs: state, attempts, last error and which worker holds them."""
    from rich.table import Table

    from decomposer.core.clock import utcnow
    from decomposer.extraction.jobs import list_jobs, requeue_stale

    if stale:
        with common.env(ctx).store() as store:
            common.out().print(f"{requeue_stale(store, utcnow(), run)} stale job(s) queued again")
        return
    if state is not None and state not in JOB_STATES:
        raise InputError(f"unknown job state {state!r}", hint=f"use one of {', '.join(JOB_STATES)}")
    with common.env(ctx).store() as store, store.transaction() as session:
        rows = list_jobs(session, tool_slug=tool, run_id=run, state=state)
    if common.print_rows(rows, as_json, nl):
        return
    table = Table(
        "job",
        "run",
        "tool",
        "#",
        "chunks",
        "tokens",
        "state",
        "attempts",
        "worker",
        "last error",
        box=None,
        pad_edge=False,
    )
    for r in rows:
        table.add_row(
            str(r.id),
            str(r.run),
            r.tool,
            str(r.position),
            str(r.chunks),
            f"{r.tokens:,}",
            r.state,
            str(r.attempts),
            r.worker or "—",
            (r.last_error or "")[:60],
        )
    common.out().print(table)
