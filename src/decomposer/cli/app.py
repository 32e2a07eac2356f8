"""The ``decomposer`` command: the root that registers every sub-CLI, and ``main``, which turns
errors into one line and exit 1.

The root imports its sub-CLIs, never the other way round; what they share lives in
``decomposer.cli.common``. Command modules import the library inside their commands, so starting
the CLI costs only Typer, Rich and the settings.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import typer

from decomposer.cli import batch, extract, interactive, match, pages, review, token, tools
from decomposer.cli.common import Env
from decomposer.core.config import Settings
from decomposer.core.errors import DecomposerError

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

COMMANDS: tuple[tuple[str, Callable[..., Any]], ...] = (
    ("tools", tools.tools_cmd),
    ("ingest", tools.ingest_cmd),
    ("extract", extract.extract_cmd),
    ("runs", extract.runs_cmd),
    ("worker", extract.worker_cmd),
    ("jobs", extract.jobs_cmd),
    ("capabilities", tools.capabilities_cmd),
    ("score", pages.score_cmd),
    ("compare", pages.compare_cmd),
    ("regenerate", pages.regenerate_cmd),
    ("stale", pages.stale_cmd),
    ("review", interactive.review_cmd),
    ("approve", review.approve_cmd),
    ("reject", review.reject_cmd),
    ("edit", review.edit_cmd),
    ("history", review.history_cmd),
    ("serve", review.serve_cmd),
)
"""Top-level commands in the order ``--help`` lists them (the pipeline's order)."""
TOOL_COMMANDS: tuple[tuple[str, Callable[..., Any]], ...] = (
    ("add", tools.tool_add),
    ("import", pages.tool_import),
    ("show", pages.tool_show),
)


@app.callback()
def _root(
    ctx: typer.Context,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every model call.")] = False,
) -> None:
    """decomposer: ingest docs, extract capabilities, review and compare them."""
    if verbose:
        logging.getLogger("decomposer").setLevel(logging.INFO)


for _name, _command in COMMANDS:
    app.command(_name)(_command)
for _name, _command in TOOL_COMMANDS:
    tool_app.command(_name)(_command)
app.add_typer(tool_app, name="tool")
batch.register(app)
match.register(app)
token.register(app)


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
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.TyperException as exc:
        _show_usage_error(exc)
        return int(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        _fail("interrupted")
        return INTERRUPTED
    code = int(result) if isinstance(result, int) else 0
    if code == INTERRUPTED:
        _fail("interrupted")
    return code


def _show_usage_error(exc: typer.TyperException) -> None:
    """A usage error (unknown option, missing argument) as Click prints it: usage, then why."""
    if not exc.format_message().strip():
        return  # a group run without a command: its help is already on stdout
    show = getattr(exc, "show", None)
    if callable(show):
        show()
    else:
        _fail(exc.format_message())


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
