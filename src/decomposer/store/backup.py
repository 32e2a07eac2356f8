"""Backing up a live SQLite store with SQLite's online backup API, never a file copy.

Under WAL a copy of the database file alone misses the committed pages still in ``-wal`` and
can catch a half-checkpointed file; ``sqlite3.Connection.backup`` copies a consistent snapshot
page by page while other processes keep reading and writing. The copy is written beside the
target and renamed into place, so a failed backup leaves no partial file under its name.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from decomposer.core.errors import InputError
from decomposer.store.engine import Store

PAGES_PER_STEP = 1024
"""Pages copied per step: between steps other connections may write (the copy then restarts)."""


def backup_sqlite(store: Store, target: Path, *, force: bool = False) -> int:
    """Copy the store's SQLite database to ``target``; returns the copy's size in bytes."""
    if store.engine.dialect.name != "sqlite":
        raise InputError(
            f"backup copies a SQLite store; this one is {store.engine.dialect.name}",
            hint="use `decomposer export FILE`, or pg_dump for PostgreSQL",
        )
    target = writable(store, target, force)
    partial = target.with_name(f".{target.name}.partial")
    raw = store.engine.raw_connection()
    try:
        source = raw.driver_connection
        assert isinstance(source, sqlite3.Connection)
        copy = sqlite3.connect(partial)
        try:
            source.backup(copy, pages=PAGES_PER_STEP)
        finally:
            copy.close()
        os.replace(partial, target)
    except (OSError, sqlite3.Error) as exc:
        raise InputError(f"cannot write {target}: {exc}") from None
    finally:
        raw.close()
        partial.unlink(missing_ok=True)
    return target.stat().st_size


def writable(store: Store, target: Path, force: bool) -> Path:
    """``target`` if a copy of ``store`` may be written there: its folder exists, and it is not
    a folder, nor the store's own files, nor an existing file unless ``force``."""
    database = store.engine.url.database if store.engine.dialect.name == "sqlite" else None
    if database and database != ":memory:":
        live = Path(database).resolve()
        if target.resolve() in {live, *(live.with_name(live.name + s) for s in ("-wal", "-shm"))}:
            raise InputError(f"{target} is the store itself", hint="write to another file")
    if target.is_dir():
        raise InputError(f"{target} is a folder", hint="give a file name")
    if target.exists() and not force:
        raise InputError(f"{target} exists", hint="pass --force to replace it")
    if not target.parent.is_dir():
        raise InputError(f"{target.parent}: no such folder")
    return target
