"""CLI commands for moving a store: ``export`` (JSON Lines), ``import`` (into an empty store)
and ``backup`` (a live SQLite store, through SQLite's online backup API)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import typer

from decomposer.cli import common

ForceOpt = Annotated[bool, typer.Option("--force", help="Replace FILE if it exists.")]
FileArg = Annotated[str, typer.Argument(help="The file; - for stdout/stdin.", show_default=False)]


def export_cmd(
    ctx: typer.Context,
    file: FileArg,
    tool: Annotated[
        list[str] | None,
        typer.Option("--tool", help="Only this tool's rows (repeat for more); default all."),
    ] = None,
    force: ForceOpt = False,
    as_json: common.DoneJsonOpt = False,
) -> None:
    """Write every record as JSON Lines: tools, documents, chunks, capabilities, evidence,
    proposals, review history, runs, jobs, the call log and cache, catalogue and match data."""
    from importlib.metadata import version

    from decomposer.core.errors import InputError
    from decomposer.store.backup import writable
    from decomposer.store.transfer import export_store

    with common.env(ctx).store() as store:
        if file == "-":
            result = export_store(store, sys.stdout, version=version("decomposer"), tools=tool)
        else:
            target = writable(store, Path(file), force)
            partial = target.with_name(f".{target.name}.partial")
            try:
                with partial.open("w", encoding="utf-8", newline="\n") as out:
                    result = export_store(store, out, version=version("decomposer"), tools=tool)
                os.replace(partial, target)
            except OSError as exc:
                raise InputError(f"cannot write {file}: {exc.strerror}") from None
            finally:
                partial.unlink(missing_ok=True)
    summary = {"action": "export", "file": file, "tools": tool or None, "rows": result.rows}
    _report(
        summary,
        f"exported {result.total:,} rows from {len(result.rows)} tables to {file}",
        as_json,
        to_stderr=file == "-",
    )


def import_cmd(ctx: typer.Context, file: FileArg, as_json: common.DoneJsonOpt = False) -> None:
    """Restore a `decomposer export` file into an empty store, in one transaction."""
    from decomposer.core.errors import InputError
    from decomposer.store.transfer import import_store, read_lines

    with common.env(ctx).store() as store:
        if file == "-":
            result = import_store(store, read_lines(sys.stdin.buffer))
        else:
            path = Path(file)
            if not path.is_file():
                raise InputError(f"{file}: no such file")
            with path.open("rb") as stream:
                result = import_store(store, read_lines(stream))
    for note in result.notes:
        common.out().print(f"note: {note}", markup=False)
    summary = {"action": "import", "file": file, "rows": result.rows, "notes": result.notes}
    _report(summary, f"imported {result.total:,} rows into {len(result.rows)} tables", as_json)


def backup_cmd(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Where to write the copy.", show_default=False)],
    force: ForceOpt = False,
    as_json: common.DoneJsonOpt = False,
) -> None:
    """Copy a live SQLite store with SQLite's online backup API (safe while others write)."""
    from decomposer.store.backup import backup_sqlite

    with common.env(ctx).store() as store:
        size = backup_sqlite(store, file, force=force)
    summary = {"action": "backup", "file": str(file), "bytes": size}
    _report(summary, f"backed up the store to {file} ({size:,} bytes)", as_json)


def _report(
    summary: Mapping[str, object], line: str, as_json: bool, to_stderr: bool = False
) -> None:
    if to_stderr:
        sys.stderr.write(line + "\n")
    elif as_json:
        common.print_json(summary)
    else:
        common.out().print(line, markup=False)
