"""CLI commands for the match graph: ``match import-queries``, ``match run``, ``match explain``
and ``match similar``.

They parse options and print; the work is in ``decomposer.matching`` (match, align, embed),
imported inside the commands because it needs NumPy and SciPy (the ``match`` extra).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from decomposer.cli import common
from decomposer.cli.choices import EMBEDDERS, LEXICAL_ALIGN, LEXICAL_MATCH, MATCHES_PER_QUERY
from decomposer.core.errors import InputError

if TYPE_CHECKING:
    from decomposer.core.config import Settings
    from decomposer.matching.embed import Embedder
    from decomposer.store import Store

match_app = typer.Typer(
    help="Search queries, the match graph (Times Matched) and capability alignment.",
    no_args_is_help=True,
)


@match_app.callback()
def _needs_match_extra(ctx: typer.Context) -> None:
    common.require("match", f"decomposer match {ctx.invoked_subcommand}")


EmbedderOpt = Annotated[
    str,
    typer.Option(
        "--embedder",
        help=f"One of: {', '.join(EMBEDDERS)}. 'lexical' (default) needs no network or key.",
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="Embedding model (mistral-embed, text-embedding-3-small; required for "
        "openai-compatible).",
    ),
]
BaseUrlOpt = Annotated[
    str | None,
    typer.Option("--base-url", help="Server for openai-compatible (or another API base)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def register(app: typer.Typer) -> None:
    app.add_typer(match_app, name="match")


@contextmanager
def _embedder(
    settings: Settings,
    store: Store,
    name: str,
    model: str | None,
    base_url: str | None,
    *,
    align_threshold: float | None = None,
    match_threshold: float | None = None,
) -> Iterator[Embedder]:
    """The chosen embedder; provider vectors are cached in the store."""
    import httpx

    from decomposer.matching.embed import VectorCache, make_embedder

    if name == "lexical":
        yield make_embedder(
            settings, name, align_threshold=align_threshold, match_threshold=match_threshold
        )
        return
    with httpx.Client(timeout=120.0, follow_redirects=True) as http:
        yield make_embedder(
            settings,
            name,
            model=model,
            base_url=base_url,
            http=http,
            cache=VectorCache(store),
            align_threshold=align_threshold,
            match_threshold=match_threshold,
        )


@match_app.command("import-queries")
def import_queries_cmd(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            help="One query per line, or CSV with a header: query[,count][,date YYYY-MM-DD]."
        ),
    ],
    replace: Annotated[
        bool, typer.Option("--replace", help="Delete every stored query (and the graph) first.")
    ] = False,
    as_json: common.DoneJsonOpt = False,
) -> None:
    """Import user search queries; a bad line is refused with its number and nothing is stored."""
    from decomposer.core.clock import utcnow
    from decomposer.matching import queries

    lines = queries.parse_queries(file)
    with common.env(ctx).store() as store, store.transaction() as session:
        report = queries.import_queries(session, lines, now=utcnow(), replace=replace)
    if as_json:
        common.print_json({"action": "match import-queries", "file": str(file), **asdict(report)})
        return
    common.out().print(
        f"{file}: {report.queries} queries ({report.searches:,} searches), {report.added} new, "
        f"{report.counts_changed} counts set, {report.counts_unchanged} unchanged. "
        "Next: `decomposer match run`",
        markup=False,
    )


@match_app.command("run")
def run_cmd(
    ctx: typer.Context,
    embedder: EmbedderOpt = "lexical",
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    top_k: Annotated[int, typer.Option("--top-k", help="Capabilities kept per query.")] = (
        MATCHES_PER_QUERY
    ),
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold",
            help="Similarity a hit needs to count for Times Matched (default: the embedder's; "
            f"lexical {LEXICAL_MATCH:.2f}).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Match every query to its top-k capabilities across all tools; store the match graph."""
    from rich.table import Table

    from decomposer.core.clock import utcnow
    from decomposer.matching import match

    env = common.env(ctx)
    with (
        env.store() as store,
        _embedder(env.settings, store, embedder, model, base_url, match_threshold=threshold) as emb,
    ):
        report = match.run_match(store, emb, now=utcnow(), k=top_k)
    if as_json:
        common.print_json(asdict(report))
        return
    out = common.out()
    out.print(
        f"match run {report.run_id}: {report.queries} queries × {report.capabilities} "
        f"capabilities with {report.model}, top {report.top_k}: {report.edges} edges; "
        f"{report.matched_queries} queries matched at ≥ {report.threshold:.2f} "
        f"({report.seconds:.2f} s)",
        markup=False,
    )
    table = Table("tool", "times matched", box=None, pad_edge=False)
    for slug, count in sorted(report.times_matched.items(), key=lambda kv: (-kv[1], kv[0])):
        table.add_row(slug, f"{count:,}")
    out.print(table)


@match_app.command("explain")
def explain_cmd(
    ctx: typer.Context,
    tool: Annotated[str, typer.Argument(help="Tool slug.")],
    limit: Annotated[int, typer.Option("--limit", help="Queries shown (text output).")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """List the queries that matched a tool, and why (capability, rank, score, shared words)."""
    from decomposer.matching import match

    with common.env(ctx).store() as store, store.transaction() as session:
        result = match.explain(session, tool)
    if as_json:
        common.print_json(asdict(result))
        return
    out = common.out()
    if result.run_id is None:
        out.print(
            f"{tool}: no match graph yet — run `decomposer match import-queries FILE` and "
            "`decomposer match run`",
            markup=False,
        )
        return
    out.print(
        f"{tool}: Times Matched {result.times_matched:,} from {len(result.queries)} queries "
        f"(match run {result.run_id}, {result.model}, top {result.top_k}, "
        f"score ≥ {result.threshold:.2f})",
        markup=False,
    )
    for q in result.queries[: max(0, limit)]:
        out.print(f"  “{q.query}” ×{q.searches:,}", markup=False)
        for hit in q.hits:
            words = ", ".join(hit.shared_terms) or "—"
            out.print(
                f"      #{hit.rank} {hit.capability} (score {hit.score:.3f}; shared: {words})",
                markup=False,
            )
    if len(result.queries) > limit:
        out.print(f"  … {len(result.queries) - limit} more (--limit, --json)", markup=False)


@match_app.command("similar")
def similar_cmd(
    ctx: typer.Context,
    tool: Annotated[str, typer.Argument(help="Tool slug.")],
    limit: Annotated[int, typer.Option("--limit", help="Tools listed.")] = 10,
    include_unreviewed: Annotated[
        bool,
        typer.Option("--include-unreviewed", help="Also use proposed and ungrounded capabilities."),
    ] = False,
    embedder: EmbedderOpt = "lexical",
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold",
            help="Similarity two capabilities need to be paired (default: the embedder's; "
            f"lexical {LEXICAL_ALIGN:.2f}).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the tools sharing the most capabilities with TOOL (its alternatives), with the pairs."""
    from decomposer.matching import match

    if limit < 1:
        raise InputError("--limit must be at least 1")
    env = common.env(ctx)
    with (
        env.store() as store,
        _embedder(env.settings, store, embedder, model, base_url, align_threshold=threshold) as emb,
        store.transaction() as session,
    ):
        results = match.similar(
            session, tool, emb, include_unreviewed=include_unreviewed, limit=limit
        )
        why = None
        if not results:
            from decomposer.cli.why import no_similar

            why = no_similar(session, tool, include_unreviewed, f"{emb.thresholds.align:.2f}")
    if as_json:
        common.print_json(
            {
                "tool": tool,
                "similar": [
                    {
                        "slug": r.slug,
                        "name": r.name,
                        "shared_count": len(r.shared),
                        "only_in_tool": r.only_mine,
                        "only_in_other": r.only_theirs,
                        "shared": [asdict(p) for p in r.shared],
                    }
                    for r in results
                ],
                **({"why": why} if why else {}),
            }
        )
        return
    out = common.out()
    if why:
        out.print(f"{tool}: no similar tools: {why}", markup=False)
        return
    for r in results:
        out.print(
            f"{r.slug} ({r.name}): {len(r.shared)} shared, {r.only_mine} only in {tool}, "
            f"{r.only_theirs} only in {r.slug}",
            markup=False,
        )
        for p in r.shared:
            out.print(f"    {p.mine}  ↔  {p.theirs}  ({p.similarity:.2f})", markup=False)
