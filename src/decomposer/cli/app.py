"""The ``decomposer`` command: a thin shell over the library; errors become one line and exit 1."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import click
import httpx
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from decomposer.calls.caller import RetryPolicy
from decomposer.calls.runtime import RunSetup, limits_for
from decomposer.core.clock import utcnow
from decomposer.core.config import Settings
from decomposer.core.errors import DecomposerError, InputError
from decomposer.core.text import slugify
from decomposer.core.vocab import STATUSES, TOOL_TYPES
from decomposer.extraction.jobs import STATES, list_jobs, requeue_stale
from decomposer.extraction.run import RunProgress, RunReport, run_extraction
from decomposer.extraction.task import model_caller
from decomposer.ingest.chunks import DEFAULT_CHUNK_TOKENS
from decomposer.ingest.documents import ingest
from decomposer.providers.base import PROVIDERS, api_key, resolve
from decomposer.providers.replay import ReplayTransport
from decomposer.store import Store, open_store
from decomposer.store.tools import add_tool, find_tool, list_tools
from decomposer.views.capabilities import list_capabilities
from decomposer.views.runs import list_runs

INTERRUPTED = 130
"""Exit code after Ctrl-C (typer turns KeyboardInterrupt into this code)."""

app = typer.Typer(
    help="Turn AI vendors' documentation into evidence-backed capability records.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
tool_app = typer.Typer(
    help="Manage the tools (products) whose docs are ingested.", no_args_is_help=True
)
app.add_typer(tool_app, name="tool")


@dataclass(frozen=True)
class Env:
    settings: Settings

    @contextmanager
    def store(self) -> Iterator[Store]:
        store = open_store(self.settings.database_url)
        try:
            yield store
        finally:
            store.dispose()


def _env(ctx: typer.Context) -> Env:
    obj = ctx.find_root().obj
    assert isinstance(obj, Env)
    return obj


def _out() -> Console:
    """Stdout console; wide when piped so summaries and tables are not wrapped at 80 columns."""
    console = Console(highlight=False)
    return console if console.is_terminal else Console(highlight=False, width=160)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


@app.callback()
def _root(
    ctx: typer.Context,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every model call.")] = False,
) -> None:
    """decomposer: ingest docs, extract capabilities, review and compare them."""
    if verbose:
        logging.getLogger("decomposer").setLevel(logging.INFO)


@tool_app.command("add")
def tool_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Display name, e.g. 'Mistral API'.")],
    slug: Annotated[str | None, typer.Option(help="Lowercase-hyphenated id; from NAME.")] = None,
    type: Annotated[
        str | None, typer.Option("--type", help=f"One of: {', '.join(TOOL_TYPES)}.")
    ] = None,
    vendor: Annotated[str | None, typer.Option(help="Who makes it.")] = None,
    homepage: Annotated[str | None, typer.Option(help="Product or docs URL.")] = None,
    exist_ok: Annotated[
        bool, typer.Option("--exist-ok", help="Succeed quietly if the tool already exists.")
    ] = False,
) -> None:
    """Register a tool so its docs can be ingested."""
    with _env(ctx).store() as store, store.transaction() as session:
        if exist_ok and (found := find_tool(session, slug or slugify(name))) is not None:
            _out().print(f"tool [bold]{found.slug}[/] already exists")
            return
        tool = add_tool(
            session, name, now=utcnow(), slug=slug, type=type, vendor=vendor, homepage=homepage
        )
        _out().print(f"added tool [bold]{tool.slug}[/] ({tool.name})")


@app.command("tools")
def tools_cmd(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List tools with their document and capability counts."""
    with _env(ctx).store() as store, store.transaction() as session:
        rows = list_tools(session)
    if as_json:
        _print_json(rows)
        return
    table = Table("slug", "name", "type", "documents", "capabilities", box=None, pad_edge=False)
    for r in rows:
        table.add_row(
            str(r["slug"]),
            str(r["name"]),
            str(r["type"] or "—"),
            str(r["documents"]),
            str(r["capabilities"]),
        )
    _out().print(table)


@app.command("ingest")
def ingest_cmd(
    ctx: typer.Context,
    tool: Annotated[str, typer.Argument(help="Tool slug.")],
    sources: Annotated[list[str], typer.Argument(help="Files, folders or http(s) URLs.")],
    chunk_tokens: Annotated[
        int, typer.Option(help="Token budget per chunk (one model call each).")
    ] = DEFAULT_CHUNK_TOKENS,
) -> None:
    """Load documents for a tool; unchanged documents are skipped, changed ones re-chunked."""
    out = _out()
    with _env(ctx).store() as store:
        report = ingest(store, tool, sources, now=utcnow(), budget=chunk_tokens)
    for note in report.notes:
        out.print(f"note: {note}")
    _print_changes(
        out,
        tool,
        [
            ("added", report.added),
            ("updated", report.updated),
            ("unchanged (no-op)", report.unchanged),
        ],
        tail=f"; {report.chunks_written} chunks written",
    )


def _print_changes(
    out: Console, subject: str, groups: Sequence[tuple[str, Sequence[str]]], tail: str = ""
) -> None:
    """Each item under its label, then one line of counts (ingest, catalogue import)."""
    for label, items in groups:
        for item in items:
            out.print(f"{label}: {item}")
    counts = ", ".join(f"{len(items)} {label.split(' ')[0]}" for label, items in groups)
    out.print(f"{subject}: {counts}{tail}")


@app.command("extract")
def extract_cmd(
    ctx: typer.Context,
    tool: Annotated[str, typer.Argument(help="Tool slug.")],
    provider: Annotated[str, typer.Option(help=f"One of: {', '.join(PROVIDERS)}.")] = "mistral",
    model: Annotated[str | None, typer.Option(help="Model name; a per-provider default.")] = None,
    base_url: Annotated[
        str | None, typer.Option(help="Endpoint for openai-compatible servers (vLLM, Ollama).")
    ] = None,
    mode: Annotated[str | None, typer.Option(help="json_schema (default) or tools.")] = None,
    concurrency: Annotated[int, typer.Option(help="Model calls in flight at once.")] = 4,
    pack_tokens: Annotated[
        int, typer.Option(help="Pack neighbouring small chunks into one call up to this size.")
    ] = DEFAULT_CHUNK_TOKENS,
    max_tokens: Annotated[int, typer.Option(help="Output token limit per call.")] = 4096,
    rps: Annotated[
        float | None, typer.Option(help="Requests/second limit for this provider key.")
    ] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens/minute limit for this key.")] = None,
    prompt_version: Annotated[
        str | None, typer.Option(help="Prompt version under prompts/extract/ (default: newest).")
    ] = None,
    max_attempts: Annotated[
        int, typer.Option(help="Tries per call on 429/5xx/timeouts before the run fails.")
    ] = RetryPolicy.attempts,
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
    replay: Annotated[
        Path | None,
        typer.Option(
            help="Answer from recorded responses (file or folder) instead of the network."
        ),
    ] = None,
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
) -> None:
    """Extract capabilities from a tool's ingested documents through the model.

    Work is kept as durable jobs: running the same command again after a failure, Ctrl-C or a
    crash resumes the run without re-sending the requests that already finished.
    """
    env = _env(ctx)
    settings = env.settings
    if max_attempts < 1:
        raise InputError("--max-attempts must be at least 1")
    if batch and (queue or replay is not None):
        raise InputError("--batch cannot be combined with --queue or --replay")
    cfg = resolve(settings, provider, model, mode, base_url, max_tokens)
    transport = ReplayTransport.from_path(replay) if replay is not None else None
    if transport is not None:
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
    with env.store() as store:
        if batch:
            cli_batch.submit_batch(settings, store, setup, tool, pack_tokens)
            return
        if queue:
            _enqueue(settings, store, setup, tool, pack_tokens)
            return
        report = asyncio.run(
            _extract(settings, store, setup, tool, concurrency, pack_tokens, transport)
        )
    _print_run(report)


def _enqueue(settings: Settings, store: Store, setup: RunSetup, tool: str, pack: int) -> None:
    from decomposer.extraction import worker

    run_id, queued = worker.enqueue(settings, store, setup, tool, pack_tokens=pack)
    _out().print(
        f"{tool}: run {run_id} queued {queued} jobs — start workers with `decomposer worker`; "
        f"watch with `decomposer jobs --run {run_id}`"
    )


async def _extract(
    settings: Settings,
    store: Store,
    setup: RunSetup,
    tool: str,
    concurrency: int,
    pack_tokens: int,
    transport: httpx.AsyncBaseTransport | None,
) -> RunReport:
    async with model_caller(settings, store, setup, transport=transport) as caller:
        with _progress_bar() as (bar, task_for):

            def on_progress(p: RunProgress) -> None:
                bar.update(
                    task_for(p.total),
                    completed=p.done,
                    tokens=p.input_tokens + p.output_tokens,
                    cost=p.cost_usd,
                    failed=p.failed,
                )

            return await run_extraction(
                caller,
                tool,
                concurrency=concurrency,
                pack_tokens=pack_tokens,
                on_progress=on_progress,
            )


@contextmanager
def _progress_bar() -> Iterator[tuple[Progress, Any]]:
    console = Console(stderr=True)
    bar = Progress(
        TextColumn("[bold]extracting"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(
            "jobs · {task.fields[failed]} failed · {task.fields[tokens]:,} tokens · "
            "${task.fields[cost]:.4f}"
        ),
        TimeElapsedColumn(),
        TextColumn("· ETA"),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
    )
    tasks: dict[str, Any] = {}

    def task_for(total: int) -> Any:
        if "t" not in tasks:
            tasks["t"] = bar.add_task("extract", total=total, tokens=0, cost=0.0, failed=0)
        return tasks["t"]

    with bar:
        yield bar, task_for


def _print_run(report: RunReport) -> None:
    p = report.progress
    out = _out()
    out.print(
        f"[bold]{report.tool}[/]: run {report.run_id} succeeded — {p.chunks} chunks in "
        f"{p.total} requests: {p.calls} calls, {p.cache_hits} cache hits, {p.input_tokens:,} in / "
        f"{p.output_tokens:,} out tokens, ${p.cost_usd:.4f}"
    )
    c = report.changes
    out.print(
        f"  {report.capabilities} capabilities: {c.created} new, {c.refreshed} updated, "
        f"{c.proposed} changes proposed for review, {c.reappeared} back after vanishing, "
        f"{c.ungrounded} ungrounded"
    )
    if c.vanished:
        out.print(f"  note: {c.vanished} capabilities were not found again and are now vanished")


@app.command("runs")
def runs_cmd(
    ctx: typer.Context,
    tool: Annotated[str | None, typer.Option(help="Only this tool's runs.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List extraction runs with calls, tokens, cost and cache hits."""
    with _env(ctx).store() as store, store.transaction() as session:
        rows = list_runs(session, tool)
    if as_json:
        _print_json(rows)
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
            str(r["id"]),
            r["tool"],
            r["status"],
            r["model"],
            str(r["calls"]),
            str(r["cache_hits"]),
            f"{r['input_tokens'] + r['output_tokens']:,}",
            f"${r['cost_usd']:.4f}",
            str(r["capabilities"]),
        )
    _out().print(table)


@app.command("worker")
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
    from decomposer.extraction.worker import broker_url, start_worker

    settings = _env(ctx).settings
    broker_url(settings)
    start_worker(settings, concurrency, loglevel)


@app.command("jobs")
def jobs_cmd(
    ctx: typer.Context,
    tool: Annotated[str | None, typer.Option(help="Only this tool's jobs.")] = None,
    run: Annotated[int | None, typer.Option(help="Only this run's jobs.")] = None,
    state: Annotated[str | None, typer.Option(help=f"One of: {', '.join(STATES)}.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    stale: Annotated[
        bool,
        typer.Option("--requeue-stale", help="Queue again running jobs whose worker is gone."),
    ] = False,
) -> None:
    """List extraction jobs: state, attempts, last error and which worker holds them."""
    if state is not None and state not in STATES:
        raise InputError(f"unknown job state {state!r}", hint=f"use one of {', '.join(STATES)}")
    if stale:
        with _env(ctx).store() as store:
            _out().print(f"{requeue_stale(store, utcnow(), run)} stale job(s) queued again")
        return
    with _env(ctx).store() as store, store.transaction() as session:
        rows = list_jobs(session, tool_slug=tool, run_id=run, state=state)
    if as_json:
        _print_json(rows)
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
            str(r["id"]),
            str(r["run"]),
            r["tool"],
            str(r["position"]),
            str(r["chunks"]),
            f"{r['tokens']:,}",
            r["state"],
            str(r["attempts"]),
            r["worker"] or "—",
            (r["last_error"] or "")[:60],
        )
    _out().print(table)


@app.command("capabilities")
def capabilities_cmd(
    ctx: typer.Context,
    tool: Annotated[str, typer.Argument(help="Tool slug.")],
    status: Annotated[str | None, typer.Option(help=f"One of: {', '.join(STATUSES)}.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show a tool's capability records with their evidence."""
    with _env(ctx).store() as store, store.transaction() as session:
        rows = list_capabilities(session, tool, status)
    if as_json:
        _print_json(rows)
        return
    out = _out()
    if not rows:
        out.print(f"{tool}: no capabilities" + (f" with status {status}" if status else ""))
        return
    for cap in rows:
        out.print(
            f"[bold]{cap['name']}[/]  [dim]{cap['category']} · {cap['status']} · {cap['id']}[/]",
            markup=True,
        )
        out.print(cap["description"], markup=False)
        out.print(f"Unique: {cap['unique']}", markup=False)
        out.print(f"vs alternatives: {cap['vs_alternatives']}", markup=False)
        for ev in cap["evidence"]:
            where = f"{ev['document']}:{ev['start']}-{ev['end']}" if ev["grounded"] else "NOT FOUND"
            out.print(f'  > "{ev["quote"]}" ({where})', markup=False, style="dim")
        out.print()


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = Settings.from_env()
    except DecomposerError as exc:
        _fail(str(exc))
        return 1
    _configure_logging(settings.debug)
    command = typer.main.get_command(app)
    try:
        result = command.main(
            args=list(argv) if argv is not None else None,
            prog_name="decomposer",
            standalone_mode=False,
            obj=Env(settings),
        )
    except DecomposerError as exc:
        if settings.debug:
            raise
        _fail(_scrub(str(exc), settings))
        return 1
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        _fail("interrupted")
        return INTERRUPTED
    code = int(result) if isinstance(result, int) else 0
    if code == INTERRUPTED:
        _fail("interrupted")
    return code


def _fail(message: str) -> None:
    sys.stderr.write(f"error: {message}\n")


def _scrub(text: str, settings: Settings) -> str:
    for secret in settings.secrets():
        text = text.replace(secret, "***")
    return text


def _configure_logging(debug: bool) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not debug:
        logging.getLogger("instructor").setLevel(logging.CRITICAL)
        logging.getLogger("httpx").setLevel(logging.WARNING)


from decomposer.cli import batch as cli_batch  # noqa: E402
from decomposer.cli import pages as cli_pages  # noqa: E402
from decomposer.cli import review as cli_review  # noqa: E402

cli_pages.register(app, tool_app)
cli_review.register(app)
cli_batch.register(app)
from decomposer.cli import match as cli_match  # noqa: E402

cli_match.register(app)
