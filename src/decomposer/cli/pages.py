"""CLI commands for the catalogue, scores and pages: ``tool import``, ``tool show``, ``score``,
``compare`` and ``regenerate``.

They parse options and print; the work is in ``decomposer.catalog`` and ``decomposer.pages``,
imported inside the commands. Pages align capabilities with NumPy and SciPy, so ``compare`` and
``regenerate`` need the ``match`` extra.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from decomposer.cli import common
from decomposer.cli.choices import CAPABILITIES_PER_SIDE, COPY_MODES, FORMATS, PROVIDERS
from decomposer.core.errors import InputError, ProviderError

if TYPE_CHECKING:
    from decomposer.cli.common import Env
    from decomposer.pages.llm_copy import ModelCopywriter
    from decomposer.pages.model import Options
    from decomposer.store import Store

WeightsOpt = Annotated[
    str | None,
    typer.Option(
        "--weights",
        help="Override weights, e.g. 'adoption=30,quality=20' (defaults: adoption 25, "
        "quality 25, ecosystem 10, match-graph 25, freshness 15).",
    ),
]
AsOfOpt = Annotated[
    str | None, typer.Option("--as-of", help="Score as of this date (YYYY-MM-DD); default today.")
]
UnreviewedOpt = Annotated[
    bool,
    typer.Option(
        "--include-unreviewed",
        help="Also show proposed and ungrounded capabilities, marked as drafts.",
    ),
]
TopKOpt = Annotated[int, typer.Option("--top-k", help="Capabilities shown per tool.")]
StaleOpt = Annotated[
    int,
    typer.Option(
        "--stale-after", help="Flag values and documents checked more than DAYS ago.", min=0
    ),
]
STALE_DEFAULT = 90  # catalog.catalogue.STALE_AFTER_DAYS; not imported here to keep start-up lean
CopyOpt = Annotated[
    str,
    typer.Option(
        "--copy",
        help="Summary and verdict: template (default) or llm (model-written, every claim checked "
        "against the table, re-asked on failure, else the template copy with a note).",
    ),
]
ProviderOpt = Annotated[
    str, typer.Option("--provider", help=f"--copy llm: one of {', '.join(PROVIDERS)}.")
]
ModelOpt = Annotated[
    str | None, typer.Option("--model", help="--copy llm: model name; a per-provider default.")
]
BaseUrlOpt = Annotated[
    str | None, typer.Option("--base-url", help="--copy llm: endpoint for openai-compatible.")
]
ReplayOpt = Annotated[
    Path | None,
    typer.Option("--replay", help="--copy llm: answer from recorded responses (file or folder)."),
]


def _as_of(text: str | None) -> date:
    if text is None:
        from decomposer.core.clock import utcnow

        return utcnow().date()
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InputError(f"invalid --as-of date {text!r}", hint="use YYYY-MM-DD") from None


def _options(
    top_k: int,
    include_unreviewed: bool,
    weights: str | None,
    as_of: str | None,
    stale_after: int = STALE_DEFAULT,
) -> Options:
    from decomposer.catalog.score import parse_weights
    from decomposer.pages.model import Options

    if top_k < 1:
        raise InputError("--top-k must be at least 1")
    return Options(
        top_k=top_k,
        include_unreviewed=include_unreviewed,
        weights=parse_weights(weights).as_dict(),
        as_of=_as_of(as_of),
        stale_after_days=stale_after,
    )


def tool_import(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Catalogue TOML file (see docs/comparator.md).")],
    as_json: common.DoneJsonOpt = False,
) -> None:
    """Create or update tools, pricing and score signals from a catalogue file."""
    from decomposer.catalog.catalogue import import_catalogue, load_catalogue
    from decomposer.core.clock import utcnow

    specs = load_catalogue(file)
    with common.env(ctx).store() as store, store.transaction() as session:
        report = import_catalogue(session, specs, source=str(file), now=utcnow())
    if as_json:
        from dataclasses import asdict

        common.print_json({"action": "tool import", "file": str(file), **asdict(report)})
        return
    common.print_changes(
        common.out(),
        str(file),
        [("added", report.added), ("updated", report.updated), ("unchanged", report.unchanged)],
    )


def tool_show(
    ctx: typer.Context,
    tool: Annotated[str, typer.Argument(help="Tool slug.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show a tool: catalogue entry, signals, profile (with where each value came from), counts."""
    from decomposer.views.tools import tool_detail

    with common.env(ctx).store() as store, store.transaction() as session:
        data = tool_detail(session, tool).show().model_dump(mode="json")
    if as_json:
        common.print_json(data)
        return
    out = common.out()
    out.print(f"[bold]{data['name']}[/] ({data['slug']})")
    for key in ("vendor", "type", "homepage"):
        out.print(f"  {key}: {data[key] or '—'}", markup=False)
    cat = data["catalogue"]
    if cat is None:
        out.print("  catalogue: not in the catalogue (import one with `decomposer tool import`)")
    else:
        out.print(f"  categories: {', '.join(cat['categories']) or '—'}", markup=False)
        for name, value in cat["signals"].items():
            if name == "provenance" and isinstance(value, dict):
                for table, check in value.items():
                    where = f" at {check['source']}" if "source" in check else ""
                    when = check.get("checked_on", "date not stated")
                    out.print(f"  {table} checked: {when}{where}", markup=False)
                continue
            out.print(f"  {name}: {value}", markup=False)
    for name, item in data["profile"].items():
        text = "—" if item is None else f"{item['value']} (from {item['source']})"
        out.print(f"  {name}: {text}", markup=False)
    out.print("  capabilities: " + ", ".join(f"{n} {s}" for s, n in data["capabilities"].items()))


def score_cmd(
    ctx: typer.Context,
    tool: Annotated[str, typer.Argument(help="Tool slug.")],
    explain_: Annotated[
        bool, typer.Option("--explain", help="Show every input and formula.")
    ] = False,
    weights: WeightsOpt = None,
    as_of: AsOfOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print a tool's Rank and sub-scores (0–100); --explain shows how each was computed."""
    from rich.table import Table

    from decomposer.catalog.score import (
        LABELS,
        SUBSCORES,
        explain,
        out_of,
        parse_weights,
        score_tool,
    )

    with common.needs("match", "decomposer score"):
        from decomposer.catalog.snapshot import load_snapshot

    w = parse_weights(weights)
    when = _as_of(as_of)
    with common.env(ctx).store() as store, store.transaction() as session:
        snap = load_snapshot(session, [tool])
    card = score_tool(snap.tools[tool].inputs(), snap.context, w, when)
    if as_json:
        common.print_json(
            {"tool": tool, "as_of": when.isoformat(), "weights": w.as_dict(), **card.as_json()}
        )
        return
    out = common.out()
    if explain_:
        for line in explain(card, w):
            out.print(line, markup=False)
        return
    table = Table("score", "value", box=None, pad_edge=False)
    table.add_row(
        "Rank",
        out_of(card.rank)
        + ("" if card.coverage == 100 else f" ({card.coverage}% of the weight known)"),
    )
    for name in SUBSCORES:
        table.add_row(LABELS[name], out_of(card.subscores[name].value))
    out.print(table)


@contextmanager
def _copywriter(
    env: Env,
    store: Store,
    copy: str,
    provider: str,
    model: str | None,
    base_url: str | None,
    replay: Path | None,
) -> Iterator[ModelCopywriter | None]:
    """``None`` for template copy; else a model copywriter (replayed when ``--replay``)."""
    if copy not in COPY_MODES:
        raise InputError(f"unknown --copy {copy!r}", hint=f"use one of {', '.join(COPY_MODES)}")
    if copy == "template":
        if model is not None or base_url is not None or replay is not None:
            raise InputError("--model, --base-url and --replay need --copy llm")
        yield None
        return
    from decomposer.calls.runtime import RunSetup, limits_for
    from decomposer.pages.llm_copy import model_copywriter
    from decomposer.providers.base import api_key, resolve
    from decomposer.providers.replay import ReplayTransport

    settings = env.settings
    cfg = resolve(settings, provider, model, None, base_url, max_tokens=1024)
    transport = ReplayTransport.from_path(replay) if replay is not None else None
    key = "replay" if transport is not None else api_key(settings, cfg.provider)
    setup = RunSetup(cfg=cfg, key=key, limits=limits_for(settings, cfg.provider))
    try:
        with model_copywriter(settings, store, setup, transport=transport) as writer:
            yield writer
    except ProviderError:
        if transport is not None and transport.misses:
            raise InputError(
                f"no recording in {replay} answers this page's copy request",
                hint="record one with a key, or drop --replay",
            ) from None
        raise


def compare_cmd(
    ctx: typer.Context,
    a: Annotated[str, typer.Argument(help="First tool slug (left column).")],
    b: Annotated[str, typer.Argument(help="Second tool slug (right column).")],
    fmt: Annotated[
        str | None,
        typer.Option("--format", help="md, html or json; default from --out's extension, else md."),
    ] = None,
    out_path: Annotated[
        Path | None, typer.Option("--out", help="Write here instead of stdout.")
    ] = None,
    include_unreviewed: UnreviewedOpt = False,
    top_k: TopKOpt = CAPABILITIES_PER_SIDE,
    weights: WeightsOpt = None,
    as_of: AsOfOpt = None,
    stale_after: StaleOpt = STALE_DEFAULT,
    copy: CopyOpt = "template",
    provider: ProviderOpt = "mistral",
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    replay: ReplayOpt = None,
) -> None:
    """Write the "A vs B" comparison page from reviewed records."""
    import sys

    common.require("match", "decomposer compare")
    from decomposer.pages.copy import Copywriter
    from decomposer.pages.regenerate import write_atomic
    from decomposer.pages.render import Renderer
    from decomposer.views.comparisons import load_comparison

    if fmt is None:
        suffix = out_path.suffix.lstrip(".").lower() if out_path else ""
        fmt = (
            {"markdown": "md", "htm": "html"}.get(suffix, suffix)
            if suffix in (*FORMATS, "markdown", "htm")
            else "md"
        )
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}", hint=f"use one of {', '.join(FORMATS)}")
    options = _options(top_k, include_unreviewed, weights, as_of, stale_after)
    env = common.env(ctx)
    with env.store() as store:
        with store.transaction() as session:
            comparison = load_comparison(session, a, b, options=options, copy=Copywriter())
        with _copywriter(env, store, copy, provider, model, base_url, replay) as writer:
            if writer is not None:
                comparison = writer(comparison)
    text = Renderer().render(comparison, fmt)
    if out_path is None:
        sys.stdout.write(text)
        return
    if out_path.is_dir():
        raise InputError(f"--out {out_path} is a folder", hint="give a file path")
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create {out_path.parent}: {exc.strerror}") from None
    write_atomic(out_path, text)
    common.out().print(f"wrote {out_path} ({fmt})", markup=False)


@contextmanager
def _bar(total_hint: str) -> Iterator[Callable[[int, int], None]]:
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    bar = common.progress(
        TextColumn(f"[bold]{total_hint}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("pairs"),
        TimeElapsedColumn(),
    )
    task: dict[str, Any] = {}

    def update(done: int, total: int) -> None:
        if "t" not in task:
            task["t"] = bar.add_task("pages", total=total)
        bar.update(task["t"], completed=done)

    with bar:
        yield update


def regenerate_cmd(
    ctx: typer.Context,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out-dir", help="Folder for the pages; default $DECOMPOSER_HOME/pages."),
    ] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Every pair of tools sharing a category (the default).")
    ] = False,
    pairs_file: Annotated[
        Path | None, typer.Option("--pairs", help="File with one 'a b' pair per line.")
    ] = None,
    formats: Annotated[
        list[str] | None,
        typer.Option("--format", help="Repeatable; default all of md, html, json."),
    ] = None,
    include_unreviewed: UnreviewedOpt = False,
    top_k: TopKOpt = CAPABILITIES_PER_SIDE,
    weights: WeightsOpt = None,
    as_of: AsOfOpt = None,
    stale_after: StaleOpt = STALE_DEFAULT,
    copy: CopyOpt = "template",
    provider: ProviderOpt = "mistral",
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    replay: ReplayOpt = None,
    workers: Annotated[
        int,
        typer.Option(
            min=0,
            max=64,
            help="Processes that render and write pages; 0: one per core (up to 4) once 64 "
            "pairs need rendering. --copy llm always renders in one.",
        ),
    ] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Rebuild comparison pages whose inputs changed; unchanged pages are not touched.

    With --copy llm, only the pages being rewritten ask the model, and an answer already
    checked and cached is reused, so an unchanged re-run makes no model call.
    """
    common.require("match", "decomposer regenerate")
    from decomposer.pages.regenerate import pair_summary, read_pairs, regenerate

    env = common.env(ctx)
    if all_ and pairs_file is not None:
        raise InputError("use either --all or --pairs FILE, not both")
    pairs = read_pairs(pairs_file) if pairs_file is not None else None
    options = _options(top_k, include_unreviewed, weights, as_of, stale_after)
    folder = out_dir or env.settings.home / "pages"
    if folder.exists() and not folder.is_dir():
        raise InputError(f"--out-dir {folder} is not a folder")
    with (
        env.store() as store,
        _copywriter(env, store, copy, provider, model, base_url, replay) as writer,
        store.transaction() as session,
        _bar("regenerating") as update,
    ):
        report = regenerate(
            session,
            folder,
            options=options,
            pairs=pairs,
            formats=formats or FORMATS,
            on_progress=update,
            rewrite=writer,
            copy_digest=writer.digest() if writer is not None else "",
            workers=workers,
        )
        why = None
        if report.pairs == 0 and pairs is None:
            from decomposer.cli.why import no_pages

            why = no_pages(session, include_unreviewed)
    if as_json:
        common.print_json({**pair_summary(report), **({"why": why} if why else {})})
        return
    out = common.out()
    for pair, reason in report.skipped:
        out.print(f"skipped {pair}: {reason}", markup=False)
    out.print(
        f"{folder}: {report.pairs} pairs, {len(report.written)} pages written, "
        f"{report.unchanged} unchanged, {len(report.skipped)} pairs skipped",
        markup=False,
    )
    if why:
        out.print(f"nothing to write: {why}", markup=False)


def stale_cmd(
    ctx: typer.Context,
    days: StaleOpt = STALE_DEFAULT,
    as_of: AsOfOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List catalogue values and documents last checked more than DAYS ago, or never dated."""
    from decomposer.catalog.catalogue import stale_items

    when = _as_of(as_of)
    with common.env(ctx).store() as store, store.transaction() as session:
        items = stale_items(session, when, days)
    if as_json:
        common.print_json(
            {
                "as_of": when.isoformat(),
                "stale_after_days": days,
                "items": [
                    {
                        "tool": i.tool,
                        "what": i.what,
                        "source": i.source,
                        "checked_on": i.checked_on.isoformat() if i.checked_on else None,
                        "age_days": i.age_days,
                    }
                    for i in items
                ],
            }
        )
        return
    out = common.out()
    for i in items:
        age = f"checked {i.checked_on} ({i.age_days} days ago)" if i.checked_on else "never dated"
        out.print(f"{i.tool}  {i.what}  {i.source}  {age}", markup=False)
    out.print(f"{len(items)} stale (older than {days} days as of {when})", markup=False)
