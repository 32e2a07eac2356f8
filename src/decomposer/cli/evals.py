"""CLI commands for evals: ``eval run GOLDEN`` (also ``eval GOLDEN``), ``eval list``,
``eval show``, ``eval compare`` and ``eval report``.

An eval extracts into a scratch store in a temporary folder and keeps only the run record
(settings and scores) in the user's store. The harness, scoring and report modules (NumPy,
SciPy, the SDKs) are imported inside the commands.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from decomposer.cli import common
from decomposer.cli.eval_text import print_comparison, print_run, share_text
from decomposer.core.errors import InputError, ProviderError
from decomposer.ingest.chunks import DEFAULT_CHUNK_TOKENS

if TYPE_CHECKING:
    from decomposer.evals.runs import EvalRun

CORPUS_ENV = "DECOMPOSER_CORPUS"
VIEWS = ("text", "json", "html")


class _EvalGroup(TyperGroup):
    """``decomposer eval GOLDEN …`` is ``decomposer eval run GOLDEN …``: a first word that is
    not one of the group's commands (nor an option) is taken as the golden file."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return list(super().parse_args(ctx, args))


eval_app = typer.Typer(
    cls=_EvalGroup,
    help="Score extraction against a golden set; store, list and compare eval runs. "
    "`decomposer eval GOLDEN` is short for `decomposer eval run GOLDEN`.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval")


FormatOpt = Annotated[
    str,
    typer.Option("--format", help=f"One of: {', '.join(VIEWS)}. html is a standalone report."),
]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Write to this file instead of stdout.")]


@eval_app.command("run")
def run_cmd(
    ctx: typer.Context,
    golden: Annotated[
        Path, typer.Argument(help="Golden set (TOML), e.g. fixtures/golden/demo.toml.")
    ],
    provider: common.ProviderOpt = "mistral",
    model: common.ModelOpt = None,
    base_url: common.BaseUrlOpt = None,
    mode: common.ModeOpt = None,
    prompt_version: Annotated[
        str | None, typer.Option(help="Prompt version under prompts/extract/ (default: newest).")
    ] = None,
    chunk_tokens: Annotated[
        int, typer.Option(help="Chunk budget for ingesting the golden set's pages.")
    ] = DEFAULT_CHUNK_TOKENS,
    pack_tokens: Annotated[
        int | None,
        typer.Option(
            help="Pack neighbouring small chunks into one call up to this size "
            "(default: the chunk budget)."
        ),
    ] = None,
    max_tokens: Annotated[int, typer.Option(help="Output token limit per call.")] = 4096,
    concurrency: Annotated[int, typer.Option(help="Model calls in flight at once.")] = 4,
    replay: Annotated[
        Path | None,
        typer.Option(help="Answer from recorded responses (file or folder); no key, no network."),
    ] = None,
    corpus: Annotated[
        Path | None,
        typer.Option(
            help=f"Folder that `corpus:` roots in the golden set are relative to "
            f"(default: ${CORPUS_ENV})."
        ),
    ] = None,
    harness: Annotated[
        bool,
        typer.Option(
            "--harness",
            help="The provider is a stand-in (a fake server): label the figures as measuring "
            "the harness, not a model.",
        ),
    ] = False,
    keep_scratch: Annotated[
        Path | None,
        typer.Option(
            help="Extract into DIR/scratch.db and keep it (default: a temp dir, removed)."
        ),
    ] = None,
    judge: Annotated[
        bool,
        typer.Option(
            "--judge",
            help="Also ask the model whether each unmatched extracted capability is supported "
            "by its pages (prompts/judge/; extra calls).",
        ),
    ] = False,
    band: Annotated[
        Path | None,
        typer.Option(
            help="Fail (exit 1) when a figure leaves the min to max range recorded in this "
            "TOML file."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the stored run as JSON.")] = False,
) -> None:
    """Extract a golden set's pages into a scratch store (never yours), score the result, and
    keep the run record (settings and scores) in your store for `eval list` and `eval compare`.
    """
    import asyncio
    import tempfile

    from decomposer.calls.runtime import RunSetup, limits_for
    from decomposer.core.clock import utcnow
    from decomposer.evals.golden import load_golden
    from decomposer.evals.harness import EvalPlan, run_eval
    from decomposer.evals.runs import EvalRun, save_run
    from decomposer.providers.base import api_key, resolve
    from decomposer.providers.replay import ReplayTransport

    common.require("match", "decomposer eval")
    settings = common.env(ctx).settings
    if concurrency < 1:
        raise InputError("--concurrency must be at least 1")
    if harness and replay is not None:
        raise InputError(
            "--harness and --replay cannot be combined: replayed answers are "
            "labelled as such already"
        )
    from decomposer.evals.band import load_band, outside

    limits = load_band(band) if band is not None else None
    if judge and replay is not None:
        raise InputError(
            "--judge cannot be combined with --replay: recordings hold no judge answers"
        )
    corpus_dir = corpus or (Path(os.environ[CORPUS_ENV]) if os.environ.get(CORPUS_ENV) else None)
    gold = load_golden(golden, corpus=corpus_dir)
    cfg = resolve(settings, provider, model, mode, base_url, max_tokens)
    transport = ReplayTransport.from_path(replay) if replay is not None else None
    setup = RunSetup(
        cfg=cfg,
        key="replay" if replay is not None else api_key(settings, cfg.provider),
        prompt_version=prompt_version,
        limits=limits_for(settings, cfg.provider),
    )
    plan = EvalPlan(
        setup=setup,
        chunk_tokens=chunk_tokens,
        pack_tokens=pack_tokens if pack_tokens is not None else chunk_tokens,
        concurrency=concurrency,
        answers="replay" if replay is not None else "harness" if harness else "live",
        replay=str(replay) if replay is not None else None,
        judge=judge,
    )
    if keep_scratch is not None:
        keep_scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="decomposer-eval-") as tmp:
        scratch = keep_scratch or Path(tmp)
        try:
            outcome = asyncio.run(
                run_eval(settings, gold, plan, scratch, now=utcnow, transport=transport)
            )
        except ProviderError:
            if transport is not None and transport.misses:
                raise InputError(
                    f"no recording in {replay} answers document {transport.misses[0]!r}",
                    hint="record the golden set's pages once with a key: "
                    "`decomposer extract TOOL --record DIR`",
                ) from None
            raise
    created = utcnow()
    with common.env(ctx).store() as store, store.transaction() as session:
        run_id = save_run(session, outcome.settings, outcome.report, created)
    run = EvalRun(id=run_id, created_at=created, settings=outcome.settings, report=outcome.report)
    if as_json:
        common.print_json(run)
    else:
        print_run(common.out(), run)
        if keep_scratch is not None:
            common.out().print(f"scratch store kept: {keep_scratch / 'scratch.db'}", markup=False)
    if limits is not None and (problems := outside(outcome.report, limits)):
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InputError(f"eval run {run_id} left the band in {band}: {problems[0]}{more}")


@eval_app.command("list")
def list_cmd(
    ctx: typer.Context,
    golden: Annotated[
        str | None, typer.Option("--golden", help="Only runs of this golden set (its name).")
    ] = None,
    as_json: common.JsonOpt = False,
) -> None:
    """List stored eval runs with their settings and headline figures."""
    from rich.table import Table

    from decomposer.evals.runs import list_runs

    with common.env(ctx).store() as store, store.transaction() as session:
        runs = list_runs(session, golden)
    if as_json:
        common.print_json([_summary(r) for r in runs])
        return
    out = common.out()
    if not runs:
        out.print("no eval runs yet — run `decomposer eval GOLDEN`", markup=False)
        return
    table = Table(
        "run",
        "created",
        "golden",
        "provider",
        "model",
        "mode",
        "prompt",
        "chunk",
        "answers",
        "recall",
        "precision",
        "tokens",
        "$",
        box=None,
        pad_edge=False,
    )
    for r in runs:
        s, c = r.settings, r.report.cost
        table.add_row(
            str(r.id),
            f"{r.created_at:%Y-%m-%d %H:%M}",
            s.golden_name,
            s.provider,
            s.model,
            s.mode,
            s.prompt_version,
            str(s.chunk_tokens),
            s.answers,
            share_text(r.report.capabilities.recall),
            share_text(r.report.capabilities.precision),
            f"{c.input_tokens + c.output_tokens:,}" if c else "unknown",
            common.usd(c.cost_usd) if c else "unknown",
        )
    out.print(table)


@eval_app.command("show")
def show_cmd(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(help="Eval run id (see `eval list`), or latest.")],
    as_json: common.JsonOpt = False,
    view: FormatOpt = "text",
    out_file: OutOpt = None,
) -> None:
    """Show one eval run: settings, figures, per tool and per page, and what to judge by hand."""
    from decomposer.evals.runs import get_run

    fmt = _view(view, as_json)
    with common.env(ctx).store() as store, store.transaction() as session:
        found = get_run(session, run)
    if fmt == "json":
        _emit(_json(found), out_file)
    elif fmt == "html":
        from decomposer.evals.html import render_runs

        _emit(render_runs([found]), out_file)
    else:
        print_run(common.out(), found)


@eval_app.command("compare")
def compare_cmd(
    ctx: typer.Context,
    run_a: Annotated[str, typer.Argument(help="Baseline eval run id (A).")],
    run_b: Annotated[str, typer.Argument(help="Eval run id to compare with it (B).")],
    as_json: common.JsonOpt = False,
    view: FormatOpt = "text",
    out_file: OutOpt = None,
) -> None:
    """Compare two eval runs: metric deltas (B − A), per-page wins and losses, and the golden
    capabilities one run found and the other missed."""
    from decomposer.evals.compare import compare_runs
    from decomposer.evals.runs import get_run

    fmt = _view(view, as_json)
    with common.env(ctx).store() as store, store.transaction() as session:
        a, b = get_run(session, run_a), get_run(session, run_b)
    comparison = compare_runs(a, b)
    if fmt == "json":
        _emit(comparison.model_dump_json(indent=2), out_file)
    elif fmt == "html":
        from decomposer.evals.html import render_comparison

        _emit(render_comparison(comparison), out_file)
    else:
        print_comparison(common.out(), comparison)


@eval_app.command("report")
def report_cmd(
    ctx: typer.Context,
    runs: Annotated[
        list[str] | None, typer.Argument(help="Eval run ids (default: the last 10 runs).")
    ] = None,
    out_file: Annotated[Path, typer.Option("--out", help="HTML file to write.")] = Path(
        "eval-report.html"
    ),
) -> None:
    """Write a standalone HTML report (tables, SVG charts, no CDN) of several eval runs."""
    from decomposer.evals.html import render_runs
    from decomposer.evals.runs import get_run, list_runs

    with common.env(ctx).store() as store, store.transaction() as session:
        chosen = [get_run(session, r) for r in runs] if runs else list_runs(session)[-10:]
    if not chosen:
        raise InputError("no eval runs yet", hint="run `decomposer eval GOLDEN` first")
    _emit(render_runs(chosen), out_file)


# --- output ------------------------------------------------------------------------------------


def _view(view: str, as_json: bool) -> str:
    if view not in VIEWS:
        raise InputError(f"unknown --format {view!r} (one of: {', '.join(VIEWS)})")
    if as_json and view != "text":
        raise InputError("use either --json or --format, not both")
    return "json" if as_json else view


def _emit(text: str, out_file: Path | None) -> None:
    if out_file is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    try:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = out_file.with_name(out_file.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out_file)
    except OSError as exc:
        raise InputError(f"cannot write {out_file}: {exc.strerror or exc}") from exc
    common.out().print(f"wrote {out_file}", markup=False)


def _json(run: EvalRun) -> str:
    return run.model_dump_json(indent=2)


def _summary(run: EvalRun) -> dict[str, Any]:
    c = run.report.capabilities
    return {
        "id": run.id,
        "created_at": run.created_at.isoformat(),
        **run.settings.model_dump(mode="json"),
        "recall": c.recall,
        "precision": c.precision,
        "f1": c.f1,
        "cost": run.report.cost.model_dump(mode="json") if run.report.cost else None,
    }
