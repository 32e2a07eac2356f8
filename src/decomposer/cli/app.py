"""The ``decomposer`` command: the root that registers every sub-CLI, and ``main``, which turns
a usage error into one line and exit 2, any other error into one line and exit 1.

The root imports its sub-CLIs, never the other way round; what they share lives in
``decomposer.cli.common``. Command modules import the library inside their commands, so starting
the CLI costs only Typer, Rich and the settings.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from decomposer.cli import (
    batch,
    contrast,
    docs,
    evals,
    extract,
    interactive,
    match,
    pages,
    review,
    token,
    tools,
    transfer,
)
from decomposer.cli.common import Env
from decomposer.core.config import Settings
from decomposer.core.errors import DecomposerError

USAGE = 2
"""Exit code of a usage error: an unknown command or option, a missing or invalid argument."""
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
    ("path", tools.path_cmd),
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
    ("export", transfer.export_cmd),
    ("import", transfer.import_cmd),
    ("backup", transfer.backup_cmd),
)
"""Top-level commands in the order ``--help`` lists them (the pipeline's order)."""
TOOL_COMMANDS: tuple[tuple[str, Callable[..., Any]], ...] = (
    ("add", tools.tool_add),
    ("import", pages.tool_import),
    ("show", pages.tool_show),
    ("remove", docs.tool_remove),
)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        sys.stdout.write(f"decomposer {version('decomposer')}\n")
        raise typer.Exit(0)


@app.callback()
def _root(
    ctx: typer.Context,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every model call.")] = False,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            help="Data dir for this command (default: $DECOMPOSER_HOME, else the per-user dir "
            "that `decomposer path` prints).",
            show_default=False,
        ),
    ] = None,
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version; exit."
        ),
    ] = False,
) -> None:
    """decomposer: ingest docs, extract capabilities, review and compare them."""
    if home is not None:
        ctx.obj = Env(Settings.from_env(home=home))
    if verbose:
        logging.getLogger("decomposer").setLevel(logging.INFO)


for _name, _command in COMMANDS:
    app.command(_name)(_command)
for _name, _command in TOOL_COMMANDS:
    tool_app.command(_name)(_command)
app.add_typer(tool_app, name="tool")
docs.register(app)
batch.register(app)
match.register(app)
evals.register(app)
contrast.register(app)
token.register(app)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = Settings.from_env()
    except DecomposerError as exc:
        _fail(str(exc))
        return 1
    _configure_logging(settings.debug)
    command = build()
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
        return _show_usage_error(exc, _command_path(command, argv))
    except (typer.Abort, KeyboardInterrupt):
        _fail("interrupted")
        return INTERRUPTED
    code = int(result) if isinstance(result, int) else 0
    if code == INTERRUPTED:
        _fail("interrupted")
    return code


def build() -> Any:
    """The Click command tree, with flags shown as flags (no ``<bool>`` type after them) and
    each command's examples at the end of its help."""
    from decomposer.cli.examples import paragraph, reflow

    root = typer.main.get_command(app)
    todo: list[tuple[str, Any]] = [("", root)]
    while todo:
        path, command = todo.pop()
        subs = getattr(command, "commands", {})
        todo.extend((f"{path} {name}".strip(), sub) for name, sub in subs.items())
        command.help = reflow(command.help or "")
        if not subs and (example := paragraph(path)):
            command.help = f"{command.help}\n\n{example}"
        for param in [*command.params, command.get_help_option(typer.Context(command))]:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
    return root


def _command_path(command: Any, argv: Sequence[str] | None) -> str:
    """``decomposer match run`` for ``match run --top-k``: the sub-command names at the front of
    the arguments (Click's parser errors carry no context to take the path from)."""
    words = ["decomposer"]
    args = iter(sys.argv[1:] if argv is None else argv)
    for arg in args:
        if arg == "--home":
            next(args, None)  # the root option's value, not a command
            continue
        if arg.startswith("-"):
            continue  # a root flag such as --verbose before the sub-command
        sub = getattr(command, "commands", {}).get(arg)
        if sub is None:
            break
        words.append(arg)
        command = sub
    return " ".join(words)


def _show_usage_error(exc: typer.TyperException, path: str) -> int:
    """A usage error (unknown option, missing argument) as one line: what is wrong, then the
    command whose ``--help`` explains it. Click's own three-line form hides the cause below the
    usage line, and scripts reading stderr want one line."""
    message = " ".join(exc.format_message().split())
    if not message:
        return USAGE  # a group run without a command: its help is already on stdout
    _fail(f"{message} (see '{path} --help')")
    return USAGE


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
