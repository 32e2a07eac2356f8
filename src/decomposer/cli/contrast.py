"""CLI commands for contrast lines: ``contrast`` (write checked "vs alternatives" lines where
their inputs changed) and ``lines list|show|approve|reject|edit`` (review them)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from decomposer.cli import common
from decomposer.cli.choices import RETRY_ATTEMPTS
from decomposer.cli.review import NoteOpt, ReviewerOpt, reviewer_name
from decomposer.core.errors import InputError, ProviderError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from decomposer.calls.caller import ModelCaller
    from decomposer.calls.runtime import RunSetup
    from decomposer.contrast.batch import BatchRound
    from decomposer.contrast.lines import LineView
    from decomposer.contrast.run import ContrastReport, Planned
    from decomposer.contrast.task import Contrast
    from decomposer.core.config import Settings
    from decomposer.store import Store

JsonOpt = common.JsonOpt
lines_app = typer.Typer(
    help="Review model-written 'vs alternatives' lines (from `decomposer contrast`).",
    no_args_is_help=True,
)
LineArg = Annotated[int, typer.Argument(help="Contrast line id (see `decomposer lines list`).")]


def register(app: typer.Typer) -> None:
    app.command("contrast")(contrast_cmd)
    app.add_typer(lines_app, name="lines")


def contrast_cmd(
    ctx: typer.Context,
    tools: Annotated[
        list[str] | None, typer.Argument(help="Tool slugs.", show_default=False)
    ] = None,
    all_tools: Annotated[bool, typer.Option("--all", help="Every tool in the store.")] = False,
    provider: common.ProviderOpt = "mistral",
    model: common.ModelOpt = None,
    base_url: common.BaseUrlOpt = None,
    mode: common.ModeOpt = None,
    concurrency: Annotated[int, typer.Option(help="Model calls in flight at once.")] = 4,
    max_tokens: Annotated[int, typer.Option(help="Output token limit per call.")] = 1024,
    rps: common.RpsOpt = None,
    tpm: common.TpmOpt = None,
    prompt_version: Annotated[
        str | None, typer.Option(help="Prompt version under prompts/contrast/ (default: newest).")
    ] = None,
    max_attempts: Annotated[
        int, typer.Option(help="Tries per call on 429/5xx/timeouts before it fails.")
    ] = RETRY_ATTEMPTS,
    replay: common.ReplayOpt = None,
    batch: Annotated[
        bool,
        typer.Option(
            "--batch",
            help="Buy first answers through the provider's Batch API (half price): collects "
            "finished batches, writes their lines, sends the rest; run it again later.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Write a checked "vs alternatives" line for each capability that has counterparts in
    other tools, contrasting it with them from both tools' evidence quotes.

    Only capabilities whose inputs changed (the capability, its counterparts, their evidence,
    the catalogue rows, the prompt) are asked again; an unchanged re-run makes no call. A line
    the checker refuses after the re-asks is dropped, never proposed. New lines wait for
    review (`decomposer lines`).
    """
    import asyncio

    from decomposer.calls.caller import RetryPolicy
    from decomposer.calls.runtime import RunSetup, limits_for
    from decomposer.contrast.batch import BatchRound
    from decomposer.contrast.run import run_contrast
    from decomposer.contrast.task import contrast_caller
    from decomposer.providers.base import api_key, resolve
    from decomposer.providers.replay import ReplayTransport

    if all_tools == bool(tools):
        raise InputError("name one or more tools, or pass --all (not both)")
    if batch and replay is not None:
        raise InputError("--batch cannot be combined with --replay")
    if max_attempts < 1:
        raise InputError("--max-attempts must be at least 1")
    settings = common.env(ctx).settings
    cfg = resolve(settings, provider, model, mode, base_url, max_tokens)
    transport = ReplayTransport.from_path(replay) if replay is not None else None
    key = "replay" if replay is not None else api_key(settings, cfg.provider)
    setup = RunSetup(
        cfg=cfg,
        key=key,
        prompt_version=prompt_version,
        limits=limits_for(settings, cfg.provider, rps, tpm),
        policy=RetryPolicy(attempts=max_attempts),
    )

    slugs = None if all_tools else list(tools or [])
    rounds = BatchRound() if batch else None

    async def go() -> ContrastReport:
        async with contrast_caller(settings, store, setup, transport=transport) as caller:
            if rounds is None:
                return await run_contrast(store, caller, slugs, concurrency=concurrency)
            return await _batch_round(settings, store, setup, caller, slugs, rounds, concurrency)

    with common.env(ctx).store() as store:
        report = asyncio.run(go())
    if transport is not None and transport.misses and report.failed:
        raise InputError(
            f"no recording in {replay} answers {report.failed} contrast request(s)",
            hint="record the contrast answers once with a key, then replay them",
        )
    if as_json:
        extra = {"batch": rounds.as_json()} if rounds is not None else {}
        common.print_json({"action": "contrast", **report.as_json(), **extra})
    else:
        _print_report(report)
        if rounds is not None:
            _print_round(rounds)
    if report.failed:
        raise ProviderError(
            f"{report.failed} contrast call(s) failed: {report.errors[0]}",
            hint="run the same command again: finished lines are kept, the rest are retried",
        )


async def _batch_round(
    settings: Settings,
    store: Store,
    setup: RunSetup,
    caller: ModelCaller[Contrast],
    slugs: list[str] | None,
    rounds: BatchRound,
    concurrency: int,
) -> ContrastReport:
    """Collect finished batches, write the lines they (or inline re-asks) answer, send the rest."""
    import httpx

    from decomposer.calls.calllog import cached_hashes
    from decomposer.contrast import batch as contrast_batch
    from decomposer.contrast.run import run_contrast

    async with httpx.AsyncClient(timeout=120.0, follow_redirects=True) as http:
        await contrast_batch.collect(store, settings, http=http, report=rounds)
        with store.transaction() as session:
            held, inline = contrast_batch.batch_state(session)
            cached = cached_hashes(
                session, {h for h in inline} | _planned_hashes(session, caller, slugs)
            )

        def answered(item: Planned) -> bool:
            digest = caller.request_hash(item.built.context)
            return digest in cached or (digest in inline and digest not in held)

        report = await run_contrast(store, caller, slugs, concurrency=concurrency, only=answered)
        await contrast_batch.submit(
            store, settings, setup, caller.task.prompt, slugs, http=http, report=rounds
        )
    return report


def _planned_hashes(
    session: Session, caller: ModelCaller[Contrast], slugs: list[str] | None
) -> set[str]:
    from decomposer.contrast.run import plan

    todo, _, _ = plan(session, slugs, caller.task.prompt.sha256)
    return {caller.request_hash(item.built.context) for item in todo}


def _print_round(r: BatchRound) -> None:
    out = common.out()
    out.print(
        f"batches: {r.collected} collected ({r.answered} answers cached, {r.refused} refused or "
        f"missing, asked again inline), {r.pending} still running, {r.held} requests held; "
        f"sent {r.sent} request(s)" + (f" in {', '.join(r.batch_ids)}" if r.batch_ids else "")
    )
    if r.sent or r.pending:
        out.print("run the same command again later to collect them")


def _print_report(r: ContrastReport) -> None:
    out = common.out()
    causes = ", ".join(f"{k} {v}" for k, v in sorted(r.rejections.items())) or "none"
    out.print(
        f"{', '.join(r.tools)}: {r.capabilities} capabilities, {r.with_counterparts} with "
        f"counterparts; {r.proposed} line(s) proposed, {r.dropped} dropped by the checker, "
        f"{r.declined} declined, {r.unchanged} unchanged, {r.superseded} superseded",
    )
    out.print(
        f"calls {r.calls} (+{r.cache_hits} cache hits), tokens {r.input_tokens} in / "
        f"{r.output_tokens} out, cost {common.usd(r.cost_usd)}; re-asks by cause: {causes}"
    )
    if r.proposed:
        out.print("review them with `decomposer lines list`")


@lines_app.command("list")
def lines_list(
    ctx: typer.Context,
    tool: Annotated[str | None, typer.Argument(help="Tool slug (default: all).")] = None,
    status: Annotated[
        list[str] | None,
        typer.Option(
            help="proposed, approved, rejected, dropped or superseded (repeatable); "
            "default: proposed and approved."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List contrast lines with their status and provenance."""
    from decomposer.contrast.lines import list_lines
    from decomposer.core.vocab import CONTRAST_STATUSES

    for s in status or []:
        if s not in CONTRAST_STATUSES:
            raise InputError(
                f"unknown status {s!r}", hint=f"use one of {', '.join(CONTRAST_STATUSES)}"
            )
    with common.env(ctx).store() as store, store.transaction() as session:
        rows = list_lines(session, tool, status)
    if as_json:
        common.print_json(rows)
        return
    out = common.out()
    if not rows:
        out.print("no contrast lines; write them with `decomposer contrast TOOL`")
    for r in rows:
        out.print(
            f"{r.id:>4}  {r.status:<9} {r.tool}: {r.capability} ({r.provenance}, {r.model})\n"
            f"      {r.text}",
            highlight=False,
        )


@lines_app.command("show")
def lines_show(ctx: typer.Context, line: LineArg, as_json: JsonOpt = False) -> None:
    """Show a line with the quotes it cites from both tools, side by side."""
    from decomposer.contrast.lines import get_line, view

    with common.env(ctx).store() as store, store.transaction() as session:
        shown = view(session, get_line(session, line))
    if as_json:
        common.print_json(shown)
        return
    print_line(shown)


def print_line(v: LineView) -> None:
    """A line, its provenance and the quotes it cites, one column per tool."""
    from rich.table import Table

    out = common.out()
    out.print(
        f"line {v.id} · {v.status} · {v.tool}: {v.capability}\n"
        f"vs alternatives: {v.text}\n"
        f"provenance: {v.provenance} ({v.provider} {v.model}, {v.prompt_version}, "
        f"{v.created_at:%Y-%m-%d})"
        + (f"; re-asked for: {', '.join(v.rejections)}" if v.rejections else ""),
        highlight=False,
    )
    table = Table(show_lines=True)
    for side in v.sides:
        table.add_column(f"{side.tool_name}: {', '.join(side.capabilities)}")
    longest = max((len(s.quotes) for s in v.sides), default=0)
    for i in range(longest):
        table.add_row(
            *(
                f"“{s.quotes[i].quote}” ({s.quotes[i].document or 'unknown document'})"
                if i < len(s.quotes)
                else ""
                for s in v.sides
            )
        )
    out.print(table)


def _act(
    ctx: typer.Context,
    line: int,
    action: str,
    reviewer: str | None,
    note: str | None,
    text: str | None,
    as_json: bool,
) -> None:
    from decomposer.contrast.lines import review_line, view
    from decomposer.core.clock import utcnow

    who = reviewer_name(reviewer, common.env(ctx).settings)
    with common.env(ctx).store() as store, store.transaction() as session:
        done = review_line(session, line, action, reviewer=who, now=utcnow(), text=text, note=note)
        shown = view(session, done)
    if as_json:
        common.print_json(shown)
        return
    common.out().print(f"line {shown.id}: {shown.status} ({action} by {who})", highlight=False)


@lines_app.command("approve")
def lines_approve(
    ctx: typer.Context,
    line: LineArg,
    reviewer: ReviewerOpt = None,
    note: NoteOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve a line: published pages show it, marked model-written."""
    _act(ctx, line, "approve", reviewer, note, None, as_json)


@lines_app.command("reject")
def lines_reject(
    ctx: typer.Context,
    line: LineArg,
    reviewer: ReviewerOpt = None,
    note: NoteOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Reject a line: it is never published (a changed input proposes a new one)."""
    _act(ctx, line, "reject", reviewer, note, None, as_json)


@lines_app.command("edit")
def lines_edit(
    ctx: typer.Context,
    line: LineArg,
    value: Annotated[str, typer.Option("--value", help="The new text of the line.")],
    reviewer: ReviewerOpt = None,
    note: NoteOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Edit a line's text (its provenance becomes editor); its status is kept."""
    _act(ctx, line, "edit", reviewer, note, value, as_json)
