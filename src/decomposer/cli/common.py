"""What every sub-CLI shares: the environment a command runs in, output helpers and extras checks.

A leaf module: sub-CLIs import it, it imports no command module, and it stays light (no store, no
SDK) so that ``decomposer --help`` starts quickly.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from decomposer.cli.choices import PROVIDERS
from decomposer.core.config import Settings
from decomposer.core.errors import ConfigError

if TYPE_CHECKING:
    from rich.progress import Progress, ProgressColumn

    from decomposer.extraction.run import RunReport
    from decomposer.store import Store

EXTRAS: dict[str, tuple[str, ...]] = {
    "web": ("fastapi", "uvicorn", "fastapi_offline", "python_multipart", "itsdangerous"),
    "queue": ("celery", "redis"),
    "match": ("numpy", "scipy", "snowballstemmer"),
    "postgres": ("psycopg",),
}
"""The optional parts of the install (pyproject extras) and the modules each one brings."""


@dataclass(frozen=True)
class Env:
    """What ``main`` hands every command through the Click context."""

    settings: Settings

    def database_url(self) -> str:
        """The store's URL, once its prerequisites are checked (and the legacy notice shown)."""
        if self.settings.legacy_home:
            legacy_notice(self.settings.home)
        if self.settings.database_url.startswith("postgresql"):
            require("postgres", "a PostgreSQL database")
        return self.settings.database_url

    @contextmanager
    def store(self) -> Iterator[Store]:
        from decomposer.store import open_store

        store = open_store(self.database_url())
        try:
            yield store
        finally:
            store.dispose()


JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
DoneJsonOpt = Annotated[
    bool, typer.Option("--json", help="Print what was done as JSON, with ids, instead of text.")
]
NlOpt = Annotated[
    bool, typer.Option("--nl", help="Print one JSON object a line (NDJSON), for streaming tools.")
]


# Options of every command that calls a model (extract, contrast, eval): one wording each.
ProviderOpt = Annotated[str, typer.Option(help=f"One of: {', '.join(PROVIDERS)}.")]
ModelOpt = Annotated[str | None, typer.Option(help="Model name; a per-provider default.")]
BaseUrlOpt = Annotated[
    str | None, typer.Option(help="Endpoint for openai-compatible servers (vLLM, Ollama).")
]
ModeOpt = Annotated[str | None, typer.Option(help="json_schema (default) or tools.")]
RpsOpt = Annotated[float | None, typer.Option(help="Requests/second limit for this provider key.")]
TpmOpt = Annotated[int | None, typer.Option(help="Tokens/minute limit for this key.")]
ReplayOpt = Annotated[
    Path | None,
    typer.Option(help="Answer from recorded responses (file or folder) instead of the network."),
]


NOTICE_SHOWN = ".moved-default-noticed"
"""Marker in a legacy ``./.decomposer`` once the CLI has said how to move it."""


def legacy_notice(home: Path) -> None:
    """Say once (then leave a marker) that ``./.decomposer`` is used and how to move it."""
    from decomposer.core.config import user_home

    marker = home / NOTICE_SHOWN
    if marker.exists():
        return
    target = user_home()
    sys.stderr.write(
        f"note: using {home}/ in this folder, the old default data dir; the default is now "
        f"{target} — move it with `mkdir -p '{target.parent}' && mv {home} '{target}'`, or keep "
        f"it with DECOMPOSER_HOME={home} (said once)\n"
    )
    with suppress(OSError):  # a read-only data dir: the note shows again next time
        marker.touch()


def env(ctx: typer.Context) -> Env:
    obj = ctx.find_root().obj
    assert isinstance(obj, Env)
    return obj


def require(extra: str, needed_by: str) -> None:
    """Fail with one line naming the extra to install when one of its modules is missing."""
    for module in EXTRAS[extra]:
        try:
            importlib.import_module(module)
        except ImportError:
            raise _missing(extra, needed_by) from None


@contextmanager
def needs(extra: str, needed_by: str) -> Iterator[None]:
    """Like ``require``, for code that needs the extra only through what it imports today: the
    one-line error appears only if one of the extra's modules is actually imported and missing."""
    try:
        yield
    except ImportError as exc:
        if (exc.name or "").split(".")[0] in EXTRAS[extra]:
            raise _missing(extra, needed_by) from None
        raise


def _missing(extra: str, needed_by: str) -> ConfigError:
    return ConfigError(f"{needed_by} needs the '{extra}' extra: pip install 'decomposer[{extra}]'")


def out() -> Console:
    """Stdout console; wide when piped so summaries and tables are not wrapped at 80 columns."""
    console = Console(highlight=False)
    return console if console.is_terminal else Console(highlight=False, width=160)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=_plain) + "\n")


def _plain(value: Any) -> Any:
    """Typed read models (pydantic) print as the JSON they dump to."""
    dump = getattr(value, "model_dump", None)
    if dump is None:
        raise TypeError(f"{type(value).__name__} is not JSON serialisable")
    return dump(mode="json")


def print_rows(rows: Sequence[Any], as_json: bool, nl: bool) -> bool:
    """Rows as a JSON array (``--json``) or one object a line (``--nl``); False when neither was
    asked for, so the caller prints its table."""
    if as_json and nl:
        raise typer.BadParameter("use either --json or --nl, not both")
    if nl:
        sys.stdout.writelines(
            json.dumps(r, ensure_ascii=False, default=_plain) + "\n" for r in rows
        )
    elif as_json:
        print_json(list(rows))
    return as_json or nl


def run_json(report: RunReport) -> dict[str, Any]:
    """A finished run as ``extract --json`` prints it."""
    p = report.progress
    return {
        "action": "extract",
        "tool": report.tool,
        "run_id": report.run_id,
        "status": "succeeded",
        "chunks": p.chunks,
        "requests": p.total,
        "calls": p.calls,
        "cache_hits": p.cache_hits,
        "input_tokens": p.input_tokens,
        "output_tokens": p.output_tokens,
        "cost_usd": p.cost_usd,
        "capabilities": report.capabilities,
        "changes": asdict(report.changes),
    }


def usd(cost: float | None) -> str:
    """``$0.0123``, or ``unknown`` for a model without a price (never a misleading $0)."""
    return "unknown" if cost is None else f"${cost:.4f}"


def print_changes(
    console: Console, subject: str, groups: Sequence[tuple[str, Sequence[str]]], tail: str = ""
) -> None:
    """Each item under its label, then one line of counts (ingest, catalogue import)."""
    for label, items in groups:
        for item in items:
            console.print(f"{label}: {item}")
    counts = ", ".join(f"{len(items)} {label.split(' ')[0]}" for label, items in groups)
    console.print(f"{subject}: {counts}{tail}")


def print_run(report: RunReport, as_json: bool = False) -> None:
    """The two-line summary of a finished extraction run (inline, Batch or cache-only)."""
    if as_json:
        print_json(run_json(report))
        return
    p = report.progress
    console = out()
    console.print(
        f"[bold]{report.tool}[/]: run {report.run_id} succeeded — {p.chunks} chunks in "
        f"{p.total} requests: {p.calls} calls, {p.cache_hits} cache hits, {p.input_tokens:,} in / "
        f"{p.output_tokens:,} out tokens, {usd(p.cost_usd)}"
    )
    c = report.changes
    console.print(
        f"  {report.capabilities} capabilities: {c.created} new, {c.refreshed} updated, "
        f"{c.proposed} changes proposed for review, {c.reappeared} back after vanishing, "
        f"{c.ungrounded} ungrounded"
    )
    if c.vanished:
        console.print(
            f"  note: {c.vanished} capabilities were not found again and are now vanished"
        )


def progress(*columns: ProgressColumn) -> Progress:
    """A progress bar on stderr, hidden when stderr is not a terminal (pipes, CI, tests)."""
    from rich.progress import Progress

    console = Console(stderr=True)
    return Progress(*columns, console=console, disable=not console.is_terminal)
