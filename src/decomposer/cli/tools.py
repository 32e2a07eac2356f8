"""CLI commands for tools and what they hold: ``tool add``, ``tools``, ``ingest`` and
``capabilities``.

Library modules are imported inside the commands, so listing them in ``--help`` costs nothing.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from decomposer.cli import common
from decomposer.cli.choices import STATUSES, TOOL_TYPES
from decomposer.ingest.chunks import DEFAULT_CHUNK_TOKENS

JsonOpt = common.JsonOpt


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
    as_json: common.DoneJsonOpt = False,
) -> None:
    """Register a tool so its docs can be ingested."""
    from decomposer.core.clock import utcnow
    from decomposer.core.text import slugify
    from decomposer.store.tools import add_tool, find_tool

    with common.env(ctx).store() as store, store.transaction() as session:
        if exist_ok and (found := find_tool(session, slug or slugify(name))) is not None:
            done, tool = "exists", found
        else:
            done = "added"
            tool = add_tool(
                session, name, now=utcnow(), slug=slug, type=type, vendor=vendor, homepage=homepage
            )
        result = {"action": "tool add", "result": done, "id": tool.id, "slug": tool.slug}
        result["name"] = tool.name
    if as_json:
        common.print_json(result)
    elif done == "exists":
        common.out().print(f"tool [bold]{result['slug']}[/] already exists")
    else:
        common.out().print(f"added tool [bold]{result['slug']}[/] ({result['name']})")


def path_cmd(ctx: typer.Context) -> None:
    """Print the data dir: the SQLite store, config.toml, pages and review cursors live there."""
    import sys

    sys.stdout.write(f"{common.env(ctx).settings.home.resolve()}\n")


def tools_cmd(ctx: typer.Context, as_json: JsonOpt = False, nl: common.NlOpt = False) -> None:
    """List tools with their document and capability counts."""
    from rich.table import Table

    from decomposer.store.summaries import tool_summaries

    rows = tool_summaries(common.env(ctx).database_url())
    if common.print_rows(rows, as_json, nl):
        return
    table = Table("slug", "name", "type", "documents", "capabilities", box=None, pad_edge=False)
    for r in rows:
        table.add_row(r.slug, r.name, r.type or "—", str(r.documents), str(r.capabilities))
    common.out().print(table)


def ingest_cmd(
    ctx: typer.Context,
    tool: Annotated[str, typer.Argument(help="Tool slug.")],
    sources: Annotated[list[str], typer.Argument(help="Files, folders or http(s) URLs.")],
    chunk_tokens: Annotated[
        int,
        typer.Option(
            help="Token budget per chunk (one model call each), 50 to 1,000,000; a new budget "
            "re-chunks documents cut with another one."
        ),
    ] = DEFAULT_CHUNK_TOKENS,
    prune: Annotated[
        bool,
        typer.Option(
            "--prune",
            help="Remove the tool's documents not given this time; capabilities only they "
            "backed are flagged vanished, never deleted.",
        ),
    ] = False,
    as_json: common.DoneJsonOpt = False,
) -> None:
    """Load documents for a tool; unchanged documents are skipped, changed ones re-chunked.

    A file gone from a re-ingested folder is reported missing: its document is kept (left out
    of extraction) and the capabilities only it backed are flagged vanished."""
    from decomposer.core.clock import utcnow
    from decomposer.ingest.documents import ingest
    from decomposer.review.diff import vanish_missing

    out = common.out()
    env = common.env(ctx)
    with env.store() as store:
        report = ingest(
            store,
            tool,
            sources,
            now=utcnow(),
            budget=chunk_tokens,
            max_bytes=env.settings.max_document_bytes,
            fetch_deadline=env.settings.fetch_deadline,
            on_missing=None if prune else vanish_missing,
        )
        pruned = None
        if prune:
            from decomposer.cli.docs import prune as prune_documents

            with store.transaction() as session:
                pruned = prune_documents(session, tool, report.keys, utcnow())
    if as_json:
        extra = {"pruned": pruned} if pruned is not None else {}
        common.print_json({"action": "ingest", "tool": tool, **asdict(report), **extra})
        return
    for note in report.notes:
        out.print(f"note: {note}")
    common.print_changes(
        out,
        tool,
        [
            ("added", report.added),
            ("updated", report.updated),
            ("unchanged (no-op)", report.unchanged),
        ],
        tail=f"; {report.chunks_written} chunks written",
    )
    if report.missing and pruned is None:
        for key in report.missing:
            out.print(f"missing: {key} (its file is gone; the document is kept)", markup=False)
        out.print(
            f"{len(report.missing)} documents missing; {len(report.vanished)} capabilities "
            "flagged vanished"
            + (f" — review them with `decomposer review {tool}`" if report.vanished else "")
            + "; `--prune` removes missing documents",
            markup=False,
        )
    if pruned is not None:
        from decomposer.cli.docs import print_removal

        print_removal(pruned)


def capabilities_cmd(
    ctx: typer.Context,
    tool: Annotated[str, typer.Argument(help="Tool slug.")],
    status: Annotated[str | None, typer.Option(help=f"One of: {', '.join(STATUSES)}.")] = None,
    as_json: JsonOpt = False,
    nl: common.NlOpt = False,
) -> None:
    """Show a tool's capability records with their evidence."""
    from decomposer.views.capabilities import list_capabilities

    with common.env(ctx).store() as store, store.transaction() as session:
        rows = list_capabilities(session, tool, status)
    if common.print_rows(rows, as_json, nl):
        return
    out = common.out()
    if not rows:
        out.print(f"{tool}: no capabilities" + (f" with status {status}" if status else ""))
        return
    for cap in rows:
        out.print(
            f"[bold]{cap.name}[/]  [dim]{cap.category} · {cap.status} · {cap.id}[/]",
            markup=True,
        )
        out.print(cap.description, markup=False)
        out.print(f"Unique: {cap.unique}", markup=False)
        out.print(f"vs alternatives: {cap.vs_alternatives}", markup=False)
        for ev in cap.evidence:
            where = f"{ev.document}:{ev.start}-{ev.end}" if ev.grounded else "NOT FOUND"
            out.print(f'  > "{ev.quote}" ({where})', markup=False, style="dim")
        out.print()
