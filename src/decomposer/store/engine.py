"""Opening the database: engine settings, migrations to head, sessions with one transaction.

Alembic is imported only when the schema is behind: a current database is recognised by comparing
its ``alembic_version`` row with the head revision read from the migration files, which keeps
every command's start-up free of Alembic's import cost.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from decomposer.core.errors import StoreError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_MS = 30_000
_REVISION = re.compile(r"^(down_revision|revision)\b[^=]*=\s*(?:\"([^\"]*)\"|'([^']*)'|None)", re.M)


@dataclass(frozen=True)
class Store:
    engine: Engine
    sessions: sessionmaker[Session]

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work commits as one unit, or not at all."""
        with self.sessions.begin() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def make_engine(url: str, busy_timeout: float | None = None) -> Engine:
    """An engine; ``busy_timeout`` (seconds) bounds how long a write waits for a lock held by
    another process (SQLite's busy timeout, PostgreSQL's ``lock_timeout``) before it fails with
    ``OperationalError``. The review server sets it short to answer "busy" instead of hanging;
    by default SQLite waits 30 s and PostgreSQL for ever."""
    if url.startswith("sqlite"):
        _ensure_sqlite_dir(url)
        ms = SQLITE_BUSY_TIMEOUT_MS if busy_timeout is None else max(1, int(busy_timeout * 1000))
        engine = create_engine(url, connect_args={"timeout": ms / 1000})
        event.listen(engine, "connect", partial(_sqlite_pragmas, ms))
        return engine
    if busy_timeout is not None and url.startswith("postgresql+psycopg"):
        ms = max(1, int(busy_timeout * 1000))
        return create_engine(
            url, pool_pre_ping=True, connect_args={"options": f"-c lock_timeout={ms}"}
        )
    return create_engine(url, pool_pre_ping=True)


def _ensure_sqlite_dir(url: str) -> None:
    path = url.split("///", 1)[1] if "///" in url else ""
    if path and path != ":memory:":
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot open the database: cannot create {Path(path).parent} ({exc.strerror})",
                hint="check DECOMPOSER_HOME or DECOMPOSER_DATABASE_URL",
            ) from None


def _sqlite_pragmas(busy_timeout_ms: int, dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


@cache
def head_revision(versions: Path = MIGRATIONS / "versions") -> str | None:
    """The one revision no other migration builds on, read from the files without Alembic.

    ``None`` when the files do not form a single chain (branches, merges, unusual syntax): then
    Alembic decides.
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in versions.glob("*.py"):
        found = {m[1]: m[2] or m[3] or None for m in _REVISION.finditer(path.read_text("utf-8"))}
        if not found.get("revision"):
            return None
        revisions.add(str(found["revision"]))
        if found.get("down_revision"):
            parents.add(str(found["down_revision"]))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def stored_revision(conn: Connection) -> str | None:
    """The revision recorded in the database; ``None`` for an empty one."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return str(rows[0]) if len(rows) == 1 else None


def migrate(engine: Engine, url: str) -> None:
    """Upgrade to the newest schema when the database is behind; a no-op otherwise."""
    head = head_revision()
    if head is not None:
        with engine.connect() as conn:
            if stored_revision(conn) == head:
                return
    _upgrade(engine, url)


def _upgrade(engine: Engine, url: str) -> None:
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current == head:
        return
    cfg = alembic_config(url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def open_store(url: str, *, upgrade: bool = True, busy_timeout: float | None = None) -> Store:
    engine = make_engine(url, busy_timeout)
    try:
        if upgrade:
            migrate(engine, url)
    except OperationalError as exc:
        engine.dispose()
        raise StoreError(
            f"cannot open the database ({type(exc.orig).__name__}: {exc.orig})",
            hint="check DECOMPOSER_DATABASE_URL or DECOMPOSER_HOME",
        ) from None
    return Store(engine, sessionmaker(engine, expire_on_commit=False))
