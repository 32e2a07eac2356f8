"""CLI commands for provider Batch APIs: ``batch status``, ``collect``, ``cancel`` and ``list``,
plus ``submit_batch``, which ``extract --batch`` calls.

They parse options and print; the work is in ``decomposer.extraction.batch``, imported inside the
commands because it loads the provider SDKs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from decomposer.cli import common
from decomposer.cli.choices import BATCH_WAIT_S
from decomposer.core.errors import InputError

if TYPE_CHECKING:
    import httpx

    from decomposer.calls.runtime import RunSetup
    from decomposer.core.config import Settings
    from decomposer.extraction.batch import BatchInfo, BatchSubmission, CollectReport
    from decomposer.store import Store

batch_app = typer.Typer(
    help="Provider Batch APIs (half price, results within 24 h): status, collect, cancel, list.",
    no_args_is_help=True,
)
TargetArg = Annotated[
    str | None,
    typer.Argument(
        help="A run id (digits) or a provider batch id; default: every uncollected batch.",
        show_default=False,
    ),
]
WaitOpt = Annotated[
    bool, typer.Option("--wait", help="Poll with backoff until the batches have finished.")
]
TimeoutOpt = Annotated[
    float, typer.Option("--timeout", help="With --wait: give up waiting after this many seconds.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def register(app: typer.Typer) -> None:
    app.add_typer(batch_app, name="batch")


@asynccontextmanager
async def _http() -> AsyncIterator[httpx.AsyncClient]:
    import httpx

    async with httpx.AsyncClient(timeout=120.0, follow_redirects=True) as http:
        yield http


def submit_batch(
    settings: Settings, store: Store, setup: RunSetup, tool: str, pack_tokens: int
) -> BatchSubmission:
    """What ``extract --batch`` runs: submit, then say what happens next."""
    import asyncio

    from decomposer.extraction import batch

    async def go() -> BatchSubmission:
        async with _http() as http:
            return await batch.submit(
                store, settings, setup, tool, pack_tokens=pack_tokens, http=http
            )

    sub = asyncio.run(go())
    out = common.out()
    if sub.report is not None:
        out.print(f"{tool}: nothing to send — every request was answered from the cache")
        common.print_run(sub.report)
        return sub
    if not sub.batch_ids:
        out.print(
            f"{tool}: run {sub.run_id} has nothing new to send; {sub.held} jobs are held by "
            f"its batches — `decomposer batch status {sub.run_id}`"
        )
        return sub
    out.print(
        f"{tool}: run {sub.run_id} sent {sub.requests} requests in {len(sub.batch_ids)} "
        f"{setup.cfg.provider} batch(es): {', '.join(sub.batch_ids)}"
        + (f"; {sub.cached} answered from the cache" if sub.cached else "")
    )
    out.print(
        f"  check with `decomposer batch status {sub.run_id} --wait`, then "
        f"`decomposer batch collect {sub.run_id}`"
    )
    return sub


@batch_app.command("status")
def status_cmd(
    ctx: typer.Context,
    target: TargetArg = None,
    wait: WaitOpt = False,
    timeout: TimeoutOpt = BATCH_WAIT_S,
    as_json: JsonOpt = False,
) -> None:
    """Ask the provider how batches are doing (and store the answer)."""
    import asyncio

    from decomposer.extraction import batch

    if timeout <= 0:
        raise InputError("--timeout must be positive")
    backoff = batch.Backoff(deadline_s=timeout)

    async def go(store: Store) -> list[BatchInfo]:
        async with _http() as http:
            return await batch.status(
                store, common.env(ctx).settings, target, http=http, wait=wait, backoff=backoff
            )

    with common.env(ctx).store() as store:
        infos = asyncio.run(go(store))
    if as_json:
        common.print_json([i.as_dict() for i in infos])
        return
    _table(infos)


@batch_app.command("collect")
def collect_cmd(
    ctx: typer.Context,
    target: TargetArg = None,
    wait: WaitOpt = False,
    timeout: TimeoutOpt = BATCH_WAIT_S,
    as_json: common.DoneJsonOpt = False,
) -> None:
    """Store finished batches' answers; failed, expired or invalid items are queued again."""
    import asyncio

    from decomposer.extraction import batch

    if timeout <= 0:
        raise InputError("--timeout must be positive")
    backoff = batch.Backoff(deadline_s=timeout)

    async def go(store: Store) -> list[CollectReport]:
        async with _http() as http:
            return await batch.collect(
                store, common.env(ctx).settings, target, http=http, wait=wait, backoff=backoff
            )

    with common.env(ctx).store() as store:
        reports = asyncio.run(go(store))
    if as_json:
        common.print_json({"action": "batch collect", "batches": [_collected(r) for r in reports]})
        return
    out = common.out()
    if not reports:
        out.print("no batches to collect")
    for r in reports:
        if r.pending:
            out.print(
                f"batch {r.batch_id} (run {r.run_id}) is still {r.status}; "
                f"try again later or pass --wait"
            )
            continue
        why = ", ".join(f"{n} {kind}" for kind, n in sorted(r.reasons.items()))
        out.print(
            f"batch {r.batch_id} (run {r.run_id}, {r.status}): {r.succeeded} answers stored, "
            f"{r.requeued} queued again{f' ({why})' if why else ''} — "
            f"{r.input_tokens:,} in / {r.output_tokens:,} out tokens, ${r.cost_usd:.4f} "
            "at the batch price"
        )
        if r.report is not None:
            common.print_run(r.report)
        elif r.requeued:
            out.print(
                f"  finish them inline: `decomposer extract TOOL` with the run's provider and "
                f"model (see `decomposer jobs --run {r.run_id} --state queued`)"
            )


@batch_app.command("cancel")
def cancel_cmd(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="A run id (digits) or a provider batch id.")],
    as_json: JsonOpt = False,
) -> None:
    """Stop running batches; then `batch collect` keeps what finished and queues the rest."""
    import asyncio

    from decomposer.extraction import batch

    env = common.env(ctx)

    async def go(store: Store) -> list[BatchInfo]:
        async with _http() as http:
            return await batch.cancel(store, env.settings, target, http=http)

    with env.store() as store:
        infos = asyncio.run(go(store))
    if as_json:
        common.print_json({"action": "batch cancel", "batches": [i.as_dict() for i in infos]})
        return
    _table(infos)


@batch_app.command("list")
def list_cmd(
    ctx: typer.Context,
    target: TargetArg = None,
    as_json: JsonOpt = False,
    nl: common.NlOpt = False,
) -> None:
    """List stored batches (no network): status as last seen, requests, answers stored."""
    from decomposer.extraction import batch

    with common.env(ctx).store() as store, store.transaction() as session:
        infos = batch.list_batches(session, target)
    if common.print_rows([i.as_dict() for i in infos], as_json, nl):
        return
    _table(infos)


def _collected(r: CollectReport) -> dict[str, Any]:
    return {
        "batch_id": r.batch_id,
        "run_id": r.run_id,
        "status": r.status,
        "pending": r.pending,
        "stored": r.succeeded,
        "requeued": r.requeued,
        "reasons": dict(r.reasons),
        "input_tokens": r.input_tokens,
        "output_tokens": r.output_tokens,
        "cost_usd": r.cost_usd,
        "run": common.run_json(r.report) if r.report is not None else None,
    }


def _table(infos: list[BatchInfo]) -> None:
    from rich.table import Table

    table = Table(
        "batch",
        "run",
        "provider",
        "status",
        "requests",
        "stored",
        "requeued",
        "collected",
        box=None,
        pad_edge=False,
    )
    for i in infos:
        table.add_row(
            i.batch_id,
            str(i.run_id),
            i.provider,
            i.status,
            str(i.requests),
            str(i.succeeded),
            str(i.requeued),
            "yes" if i.collected else ("ready" if i.terminal else "no"),
        )
    common.out().print(table)
