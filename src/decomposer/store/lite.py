"""Read-only access to a current SQLite store through the stdlib driver, without SQLAlchemy.

Listing commands run one query; importing SQLAlchemy and declaring the ORM would cost them
more than the rest of their start-up together. ``read_only`` yields ``None`` whenever the fast
path cannot be trusted (not a plain SQLite file, schema not at head, unreadable file), and the
caller then opens the store the full way, which migrates or reports the problem.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

MIGRATIONS = Path(__file__).with_name("migrations")
BUSY_TIMEOUT_S = 30.0
_REVISION = re.compile(r"^(down_revision|revision)\b[^=]*=\s*(?:\"([^\"]*)\"|'([^']*)'|None)", re.M)


@cache
def migration_chain(versions: Path = MIGRATIONS / "versions") -> dict[str, str | None] | None:
    """Each migration's revision and the one it builds on, read from the files without
    Alembic; ``None`` when a file names no revision (unusual syntax): then Alembic decides."""
    chain: dict[str, str | None] = {}
    for path in versions.glob("*.py"):
        found = {m[1]: m[2] or m[3] or None for m in _REVISION.finditer(path.read_text("utf-8"))}
        if not found.get("revision"):
            return None
        chain[str(found["revision"])] = found.get("down_revision")
    return chain


def known_revisions(versions: Path = MIGRATIONS / "versions") -> frozenset[str] | None:
    """Every schema revision this version of decomposer ships a migration for; ``None`` when
    the files cannot be read without Alembic."""
    chain = migration_chain(versions)
    return None if chain is None else frozenset(chain)


def head_revision(versions: Path = MIGRATIONS / "versions") -> str | None:
    """The one revision no other migration builds on; ``None`` when the files do not form a
    single chain (branches, merges, unusual syntax): then Alembic decides."""
    chain = migration_chain(versions)
    if chain is None:
        return None
    heads = set(chain) - {parent for parent in chain.values() if parent}
    return heads.pop() if len(heads) == 1 else None


def sqlite_file(url: str) -> Path | None:
    """The database file of a plain ``sqlite:///PATH`` URL; ``None`` for anything else."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or "?" in url:
        return None
    path = url[len(prefix) :]
    return Path(path) if path and path != ":memory:" else None


@contextmanager
def read_only(url: str) -> Iterator[sqlite3.Connection | None]:
    """A connection to the store at ``url`` when it is a SQLite file already at the newest
    schema, else ``None``. Nothing is created or migrated."""
    path = sqlite_file(url)
    conn = _connect_current(path) if path is not None and path.is_file() else None
    try:
        yield conn
    finally:
        if conn is not None:
            conn.close()


def _connect_current(path: Path) -> sqlite3.Connection | None:
    head = head_revision()
    if head is None:
        return None
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S)
    try:
        rows = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.DatabaseError:
        conn.close()
        return None
    if rows != [(head,)]:
        conn.close()
        return None
    return conn
